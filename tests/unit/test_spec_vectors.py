"""Every SMPP 3.4 PDU as wire bytes written by hand from the spec's field tables.

Each vector is spelled out field by field (SMPP 3.4 section 4, summarised in
SMPP-NOTES section 2), command_length included, without help from our encoder:
decoding it must give exactly the listed field values, and encoding those
values must give back exactly these bytes. A codec that disagrees with the
spec on a width, an order or a limit fails here, whatever it agrees with
itself about.

ASCII used below: "smppclient1" 736d7070636c69656e7431, "password"
70617373776f7264, "secret08" 7365637265743038, "SMSC" 534d5343, "esme"
65736d65, "gw" 6777, "VMS" 564d53, "CMT" 434d54, "WAP" 574150, "Shop"
53686f70, "12345" 3132333435, "4799" 34373939, "447700900123"
343437373030393030313233, "1234567890" 31323334353637383930.
"""

from __future__ import annotations

import pytest

from gateway.smpp import layout
from gateway.smpp import pdu as p
from gateway.smpp.codec import decode, encode
from gateway.smpp.pdu import Tag

# --- binds (SMPP 3.4 sections 4.1.1-4.1.6) ---------------------------------------

BIND_TRANSMITTER = bytes.fromhex(
    "0000002d"  # command_length 45
    "00000002"  # command_id bind_transmitter
    "00000000"  # command_status
    "00000001"  # sequence_number 1
    "736d7070636c69656e743100"  # system_id C16 "smppclient1"
    "70617373776f726400"  # password C9 "password"
    "564d5300"  # system_type C13 "VMS"
    "34"  # interface_version I1 3.4
    "01"  # addr_ton I1 international
    "01"  # addr_npi I1 ISDN
    "00"  # address_range C41 ""
)

BIND_RECEIVER = bytes.fromhex(
    "0000002d"  # command_length 45
    "00000001"  # command_id bind_receiver
    "00000000"  # command_status
    "00000002"  # sequence_number 2
    "736d7070636c69656e743100"  # system_id C16 "smppclient1"
    "736563726574303800"  # password C9 "secret08"
    "00"  # system_type C13 ""
    "34"  # interface_version I1
    "00"  # addr_ton I1
    "00"  # addr_npi I1
    "34343700"  # address_range C41 "447"
)

BIND_TRANSCEIVER = bytes.fromhex(
    "0000001b"  # command_length 27
    "00000009"  # command_id bind_transceiver
    "00000000"  # command_status
    "00000003"  # sequence_number 3
    "65736d6500"  # system_id C16 "esme"
    "00"  # password C9 ""
    "00"  # system_type C13 ""
    "50"  # interface_version I1 (node-smpp binds as 0x50)
    "02"  # addr_ton I1 national
    "08"  # addr_npi I1 national
    "00"  # address_range C41 ""
)

BIND_TRANSMITTER_RESP = bytes.fromhex(
    "00000015"  # command_length 21
    "80000002"  # command_id bind_transmitter_resp
    "00000000"  # command_status ESME_ROK
    "00000001"  # sequence_number 1
    "534d534300"  # system_id C16 "SMSC"
)

BIND_RECEIVER_RESP = bytes.fromhex(
    "0000001a"  # command_length 26
    "80000001"  # command_id bind_receiver_resp
    "00000000"  # command_status ESME_ROK
    "00000002"  # sequence_number 2
    "534d534300"  # system_id C16 "SMSC"
    "0210"  # TLV tag sc_interface_version
    "0001"  # TLV length 1
    "34"  # TLV value 3.4
)

BIND_TRANSCEIVER_RESP = bytes.fromhex(
    "00000013"  # command_length 19
    "80000009"  # command_id bind_transceiver_resp
    "00000000"  # command_status ESME_ROK
    "00000003"  # sequence_number 3
    "677700"  # system_id C16 "gw"
)

