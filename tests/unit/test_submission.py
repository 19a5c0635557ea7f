"""DESIGN section 4, row by row, as far as no route is concerned (gateway.mt.submission,
gateway.mt.vendor): a submit_sm read by its account's rules into a Submission.

What Common makes of a Submission (its JSON keys) is tests/unit/test_common_mapping.py.
Expected values are written out here, never read from the module's own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.mt.submission import (
    AccountPolicy,
    Submission,
    SubmitRefused,
    map_submit,
    segments_of,
)
from gateway.mt.vendor import VendorTlv
from gateway.records import Alphabet, Body, Party, PartyKind
from gateway.smpp.pdu import CommandStatus
from tests.support.pdus import submit

S = CommandStatus
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
POLICY = AccountPolicy(default_country_code="47")


def mapped(policy: AccountPolicy = POLICY, /, **overrides: object) -> Submission:
    return map_submit(submit(**overrides), policy, now=NOW)


def refused(policy: AccountPolicy = POLICY, /, **overrides: object) -> int:
    with pytest.raises(SubmitRefused) as info:
        mapped(policy, **overrides)
    assert info.value.reason
    return info.value.status


# --- section 4, rows 1 and 2: the addresses (rules: test_addresses.py) --------------


def test_submit_addresses() -> None:
    result = mapped(destination_addr="099999999", dest_addr_ton=2)
    assert result.sender == Party(PartyKind.ALPHANUMERIC, "Shop")
    assert result.recipient == "+4799999999"


def test_submit_bad_addresses() -> None:
    assert refused(source_addr="A") == S.ESME_RINVSRCADR
    assert refused(source_addr_ton=7) == S.ESME_RINVSRCTON
    assert refused(destination_addr="abc") == S.ESME_RINVDSTADR
    assert refused(dest_addr_ton=5) == S.ESME_RINVDSTTON


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
    ("policy", "sender"),
    [
        # Norway: short codes of at most 6 digits, so 7 digits are a national mobile.
        (AccountPolicy(default_country_code="47"), Party(PartyKind.MSISDN, "+471234567")),
        (
            AccountPolicy(default_country_code="47", short_number_digits=8),
            Party(PartyKind.SHORT_CODE, "1234567"),
        ),
    ],
)
def test_the_accounts_short_number_length_reads_the_source(
    policy: AccountPolicy, sender: Party
) -> None:
    assert mapped(policy, source_addr="1234567", source_addr_ton=0).sender == sender


# --- section 4, content rows -----------------------------------------------------

GSM = Alphabet.GSM


@pytest.mark.parametrize(
    ("row", "overrides", "body"),
    [
        (
            "data_coding 0: GSM 03.38",
            {"data_coding": 0, "short_message": b"5\x1b\x65 [ok]"},
            Body(text="5€ ÄokÑ"),
        ),
        ("data_coding 1: IA5", {"data_coding": 1, "short_message": b"[ok]"}, Body(text="[ok]")),
        (
            "data_coding 3: Latin-1",
            {"data_coding": 3, "short_message": b"Gr\xfc\xdfe"},
            Body(text="Grüße"),
        ),
        (
            "data_coding 8: UCS-2",
            {"data_coding": 8, "short_message": "Привет".encode("utf-16-be")},
            Body(text="Привет"),
        ),
        (
            "data_coding 2: 8-bit",
            {"data_coding": 2, "short_message": b"\x00\xff"},
            Body(data=b"\x00\xff"),
        ),
        ("data_coding 4: 8-bit", {"data_coding": 4, "short_message": b"\x01"}, Body(data=b"\x01")),
        (
            "data_coding 0xF5: 8-bit class 1",
            {"data_coding": 0xF5, "short_message": b"\x01"},
            Body(data=b"\x01"),
        ),
        (
            "data_coding 0xF0: flash",
            {"data_coding": 0xF0, "short_message": b"Hi"},
            Body(text="Hi", flash=True),
        ),
        (
            "message class 0: flash",
            {"data_coding": 0x18, "short_message": b"\x00H\x00i"},
            Body(text="Hi", flash=True),
        ),
        (
            "esm_class 0x40: UDHI, GSM",
            {"esm_class": 0x40, "short_message": bytes.fromhex("0500032A0201") + b"Hi"},
            Body(text="Hi", udh=bytes.fromhex("0500032A0201"), alphabet=GSM),
        ),
        (
            "esm_class 0x40: UDHI with a 16-bit concat reference",
            {"esm_class": 0x40, "short_message": bytes.fromhex("060804BEEF0302") + b"Hi"},
            Body(text="Hi", udh=bytes.fromhex("060804BEEF0302"), alphabet=GSM),
        ),
        (
            "esm_class 0x43 (Kannel): UDHI, UCS-2",
            {
                "esm_class": 0x43,
                "data_coding": 8,
                "short_message": bytes.fromhex("0500032A0202") + "ж".encode("utf-16-be"),
            },
            Body(text="ж", udh=bytes.fromhex("0500032A0202"), alphabet=Alphabet.UCS2),
        ),
        (
            "esm_class 0x40: UDHI, binary",
            {
                "esm_class": 0x40,
                "data_coding": 4,
                "short_message": bytes.fromhex("0605040B8423F0AB"),
            },
            Body(data=b"\xab", udh=bytes.fromhex("0605040B8423F0"), alphabet=Alphabet.BINARY),
        ),
        (
            "message_payload: whole text",
            {"short_message": b"", "tlvs": [(0x0424, b"a" * 300)]},
            Body(text="a" * 300),
        ),
        (
            "SAR TLVs become an 8-bit concat UDH",
            {"tlvs": [(0x020C, b"\x00\x07"), (0x020E, b"\x02"), (0x020F, b"\x01")]},
            Body(text="Hello", udh=bytes.fromhex("050003070201"), alphabet=GSM),
        ),
        (
            "SAR TLVs with a 16-bit reference",
            {"tlvs": [(0x020C, b"\x12\x34"), (0x020E, b"\x03"), (0x020F, b"\x03")]},
            Body(text="Hello", udh=bytes.fromhex("06080412340303"), alphabet=GSM),
        ),
    ],
)
def test_content_rows(row: str, overrides: dict[str, object], body: Body) -> None:
    assert mapped(**overrides).body == body, row


def test_latin1_account() -> None:
    policy = AccountPolicy(default_alphabet="latin1")
    assert mapped(policy, short_message=b"caf\xe9").body == Body(text="café")


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
            {"tlvs": [(0x020C, b"\x00\x07"), (0x020E, b"\x02"), (0x020F, b"\x03")]},
            S.ESME_RINVOPTPARAMVAL,
        ),
        ({"priority_flag": 4}, S.ESME_RINVPRTFLG),
    ],
)
def test_content_refused(overrides: dict[str, object], status: int) -> None:
    assert refused(**overrides) == status


def test_an_oversized_segment_is_refused_when_the_account_never_reassembles() -> None:
    long_part = bytes.fromhex("0500032A0201") + b"a" * 154
    never = AccountPolicy(default_country_code="47", reassemble="never")
    assert refused(never, esm_class=0x40, short_message=long_part) == S.ESME_RINVMSGLEN


@pytest.mark.parametrize("policy", ["oversized", "always"])
def test_an_oversized_part_is_numbered_for_reassembly(policy: str) -> None:
    long_part = bytes.fromhex("0500032A0201") + b"a" * 154
    taken = mapped(
        AccountPolicy(default_country_code="47", reassemble=policy),
        esm_class=0x40,
        short_message=long_part,
    )
    assert (taken.fits, taken.body.text, taken.body.alphabet) == (False, "a" * 154, None)
    assert taken.concat is not None and (taken.concat.ref, taken.concat.total) == (0x2A, 2)


def test_a_segment_with_ports_is_not_numbered_for_reassembly() -> None:
    # Concatenation and a port element: the ports would be lost in a whole message.
    udh = bytes.fromhex("0B00032A020105040B8423F0")
    assert mapped(esm_class=0x40, short_message=udh + b"x" * 10).concat is None
    assert refused(esm_class=0x40, short_message=udh + b"x" * 150) == S.ESME_RINVMSGLEN


def test_empty_message_payload_is_allowed() -> None:
    assert mapped(short_message=b"", tlvs=[(0x0424, b"")]).body == Body(text="")


def test_data_coding_1_is_ascii_unless_the_account_says_gsm() -> None:
    gsm_octets = bytes([0x00, 0x01, 0x02])  # '@', '£', '$' in GSM 03.38
    ascii_account = AccountPolicy(default_country_code="47")
    assert refused(ascii_account, data_coding=1, short_message=b"caf\xe9") == S.ESME_RSUBMITFAIL
    gsm_account = AccountPolicy(default_country_code="47", ia5_alphabet="gsm")
    assert mapped(gsm_account, data_coding=1, short_message=gsm_octets).body == Body(text="@£$")


# --- how many SMS a route makes of it (reports per part) -----------------------------


@pytest.mark.parametrize(
    ("body", "parts"),
    [
        (Body(text="a" * 160), 1),
        (Body(text="a" * 161), 2),  # 153 GSM characters a part once split
        (Body(text="a" * 306), 2),
        (Body(text="a" * 307), 3),
        (Body(text="ж" * 70), 1),
        (Body(text="ж" * 71), 2),  # 67 UCS-2 characters a part once split
        (Body(text="ж" * 134), 2),
        (Body(text="ж" * 135), 3),
        (Body(text=""), 1),
        # A segment the ESME made, or octets, go as they are: one SMS.
        (Body(text="a" * 300, udh=bytes.fromhex("050003010201"), alphabet=GSM), 1),
        (Body(data=b"\x00" * 300), 1),
    ],
)
def test_segments_of(body: Body, parts: int) -> None:
    assert segments_of(body) == parts


def test_a_submission_counts_its_parts() -> None:
    assert mapped(short_message=b"a" * 160).parts == 1
    assert mapped(short_message=b"", tlvs=[(0x0424, b"a" * 300)]).parts == 2
    segment = bytes.fromhex("050003010201") + b"a" * 153
    assert mapped(esm_class=0x40, short_message=segment).parts == 1


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
    # The schedule is a time of its own, not one of the account's custom parameters.
    assert dict(result.custom) == {}


def test_schedule_in_the_past_means_now() -> None:
    result = mapped(schedule_delivery_time="230102030405000+")
    assert result.scheduled_at is None
    assert dict(result.custom) == {}


@pytest.mark.parametrize("flag", [0, 1, 2, 3])
def test_priority(flag: int) -> None:
    # Kept as the ESME gave it; each route says what it makes of it (Common: HIGH or not).
    assert mapped(priority_flag=flag).priority == flag


def test_text_head() -> None:
    assert mapped(short_message=b"0123456789abcdefghijKLMN").text_head == "0123456789abcdefghij"
    assert mapped(data_coding=4).text_head == ""


# --- section 4: account settings -------------------------------------------------


def test_premium_and_custom_parameters() -> None:
    policy = AccountPolicy(
        premium={"tariff": 500, "currency": "NOK", "productCategory": 15},
        custom_parameters={"campaign": "x"},
    )
    result = mapped(policy, data_coding=0xF0)
    assert dict(result.premium) == {"tariff": 500, "currency": "NOK", "productCategory": 15}
    # Flash is the body's; the route adds its own parameter for it.
    assert dict(result.custom) == {"campaign": "x"}
    assert result.body.flash
    assert dict(policy.custom_parameters) == {"campaign": "x"}


def test_tariff_only_on_the_first_segment() -> None:
    policy = AccountPolicy(premium={"tariff": 500, "currency": "NOK"})
    first = mapped(policy, esm_class=0x40, short_message=bytes.fromhex("050003010201") + b"a")
    second = mapped(policy, esm_class=0x40, short_message=bytes.fromhex("050003010202") + b"b")
    assert first.premium["tariff"] == 500
    assert "tariff" not in second.premium
    assert second.premium["currency"] == "NOK"
    assert policy.premium["tariff"] == 500


def test_mo_reference_id_is_a_premium_field() -> None:
    policy = AccountPolicy(premium={"moReferenceId": "mo-17", "age": 18})
    premium = mapped(policy).premium
    assert (premium["moReferenceId"], premium["age"]) == ("mo-17", 18)


def test_account_flash_parameter_is_kept_apart_from_the_flash_body() -> None:
    # The gateway's own flash (data_coding 0xF0) wins on the wire (test_common_mapping);
    # the Submission keeps both as they came.
    policy = AccountPolicy(custom_parameters={"flash.sms": "false"})
    result = mapped(policy, data_coding=0xF0)
    assert result.body.flash
    assert dict(result.custom) == {"flash.sms": "false"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"default_country_code": "+47"},
        {"default_country_code": "047"},
        {"default_country_code": "4747"},
        {"default_alphabet": "ascii"},
        {"ia5_alphabet": "latin1"},
        {"short_number_digits": 0},
        {"short_number_digits": 15},
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
    result = mapped(VENDOR)
    assert dict(result.premium) == {
        "tariff": 100,
        "currency": "NOK",
        "productDescription": "static",
    }
    assert dict(result.custom) == {"campaign": "static", "other": "kept"}


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
    result = mapped(VENDOR, tlvs=tlvs)
    assert dict(result.premium) == {
        "tariff": 500,
        "currency": "SEK",
        "productCategory": 15,
        "productDescription": "Räkna",
        "age": 18,
        "moReferenceId": "BEEF",
    }
    assert dict(result.custom) == {
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
    assert mapped(VENDOR, tlvs=[tlv]).premium.get(field) == kept


def test_first_of_repeated_vendor_tlvs_wins() -> None:
    result = mapped(VENDOR, tlvs=[(0x1401, b"\x07"), (0x1401, b"\x08")])
    assert result.premium["tariff"] == 7


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
    assert first.premium["tariff"] == 500
    assert "tariff" not in second.premium
    assert second.premium["currency"] == "NOK"


def test_vendor_tariff_on_sar_segments() -> None:
    sar = [(0x020C, b"\x00\x07"), (0x020E, b"\x02")]
    tlvs = [(0x1401, b"\x01\xf4")]
    first = mapped(VENDOR, tlvs=[*sar, (0x020F, b"\x01"), *tlvs])
    second = mapped(VENDOR, tlvs=[*sar, (0x020F, b"\x02"), *tlvs])
    assert first.premium["tariff"] == 500
    assert "tariff" not in second.premium


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
