"""LINK's SMPP route as data, row by row (gateway.connectors.linksmpp.mapping).

Expected values are written out here, never read from the module's own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.connectors import base as connectors
from gateway.connectors.linksmpp.mapping import (
    MappingError,
    format_relative,
    id_forms,
    is_receipt,
    mo_from_deliver_sm,
    outcome_for_status,
    receipt_from_deliver_sm,
    submit_pdus,
)
from gateway.inbound import IncomingMo, LinkReceipt
from gateway.mapping import Outcome
from gateway.smpp.codec import encode
from gateway.smpp.pdu import CommandStatus, DeliverSm, MessageState, SubmitSm, Tag
from gateway.smpp.receipts import ReceiptError
from gateway.store.base import Message

S = CommandStatus
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "^{}\\[~]|€\f"


def message(**fields: Any) -> Message:
    base: dict[str, Any] = {
        "source": "Shop",
        "sourceTON": "ALPHANUMERIC",
        "destination": "+4799999999",
        "destinationTON": "MSISDN",
        "dcs": "TEXT",
        "userData": "Hello",
    }
    extra = {k: fields.pop(k) for k in ("priority", "validity_s", "expires_at") if k in fields}
    base.update(fields)
    return Message(
        id="m1",
        account="acc",
        connector="link",
        fields=base,
        submitted_at=NOW,
        expires_at=extra.get("expires_at", NOW + 3600),
        validity_s=extra.get("validity_s", 3600),
        priority=extra.get("priority"),
    )


def one(**fields: Any) -> SubmitSm:
    pdus = submit_pdus(message(**fields), 7)
    assert len(pdus) == 1
    return pdus[0]


def error(**fields: Any) -> int:
    with pytest.raises(MappingError) as info:
        submit_pdus(message(**fields), 7)
    return info.value.status


# --- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind", "expected"),
    [
        ("Shop", "ALPHANUMERIC", ("Shop", 5, 0)),
        ("2233", "SHORTNUMBER", ("2233", 3, 0)),
        ("+4712345678", "MSISDN", ("4712345678", 1, 1)),
        ("Shop", None, ("Shop", 0, 0)),  # unknown kind: LINK auto-detects ton 0
        ("2233", "SOMETHING", ("2233", 0, 0)),
    ],
)
def test_source_ton(source: str, kind: str | None, expected: tuple[str, int, int]) -> None:
    pdu = one(source=source, sourceTON=kind)
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == expected


def test_destination_is_international() -> None:
    pdu = one(destination="+4799999999")
    assert (pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi) == ("4799999999", 1, 1)


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"destination": "+47abc"}, S.ESME_RINVDSTADR),
        ({"destination": ""}, S.ESME_RINVDSTADR),
        ({"destination": "+" + "1" * 21}, S.ESME_RINVDSTADR),
        ({"source": ""}, S.ESME_RINVSRCADR),
        ({"source": "Søk"}, S.ESME_RINVSRCADR),  # source_addr is single octets
        ({"source": "x" * 21, "sourceTON": None}, S.ESME_RINVSRCADR),
    ],
)
def test_bad_addresses(fields: dict[str, Any], status: int) -> None:
    assert error(**fields) == status


# --- content ------------------------------------------------------------------------------


def test_plain_gsm_text() -> None:
    pdu = one(userData="Hello {world} €")
    assert pdu.data_coding == 0
    assert pdu.esm_class == 0
    assert pdu.short_message == b"Hello \x1b(world\x1b) \x1be"
    assert pdu.registered_delivery == 1
    assert pdu.priority_flag == 0
    assert pdu.schedule_delivery_time == ""


def test_non_gsm_text_is_ucs2() -> None:
    pdu = one(userData="Привет")
    assert pdu.data_coding == 8
    assert pdu.short_message == "Привет".encode("utf-16-be")


@pytest.mark.parametrize(
    ("fields", "coding"),
    [
        ({"userData": "Hi"}, 0x10),
        ({"userData": "Привет"}, 0x18),
        ({"dcs": "BINARY", "userData": "0102"}, 0x14),
        ({"dcs": "GSM", "userData": "Hi", "userDataHeader": "050003010201"}, 0x10),
        ({"dcs": "UCS2", "userData": "Hi", "userDataHeader": "050003010201"}, 0x18),
    ],
)
def test_flash(fields: dict[str, Any], coding: int) -> None:
    pdu = one(customParameters={"flash.sms": "true"}, **fields)
    assert pdu.data_coding == coding


def test_flash_false_is_plain() -> None:
    assert one(customParameters={"flash.sms": "false"}).data_coding == 0


def test_esme_segmented_gsm() -> None:
    pdu = one(dcs="GSM", userData="Hi €", userDataHeader="050003AA0201")
    assert pdu.esm_class == 0x40
    assert pdu.data_coding == 0
    assert pdu.short_message == bytes.fromhex("050003AA0201") + b"Hi \x1be"


def test_esme_segmented_ucs2() -> None:
    pdu = one(dcs="UCS2", userData="Hi", userDataHeader="050003AA0202")
    assert (pdu.esm_class, pdu.data_coding) == (0x40, 8)
    assert pdu.short_message == bytes.fromhex("050003AA0202") + "Hi".encode("utf-16-be")


def test_ucs2_without_udh_is_ucs2_even_for_gsm_text() -> None:
    pdu = one(dcs="UCS2", userData="Hi")
    assert (pdu.data_coding, pdu.short_message) == (8, b"\x00H\x00i")


def test_binary() -> None:
    pdu = one(dcs="BINARY", userData="DEADBEEF")
    assert (pdu.data_coding, pdu.esm_class, pdu.short_message) == (4, 0, b"\xde\xad\xbe\xef")


def test_binary_with_udh() -> None:
    pdu = one(dcs="BINARY", userData="0A0B", userDataHeader="0605040B8423F0")
    assert pdu.esm_class == 0x40
    assert pdu.short_message == bytes.fromhex("0605040B8423F00A0B")


def test_long_binary_is_split() -> None:
    pdus = submit_pdus(message(dcs="BINARY", userData="AB" * 300), 9)
    assert [len(p.short_message) for p in pdus] == [140, 140, 38]
    assert [p.short_message[:6].hex() for p in pdus] == [
        "050003090301",
        "050003090302",
        "050003090303",
    ]


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"dcs": "GSM", "userData": "Привет"}, S.ESME_RSUBMITFAIL),
        ({"dcs": "BINARY", "userData": "XYZ"}, S.ESME_RSUBMITFAIL),
        ({"dcs": "GSM", "userData": "Hi", "userDataHeader": "05zz"}, S.ESME_RSUBMITFAIL),
        ({"dcs": "KLINGON"}, S.ESME_RSUBMITFAIL),
        ({"userData": "a" * (153 * 255 + 1)}, S.ESME_RINVMSGLEN),
        (
            {"dcs": "BINARY", "userData": "AB" * 300, "userDataHeader": "050003010201"},
            S.ESME_RINVMSGLEN,
        ),
    ],
)
def test_content_errors(fields: dict[str, Any], status: int) -> None:
    assert error(**fields) == status


# --- segmentation ----------------------------------------------------------------------


def test_one_sms_is_not_split() -> None:
    assert len(submit_pdus(message(userData="a" * 160), 1)) == 1
    assert len(submit_pdus(message(userData="ж" * 70), 1)) == 1


def test_long_gsm_text() -> None:
    pdus = submit_pdus(message(userData="a" * 161), 0x1FF)  # the reference is 8-bit
    assert [p.esm_class for p in pdus] == [0x40, 0x40]
    assert [p.short_message[:6] for p in pdus] == [
        bytes((5, 0, 3, 0xFF, 2, 1)),
        bytes((5, 0, 3, 0xFF, 2, 2)),
    ]
    assert [len(p.short_message) - 6 for p in pdus] == [153, 8]
    assert all(p.registered_delivery == 1 for p in pdus)


def test_gsm_escape_pair_is_never_split() -> None:
    # 152 septets, then '€' (ESC e): octets 153 and 154.
    pdus = submit_pdus(message(userData="a" * 152 + "€" + "b" * 10), 3)
    bodies = [p.short_message[6:] for p in pdus]
    assert bodies[0] == b"a" * 152
    assert bodies[1] == b"\x1be" + b"b" * 10


def test_surrogate_pair_is_never_split() -> None:
    # 66 code units, then a surrogate pair: units 67 and 68.
    pdus = submit_pdus(message(userData="ж" * 66 + "😀" + "ж" * 10), 3)
    bodies = [p.short_message[6:] for p in pdus]
    assert bodies[0] == ("ж" * 66).encode("utf-16-be")
    assert bodies[1] == ("😀" + "ж" * 10).encode("utf-16-be")


def test_same_message_and_ref_give_the_same_segments() -> None:
    first = submit_pdus(message(userData="x" * 400), 42)
    again = submit_pdus(message(userData="x" * 400), 42)
    assert [p.short_message for p in first] == [p.short_message for p in again]


def _rejoin(pdus: list[SubmitSm]) -> str:
    parts = []
    for pdu in pdus:
        body = pdu.short_message[6:] if pdu.esm_class & 0x40 else pdu.short_message
        if pdu.data_coding == 0:
            from gateway.smpp.text import decode_content

            content = decode_content(0, body, udhi=False)
            assert content.text is not None
            parts.append(content.text)
        else:
            parts.append(body.decode("utf-16-be"))  # strict: a split pair would raise
    return "".join(parts)


def _fits_one_sms(pdu: SubmitSm) -> bool:
    if pdu.data_coding == 0:
        udh_septets = 7 if pdu.esm_class & 0x40 else 0
        return udh_septets + len(pdu.short_message) - (6 if udh_septets else 0) <= 160
    return len(pdu.short_message) <= 140


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet=GSM_BASIC + GSM_EXTENSION, max_size=1200),
        st.text(max_size=700),
    ),
    ref=st.integers(0, 0xFFFF),
)
def test_segments_rejoin_and_fit(text: str, ref: int) -> None:
    pdus = submit_pdus(message(userData=text), ref)
    assert _rejoin(pdus) == text
    assert all(_fits_one_sms(p) for p in pdus)
    assert len({p.data_coding for p in pdus}) == 1
    if len(pdus) > 1:
        headers = [p.short_message[:6] for p in pdus]
        total = len(pdus)
        assert headers == [bytes((5, 0, 3, ref & 0xFF, total, n)) for n in range(1, total + 1)]
    else:
        assert pdus[0].esm_class == 0
    for pdu in pdus:
        encode(pdu)  # every PDU is one the codec can send


# --- validity, schedule, priority, premium ------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "000000000001000R"),
        (0, "000000000001000R"),
        (-5, "000000000001000R"),
        (900, "000000001500000R"),
        (3661, "000000010101000R"),
        (172800, "000002000000000R"),
        (200 * 86400, "000099235959000R"),
    ],
)
def test_format_relative(seconds: int, text: str) -> None:
    assert format_relative(seconds) == text


def test_validity_is_the_time_left() -> None:
    msg = message(expires_at=NOW + 600.2)
    assert submit_pdus(msg, 1, now=NOW)[0].validity_period == "000000001001000R"


def test_validity_without_now_is_the_full_period() -> None:
    assert one(validity_s=172800).validity_period == "000002000000000R"


def test_priority() -> None:
    assert one(priority="HIGH").priority_flag == 1
    assert one(priority=None).priority_flag == 0


def test_scheduled_time() -> None:
    pdu = submit_pdus(
        message(customParameters={"scheduledTime": "2024-01-02T05:00:00Z"}), 1, now=NOW
    )[0]
    assert pdu.schedule_delivery_time == "240102050000000+"


def test_scheduled_time_with_offset_is_sent_in_utc() -> None:
    pdu = submit_pdus(
        message(customParameters={"scheduledTime": "2024-01-02T07:00:00+02:00"}), 1, now=NOW
    )[0]
    assert pdu.schedule_delivery_time == "240102050000000+"


def test_scheduled_time_already_past_is_now() -> None:
    pdu = submit_pdus(
        message(customParameters={"scheduledTime": "2024-01-01T00:00:00Z"}), 1, now=NOW
    )[0]
    assert pdu.schedule_delivery_time == ""


@pytest.mark.parametrize("value", ["tomorrow", "2024-01-02T05:00:00"])
def test_bad_scheduled_time(value: str) -> None:
    assert error(customParameters={"scheduledTime": value}) == S.ESME_RINVSCHED


def test_premium_fields_are_not_sent() -> None:
    plain = one()
    premium = one(
        tariff=100,
        currency="NOK",
        productCategory=1,
        productDescription="x",
        customParameters={"other": "y"},
    )
    assert encode(premium) == encode(plain)


# --- submit_sm_resp status -> outcome ------------------------------------------------


def test_ok_is_accepted() -> None:
    assert outcome_for_status(0) == ("accepted", None)


@pytest.mark.parametrize("status", [0x58, 0x14, 0x08, 0x64, 0x04])
def test_temporary(status: int) -> None:
    assert outcome_for_status(status) == ("temporary", None)


@pytest.mark.parametrize(
    ("status", "err"),
    [
        (0x01, 924),
        (0x02, 902),
        (0x03, 903),
        (0x06, 912),
        (0x0A, 939),
        (0x0B, 206),
        (0x0D, 236),
        (0x43, 941),
        (0x45, 942),
        (0x48, 943),
        (0x49, 944),
        (0x50, 945),
        (0x51, 946),
        (0x61, 947),
        (0x62, 948),
        (0x63, 925),
        (0x65, 904),
        (0x66, 225),
        (0xC3, 238),
        (0xC4, 127),
        (0xFE, 108),
        (0xFF, 255),
        (0x104, 252),
        (0x12345, 255),  # unknown
    ],
)
def test_rejected(status: int, err: int) -> None:
    kind, outcome = outcome_for_status(status)
    assert kind == "rejected"
    assert outcome == Outcome("REJECTD", err, True, MessageState.REJECTED)


def test_kinds_are_the_connector_interfaces() -> None:
    assert {outcome_for_status(s)[0] for s in (0, 0x58, 0x0B)} == {
        connectors.ACCEPTED,
        connectors.TEMPORARY,
        connectors.REJECTED,
    }


# --- receipts --------------------------------------------------------------------------

DEFAULT_FORMAT = (
    b"id:3000000001 sub:001 dlvrd:001 submit date:240102030405 done date:240102030506"
    b" stat:DELIVRD err:000 text:"
)
MINUTE_FORMAT = (
    b"id:B2D05E01 sub:001 dlvrd:000 submit date:2401020304 done date:2401020305"
    b" stat:UNDELIV err:222 text:"
)


def receipt_pdu(text: bytes, esm_class: int = 0x04, **kw: Any) -> DeliverSm:
    return DeliverSm(esm_class=esm_class, short_message=text, **kw)


def test_receipt_default_format() -> None:
    receipt = receipt_from_deliver_sm(receipt_pdu(DEFAULT_FORMAT))
    done = datetime(2024, 1, 2, 3, 5, 6, tzinfo=UTC).timestamp()
    assert receipt == LinkReceipt("3000000001", "DELIVRD", 0, done)


def test_receipt_minute_format() -> None:
    receipt = receipt_from_deliver_sm(receipt_pdu(MINUTE_FORMAT))
    done = datetime(2024, 1, 2, 3, 5, tzinfo=UTC).timestamp()
    assert receipt == LinkReceipt("B2D05E01", "UNDELIV", 222, done)


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("DELIVRD", "DELIVRD"),
        ("EXPIRED", "EXPIRED"),
        ("DELETED", "DELETED"),
        ("ACCEPTD", "ACCEPTD"),
        ("UNKNOWN", "UNKNOWN"),
        ("REJECTD", "REJECTD"),
        ("UNDELIV", "UNDELIV"),
        ("ENROUTE", "ENROUTE"),
        ("delivrd", "DELIVRD"),
        ("DELIVERED", "DELIVRD"),
        ("REJECTED", "REJECTD"),
        ("WHATEVER", "UNKNOWN"),
    ],
)
def test_receipt_stat_words(stat: str, expected: str) -> None:
    text = f"id:1 submit date:2401020304 done date:2401020305 stat:{stat} err:042 text:"
    receipt = receipt_from_deliver_sm(receipt_pdu(text.encode()))
    assert receipt is not None
    assert (receipt.stat, receipt.err) == (expected, 42)


def test_receipt_id_from_the_tlv_first() -> None:
    pdu = receipt_pdu(DEFAULT_FORMAT, tlvs=[(Tag.RECEIPTED_MESSAGE_ID, b"b2d05e01\x00")])
    receipt = receipt_from_deliver_sm(pdu)
    assert receipt is not None and receipt.upstream_id == "b2d05e01"


def test_receipt_from_tlvs_alone() -> None:
    pdu = receipt_pdu(
        b"",
        tlvs=[
            (Tag.RECEIPTED_MESSAGE_ID, b"77\x00"),
            (Tag.MESSAGE_STATE, b"\x05"),
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x65"),
        ],
    )
    assert receipt_from_deliver_sm(pdu) == LinkReceipt("77", "UNDELIV", 101, None)


def test_receipt_in_message_payload() -> None:
    pdu = receipt_pdu(b"", tlvs=[(Tag.MESSAGE_PAYLOAD, DEFAULT_FORMAT)])
    receipt = receipt_from_deliver_sm(pdu)
    assert receipt is not None and receipt.upstream_id == "3000000001"


@pytest.mark.parametrize(
    ("text", "err"),
    [
        (b"id:1 stat:DELIVRD", 0),
        (b"id:1 stat:UNDELIV", 255),
        (b"id:1 stat:UNDELIV err:XY", 255),
        # Too large for three digits: 099, which LINK does not use, not its real 999.
        (b"id:1 stat:EXPIRED err:1234", 99),
    ],
)
def test_receipt_err_defaults(text: bytes, err: int) -> None:
    receipt = receipt_from_deliver_sm(receipt_pdu(text))
    assert receipt is not None and receipt.err == err and receipt.done_at is None


def test_receipt_bad_date_is_unknown_not_an_error() -> None:
    text = b"id:1 submit date:2413990304 done date:2413990305 stat:DELIVRD err:000"
    receipt = receipt_from_deliver_sm(receipt_pdu(text))
    assert receipt is not None and receipt.done_at is None


@pytest.mark.parametrize("esm_class", [0x04, 0x24, 0x44, 0x20, 0x0C])
def test_is_receipt(esm_class: int) -> None:
    assert is_receipt(esm_class)


@pytest.mark.parametrize("esm_class", [0x00, 0x40, 0x03, 0x08, 0x10, 0x80])
def test_is_not_receipt(esm_class: int) -> None:
    assert not is_receipt(esm_class)
    assert receipt_from_deliver_sm(receipt_pdu(DEFAULT_FORMAT, esm_class=esm_class)) is None


@pytest.mark.parametrize("text", [b"", b"garbage", b"stat:DELIVRD", b"id: stat:DELIVRD"])
def test_unreadable_receipt(text: bytes) -> None:
    with pytest.raises(ReceiptError):
        receipt_from_deliver_sm(receipt_pdu(text))


_TLV_TAGS = st.sampled_from(
    [
        Tag.RECEIPTED_MESSAGE_ID,
        Tag.MESSAGE_STATE,
        Tag.NETWORK_ERROR_CODE,
        Tag.MESSAGE_PAYLOAD,
        0x1400,
    ]
)
_RECEIPTISH = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from([b"", b"id:", b"id:12 ", b"id:ab stat:", DEFAULT_FORMAT, MINUTE_FORMAT]),
    st.binary(max_size=120),
)


@settings(max_examples=500, deadline=None)
@given(
    esm_class=st.integers(0, 255),
    text=st.one_of(st.binary(max_size=254), _RECEIPTISH),
    tlvs=st.lists(st.tuples(_TLV_TAGS, st.binary(max_size=70)), max_size=4),
)
def test_receipt_parsing_never_crashes(
    esm_class: int, text: bytes, tlvs: list[tuple[int, bytes]]
) -> None:
    pdu = DeliverSm(esm_class=esm_class, short_message=text, tlvs=tlvs)
    try:
        receipt = receipt_from_deliver_sm(pdu)
    except ReceiptError:
        assert is_receipt(esm_class)
        return
    if receipt is None:
        assert not is_receipt(esm_class)
        return
    assert receipt.upstream_id
    assert receipt.stat in {
        "ENROUTE",
        "DELIVRD",
        "EXPIRED",
        "DELETED",
        "UNDELIV",
        "ACCEPTD",
        "UNKNOWN",
        "REJECTD",
    }
    assert 0 <= receipt.err <= 999


# --- MO ------------------------------------------------------------------------------------


def mo_pdu(**kw: Any) -> DeliverSm:
    base: dict[str, Any] = {
        "source_addr": "4712345678",
        "source_addr_ton": 1,
        "destination_addr": "2233",
        "dest_addr_ton": 3,
        "sequence": 5,
    }
    base.update(kw)
    return DeliverSm(**base)


def test_mo_gsm() -> None:
    mo = mo_from_deliver_sm(mo_pdu(short_message=b"Hi \x1be"), "link", NOW)
    assert mo == IncomingMo(
        upstream_id=mo.upstream_id,
        source="4712345678",
        destination="2233",
        text="Hi €",
        binary=None,
        udh=None,
        source_ton=1,
        dest_ton=3,
        connector="link",
        received_at=NOW,
    )
    assert mo.upstream_id.startswith("link-")


def test_mo_ucs2_with_udh() -> None:
    udh = bytes.fromhex("050003070201")
    pdu = mo_pdu(esm_class=0x40, data_coding=8, short_message=udh + "Привет".encode("utf-16-be"))
    mo = mo_from_deliver_sm(pdu, "link", NOW)
    assert (mo.text, mo.udh) == ("Привет", udh)


def test_mo_binary() -> None:
    mo = mo_from_deliver_sm(mo_pdu(data_coding=4, short_message=b"\x00\xff"), "link", NOW)
    assert (mo.text, mo.binary) == (None, b"\x00\xff")


def test_mo_in_message_payload() -> None:
    pdu = mo_pdu(tlvs=[(Tag.MESSAGE_PAYLOAD, b"long text")])
    assert mo_from_deliver_sm(pdu, "link", NOW).text == "long text"


def test_mo_id_from_the_tlv() -> None:
    pdu = mo_pdu(short_message=b"x", tlvs=[(Tag.RECEIPTED_MESSAGE_ID, b"MO-1\x00")])
    assert mo_from_deliver_sm(pdu, "link", NOW).upstream_id == "MO-1"


def test_mo_ids_differ_for_identical_messages() -> None:
    first = mo_from_deliver_sm(mo_pdu(short_message=b"YES", sequence=1), "link", NOW)
    second = mo_from_deliver_sm(mo_pdu(short_message=b"YES", sequence=2), "link", NOW)
    later = mo_from_deliver_sm(mo_pdu(short_message=b"YES", sequence=1), "link", NOW + 1)
    again = mo_from_deliver_sm(mo_pdu(short_message=b"YES", sequence=1), "link", NOW)
    assert len({first.upstream_id, second.upstream_id, later.upstream_id}) == 3
    assert again.upstream_id == first.upstream_id


@pytest.mark.parametrize(
    "kw",
    [
        {"data_coding": 8, "short_message": b"\x00"},  # odd UCS-2
        {"data_coding": 5, "short_message": b"x"},  # JIS
        {"esm_class": 0x40, "short_message": b"\x09\x00"},  # UDH longer than the message
        {"short_message": b"\x1b"},  # GSM escape with nothing after it
    ],
)
def test_mo_undecodable(kw: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        mo_from_deliver_sm(mo_pdu(**kw), "link", NOW)


# --- ids --------------------------------------------------------------------------------------


def matches(a: str, b: str) -> bool:
    return bool(set(id_forms(a)) & set(id_forms(b)))


@pytest.mark.parametrize(
    ("resp", "receipt"),
    [
        ("3000000001", "3000000001"),
        ("3000000001", "B2D05E01"),  # decimal vs hex
        ("B2D05E01", "3000000001"),
        ("B2D05E01", "b2d05e01"),  # case
        ("00000000003000000001", "3000000001"),  # leading zeros
        ("00B2D05E01", "b2d05e01"),
        ("0000B2D05E01", "3000000001"),
        ("msg-1", "MSG-1"),
    ],
)
def test_id_forms_match(resp: str, receipt: str) -> None:
    assert matches(resp, receipt)


@pytest.mark.parametrize(("a", "b"), [("3000000001", "3000000002"), ("abc", "abd")])
def test_id_forms_keep_different_ids_apart(a: str, b: str) -> None:
    assert not matches(a, b)


def test_id_forms_first_form_is_canonical() -> None:
    assert id_forms("00B2D05E01")[0] == "b2d05e01"
    assert id_forms("000") == ("0",)


@given(st.integers(0, 2**64))
def test_id_forms_decimal_and_hex_of_one_number_match(number: int) -> None:
    assert matches(str(number), f"{number:X}")
    assert matches(f"{number:020d}", f"{number:x}")