# A failed bind: SMPP 3.4 section 4.1.2 says the body is not returned.
BIND_TRANSCEIVER_RESP_FAILED = bytes.fromhex(
    "00000010"  # command_length 16
    "80000009"  # command_id bind_transceiver_resp
    "0000000d"  # command_status ESME_RBINDFAIL
    "00000003"  # sequence_number 3
)

# --- outbind, unbind, generic_nack, enquire_link (4.1.7, 4.2, 4.3, 4.11) -------------

OUTBIND = bytes.fromhex(
    "0000001e"  # command_length 30
    "0000000b"  # command_id outbind
    "00000000"  # command_status
    "00000004"  # sequence_number 4
    "534d534300"  # system_id C16 "SMSC"
    "70617373776f726400"  # password C9 "password"
)

UNBIND = bytes.fromhex(
    "00000010"  # command_length 16
    "00000006"  # command_id unbind
    "00000000"  # command_status
    "00000005"  # sequence_number 5
)

UNBIND_RESP = bytes.fromhex(
    "00000010"  # command_length 16
    "80000006"  # command_id unbind_resp
    "00000000"  # command_status
    "00000005"  # sequence_number 5
)

GENERIC_NACK = bytes.fromhex(
    "00000010"  # command_length 16
    "80000000"  # command_id generic_nack
    "00000003"  # command_status ESME_RINVCMDID
    "00000006"  # sequence_number 6
)

ENQUIRE_LINK = bytes.fromhex(
    "00000010"  # command_length 16
    "00000015"  # command_id enquire_link
    "00000000"  # command_status
    "7fffffff"  # sequence_number, the spec's highest
)

ENQUIRE_LINK_RESP = bytes.fromhex(
    "00000010"  # command_length 16
    "80000015"  # command_id enquire_link_resp
    "00000000"  # command_status
    "7fffffff"  # sequence_number
)

# --- submit_sm and deliver_sm (4.4, 4.6) ----------------------------------------------

SUBMIT_SM = bytes.fromhex(
    "0000004f"  # command_length 79
    "00000004"  # command_id submit_sm
    "00000000"  # command_status
    "00000008"  # sequence_number 8
    "434d5400"  # service_type C6 "CMT"
    "05"  # source_addr_ton I1 alphanumeric
    "00"  # source_addr_npi I1 unknown
    "53686f7000"  # source_addr C21 "Shop"
    "01"  # dest_addr_ton I1 international
    "01"  # dest_addr_npi I1 ISDN
    "34343737303039303031323300"  # destination_addr C21 "447700900123"
    "03"  # esm_class I1 store and forward
    "00"  # protocol_id I1
    "01"  # priority_flag I1
    "00"  # schedule_delivery_time C1 "" (immediate)
    "30303030303130303030303030303052"  # validity_period C17 "000001000000000R"
    "00"  # ... its NUL (relative: one day)
    "01"  # registered_delivery I1 receipt on success or failure
    "00"  # replace_if_present_flag I1
    "00"  # data_coding I1 SMSC default
    "00"  # sm_default_msg_id I1
    "05"  # sm_length I1 5
    "68656c6c6f"  # short_message "hello"
    "0204"  # TLV tag user_message_reference
    "0002"  # TLV length 2
    "0007"  # TLV value 7
)

SUBMIT_SM_RESP = bytes.fromhex(
    "0000001b"  # command_length 27
    "80000004"  # command_id submit_sm_resp
    "00000000"  # command_status ESME_ROK
    "00000008"  # sequence_number 8
    "3132333435363738393000"  # message_id C65 "1234567890"
)

# SMPP 3.4 section 4.4.2: no body when command_status is not zero.
SUBMIT_SM_RESP_THROTTLED = bytes.fromhex(
    "00000010"  # command_length 16
    "80000004"  # command_id submit_sm_resp
    "00000058"  # command_status ESME_RTHROTTLED
    "00000008"  # sequence_number 8
)

