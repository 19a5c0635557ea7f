"""DESIGN sections 4 and 5, row by row (gateway.mapping).

Expected values are written out here, never read from the module's own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.mapping import (
    COMMON_ERRORS,
    ERR_OUT_OF_RANGE,
    EXPIRED_IN_QUEUE,
    RESULT_CODES,
    AccountPolicy,
    MappedSubmit,
    Outcome,
    SubmitRefused,
    VendorTlv,
    map_submit,
    merge_result_codes,
    outcome_for,
    receipt_err,
    refusal_is_temporary,
    rejection_outcome,
    resolve_destination,
    resolve_source,
    upstream_status,
)
from gateway.smpp.pdu import CommandStatus, MessageState, SubmitSm

S = CommandStatus
M = MessageState
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
POLICY = AccountPolicy(default_country_code="47")


def submit(**overrides: object) -> SubmitSm:
    fields: dict[str, object] = {
        "source_addr": "Shop",
        "source_addr_ton": 5,
        "destination_addr": "4799999999",
        "dest_addr_ton": 1,
        "short_message": b"Hello",
    }
    fields.update(overrides)
    return SubmitSm(**fields)  # type: ignore[arg-type]


def mapped(policy: AccountPolicy = POLICY, /, **overrides: object) -> MappedSubmit:
    return map_submit(submit(**overrides), policy, now=NOW)


def refused(policy: AccountPolicy = POLICY, /, **overrides: object) -> int:
    with pytest.raises(SubmitRefused) as info:
        mapped(policy, **overrides)
    return info.value.status


# --- section 4, row 1: source -----------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "expected"),
    [
        ("Shop", 5, ("Shop", "ALPHANUMERIC")),
        ("AB", 5, ("AB", "ALPHANUMERIC")),
        ("ABCDEFGHIJK", 5, ("ABCDEFGHIJK", "ALPHANUMERIC")),
        ("Shop 24", 5, ("Shop 24", "ALPHANUMERIC")),
        # All digits under ton 5: a number, read as ton 0 would (seed 001: an
        # alphanumeric source begins with a non-digit).
        ("12345", 5, ("12345", "SHORTNUMBER")),
        ("+4741560067", 5, ("+4741560067", "MSISDN")),
        ("Shop1", 5, ("Shop1", "ALPHANUMERIC")),
        ("4799999999", 1, ("+4799999999", "MSISDN")),
        ("+4799999999", 1, ("+4799999999", "MSISDN")),
        ("004799999999", 1, ("+4799999999", "MSISDN")),
        ("2333", 1, ("2333", "SHORTNUMBER")),
        ("2333", 3, ("2333", "SHORTNUMBER")),
        ("12345678901234", 3, ("12345678901234", "SHORTNUMBER")),
        ("1234", 6, ("1234", "SHORTNUMBER")),
        # ton 2 is national, whatever its length: an 8-digit Norwegian mobile.
        ("12345678", 2, ("+4712345678", "MSISDN")),
        ("41560067", 2, ("+4741560067", "MSISDN")),
        ("0712345678", 0, ("+47712345678", "MSISDN")),  # a trunk 0, dropped
        ("099999999", 2, ("+4799999999", "MSISDN")),
        ("Shop", 0, ("Shop", "ALPHANUMERIC")),
        ("+4799999999", 0, ("+4799999999", "MSISDN")),
        ("004799999999", 0, ("+4799999999", "MSISDN")),
        ("4799999999", 0, ("+4799999999", "MSISDN")),
        ("123456789", 0, ("+123456789", "MSISDN")),
        ("12345678", 0, ("12345678", "SHORTNUMBER")),
        ("1", 0, ("1", "SHORTNUMBER")),
    ],
)
def test_resolve_source(addr: str, ton: int, expected: tuple[str, str]) -> None:
    assert resolve_source(addr, ton, default_country_code="47") == expected


@pytest.mark.parametrize(
    ("addr", "ton", "expected"),
    [
        # Norway: 8-digit mobiles, short codes of at most 6 digits.
        ("41560067", 0, ("+4741560067", "MSISDN")),
        ("41560067", 1, ("+41560067", "MSISDN")),
        ("2233", 0, ("2233", "SHORTNUMBER")),
        ("223344", 1, ("223344", "SHORTNUMBER")),
        ("1234567", 0, ("+471234567", "MSISDN")),
    ],
)
def test_resolve_source_with_the_countrys_short_number_length(
    addr: str, ton: int, expected: tuple[str, str]
) -> None:
    policy = AccountPolicy(default_country_code="47")
    assert policy.short_number_digits == 6
    got = resolve_source(
        addr,
        ton,
        default_country_code="47",
        short_number_digits=policy.short_number_digits,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("country", "configured", "digits"),
    [("47", None, 6), ("45", None, 6), ("49", None, 8), ("", None, 8), ("47", 4, 4)],
)
def test_short_number_length_by_country_unless_configured(
    country: str, configured: int | None, digits: int
) -> None:
    policy = AccountPolicy(default_country_code=country, short_number_digits=configured)
    assert policy.short_number_digits == digits


@pytest.mark.parametrize(
    ("addr", "ton", "status"),
    [
        ("A", 5, S.ESME_RINVSRCADR),
        ("ABCDEFGHIJKL", 5, S.ESME_RINVSRCADR),
        ("Shop™", 5, S.ESME_RINVSRCADR),
        ("  ", 5, S.ESME_RINVSRCADR),
        ("X", 0, S.ESME_RINVSRCADR),
        ("", 0, S.ESME_RINVSRCADR),
        ("47abc", 1, S.ESME_RINVSRCADR),
        ("+47abc", 0, S.ESME_RINVSRCADR),
        ("+1234567890123456", 1, S.ESME_RINVSRCADR),
        ("123456789012345", 3, S.ESME_RINVSRCADR),
        ("²³", 1, S.ESME_RINVSRCADR),
        ("1234", 7, S.ESME_RINVSRCTON),
        # An international number never starts with 0.
        ("0712345678", 1, S.ESME_RINVSRCADR),
        ("+0712345678", 0, S.ESME_RINVSRCADR),
        ("1Shop", 5, S.ESME_RINVSRCADR),  # alphanumeric must begin with a non-digit
        ("1Shop", 0, S.ESME_RINVSRCADR),
    ],
)
def test_resolve_source_refused(addr: str, ton: int, status: int) -> None:
    with pytest.raises(SubmitRefused) as info:
        resolve_source(addr, ton, default_country_code="47")
    assert info.value.status == status


def test_national_source_needs_a_country_code() -> None:
    with pytest.raises(SubmitRefused) as info:
        resolve_source("099999999", 2)
    assert info.value.status == S.ESME_RINVSRCADR


# --- section 4, row 2: destination ----------------------------------------------


@pytest.mark.parametrize(
    ("addr", "ton", "country_code", "expected"),
    [
        ("+4799999999", 1, "", "+4799999999"),
        ("4799999999", 1, "", "+4799999999"),
        ("004799999999", 1, "", "+4799999999"),
        ("+4799999999", 2, "49", "+4799999999"),
        ("0171234567", 2, "49", "+49171234567"),
        ("171234567", 2, "49", "+49171234567"),
        ("99999999", 4, "47", "+4799999999"),
        ("004799999999", 0, "", "+4799999999"),
        ("0171234567", 0, "49", "+49171234567"),
        ("99999999", 0, "47", "+4799999999"),
        ("4799999999", 0, "47", "+4799999999"),
        ("4799999999", 0, "", "+4799999999"),
        ("123456789012345", 1, "", "+123456789012345"),
    ],
)
def test_resolve_destination(addr: str, ton: int, country_code: str, expected: str) -> None:
    assert resolve_destination(addr, ton, country_code) == expected


@pytest.mark.parametrize(
    ("addr", "ton", "country_code", "status"),
    [
        ("0171234567", 2, "", S.ESME_RINVDSTADR),
        ("0171234567", 0, "", S.ESME_RINVDSTADR),
        ("+49 171", 1, "", S.ESME_RINVDSTADR),
        ("49-171", 1, "", S.ESME_RINVDSTADR),
        ("abc", 1, "", S.ESME_RINVDSTADR),
        ("", 1, "", S.ESME_RINVDSTADR),
        ("+", 1, "", S.ESME_RINVDSTADR),
        ("1234567890123456", 1, "", S.ESME_RINVDSTADR),
        ("\u0664\u066799999999", 1, "", S.ESME_RINVDSTADR),  # Arabic-Indic digits
        ("Shop", 5, "", S.ESME_RINVDSTTON),
        ("2333", 3, "", S.ESME_RINVDSTTON),
        ("4799999999", 7, "", S.ESME_RINVDSTTON),
        # An international number never starts with 0: +0712345678 is no number.
        ("0712345678", 1, "47", S.ESME_RINVDSTADR),
        ("+0712345678", 1, "47", S.ESME_RINVDSTADR),
        ("000712345678", 0, "47", S.ESME_RINVDSTADR),
    ],
)
def test_resolve_destination_refused(addr: str, ton: int, country_code: str, status: int) -> None:
    with pytest.raises(SubmitRefused) as info:
        resolve_destination(addr, ton, country_code)
    assert info.value.status == status


def test_submit_addresses() -> None:
    fields = mapped(destination_addr="099999999", dest_addr_ton=2).fields
    assert fields["source"] == "Shop"
    assert fields["sourceTON"] == "ALPHANUMERIC"
    assert fields["destination"] == "+4799999999"
    assert fields["destinationTON"] == "MSISDN"


def test_submit_bad_addresses() -> None:
    assert refused(source_addr="A") == S.ESME_RINVSRCADR
    assert refused(destination_addr="abc") == S.ESME_RINVDSTADR


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
    fields = mapped(**overrides).fields
    for key, value in expected.items():
        assert fields[key] == value, row
    assert ("userDataHeader" in fields) == ("userDataHeader" in expected), row
    assert ("customParameters" in fields) == ("customParameters" in expected), row


def test_latin1_account() -> None:
    policy = AccountPolicy(default_alphabet="latin1")
    assert mapped(policy, short_message=b"caf\xe9").fields["userData"] == "café"


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"short_message": b"Hi", "tlvs": [(0x0424, b"Hi")]}, S.ESME_RINVMSGLEN),
        ({"data_coding": 5}, S.ESME_RSUBMITFAIL),
        ({"data_coding": 5, "short_message": b"\x82\xa0"}, S.ESME_RSUBMITFAIL),
        ({"data_coding": 8, "short_message": b"\xd8\x3d\xde\x00"}, S.ESME_RSUBMITFAIL),
        ({"data_coding": 8, "short_message": b"\x00H\x00"}, S.ESME_RINVMSGLEN),
        ({"data_coding": 1, "short_message": b"caf\xe9"}, S.ESME_RSUBMITFAIL),
        ({"short_message": b"abc\x1b"}, S.ESME_RSUBMITFAIL),
        ({"short_message": b"caf\xe9"}, S.ESME_RSUBMITFAIL),
        ({"esm_class": 0x40, "short_message": b"\x05\x00\x03"}, S.ESME_RINVESMCLASS),
        (
            {"esm_class": 0x40, "short_message": bytes.fromhex("0500032A0201") + b"a" * 154},
            S.ESME_RINVMSGLEN,
        ),
        (
            {"tlvs": [(0x020C, b"\x00\x07"), (0x020E, b"\x02"), (0x020F, b"\x03")]},
            S.ESME_RINVOPTPARAMVAL,
        ),
        ({"priority_flag": 4}, S.ESME_RINVPRTFLG),
    ],
)
def test_content_refused(overrides: dict[str, object], status: int) -> None:
    assert refused(**overrides) == status


def test_empty_message_payload_is_allowed() -> None:
    assert mapped(short_message=b"", tlvs=[(0x0424, b"")]).fields["userData"] == ""


# --- section 4: registered_delivery, validity, schedule, priority ----------------


@pytest.mark.parametrize(
    ("registered_delivery", "wants"),
    [(0x00, 0x00), (0x01, 0x01), (0x02, 0x02), (0x10, 0x10), (0x11, 0x11), (0x1F, 0x13)],
)
def test_registered_delivery(registered_delivery: int, wants: int) -> None:
    assert mapped(registered_delivery=registered_delivery).wants_receipt == wants


@pytest.mark.parametrize(
    ("validity_period", "validity_s"),
    [
        ("", 172800),
        ("000000010000000R", 3600),
        ("000000001000000R", 900),  # 10 min: clamped up to 15 min
        ("000003000000000R", 172800),  # 3 days: clamped down to 48 h
        ("240102050405000+", 7200),  # absolute, UTC
        ("240102090405016+", 7200),  # absolute, local time at UTC+4
    ],
)
def test_validity(validity_period: str, validity_s: int) -> None:
    assert mapped(validity_period=validity_period).validity_s == validity_s


def test_validity_clamped_to_account_limits() -> None:
    policy = AccountPolicy(min_validity_s=1800, max_validity_s=3600)
    assert mapped(policy, validity_period="000000001000000R").validity_s == 1800
    assert mapped(policy, validity_period="").validity_s == 3600


def test_validity_runs_from_the_scheduled_time() -> None:
    # A relative validity counts from when the message is sent: in 1 h, valid 3 h.
    result = mapped(schedule_delivery_time="000000010000000R", validity_period="000000030000000R")
    assert result.validity_s == 10800
    # "Send in 7 days, valid 1 h": 1 h, not 48 h from now (nor refused).
    week = mapped(schedule_delivery_time="000007000000000R", validity_period="000000010000000R")
    assert week.validity_s == 3600
    # An absolute validity is a time: what is left of it after the schedule.
    absolute = mapped(schedule_delivery_time="240102040405000+", validity_period="240102070405000+")
    assert absolute.validity_s == 3 * 3600


@pytest.mark.parametrize(
    ("overrides", "status"),
    [
        ({"validity_period": "garbage"}, S.ESME_RINVEXPIRY),
        ({"validity_period": "240132000000000+"}, S.ESME_RINVEXPIRY),
        ({"validity_period": "230102030405000+"}, S.ESME_RINVEXPIRY),  # in the past
        (
            # An absolute validity ending before the scheduled time.
            {"schedule_delivery_time": "000000020000000R", "validity_period": "240102040405000+"},
            S.ESME_RINVEXPIRY,
        ),
        ({"schedule_delivery_time": "garbage"}, S.ESME_RINVSCHED),
        ({"schedule_delivery_time": "240402030406000+"}, S.ESME_RINVSCHED),  # 3 months + 1 s
        ({"schedule_delivery_time": "000400000000000R"}, S.ESME_RINVSCHED),
    ],
)
def test_times_refused(overrides: dict[str, object], status: int) -> None:
    assert refused(**overrides) == status


def test_schedule() -> None:
    result = mapped(schedule_delivery_time="240402030405000+")  # exactly 3 months
    assert result.scheduled_at == datetime(2024, 4, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert result.fields["customParameters"] == {"scheduledTime": "2024-04-02T03:04:05Z"}


def test_schedule_in_the_past_means_now() -> None:
    result = mapped(schedule_delivery_time="230102030405000+")
    assert result.scheduled_at is None
    assert "customParameters" not in result.fields


@pytest.mark.parametrize(("flag", "priority"), [(0, None), (1, "HIGH"), (2, "HIGH"), (3, "HIGH")])
def test_priority(flag: int, priority: str | None) -> None:
    assert mapped(priority_flag=flag).priority == priority


# --- section 4: account settings -------------------------------------------------


def test_premium_and_custom_parameters() -> None:
    policy = AccountPolicy(
        premium={"tariff": 500, "currency": "NOK", "productCategory": 15},
        custom_parameters={"campaign": "x"},
    )
    result = mapped(policy, data_coding=0xF0)
    assert result.fields["tariff"] == 500
    assert result.fields["currency"] == "NOK"
    assert result.fields["productCategory"] == 15
    assert result.fields["customParameters"] == {"campaign": "x", "flash.sms": "true"}
    assert dict(policy.custom_parameters) == {"campaign": "x"}


def test_tariff_only_on_the_first_segment() -> None:
    policy = AccountPolicy(premium={"tariff": 500, "currency": "NOK"})
    first = mapped(policy, esm_class=0x40, short_message=bytes.fromhex("050003010201") + b"a")
    second = mapped(policy, esm_class=0x40, short_message=bytes.fromhex("050003010202") + b"b")
    assert first.fields["tariff"] == 500
    assert "tariff" not in second.fields
    assert second.fields["currency"] == "NOK"


def test_mo_reference_id_is_a_premium_field() -> None:
    policy = AccountPolicy(premium={"moReferenceId": "mo-17", "age": 18})
    fields = mapped(policy).fields
    assert (fields["moReferenceId"], fields["age"]) == ("mo-17", 18)


# --- section 4, last row: premium fields from vendor TLVs ---------------------------

VENDOR = AccountPolicy(
    premium={"tariff": 100, "currency": "NOK", "productDescription": "static"},
    custom_parameters={"campaign": "static", "other": "kept"},
    vendor_tlvs={
        0x1401: VendorTlv("tariff", "int"),
        0x1402: VendorTlv("currency", "string"),
        0x1403: VendorTlv("productCategory", "int"),
        0x1404: VendorTlv("productDescription", "string"),
        0x1405: VendorTlv("age", "int"),
        0x1406: VendorTlv("moReferenceId", "hex"),
        0x1500: VendorTlv("customParameters.campaign", "string"),
        0x1501: VendorTlv("customParameters.flash.sms", "string"),
        0x1502: VendorTlv("customParameters.code", "int"),
        0x3FFF: VendorTlv("customParameters.blob", "hex"),
    },
)


def test_vendor_tags_are_exposed() -> None:
    assert VENDOR.vendor_tags == frozenset(
        {0x1401, 0x1402, 0x1403, 0x1404, 0x1405, 0x1406, 0x1500, 0x1501, 0x1502, 0x3FFF}
    )
    assert AccountPolicy().vendor_tags == frozenset()


def test_without_vendor_tlvs_the_account_values_stay() -> None:
    fields = mapped(VENDOR).fields
    assert (fields["tariff"], fields["currency"], fields["productDescription"]) == (
        100,
        "NOK",
        "static",
    )
    assert "productCategory" not in fields
    assert fields["customParameters"] == {"campaign": "static", "other": "kept"}


def test_vendor_tlvs_override_the_account_values() -> None:
    tlvs = [
        (0x1401, b"\x01\xf4"),  # 500, two octets
        (0x1402, b"SEK\x00"),  # C-Octet String: the NUL is dropped
        (0x1403, b"\x0f"),  # one octet
        (0x1404, "Räkna".encode()),  # no NUL: taken as it is
        (0x1405, b"\x00\x00\x00\x12"),  # four octets
        (0x1406, b"\xbe\xef"),
        (0x1500, b"spring\x00"),
        (0x1501, b"true\x00"),
        (0x1502, b"\xff\xff\xff\xff"),
        (0x3FFF, b"\x00\x01"),
        (0x1600, b"\x01"),  # not configured: ignored
    ]
    fields = mapped(VENDOR, tlvs=tlvs).fields
    assert fields["tariff"] == 500
    assert fields["currency"] == "SEK"
    assert fields["productCategory"] == 15
    assert fields["productDescription"] == "Räkna"
    assert fields["age"] == 18
    assert fields["moReferenceId"] == "BEEF"
    assert fields["customParameters"] == {
        "campaign": "spring",
        "other": "kept",
        "flash.sms": "true",
        "code": "4294967295",
        "blob": "0001",
    }
    assert dict(VENDOR.custom_parameters) == {"campaign": "static", "other": "kept"}
    assert VENDOR.premium["tariff"] == 100


@pytest.mark.parametrize(
    ("tlv", "field", "kept"),
    [
        ((0x1402, b"\x00"), "currency", "NOK"),  # NULL string: not given
        ((0x1402, b""), "currency", "NOK"),
        ((0x1406, b""), "moReferenceId", None),
    ],
)
def test_empty_vendor_values_mean_not_given(
    tlv: tuple[int, bytes], field: str, kept: object
) -> None:
    assert mapped(VENDOR, tlvs=[tlv]).fields.get(field) == kept


def test_first_of_repeated_vendor_tlvs_wins() -> None:
    fields = mapped(VENDOR, tlvs=[(0x1401, b"\x07"), (0x1401, b"\x08")]).fields
    assert fields["tariff"] == 7


@pytest.mark.parametrize(
    "tlv",
    [
        (0x1401, b""),  # integer of no octets
        (0x1401, b"\x00\x00\x01"),  # 3 octets
        (0x1401, b"\x00" * 8),  # 8 octets
        (0x1405, b"\x80\x00\x00\x00"),  # over Common's Integer
        (0x1402, b"N\x00K\x00"),  # NUL inside
        (0x1404, b"\xff\xfe"),  # not UTF-8
        (0x1500, b"caf\xe9\x00"),  # Latin-1, not UTF-8
    ],
)
def test_undecodable_vendor_tlv_is_refused(tlv: tuple[int, bytes]) -> None:
    assert refused(VENDOR, tlvs=[tlv]) == S.ESME_RINVOPTPARAMVAL


def test_vendor_tariff_only_on_the_first_segment() -> None:
    udh = bytes.fromhex("050003010201"), bytes.fromhex("050003010202")
    tlvs = [(0x1401, b"\x01\xf4")]
    first = mapped(VENDOR, esm_class=0x40, short_message=udh[0] + b"a", tlvs=tlvs)
    second = mapped(VENDOR, esm_class=0x40, short_message=udh[1] + b"b", tlvs=tlvs)
    assert first.fields["tariff"] == 500
    assert "tariff" not in second.fields
    assert second.fields["currency"] == "NOK"


def test_vendor_tariff_on_sar_segments() -> None:
    sar = [(0x020C, b"\x00\x07"), (0x020E, b"\x02")]
    tlvs = [(0x1401, b"\x01\xf4")]
    first = mapped(VENDOR, tlvs=[*sar, (0x020F, b"\x01"), *tlvs])
    second = mapped(VENDOR, tlvs=[*sar, (0x020F, b"\x02"), *tlvs])
    assert first.fields["tariff"] == 500
    assert "tariff" not in second.fields


def test_gateway_flash_wins_over_the_account() -> None:
    policy = AccountPolicy(custom_parameters={"flash.sms": "false"})
    assert mapped(policy, data_coding=0xF0).fields["customParameters"] == {"flash.sms": "true"}


@pytest.mark.parametrize(
    ("field", "type_"),
    [
        ("price", "int"),
        ("customParameters.", "string"),
        ("customParameters.two words", "string"),
        ("customParameters.scheduledTime", "string"),
        ("tariff", "string"),
        ("age", "hex"),
        ("currency", "float"),
    ],
)
def test_vendor_tlv_validation(field: str, type_: str) -> None:
    with pytest.raises(ValueError):
        VendorTlv(field, type_)


def test_envelope_fields_are_not_set_here() -> None:
    fields = mapped(registered_delivery=1, priority_flag=1).fields
    for key in ("platformId", "platformPartnerId", "useDeliveryReport", "refId", "priority"):
        assert key not in fields


def test_text_head() -> None:
    assert mapped(short_message=b"0123456789abcdefghijKLMN").text_head == "0123456789abcdefghij"
    assert mapped(data_coding=4).text_head == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_country_code": "+47"},
        {"default_country_code": "047"},
        {"default_country_code": "4747"},
        {"default_alphabet": "ascii"},
        {"min_validity_s": 0},
        {"min_validity_s": 7200, "max_validity_s": 3600},
        {"premium": {"price": 5}},
        {"premium": {"tariff": "500"}},
        {"premium": {"tariff": True}},
        {"premium": {"tariff": -1}},
        {"premium": {"age": 2**31}},
        {"premium": {"currency": 578}},
        {"premium": {"moReferenceId": 17}},
        {"vendor_tlvs": {0x0424: VendorTlv("tariff", "int")}},
        {"vendor_tlvs": {0x4000: VendorTlv("tariff", "int")}},
        {"vendor_tlvs": {0x1400: VendorTlv("age", "int"), 0x1401: VendorTlv("age", "int")}},
    ],
)
def test_policy_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AccountPolicy(**kwargs)  # type: ignore[arg-type]


# --- section 5: resultCode -> stat/err ---------------------------------------------

SECTION_5 = [
    (1001, "DELIVRD", 0, True, M.DELIVERED),
    (1007, "DELIVRD", 0, True, M.DELIVERED),
    (1002, "EXPIRED", 220, True, M.EXPIRED),
    (1010, "EXPIRED", 220, True, M.EXPIRED),
    (1003, "DELETED", 221, True, M.DELETED),
    (1004, "UNDELIV", 222, True, M.UNDELIVERABLE),
    (1006, "UNDELIV", 222, True, M.UNDELIVERABLE),
    (1009, "UNDELIV", 222, True, M.UNDELIVERABLE),
    (1000, "ENROUTE", 0, False, M.ENROUTE),
    (1011, "ENROUTE", 0, False, M.ENROUTE),
    (1013, "ENROUTE", 0, False, M.ENROUTE),
    # Intermediate states are ENROUTE: SMPP 3.4's ACCEPTED is final (issue 14).
    (1005, "ENROUTE", 0, False, M.ENROUTE),
    (1008, "ENROUTE", 0, False, M.ENROUTE),
    (1012, "ENROUTE", 0, False, M.ENROUTE),
    (2104, "UNDELIV", 101, True, M.UNDELIVERABLE),
    (2105, "UNDELIV", 103, True, M.UNDELIVERABLE),
    (2107, "UNDELIV", 103, True, M.UNDELIVERABLE),
    (2106, "UNDELIV", 206, True, M.UNDELIVERABLE),
    (2108, "REJECTD", 206, True, M.REJECTED),
    (2000, "REJECTD", 939, True, M.REJECTED),
    (2001, "REJECTD", 943, True, M.REJECTED),
    (2002, "REJECTD", 943, True, M.REJECTED),
    (2003, "REJECTD", 943, True, M.REJECTED),
    (2100, "REJECTD", 945, True, M.REJECTED),
    (2101, "REJECTD", 945, True, M.REJECTED),
    (2102, "REJECTD", 945, True, M.REJECTED),
    (2103, "REJECTD", 904, True, M.REJECTED),
    (2200, "UNDELIV", 235, True, M.UNDELIVERABLE),
    (2201, "UNDELIV", 128, True, M.UNDELIVERABLE),
    (2207, "UNDELIV", 128, True, M.UNDELIVERABLE),
    (2202, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2203, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2204, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2205, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (2206, "UNDELIV", 232, True, M.UNDELIVERABLE),
    (3000, "REJECTD", 252, True, M.REJECTED),
    (3001, "REJECTD", 252, True, M.REJECTED),
    (3002, "REJECTD", 252, True, M.REJECTED),
    (4005, "REJECTD", 252, True, M.REJECTED),
    (4000, "REJECTD", 903, True, M.REJECTED),
    (4001, "REJECTD", 127, True, M.REJECTED),
    (4002, "REJECTD", 127, True, M.REJECTED),
    (4003, "REJECTD", 127, True, M.REJECTED),
    (4004, "REJECTD", 127, True, M.REJECTED),
    (4006, "REJECTD", 127, True, M.REJECTED),
    (4007, "REJECTD", 225, True, M.REJECTED),
    (0, "UNKNOWN", 255, True, M.UNKNOWN),
    (5, "UNKNOWN", 255, True, M.UNKNOWN),
    (1, "UNDELIV", 108, True, M.UNDELIVERABLE),
    (2, "UNDELIV", 108, True, M.UNDELIVERABLE),
    (6, "UNDELIV", 108, True, M.UNDELIVERABLE),
    (3, "REJECTD", 949, True, M.REJECTED),
    (106, "REJECTD", 949, True, M.REJECTED),
    (4, "EXPIRED", 10, True, M.EXPIRED),
    (104, "REJECTD", 236, True, M.REJECTED),
    (105, "UNDELIV", 254, True, M.UNDELIVERABLE),
]


@pytest.mark.parametrize(("code", "stat", "err", "final", "state"), SECTION_5)
def test_result_code_row(code: int, stat: str, err: int, final: bool, state: MessageState) -> None:
    # 1007 "delivered, billed delayed": DELIVRD now, the message open for its billing.
    assert outcome_for(code) == Outcome(stat, err, final, state, billing_pending=code == 1007)


def test_result_codes_has_exactly_the_design_rows() -> None:
    assert sorted(RESULT_CODES) == sorted(row[0] for row in SECTION_5)


@pytest.mark.parametrize("code", [7, 99, 1014, 21080, 5000, -1, 106001])
def test_any_other_code(code: int) -> None:
    assert outcome_for(code) == Outcome("UNKNOWN", 255, True, M.UNKNOWN)


def test_merge_result_codes() -> None:
    merged = merge_result_codes({1001: ("UNDELIV", 1, True), 9999: ("DELIVRD", 0, True)})
    assert outcome_for(1001, merged) == Outcome("UNDELIV", 1, True, M.UNDELIVERABLE)
    assert outcome_for(9999, merged) == Outcome("DELIVRD", 0, True, M.DELIVERED)
    assert outcome_for(1002, merged) == Outcome("EXPIRED", 220, True, M.EXPIRED)
    assert outcome_for(1001) == Outcome("DELIVRD", 0, True, M.DELIVERED)


@pytest.mark.parametrize(
    "override",
    [("FAILED", 1, True), ("delivrd", 0, True), ("UNDELIV", 1000, True), ("UNDELIV", -1, True)],
)
def test_merge_result_codes_refuses_bad_rows(override: tuple[str, int, bool]) -> None:
    with pytest.raises(ValueError):
        merge_result_codes({1001: override})


# --- section 5: receipts the gateway makes ---------------------------------------


def test_expired_in_queue() -> None:
    assert Outcome("EXPIRED", 220, True, M.EXPIRED) == EXPIRED_IN_QUEUE


COMMON_ERROR_ROWS = [
    (101100, 236, True),
    (101101, 236, True),
    (106000, 255, False),
    (106001, 127, False),
    (106102, 236, True),
    (106200, 236, True),
    (106201, 236, True),
    (106202, 236, True),
    (106300, 236, True),
    (106301, 236, True),
]


@pytest.mark.parametrize(("code", "err", "misconfiguration"), COMMON_ERROR_ROWS)
def test_common_error_rows(code: int, err: int, misconfiguration: bool) -> None:
    assert COMMON_ERRORS[code] == (err, misconfiguration)
    assert rejection_outcome(code) == (Outcome("REJECTD", err, True, M.REJECTED), misconfiguration)


def test_common_errors_has_exactly_those_rows() -> None:
    assert sorted(COMMON_ERRORS) == [row[0] for row in COMMON_ERROR_ROWS]


@pytest.mark.parametrize(
    ("code", "err", "misconfiguration"),
    [
        (None, 255, False),
        (2108, 206, False),  # a delivery-report code in the send answer keeps its err
        (4003, 127, False),
        (104, 236, True),
        (1001, 255, False),
        (1005, 255, False),
        (123456, 255, False),
    ],
)
def test_rejection_outcome(code: int | None, err: int, misconfiguration: bool) -> None:
    assert rejection_outcome(code) == (Outcome("REJECTD", err, True, M.REJECTED), misconfiguration)


# --- accept = "upstream" ------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "common_code", "temporary", "status"),
    [
        # temporary trouble: only 0x58, 0x14, 0x08
        (None, None, True, S.ESME_RMSGQFUL),  # timeout / connection refused
        (408, None, True, S.ESME_RMSGQFUL),
        (429, None, True, S.ESME_RTHROTTLED),
        (429, None, False, S.ESME_RTHROTTLED),
        (500, None, True, S.ESME_RSYSERR),
        (502, None, False, S.ESME_RSYSERR),
        (503, 106000, True, S.ESME_RSYSERR),
        (400, 2000, True, S.ESME_RSYSERR),
        # permanent refusals by Common code
        (400, 2000, False, S.ESME_RINVSRCADR),
        (400, 2001, False, S.ESME_RINVSRCTON),
        (400, 2002, False, S.ESME_RINVSRCTON),
        (400, 2003, False, S.ESME_RINVSRCTON),
        (400, 2100, False, S.ESME_RINVDSTTON),
        (400, 2101, False, S.ESME_RINVDSTTON),
        (400, 2102, False, S.ESME_RINVDSTTON),
        (400, 2104, False, S.ESME_RINVDSTADR),
        (400, 2106, False, S.ESME_RINVDSTADR),
        (400, 2108, False, S.ESME_RINVDSTADR),
        (400, 4001, False, S.ESME_RINVMSGLEN),
        (400, 4003, False, S.ESME_RINVMSGLEN),
        (400, 4004, False, S.ESME_RINVESMCLASS),
        (400, 3, False, S.ESME_RTHROTTLED),
        (401, 101100, False, S.ESME_RSYSERR),
        (403, 101101, False, S.ESME_RSYSERR),
        (400, 106102, False, S.ESME_RSYSERR),
        (400, 106200, False, S.ESME_RSYSERR),
        (400, 106201, False, S.ESME_RSYSERR),
        (400, 106202, False, S.ESME_RSYSERR),
        (400, 106300, False, S.ESME_RSYSERR),
        (400, 106301, False, S.ESME_RSYSERR),
        (400, 106001, False, S.ESME_RSUBMITFAIL),
        (400, 106000, False, S.ESME_RSUBMITFAIL),
        (400, 3000, False, S.ESME_RSUBMITFAIL),
        (400, 4002, False, S.ESME_RSUBMITFAIL),
        # permanent refusals by HTTP status alone
        (400, None, False, S.ESME_RSUBMITFAIL),
        (401, None, False, S.ESME_RSYSERR),
        (403, None, False, S.ESME_RSYSERR),
        (404, None, False, S.ESME_RSYSERR),
        (413, None, False, S.ESME_RINVMSGLEN),
        (422, None, False, S.ESME_RSUBMITFAIL),
        (None, 2104, False, S.ESME_RINVDSTADR),
        (None, None, False, S.ESME_RSUBMITFAIL),
    ],
)
def test_upstream_status(
    http_status: int | None, common_code: int | None, temporary: bool, status: int
) -> None:
    assert (
        upstream_status(http_status=http_status, common_code=common_code, temporary=temporary)
        == status
    )


# --- issue 14: where the mapping disagreed with LINK's documents ------------------


@pytest.mark.parametrize(
    ("code", "temporary"),
    [
        (None, None),
        (1000, None),
        (1005, None),
        (1013, None),
        (0, True),
        (1, True),
        (3, True),
        (4, True),
        (5, True),
        (105, True),
        (2, False),
        (6, False),
        (104, False),
        (106, False),
        (1014, False),
        (2104, False),
        (106001, False),
        (42, False),
    ],
)
def test_a_message_common_did_not_take_is_retried_or_rejected_by_its_code(
    code: int | None, temporary: bool | None
) -> None:
    assert refusal_is_temporary(code) is temporary


@pytest.mark.parametrize(("code", "err"), [(106, 949), (104, 236), (2, 108), (6, 108)])
def test_final_refusals_take_the_report_tables_err(code: int, err: int) -> None:
    outcome, misconfigured = rejection_outcome(code)
    assert (outcome.stat, outcome.err) == ("REJECTD", err)
    assert misconfigured == (code == 104)


def test_a_temporary_throttling_refusal_is_rthrottled_for_upstream_accounts() -> None:
    assert upstream_status(http_status=None, common_code=3, temporary=True) == S.ESME_RTHROTTLED
    assert upstream_status(http_status=400, common_code=3, temporary=True) == S.ESME_RTHROTTLED
    assert upstream_status(http_status=None, common_code=105, temporary=True) == S.ESME_RMSGQFUL


@pytest.mark.parametrize(
    ("err", "written"), [(0, 0), (999, 999), (1000, 99), (65535, 99), (-1, 99)]
)
def test_an_err_that_does_not_fit_three_digits_is_099_not_999(err: int, written: int) -> None:
    assert receipt_err(err) == written
    assert ERR_OUT_OF_RANGE == 99


def test_data_coding_1_is_ascii_unless_the_account_says_gsm() -> None:
    gsm_octets = bytes([0x00, 0x01, 0x02])  # '@', '£', '$' in GSM 03.38
    ascii_account = AccountPolicy(default_country_code="47")
    with pytest.raises(SubmitRefused) as refused:
        map_submit(
            SubmitSm(
                destination_addr="4799999999",
                dest_addr_ton=1,
                source_addr="Shop",
                source_addr_ton=5,
                data_coding=1,
                short_message=b"caf\xe9",
            ),
            ascii_account,
            now=NOW,
        )
    assert refused.value.status == S.ESME_RSUBMITFAIL
    gsm_account = AccountPolicy(default_country_code="47", ia5_alphabet="gsm")
    result = map_submit(
        SubmitSm(
            destination_addr="4799999999",
            dest_addr_ton=1,
            source_addr="Shop",
            source_addr_ton=5,
            data_coding=1,
            short_message=gsm_octets,
        ),
        gsm_account,
        now=NOW,
    )
    assert result.fields["userData"] == "@£$"
