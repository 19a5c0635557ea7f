"""DESIGN section 4 on Common's wire (gateway.connectors.common.mapping): a submit_sm,
read into a Message as admission does, becomes a sendRequestMessage's own fields.

Expected values are written out here, never read from the module's own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.connectors.common.mapping import message_fields, priority
from gateway.mt.submission import AccountPolicy, map_submit, message_from
from gateway.mt.vendor import VendorTlv
from gateway.records import Message
from tests.support.pdus import submit

NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
POLICY = AccountPolicy(default_country_code="47")


def sent(policy: AccountPolicy = POLICY, /, **overrides: object) -> Message:
    pdu = submit(**overrides)
    submission = map_submit(pdu, policy, now=NOW)
    return message_from(
        pdu, submission, message_id="m1", account="shop1", connector="link", now=NOW
    )


def fields_of(policy: AccountPolicy = POLICY, /, **overrides: object) -> dict[str, Any]:
    return message_fields(sent(policy, **overrides), NOW)


# --- section 4, rows 1 and 2: the addresses and their TON names ----------------------


@pytest.mark.parametrize(
    ("source", "ton", "expected"),
    [
        ("Shop", 5, ("Shop", "ALPHANUMERIC")),
        ("2333", 3, ("2333", "SHORTNUMBER")),
        ("12345", 5, ("12345", "SHORTNUMBER")),
        ("4799999999", 1, ("+4799999999", "MSISDN")),
        ("41560067", 2, ("+4741560067", "MSISDN")),
    ],
)
def test_source_and_its_ton(source: str, ton: int, expected: tuple[str, str]) -> None:
    fields = fields_of(source_addr=source, source_addr_ton=ton)
    assert (fields["source"], fields["sourceTON"]) == expected


def test_submit_addresses() -> None:
    fields = fields_of(destination_addr="099999999", dest_addr_ton=2)
    assert fields["source"] == "Shop"
    assert fields["sourceTON"] == "ALPHANUMERIC"
    assert fields["destination"] == "+4799999999"
    assert fields["destinationTON"] == "MSISDN"


# --- section 4, content rows -----------------------------------------------------


@pytest.mark.parametrize(
    ("row", "overrides", "expected"),
    [
        (
            "data_coding 0: GSM 03.38",
            {"data_coding": 0, "short_message": b"5\x1b\x65 [ok]"},
            {"dcs": "TEXT", "userData": "5€ ÄokÑ"},
        ),
        (
            "data_coding 1: IA5",
            {"data_coding": 1, "short_message": b"[ok]"},
            {"dcs": "TEXT", "userData": "[ok]"},
        ),
        (
            "data_coding 3: Latin-1",
            {"data_coding": 3, "short_message": b"Gr\xfc\xdfe"},
            {"dcs": "TEXT", "userData": "Grüße"},
        ),
        (
            "data_coding 8: UCS-2",
            {"data_coding": 8, "short_message": "Привет".encode("utf-16-be")},
            {"dcs": "TEXT", "userData": "Привет"},
        ),
        (
            "data_coding 2: 8-bit",
            {"data_coding": 2, "short_message": b"\x00\xff"},
            {"dcs": "BINARY", "userData": "00FF"},
        ),
        (
            "data_coding 4: 8-bit",
            {"data_coding": 4, "short_message": b"\x01"},
            {"dcs": "BINARY", "userData": "01"},
        ),
        (
            "data_coding 0xF5: 8-bit class 1",
            {"data_coding": 0xF5, "short_message": b"\x01"},
            {"dcs": "BINARY", "userData": "01"},
        ),
        (
            "data_coding 0xF0: flash",
            {"data_coding": 0xF0, "short_message": b"Hi"},
            {"dcs": "TEXT", "userData": "Hi", "customParameters": {"flash.sms": "true"}},
        ),
        (
            "message class 0: flash",
            {"data_coding": 0x18, "short_message": b"\x00H\x00i"},
            {"dcs": "TEXT", "userData": "Hi", "customParameters": {"flash.sms": "true"}},
        ),
        (
            "esm_class 0x40: UDHI, GSM",
            {"esm_class": 0x40, "short_message": bytes.fromhex("0500032A0201") + b"Hi"},
            {"dcs": "GSM", "userData": "Hi", "userDataHeader": "0500032A0201"},
        ),
        (
            "esm_class 0x40: UDHI with a 16-bit concat reference",
            {"esm_class": 0x40, "short_message": bytes.fromhex("060804BEEF0302") + b"Hi"},
            {"dcs": "GSM", "userData": "Hi", "userDataHeader": "060804BEEF0302"},
        ),
        (
            "esm_class 0x43 (Kannel): UDHI, UCS-2",
            {
                "esm_class": 0x43,
                "data_coding": 8,
                "short_message": bytes.fromhex("0500032A0202") + "ж".encode("utf-16-be"),
            },
            {"dcs": "UCS2", "userData": "ж", "userDataHeader": "0500032A0202"},
        ),
        (
            "esm_class 0x40: UDHI, binary",
            {
                "esm_class": 0x40,
                "data_coding": 4,
                "short_message": bytes.fromhex("0605040B8423F0AB"),
            },
            {"dcs": "BINARY", "userData": "AB", "userDataHeader": "0605040B8423F0"},
        ),
        (
            "message_payload: whole text",
            {"short_message": b"", "tlvs": [(0x0424, b"a" * 300)]},
            {"dcs": "TEXT", "userData": "a" * 300},
        ),
        (
            "SAR TLVs become an 8-bit concat UDH",
            {"tlvs": [(0x020C, b"\x00\x07"), (0x020E, b"\x02"), (0x020F, b"\x01")]},
            {"dcs": "GSM", "userData": "Hello", "userDataHeader": "050003070201"},
        ),
        (
            "SAR TLVs with a 16-bit reference",
            {"tlvs": [(0x020C, b"\x12\x34"), (0x020E, b"\x03"), (0x020F, b"\x03")]},
            {"dcs": "GSM", "userData": "Hello", "userDataHeader": "060804123403" + "03"},
        ),
    ],
)
def test_content_rows(row: str, overrides: dict[str, object], expected: dict[str, object]) -> None:
    fields = fields_of(**overrides)
    for key, value in expected.items():
        assert fields[key] == value, row
    assert ("userDataHeader" in fields) == ("userDataHeader" in expected), row
    assert ("customParameters" in fields) == ("customParameters" in expected), row


def test_latin1_account() -> None:
    policy = AccountPolicy(default_alphabet="latin1")
    assert fields_of(policy, short_message=b"caf\xe9")["userData"] == "café"


def test_empty_message_payload_is_allowed() -> None:
    assert fields_of(short_message=b"", tlvs=[(0x0424, b"")])["userData"] == ""


def test_data_coding_1_under_a_gsm_account() -> None:
    gsm_account = AccountPolicy(default_country_code="47", ia5_alphabet="gsm")
    fields = fields_of(gsm_account, data_coding=1, short_message=bytes([0x00, 0x01, 0x02]))
    assert (fields["dcs"], fields["userData"]) == ("TEXT", "@£$")


# --- section 4: schedule, priority ---------------------------------------------------


def test_schedule() -> None:
    message = sent(schedule_delivery_time="240402030405000+")  # exactly 3 months
    assert message.scheduled_at == datetime(2024, 4, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    fields = message_fields(message, NOW)
    assert fields["customParameters"] == {"scheduledTime": "2024-04-02T03:04:05Z"}


def test_schedule_in_the_past_means_now() -> None:
    message = sent(schedule_delivery_time="230102030405000+")
    assert message.scheduled_at is None
    assert "customParameters" not in message_fields(message, NOW)


def test_a_schedule_already_reached_when_sent_is_not_passed_on() -> None:
    # Held in the gateway until its time (hold_scheduled): Common sends it at once.
    message = sent(schedule_delivery_time="000000010000000R")
    assert message.scheduled_at == NOW + 3600
    assert "customParameters" not in message_fields(message, NOW + 3600)
    assert message_fields(message, NOW + 3599)["customParameters"] == {
        "scheduledTime": "2024-01-02T04:04:05Z"
    }


@pytest.mark.parametrize(("flag", "expected"), [(0, None), (1, "HIGH"), (2, "HIGH"), (3, "HIGH")])
def test_priority(flag: int, expected: str | None) -> None:
    assert priority(sent(priority_flag=flag)) == expected


# --- section 4: account settings -------------------------------------------------


def test_premium_and_custom_parameters() -> None:
    policy = AccountPolicy(
        premium={"tariff": 500, "currency": "NOK", "productCategory": 15},
        custom_parameters={"campaign": "x"},
    )
    message = sent(policy, data_coding=0xF0)
    fields = message_fields(message, NOW)
    assert fields["tariff"] == 500
    assert fields["currency"] == "NOK"
    assert fields["productCategory"] == 15
    assert fields["customParameters"] == {"campaign": "x", "flash.sms": "true"}
    assert dict(policy.custom_parameters) == {"campaign": "x"}
    assert dict(message.custom) == {"campaign": "x"}


def test_tariff_only_on_the_first_segment() -> None:
    policy = AccountPolicy(premium={"tariff": 500, "currency": "NOK"})
    first = fields_of(policy, esm_class=0x40, short_message=bytes.fromhex("050003010201") + b"a")
    second = fields_of(policy, esm_class=0x40, short_message=bytes.fromhex("050003010202") + b"b")
    assert first["tariff"] == 500
    assert "tariff" not in second
    assert second["currency"] == "NOK"


def test_mo_reference_id_is_a_premium_field() -> None:
    fields = fields_of(AccountPolicy(premium={"moReferenceId": "mo-17", "age": 18}))
    assert (fields["moReferenceId"], fields["age"]) == ("mo-17", 18)


def test_gateway_flash_wins_over_the_account() -> None:
    policy = AccountPolicy(custom_parameters={"flash.sms": "false"})
    assert fields_of(policy, data_coding=0xF0)["customParameters"] == {"flash.sms": "true"}


def test_vendor_tlvs_are_sent_as_premium_fields_and_custom_parameters() -> None:
    policy = AccountPolicy(
        premium={"tariff": 100, "currency": "NOK"},
        custom_parameters={"campaign": "static", "other": "kept"},
        vendor_tlvs={
            0x1401: VendorTlv("tariff", "int"),
            0x1500: VendorTlv("customParameters.campaign", "string"),
            0x1502: VendorTlv("customParameters.code", "int"),
        },
    )
    tlvs = [(0x1401, b"\x01\xf4"), (0x1500, b"spring\x00"), (0x1502, b"\x00\x2a")]
    fields = fields_of(policy, data_coding=0xF0, tlvs=tlvs)
    assert (fields["tariff"], fields["currency"]) == (500, "NOK")
    assert fields["customParameters"] == {
        "campaign": "spring",
        "other": "kept",
        "code": "42",
        "flash.sms": "true",
    }


def test_envelope_fields_are_not_set_here() -> None:
    fields = fields_of(registered_delivery=1, priority_flag=1)
    for key in ("platformId", "platformPartnerId", "useDeliveryReport", "refId", "priority"):
        assert key not in fields