DELIVER_SM = bytes.fromhex(
    "00000042"  # command_length 66
    "00000005"  # command_id deliver_sm
    "00000000"  # command_status
    "00000009"  # sequence_number 9
    "00"  # service_type C6 ""
    "01"  # source_addr_ton I1
    "01"  # source_addr_npi I1
    "34343737303039303031323300"  # source_addr C21 "447700900123"
    "05"  # dest_addr_ton I1
    "00"  # dest_addr_npi I1
    "53686f7000"  # destination_addr C21 "Shop"
    "04"  # esm_class I1 delivery receipt
    "00"  # protocol_id I1
    "00"  # priority_flag I1
    "00"  # schedule_delivery_time C1, NULL in deliver_sm
    "00"  # validity_period C1, NULL in deliver_sm
    "00"  # registered_delivery I1
    "00"  # replace_if_present_flag I1
    "00"  # data_coding I1
    "00"  # sm_default_msg_id I1
    "05"  # sm_length I1 5
    "69643a3432"  # short_message "id:42"
    "001e"  # TLV tag receipted_message_id
    "0003"  # TLV length 3, the NUL counted
    "343200"  # TLV value "42\0"
    "0427"  # TLV tag message_state
    "0001"  # TLV length 1
    "02"  # TLV value DELIVERED
)

DELIVER_SM_RESP = bytes.fromhex(
    "00000011"  # command_length 17
    "80000005"  # command_id deliver_sm_resp
    "00000000"  # command_status ESME_ROK
    "00000009"  # sequence_number 9
    "00"  # message_id C1, NULL
)

# --- submit_multi (4.5) -----------------------------------------------------------

SUBMIT_MULTI = bytes.fromhex(
    "00000059"  # command_length 89
    "00000021"  # command_id submit_multi
    "00000000"  # command_status
    "0000000a"  # sequence_number 10
    "00"  # service_type C6 ""
    "01"  # source_addr_ton I1
    "01"  # source_addr_npi I1
    "313233343500"  # source_addr C21 "12345"
    "03"  # number_of_dests I1 3
    "01"  # dest_flag I1 SME address
    "01"  # ... dest_addr_ton I1
    "01"  # ... dest_addr_npi I1
    "34343737303039303031323300"  # ... destination_addr C21 "447700900123"
    "02"  # dest_flag I1 distribution list
    "667269656e647300"  # ... dl_name C21 "friends"
    "01"  # dest_flag I1 SME address
    "00"  # ... dest_addr_ton I1
    "00"  # ... dest_addr_npi I1
    "3437393900"  # ... destination_addr C21 "4799"
    "00"  # esm_class I1
    "00"  # protocol_id I1
    "00"  # priority_flag I1
    "3234303130313132303030303030342b"  # schedule_delivery_time C17 "240101120000004+"
    "00"  # ... its NUL (absolute: 2024-01-01 12:00, UTC + 4 quarter hours)
    "00"  # validity_period C1 ""
    "01"  # registered_delivery I1
    "00"  # replace_if_present_flag I1
    "08"  # data_coding I1 UCS-2
    "00"  # sm_default_msg_id I1
    "04"  # sm_length I1 4
    "00680069"  # short_message "hi" in UCS-2
)

SUBMIT_MULTI_RESP = bytes.fromhex(
    "00000032"  # command_length 50
    "80000021"  # command_id submit_multi_resp
    "00000000"  # command_status ESME_ROK
    "0000000a"  # sequence_number 10
    "373700"  # message_id C65 "77"
    "02"  # no_unsuccess I1 2
    "01"  # dest_addr_ton I1
    "01"  # dest_addr_npi I1
    "34343737303039303031323300"  # destination_addr C21 "447700900123"
    "0000000b"  # error_status_code I4 ESME_RINVDSTADR
    "00"  # dest_addr_ton I1
    "00"  # dest_addr_npi I1
    "3437393900"  # destination_addr C21 "4799"
    "00000045"  # error_status_code I4 ESME_RSUBMITFAIL
)

# --- data_sm (4.7) ------------------------------------------------------------------

DATA_SM = bytes.fromhex(
    "00000051"  # command_length 81
    "00000103"  # command_id data_sm
    "00000000"  # command_status
    "0000000b"  # sequence_number 11
    "57415000"  # service_type C6 "WAP"
    "01"  # source_addr_ton I1
    "01"  # source_addr_npi I1
    "34343737303039303031323300"  # source_addr C65 "447700900123"
    "00"  # dest_addr_ton I1
    "00"  # dest_addr_npi I1
    "75736572406d61696c2e6578616d706c652e6e657400"  # destination_addr C65
    # "user@mail.example.net": 21 characters, which only a C65 field holds
    "00"  # esm_class I1
    "01"  # registered_delivery I1
    "04"  # data_coding I1 8-bit
    "020a"  # TLV tag source_port
    "0002"  # TLV length 2
    "23f0"  # TLV value 9200
    "020b"  # TLV tag destination_port
    "0002"  # TLV length 2
    "0b84"  # TLV value 2948 (WAP push)
    "0424"  # TLV tag message_payload
    "0003"  # TLV length 3
    "010203"  # TLV value
)

DATA_SM_RESP = bytes.fromhex(
    "0000002d"  # command_length 45
    "80000103"  # command_id data_sm_resp
    "00000000"  # command_status ESME_ROK
    "0000000b"  # sequence_number 11
    "61626300"  # message_id C65 "abc"
    "0425"  # TLV tag delivery_failure_reason
    "0001"  # TLV length 1
    "00"  # TLV value: destination unavailable
    "001d"  # TLV tag additional_status_info_text
    "0003"  # TLV length 3
    "6f6b00"  # TLV value "ok\0"
    "0423"  # TLV tag network_error_code
    "0003"  # TLV length 3
    "03"  # ... network type GSM
    "0001"  # ... error code 1
    "1401"  # TLV tag 0x1401, vendor range: kept, not refused
    "0002"  # TLV length 2
    "abcd"  # TLV value
)

# --- query_sm, cancel_sm, replace_sm (4.8, 4.9, 4.10) ------------------------------

QUERY_SM = bytes.fromhex(
    "00000022"  # command_length 34
    "00000003"  # command_id query_sm
    "00000000"  # command_status
    "0000000c"  # sequence_number 12
    "3132333435363738393000"  # message_id C65 "1234567890"
    "05"  # source_addr_ton I1
    "00"  # source_addr_npi I1
    "53686f7000"  # source_addr C21 "Shop"
)

QUERY_SM_RESP = bytes.fromhex(
    "0000002e"  # command_length 46
    "80000003"  # command_id query_sm_resp
    "00000000"  # command_status ESME_ROK
    "0000000c"  # sequence_number 12
    "3132333435363738393000"  # message_id C65 "1234567890"
    "3234303130313132303530303030302b"  # final_date C17 "240101120500000+"
    "00"  # ... its NUL
    "02"  # message_state I1 DELIVERED
    "00"  # error_code I1
)

QUERY_SM_RESP_ENROUTE = bytes.fromhex(
    "00000015"  # command_length 21
    "80000003"  # command_id query_sm_resp
    "00000000"  # command_status ESME_ROK
    "0000000d"  # sequence_number 13
    "3900"  # message_id C65 "9"
    "00"  # final_date C1 "": not final yet
    "01"  # message_state I1 ENROUTE
    "00"  # error_code I1
)

CANCEL_SM = bytes.fromhex(
    "00000032"  # command_length 50
    "00000008"  # command_id cancel_sm
    "00000000"  # command_status
    "0000000d"  # sequence_number 13
    "00"  # service_type C6 ""
    "3132333435363738393000"  # message_id C65 "1234567890"
    "05"  # source_addr_ton I1
    "00"  # source_addr_npi I1
    "53686f7000"  # source_addr C21 "Shop"
    "01"  # dest_addr_ton I1
    "01"  # dest_addr_npi I1
    "34343737303039303031323300"  # destination_addr C21 "447700900123"
)

CANCEL_SM_RESP = bytes.fromhex(
    "00000010"  # command_length 16
    "80000008"  # command_id cancel_sm_resp
    "00000000"  # command_status ESME_ROK
    "0000000d"  # sequence_number 13
)

REPLACE_SM = bytes.fromhex(
    "0000003a"  # command_length 58
    "00000007"  # command_id replace_sm
    "00000000"  # command_status
    "0000000e"  # sequence_number 14
    "3132333435363738393000"  # message_id C65 "1234567890"
    "05"  # source_addr_ton I1
    "00"  # source_addr_npi I1
    "53686f7000"  # source_addr C21 "Shop"
    "00"  # schedule_delivery_time C1 ""
    "30303030303230303030303030303052"  # validity_period "000002000000000R"
    "00"  # ... its NUL
    "01"  # registered_delivery I1
    "00"  # sm_default_msg_id I1
    "03"  # sm_length I1 3
    "6e6577"  # short_message "new"
)

REPLACE_SM_RESP = bytes.fromhex(
    "00000010"  # command_length 16
    "80000007"  # command_id replace_sm_resp
    "00000000"  # command_status ESME_ROK
    "0000000e"  # sequence_number 14
)

# --- alert_notification (4.12) ---------------------------------------------------------

ALERT_NOTIFICATION = bytes.fromhex(
    "0000002b"  # command_length 43
    "00000102"  # command_id alert_notification
    "00000000"  # command_status
    "0000000f"  # sequence_number 15
    "01"  # source_addr_ton I1
    "01"  # source_addr_npi I1
    "34343737303039303031323300"  # source_addr C65 "447700900123"
    "05"  # esme_addr_ton I1
    "00"  # esme_addr_npi I1
    "53686f7000"  # esme_addr C65 "Shop"
    "0422"  # TLV tag ms_availability_status
    "0001"  # TLV length 1
    "00"  # TLV value: available
)


VECTORS: list[tuple[str, bytes, p.Pdu]] = [
    (
        "bind_transmitter",
        BIND_TRANSMITTER,
        p.BindTransmitter(
            sequence=1,
            system_id="smppclient1",
            password="password",
            system_type="VMS",
            interface_version=0x34,
            addr_ton=1,
            addr_npi=1,
            address_range="",
        ),
    ),
    (
        "bind_receiver",
        BIND_RECEIVER,
        p.BindReceiver(
            sequence=2,
            system_id="smppclient1",
            password="secret08",
            system_type="",
            interface_version=0x34,
            addr_ton=0,
            addr_npi=0,
            address_range="447",
        ),
    ),
    (
        "bind_transceiver",
        BIND_TRANSCEIVER,
        p.BindTransceiver(
            sequence=3,
            system_id="esme",
            password="",
            system_type="",
            interface_version=0x50,
            addr_ton=2,
            addr_npi=8,
            address_range="",
        ),
    ),
    (
        "bind_transmitter_resp",
        BIND_TRANSMITTER_RESP,
        p.BindTransmitterResp(sequence=1, system_id="SMSC"),
    ),
    (
        "bind_receiver_resp",
        BIND_RECEIVER_RESP,
        p.BindReceiverResp(
            sequence=2, system_id="SMSC", tlvs=[(Tag.SC_INTERFACE_VERSION, b"\x34")]
        ),
    ),
    (
        "bind_transceiver_resp",
        BIND_TRANSCEIVER_RESP,
        p.BindTransceiverResp(sequence=3, system_id="gw"),
    ),
    (
        "bind_transceiver_resp_failed",
        BIND_TRANSCEIVER_RESP_FAILED,
        p.BindTransceiverResp(sequence=3, status=p.CommandStatus.ESME_RBINDFAIL),
    ),
    ("outbind", OUTBIND, p.Outbind(sequence=4, system_id="SMSC", password="password")),
    ("unbind", UNBIND, p.Unbind(sequence=5)),
    ("unbind_resp", UNBIND_RESP, p.UnbindResp(sequence=5)),
    (
        "generic_nack",
        GENERIC_NACK,
        p.GenericNack(sequence=6, status=p.CommandStatus.ESME_RINVCMDID),
    ),
    ("enquire_link", ENQUIRE_LINK, p.EnquireLink(sequence=0x7FFFFFFF)),
    ("enquire_link_resp", ENQUIRE_LINK_RESP, p.EnquireLinkResp(sequence=0x7FFFFFFF)),
    (
        "submit_sm",
        SUBMIT_SM,
        p.SubmitSm(
            sequence=8,
            service_type="CMT",
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr="Shop",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900123",
            esm_class=3,
            protocol_id=0,
            priority_flag=1,
            schedule_delivery_time="",
            validity_period="000001000000000R",
            registered_delivery=1,
            replace_if_present_flag=0,
            data_coding=0,
            sm_default_msg_id=0,
            short_message=b"hello",
            tlvs=[(Tag.USER_MESSAGE_REFERENCE, b"\x00\x07")],
        ),
    ),
    ("submit_sm_resp", SUBMIT_SM_RESP, p.SubmitSmResp(sequence=8, message_id="1234567890")),
    (
        "submit_sm_resp_throttled",
        SUBMIT_SM_RESP_THROTTLED,
        p.SubmitSmResp(sequence=8, status=p.CommandStatus.ESME_RTHROTTLED),
    ),
    (
        "deliver_sm",
        DELIVER_SM,
        p.DeliverSm(
            sequence=9,
            service_type="",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            dest_addr_ton=5,
            dest_addr_npi=0,
            destination_addr="Shop",
            esm_class=p.ESM_CLASS_RECEIPT,
            short_message=b"id:42",
            tlvs=[(Tag.RECEIPTED_MESSAGE_ID, b"42\x00"), (Tag.MESSAGE_STATE, b"\x02")],
        ),
    ),
    ("deliver_sm_resp", DELIVER_SM_RESP, p.DeliverSmResp(sequence=9, message_id="")),
    (
        "submit_multi",
        SUBMIT_MULTI,
        p.SubmitMulti(
            sequence=10,
            service_type="",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="12345",
            dest_addresses=[
                p.DestAddress(
                    dest_flag=1, dest_addr_ton=1, dest_addr_npi=1, destination_addr="447700900123"
                ),
                p.DestAddress(dest_flag=2, dl_name="friends"),
                p.DestAddress(
                    dest_flag=1, dest_addr_ton=0, dest_addr_npi=0, destination_addr="4799"
                ),
            ],
            esm_class=0,
            protocol_id=0,
            priority_flag=0,
            schedule_delivery_time="240101120000004+",
            validity_period="",
            registered_delivery=1,
            replace_if_present_flag=0,
            data_coding=8,
            sm_default_msg_id=0,
            short_message="hi".encode("utf-16-be"),
        ),
    ),
    (
        "submit_multi_resp",
        SUBMIT_MULTI_RESP,
        p.SubmitMultiResp(
            sequence=10,
            message_id="77",
            unsuccess_smes=[
                p.UnsuccessSme(
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    destination_addr="447700900123",
                    error_status_code=p.CommandStatus.ESME_RINVDSTADR,
                ),
                p.UnsuccessSme(
                    dest_addr_ton=0,
                    dest_addr_npi=0,
                    destination_addr="4799",
                    error_status_code=p.CommandStatus.ESME_RSUBMITFAIL,
                ),
            ],
        ),
    ),
    (
        "data_sm",
        DATA_SM,
        p.DataSm(
            sequence=11,
            service_type="WAP",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            dest_addr_ton=0,
            dest_addr_npi=0,
            destination_addr="user@mail.example.net",
            esm_class=0,
            registered_delivery=1,
            data_coding=4,
            tlvs=[
                (Tag.SOURCE_PORT, b"\x23\xf0"),
                (Tag.DESTINATION_PORT, b"\x0b\x84"),
                (Tag.MESSAGE_PAYLOAD, b"\x01\x02\x03"),
            ],
        ),
    ),
    (
        "data_sm_resp",
        DATA_SM_RESP,
        p.DataSmResp(
            sequence=11,
            message_id="abc",
            tlvs=[
                (Tag.DELIVERY_FAILURE_REASON, b"\x00"),
                (Tag.ADDITIONAL_STATUS_INFO_TEXT, b"ok\x00"),
                (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x01"),
                (0x1401, b"\xab\xcd"),
            ],
        ),
    ),
    (
        "query_sm",
        QUERY_SM,
        p.QuerySm(
            sequence=12,
            message_id="1234567890",
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr="Shop",
        ),
    ),
    (
        "query_sm_resp",
        QUERY_SM_RESP,
        p.QuerySmResp(
            sequence=12,
            message_id="1234567890",
            final_date="240101120500000+",
            message_state=p.MessageState.DELIVERED,
            error_code=0,
        ),
    ),
    (
        "query_sm_resp_enroute",
        QUERY_SM_RESP_ENROUTE,
        p.QuerySmResp(
            sequence=13,
            message_id="9",
            final_date="",
            message_state=p.MessageState.ENROUTE,
            error_code=0,
        ),
    ),
    (
        "cancel_sm",
        CANCEL_SM,
        p.CancelSm(
            sequence=13,
            service_type="",
            message_id="1234567890",
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr="Shop",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900123",
        ),
    ),
    ("cancel_sm_resp", CANCEL_SM_RESP, p.CancelSmResp(sequence=13)),
    (
        "replace_sm",
        REPLACE_SM,
        p.ReplaceSm(
            sequence=14,
            message_id="1234567890",
            source_addr_ton=5,
            source_addr_npi=0,
            source_addr="Shop",
            schedule_delivery_time="",
            validity_period="000002000000000R",
            registered_delivery=1,
            sm_default_msg_id=0,
            short_message=b"new",
        ),
    ),
    ("replace_sm_resp", REPLACE_SM_RESP, p.ReplaceSmResp(sequence=14)),
    (
        "alert_notification",
        ALERT_NOTIFICATION,
        p.AlertNotification(
            sequence=15,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="447700900123",
            esme_addr_ton=5,
            esme_addr_npi=0,
            esme_addr="Shop",
            tlvs=[(Tag.MS_AVAILABILITY_STATUS, b"\x00")],
        ),
    ),
]

IDS = [name for name, _, _ in VECTORS]


def test_every_smpp34_pdu_has_a_vector() -> None:
    assert {type(pdu) for _, _, pdu in VECTORS} == set(p.PDU_CLASSES.values())


@pytest.mark.parametrize(("name", "wire", "expected"), VECTORS, ids=IDS)
def test_header_was_written_right(name: str, wire: bytes, expected: p.Pdu) -> None:
    # Checks the hand-written header against itself, not against the codec.
    assert int.from_bytes(wire[0:4], "big") == len(wire)
    assert int.from_bytes(wire[4:8], "big") == expected.command_id
    assert name.startswith(expected.command_id.name.lower())
    assert int.from_bytes(wire[8:12], "big") == expected.status
    assert int.from_bytes(wire[12:16], "big") == expected.sequence


@pytest.mark.parametrize(("name", "wire", "expected"), VECTORS, ids=IDS)
def test_decode_gives_the_spec_fields(name: str, wire: bytes, expected: p.Pdu) -> None:
    assert decode(wire) == expected


@pytest.mark.parametrize(("name", "wire", "expected"), VECTORS, ids=IDS)
def test_encode_gives_the_spec_bytes(name: str, wire: bytes, expected: p.Pdu) -> None:
    assert encode(expected) == wire


def test_the_c65_fields_of_data_sm_hold_what_c21_fields_cannot() -> None:
    # destination_addr is C21 in submit_sm (20 characters at most), C65 in data_sm.
    address = "user@mail.example.net"
    assert len(address) == 21
    with pytest.raises(ValueError):
        encode(p.SubmitSm(destination_addr=address))
    data_sm = decode(DATA_SM)
    assert isinstance(data_sm, p.DataSm) and data_sm.destination_addr == address


def test_the_vendor_tlv_is_kept_in_wire_order() -> None:
    resp = decode(DATA_SM_RESP)
    assert [tag for tag, _ in resp.tlvs] == [0x0425, 0x001D, 0x0423, 0x1401]
    assert layout.unknown_tlv_tags(resp) == [0x1401]
