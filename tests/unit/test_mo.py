"""MO messages: Common SmsMessage callbacks in every Gate format -> IncomingMo
(gateway.connectors.common.mo), routing to an account by number and keyword and the
deliver_sm items an ESME gets (gateway.intake.mo), and the Intake dropping, counted,
what no account owns or no deliver_sm can carry (gateway.intake.intake)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Generator, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from gateway.addresses import claimed_number, normalise_number
from gateway.config import Config
from gateway.config import parse as parse_config
from gateway.connectors.common.mo import incoming_mo_from_object
from gateway.connectors.common.payloads import BadCallback, parse_callback_objects
from gateway.intake.delivery import ReceiptDeliverer
from gateway.intake.intake import Intake
from gateway.intake.mo import (
    MoRouter,
    Undeliverable,
    check_deliverable,
    claimed_keyword,
    mo_segments,
)
from gateway.metrics import Metrics
from gateway.mt.dispatcher import Dispatcher
from gateway.records import MO, IncomingMo, Receipt
from gateway.smpp.text import decode_content, encode_for_esme, parse_udh
from gateway.store.sqlite import SqliteStore
from tests.support.configs import minimal
from tests.support.records import incoming_mo

NOW = 1_700_000_000.0
TTL = 3600.0

# Shaped like seed 000's SmsMessage, with the messageId style of seed 001.
SMS_MESSAGE: dict[str, Any] = {
    "messageId": "Dcshuhod0PMAAAFQ+/PbnR3x",
    "source": "+4790000000",
    "destination": "2233",
    "userData": "STOP please",
}


def parse(
    body: bytes,
    content_type: str | None = None,
    *,
    method: bytes = b"POST",
    query: Mapping[bytes, Sequence[bytes]] | None = None,
) -> list[IncomingMo]:
    return [
        incoming_mo_from_object(obj, connector="common", now=NOW)
        for obj in parse_callback_objects(method, content_type, body, query or {})
    ]


def mo(**fields: Any) -> IncomingMo:
    """An MO from +4790000000 to 2233 saying "hello", as the Common connector reads it."""
    values: dict[str, Any] = {
        "upstream_id": "m1",
        "source": "+4790000000",
        "destination": "2233",
        "text": "hello",
        "connector": "common",
        "received_at": NOW,
    }
    values.update(fields)
    return incoming_mo(**values)


def one(obj: Mapping[str, object]) -> IncomingMo:
    return incoming_mo_from_object(obj, connector="common", now=NOW)


# -- callback bodies -> IncomingMo ---------------------------------------------------


def test_json_object() -> None:
    (result,) = parse(json.dumps(SMS_MESSAGE).encode(), "application/json")
    assert result == IncomingMo(
        upstream_id="Dcshuhod0PMAAAFQ+/PbnR3x",
        source="+4790000000",
        destination="2233",
        text="STOP please",
        connector="common",
        received_at=NOW,
    )


def test_json_array_gives_every_message() -> None:
    second = {**SMS_MESSAGE, "messageId": "second", "userData": "Hei på deg"}
    results = parse(json.dumps([SMS_MESSAGE, second]).encode(), "application/json")
    assert [(r.upstream_id, r.text) for r in results] == [
        ("Dcshuhod0PMAAAFQ+/PbnR3x", "STOP please"),
        ("second", "Hei på deg"),
    ]


def test_form_body_with_an_unencoded_plus_keeps_the_number() -> None:
    # A '+' in a form value is a space; the number survives the stripping.
    body = b"messageId=abc123&source=+4790000000&destination=2233&userData=Hei+p%C3%A5+deg"
    (result,) = parse(body, "application/x-www-form-urlencoded")
    assert (result.upstream_id, result.source, result.destination, result.text) == (
        "abc123",
        "4790000000",
        "2233",
        "Hei på deg",
    )
    assert normalise_number(result.source) == "+4790000000"


def test_xml_body_ignores_unknown_fields() -> None:
    body = (
        b"<SmsMessage><messageId>x1</messageId><source>+4790000000</source>"
        b"<destination>+4722334455</destination><userData>Hello</userData>"
        b"<operator>no.telenor</operator><keyword>HELLO</keyword>"
        b"<sentTimestamp>2015-11-19T09:37:35Z</sentTimestamp></SmsMessage>"
    )
    (result,) = parse(body, "application/xml")
    assert (result.upstream_id, result.destination, result.text) == (
        "x1",
        "+4722334455",
        "Hello",
    )


def test_xml_empty_user_data_is_empty_text() -> None:
    body = (
        b"<SmsMessage><messageId>x1</messageId><source>4790000000</source>"
        b"<destination>2233</destination><userData/></SmsMessage>"
    )
    (result,) = parse(body, "text/xml")
    assert result.text == ""


def test_template_get_query_without_body() -> None:
    query = {
        b"messageId": [b"q1"],
        b"source": [b"4790000000"],
        b"destination": [b"SE-1234"],
        b"userData": [b"vote yes"],
    }
    (result,) = parse(b"", None, method=b"GET", query=query)
    assert (result.source, result.destination, result.text) == ("4790000000", "SE-1234", "vote yes")
    assert normalise_number(result.destination) == "1234"


def test_fields_are_stripped_and_numbers_may_be_json_numbers() -> None:
    result = one({**SMS_MESSAGE, "source": 4790000000, "destination": " 2233 "})
    assert (result.source, result.destination) == ("4790000000", "2233")


def test_extra_fields_of_any_type_are_ignored() -> None:
    extra = {
        "keyword": "STOP",
        "operator": None,
        "customParameters": {"a": [1, 2]},
        "timestamp": 12.5,
        "refId": True,
    }
    assert one({**SMS_MESSAGE, **extra}) == one(SMS_MESSAGE)


def test_ton_hints_are_read_and_unknown_ones_ignored() -> None:
    result = one({**SMS_MESSAGE, "sourceTON": "msisdn", "destinationTON": "SHORTNUMBER"})
    assert (result.source_ton, result.dest_ton) == (1, 3)
    result = one({**SMS_MESSAGE, "sourceTON": "NATIONAL", "destinationTON": 7})
    assert (result.source_ton, result.dest_ton) == (None, None)


def test_binary_user_data_is_hex() -> None:
    result = one({**SMS_MESSAGE, "dcs": "BINARY", "userData": "0102ff"})
    assert (result.text, result.binary) == (None, b"\x01\x02\xff")


@pytest.mark.parametrize("dcs", ["TEXT", "GSM", "ucs2", "", None])
def test_text_dcs_names(dcs: str | None) -> None:
    assert one({**SMS_MESSAGE, "dcs": dcs}).text == "STOP please"


def test_user_data_header_makes_a_segment() -> None:
    result = one({**SMS_MESSAGE, "dcs": "GSM", "userDataHeader": "050003AA0201"})
    assert (result.udh, result.text) == (bytes.fromhex("050003AA0201"), "STOP please")
    assert one({**SMS_MESSAGE, "userDataHeader": ""}).udh is None


def test_unpaired_surrogate_becomes_replacement_character() -> None:
    body = b'{"messageId":"m","source":"+4790000000","destination":"2233",'
    (result,) = parse(body + b'"userData":"a\\ud800b \\ud83d\\ude00"}')
    assert result.text == "a\ufffdb \U0001f600"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"messageId": None}, "missing or empty 'messageId'"),
        ({"messageId": "  "}, "missing or empty 'messageId'"),
        ({"messageId": ["x"]}, "'messageId' must be a string"),
        ({"messageId": "x" * 65}, "'messageId' longer than 64 characters"),
        ({"source": ""}, "missing or empty 'source'"),
        ({"source": True}, "'source' must be a string"),
        ({"source": -5}, "'source' must be a string"),
        ({"destination": None}, "missing or empty 'destination'"),
        ({"destination": 2.5}, "'destination' must be a string"),
        ({"userData": 5}, "'userData' must be a string"),
        ({"dcs": "KANJI"}, "'dcs' 'KANJI' is not TEXT, GSM, UCS2 or BINARY"),
        ({"dcs": 8}, "'dcs' '8' is not TEXT, GSM, UCS2 or BINARY"),
        ({"dcs": "BINARY", "userData": "0g"}, "'userData' is not hex-encoded octets"),
        ({"dcs": "BINARY", "userData": "123"}, "'userData' is not hex-encoded octets"),
        ({"userDataHeader": 5}, "'userDataHeader' must be a hex string"),
        ({"userDataHeader": "zz"}, "'userDataHeader' is not hex-encoded octets"),
        ({"source": "x" * 21}, "does not fit an SMPP address"),
        ({"source": "Привет"}, "does not fit an SMPP address"),
        ({"source": "a\0b"}, "does not fit an SMPP address"),
        ({"destination": "+" + "1" * 21}, "does not fit an SMPP address"),
    ],
)
def test_bad_fields(change: dict[str, object], reason: str) -> None:
    with pytest.raises(BadCallback) as raised:
        one({**SMS_MESSAGE, **change})
    assert reason in raised.value.reason


@pytest.mark.parametrize("name", ["messageId", "source", "destination", "userData"])
def test_missing_required_field(name: str) -> None:
    obj = {k: v for k, v in SMS_MESSAGE.items() if k != name}
    with pytest.raises(BadCallback, match=name):
        one(obj)


def test_bad_user_data_header() -> None:
    with pytest.raises(BadCallback, match="bad 'userDataHeader'"):
        one({**SMS_MESSAGE, "userDataHeader": "0500"})


def test_segment_that_does_not_fit_one_sms_is_refused() -> None:
    udh = "050003AA0201"
    assert one({**SMS_MESSAGE, "userDataHeader": udh, "userData": "a" * 153}).udh
    with pytest.raises(BadCallback, match="does not fit one SMS"):
        one({**SMS_MESSAGE, "userDataHeader": udh, "userData": "a" * 154})
    # The same 153 characters need UCS-2 once one of them is not GSM.
    with pytest.raises(BadCallback, match="does not fit one SMS"):
        one({**SMS_MESSAGE, "userDataHeader": udh, "userData": "Ж" * 68})
    binary = {**SMS_MESSAGE, "dcs": "BINARY", "userDataHeader": udh}
    assert one({**binary, "userData": "00" * 134}).binary == bytes(134)
    with pytest.raises(BadCallback, match="does not fit one SMS"):
        one({**binary, "userData": "00" * 135})


def test_text_needing_more_than_255_parts_is_refused() -> None:
    assert one({**SMS_MESSAGE, "userData": "a" * (153 * 255)}).text
    with pytest.raises(BadCallback, match="userData too long"):
        one({**SMS_MESSAGE, "userData": "a" * (153 * 255 + 1)})


def test_not_an_object() -> None:
    with pytest.raises(BadCallback, match="must be an object"):
        one(["messageId"])  # type: ignore[arg-type]


# -- numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+4790000000", "+4790000000"),
        ("004790000000", "+4790000000"),
        ("4790000000", "+4790000000"),
        (" 4790000000 ", "+4790000000"),
        ("2233", "2233"),
        ("12345678", "12345678"),
        ("123456789", "+123456789"),
        ("0047", "+47"),
        ("00", "00"),
        ("SE-1234", "1234"),
        ("no-2233", "2233"),
        ("SE-123456789", "SE-123456789"),  # the digits alone would be an MSISDN
        ("SE-0047", "SE-0047"),
        ("000", "+0"),  # a 00 prefix is international, as for MT
        (" LINK ", "LINK"),
        ("+47 900", "+47 900"),
        ("+", "+"),
        ("", ""),
        ("٣٣٣", "٣٣٣"),  # Arabic-Indic digits are not a number here
    ],
)
def test_normalise_number(value: str, expected: str) -> None:
    assert normalise_number(value) == expected


@given(st.text() | st.from_regex(r"\A ?(\+|00|[A-Z]{2}-)?[0-9]{0,12} ?\Z"))
def test_normalise_number_is_idempotent(value: str) -> None:
    once = normalise_number(value)
    assert normalise_number(once) == once


# -- routing ------------------------------------------------------------------------

ACCOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "shop": (("2233",), ("BUY", "Order")),
    "vote": (("2233",), ("vote",)),
    "help": (("2233", "+4722334455"), ()),
    "bank": (("+4799887766",), ()),
    "quiz": (("4040",), ("QUIZ",)),
}


@pytest.fixture
def router() -> MoRouter:
    return MoRouter(ACCOUNTS, "fallback")


@pytest.mark.parametrize(
    ("destination", "text", "account"),
    [
        ("2233", "buy 2 apples", "shop"),
        ("2233", "  ORDER: 15", "shop"),
        ("2233", "Vote!", "vote"),
        ("2233", "#vote, yes", "vote"),
        ("2233", "\nVOTE\tB", "vote"),
        ("2233", "voter 1", "help"),  # a keyword is a whole word
        ("2233", "what now?", "help"),
        ("2233", "", "help"),
        ("SE-2233", "buy", "shop"),
        ("+4722334455", "buy", "help"),  # keywords belong to their numbers
        ("004722334455", "hi", "help"),
        ("4722334455", "hi", "help"),
        ("+4799887766", "hi", "bank"),
        ("4799887766", "hi", "bank"),
        ("4040", "quiz 3", "quiz"),
        ("4040", "answer", "fallback"),  # only keyword owners on 4040
        ("9999", "buy", "fallback"),
    ],
)
def test_route(router: MoRouter, destination: str, text: str, account: str) -> None:
    assert router.route(mo(destination=destination, text=text)) == account


def test_binary_goes_to_the_catch_all(router: MoRouter) -> None:
    assert router.route(mo(text=None, binary=b"buy")) == "help"


def test_no_default_account_means_no_route() -> None:
    router = MoRouter(ACCOUNTS, None)
    assert router.route(mo(destination="9999")) is None
    assert router.route(mo(destination="4040", text="hello")) is None


def test_keywords_compare_casefolded() -> None:
    router = MoRouter({"de": (("2233",), ("STRASSE",))}, None)
    assert router.route(mo(text="Straße 5")) == "de"


def test_empty_configuration_routes_to_the_default() -> None:
    assert MoRouter({}, "only").route(mo()) == "only"


@pytest.mark.parametrize(
    ("accounts", "problem"),
    [
        ({"a": (("2233",), ()), "b": (("+2233",), ())}, None),
        ({"b": (("+2233",), ()), "c": (("002233",), ())}, "catch-all of both"),
        ({"a": (("2233",), ()), "b": (("2233",), ())}, "catch-all of both"),
        ({"a": (("2233",), ("X",)), "b": (("2233",), ("x",))}, "belongs to both"),
        ({"a": (("2233",), ("two words",))}, "must be one word"),
        ({"a": (("2233",), ("e-post",))}, "must be one word"),
        ({"a": (("2233",), ("",))}, "must be one word"),
        ({"a": ((), ("STOP",))}, "no MO numbers"),
    ],
)
def test_configuration_conflicts(
    accounts: dict[str, tuple[tuple[str, ...], tuple[str, ...]]], problem: str | None
) -> None:
    if problem is None:
        MoRouter(accounts, None)  # 2233 and +2233 are different numbers
        return
    with pytest.raises(ValueError, match=problem):
        MoRouter(accounts, None)


def test_numbers_are_normalised_at_construction() -> None:
    router = MoRouter({"a": (("004790000000",), ())}, None)
    assert router.route(mo(destination="+4790000000")) == "a"


@given(destination=st.text(), text=st.one_of(st.none(), st.text()))
def test_route_never_raises(destination: str, text: str | None) -> None:
    router = MoRouter(ACCOUNTS, None)
    assert router.route(mo(destination=destination, text=text)) in (None, *ACCOUNTS)


# -- deliver_sm items -----------------------------------------------------------------


def test_single_gsm_message_is_one_item_with_every_field() -> None:
    (item,) = mo_segments(mo(text="Hello world, how are you today?"), "shop", ttl=TTL, ref=7)
    assert item == Receipt(
        account="shop",
        message_id="m1",
        source_addr="4790000000",
        source_ton=1,
        source_npi=1,
        destination_addr="2233",
        dest_ton=3,
        dest_npi=0,
        stat="",
        err=0,
        sub=0,
        dlvrd=0,
        submit_date=NOW,
        done_date=NOW,
        text="Hello world, how are",
        kind=MO,
        data_coding=0,
        esm_class=0,
        payload=b"Hello world, how are you today?",
        expires_at=NOW + TTL,
    )


@pytest.mark.parametrize(
    ("source", "source_ton", "expected"),
    [
        ("+4790000000", None, ("4790000000", 1, 1)),
        ("004790000000", None, ("4790000000", 1, 1)),
        ("4790000000", None, ("4790000000", 1, 1)),
        ("2233", None, ("2233", 3, 0)),
        ("SE-1234", None, ("1234", 3, 0)),
        ("LINK", None, ("LINK", 5, 0)),
        ("MyLongSender1", None, ("MyLongSender1", 0, 0)),  # over 11: not ton 5
        ("90000000", 1, ("90000000", 1, 1)),  # LINK says MSISDN
        ("090000000", 2, ("090000000", 2, 1)),  # national stays national
        ("123456789", 3, ("123456789", 3, 0)),  # a 9-digit short number
        ("12345", 5, ("12345", 5, 0)),
        ("123456789012", 5, ("123456789012", 1, 1)),  # too long for ton 5
        ("+4790000000", 3, ("4790000000", 1, 1)),  # the '+' wins over a hint
        ("LINK", 1, ("LINK", 5, 0)),  # a name is a name
    ],
)
def test_addresses(source: str, source_ton: int | None, expected: tuple[str, int, int]) -> None:
    (item,) = mo_segments(mo(source=source, source_ton=source_ton), "a", ttl=TTL, ref=0)
    assert (item.source_addr, item.source_ton, item.source_npi) == expected


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("2233", ("2233", 3, 0)),
        ("+4722334455", ("4722334455", 1, 1)),
        ("4722334455", ("4722334455", 1, 1)),
    ],
)
def test_destination_addresses(destination: str, expected: tuple[str, int, int]) -> None:
    (item,) = mo_segments(mo(destination=destination), "a", ttl=TTL, ref=0)
    assert (item.destination_addr, item.dest_ton, item.dest_npi) == expected


def test_ucs2_when_a_character_is_not_gsm() -> None:
    (item,) = mo_segments(mo(text="Привет"), "a", ttl=TTL, ref=0)
    assert (item.data_coding, item.esm_class) == (8, 0)
    assert item.payload == "Привет".encode("utf-16-be")


def test_character_outside_the_bmp_goes_as_a_surrogate_pair() -> None:
    (item,) = mo_segments(mo(text="\U0001f600"), "a", ttl=TTL, ref=0)
    assert (item.data_coding, item.payload) == (8, b"\xd8\x3d\xde\x00")


def test_160_gsm_septets_are_one_sms_161_are_two() -> None:
    assert len(mo_segments(mo(text="a" * 160), "a", ttl=TTL, ref=0)) == 1
    first, second = mo_segments(mo(text="a" * 161), "a", ttl=TTL, ref=0x1FF)
    assert first.payload == bytes.fromhex("050003FF0201") + b"a" * 153
    assert second.payload == bytes.fromhex("050003FF0202") + b"a" * 8
    assert (first.esm_class, second.esm_class) == (0x40, 0x40)
    assert first.message_id == second.message_id == "m1"
    assert first.text == second.text == "a" * 20


def test_gsm_escape_pair_is_not_split_at_a_boundary() -> None:
    text = "a" * 152 + "€" + "b" * 10
    first, second = mo_segments(mo(text=text), "a", ttl=TTL, ref=1)
    assert first.payload[6:] == b"a" * 152
    assert second.payload[6:] == b"\x1b\x65" + b"b" * 10


def test_surrogate_pair_is_not_split_at_a_boundary() -> None:
    text = "Ж" * 66 + "\U0001f600" + "x" * 10
    first, second = mo_segments(mo(text=text), "a", ttl=TTL, ref=1)
    assert first.payload[6:] == ("Ж" * 66).encode("utf-16-be")
    assert second.payload[6:8] == b"\xd8\x3d"
    assert (first.data_coding, second.data_coding) == (8, 8)


def test_binary_is_data_coding_4_and_splits_at_134_octets() -> None:
    (single,) = mo_segments(mo(text=None, binary=bytes(140)), "a", ttl=TTL, ref=0)
    assert (single.data_coding, single.esm_class, single.payload, single.text) == (
        4,
        0,
        bytes(140),
        "",
    )
    first, second = mo_segments(mo(text=None, binary=bytes(141)), "a", ttl=TTL, ref=9)
    assert first.payload == bytes.fromhex("050003090201") + bytes(134)
    assert second.payload == bytes.fromhex("050003090202") + bytes(7)
    assert first.data_coding == second.data_coding == 4


def test_segment_from_link_passes_through_with_its_udh() -> None:
    udh = bytes.fromhex("0500032A0302")
    (item,) = mo_segments(mo(text="part two", udh=udh), "a", ttl=TTL, ref=99)
    assert (item.esm_class, item.data_coding, item.payload) == (0x40, 0, udh + b"part two")
    (item,) = mo_segments(mo(text=None, binary=b"\x01", udh=udh), "a", ttl=TTL, ref=99)
    assert (item.esm_class, item.data_coding, item.payload) == (0x40, 4, udh + b"\x01")


def test_empty_text_is_one_empty_item() -> None:
    (item,) = mo_segments(mo(text=""), "a", ttl=TTL, ref=0)
    assert (item.payload, item.data_coding, item.text) == (b"", 0, "")


@pytest.mark.parametrize(
    "fields",
    [
        {"udh": bytes.fromhex("0500032A0302"), "text": "a" * 154},
        {"udh": b"\x05\x00"},
        {"source": "x" * 21},
        {"destination": ""},
        {"text": "a" * (153 * 255 + 1)},
        {"text": None, "binary": bytes(134 * 255 + 1)},
    ],
)
def test_undeliverable_mo_built_elsewhere_is_undeliverable(fields: dict[str, Any]) -> None:
    # An MO another route read (LINK SMPP) meets the same checks as a Common one.
    undeliverable = mo(**fields)
    with pytest.raises(Undeliverable) as raised:
        mo_segments(undeliverable, "a", ttl=TTL, ref=0)
    assert raised.value.reason
    with pytest.raises(Undeliverable):
        check_deliverable(undeliverable)


def test_deliverable_mo_passes_the_check() -> None:
    check_deliverable(mo())
    check_deliverable(mo(text=None, binary=bytes(134 * 255)))


# -- properties -----------------------------------------------------------------------

# GSM basic, GSM extension, BMP non-GSM and non-BMP characters, so that every kind
# of boundary comes up.
TEXT = st.text(
    alphabet=st.sampled_from(list("abc@£$ΔÆé\n ") + list("€[]{}^~|\\") + list("ЖЩ中") + ["😀"]),
    max_size=700,
)


def _septets(udh: bytes) -> int:
    return (len(udh) * 8 + 6) // 7


@settings(max_examples=300, deadline=None)
@given(text=TEXT, ref=st.integers(0, 0xFFFF))
def test_segments_rejoin_fit_and_decode(text: str, ref: int) -> None:
    items = mo_segments(mo(text=text), "a", ttl=TTL, ref=ref)
    data_coding, octets = encode_for_esme(text)
    bodies: list[bytes] = []
    for seq, item in enumerate(items, start=1):
        assert item.data_coding == data_coding
        if len(items) == 1:
            udh, body = b"", item.payload
            assert item.esm_class == 0
        else:
            udh, body = item.payload[:6], item.payload[6:]
            assert item.esm_class == 0x40
            assert udh == bytes((5, 0, 3, ref & 0xFF, len(items), seq))
        if data_coding == 0:
            assert _septets(udh) + len(body) <= 160
            assert not body.endswith(b"\x1b")
            assert decode_content(0, item.payload, udhi=bool(udh)).text is not None
        else:
            assert len(item.payload) <= 140
            body.decode("utf-16-be")  # no pair split, no lone half
        bodies.append(body)
    assert b"".join(bodies) == octets


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=1000), ref=st.integers(0, 255))
def test_binary_rejoins_and_fits(data: bytes, ref: int) -> None:
    items = mo_segments(mo(text=None, binary=data), "a", ttl=TTL, ref=ref)
    assert all(len(item.payload) <= 140 and item.data_coding == 4 for item in items)
    if len(items) == 1:
        assert items[0].payload == data
    else:
        assert all(parse_udh(item.payload[:6]).concat is not None for item in items)
        assert b"".join(item.payload[6:] for item in items) == data


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
FIELD_NAMES = st.sampled_from(
    [
        "messageId",
        "source",
        "destination",
        "userData",
        "dcs",
        "userDataHeader",
        "sourceTON",
        "destinationTON",
    ]
)
FIELD_VALUES = (
    JSON_VALUES
    | st.sampled_from(["BINARY", "GSM", "UCS2", "TEXT", "MSISDN", "050003AA0201", "0500"])
    | st.from_regex(r"\A\+?[0-9]{1,22}\Z")
    | st.from_regex(r"\A([0-9a-fA-F]{2}){0,150}\Z")
    | TEXT
)


# Arbitrary objects, and the seed's message with arbitrary fields changed, so that
# the checks past the required fields are reached too.
OBJECTS = st.dictionaries(FIELD_NAMES | st.text(max_size=8), FIELD_VALUES, max_size=9) | st.builds(
    lambda changes: {**SMS_MESSAGE, **changes},
    st.dictionaries(FIELD_NAMES, FIELD_VALUES, max_size=4),
)


@settings(max_examples=500, deadline=None)
@given(OBJECTS)
def test_any_object_gives_an_mo_or_bad_callback(obj: dict[str, object]) -> None:
    try:
        result = one(obj)
    except BadCallback as e:
        assert e.reason
        return
    # What was accepted can always be delivered.
    check_deliverable(result)
    assert mo_segments(result, "a", ttl=TTL, ref=0)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda obj: json.dumps(obj).encode(), OBJECTS),
        st.builds(
            lambda changes: (
                "<SmsMessage>"
                + "".join(f"<{k}>{v}</{k}>" for k, v in {**SMS_MESSAGE, **changes}.items())
                + "</SmsMessage>"
            ).encode(),
            st.dictionaries(FIELD_NAMES, st.from_regex(r"\A[a-zA-Z0-9+ ]{0,20}\Z")),
        ),
        st.builds(
            lambda changes: urlencode({**SMS_MESSAGE, **changes}).encode(),
            st.dictionaries(FIELD_NAMES, st.text(max_size=30)),
        ),
    ),
    content_type=st.sampled_from(
        [None, "application/json", "application/xml", "application/x-www-form-urlencoded"]
    ),
)
def test_any_body_gives_mos_or_bad_callback(body: bytes, content_type: str | None) -> None:
    try:
        results = parse(body, content_type)
    except BadCallback as e:
        assert e.reason
        return
    for result in results:
        assert mo_segments(result, "a", ttl=TTL, ref=0)


# --- what accounts claim in the config -------------------------------------------------

CLAIMED_NUMBERS = [
    ("2233", "2233"),
    ("12345678", "12345678"),  # 8 digits: still a short code
    ("123456789", "+123456789"),  # more than 8: an MSISDN
    ("4790001234", "+4790001234"),
    ("+4790001234", "+4790001234"),
    ("004790001234", "+4790001234"),  # "00" is the international prefix
    ("+2233", "+2233"),  # '+' says MSISDN, whatever its length
]


@pytest.mark.parametrize(("given", "want"), CLAIMED_NUMBERS)
def test_claimed_number(given: str, want: str) -> None:
    assert claimed_number(given) == want
    # The config and the routing of an MO agree on every number.
    assert normalise_number(given) == want


@pytest.mark.parametrize("bad", ["", "+", "22-33", "SHOP", "+47 900", "1" * 16, "٢٢٣٣"])
def test_claimed_number_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        claimed_number(bad)


def test_claimed_keyword() -> None:
    assert claimed_keyword("shop") == "SHOP"
    for bad in ("", "two words", " STOP", "STOP\n", "e-post"):
        with pytest.raises(ValueError):
            claimed_keyword(bad)


def test_latin1_accounts_get_latin1_octets_under_data_coding_0() -> None:
    # An account whose data_coding 0 means Latin-1 would misread GSM septets.
    mo = incoming_mo_from_object(
        {**SMS_MESSAGE, "userData": "Grüße, Ærø"}, connector="common", now=NOW
    )
    (item,) = mo_segments(mo, "shop", ttl=TTL, ref=1, latin1=True)
    assert (item.data_coding, item.payload) == (0, "Grüße, Ærø".encode("latin-1"))
    # Latin-1 cannot hold it: UCS-2, as for everyone.
    mo = incoming_mo_from_object({**SMS_MESSAGE, "userData": "Привет"}, connector="common", now=NOW)
    (item,) = mo_segments(mo, "shop", ttl=TTL, ref=1, latin1=True)
    assert item.data_coding == 8
    # Long Latin-1 text: 134 octets a part behind an 8-bit concatenation UDH.
    long_text = "é" * 300
    mo = incoming_mo_from_object(
        {**SMS_MESSAGE, "userData": long_text}, connector="common", now=NOW
    )
    parts = mo_segments(mo, "shop", ttl=TTL, ref=9, latin1=True)
    assert [len(p.payload) - 6 for p in parts] == [134, 134, 32]
    assert b"".join(p.payload[6:] for p in parts) == long_text.encode("latin-1")
    assert all(p.payload[:6] == bytes((5, 0, 3, 9, 3, n)) for n, p in enumerate(parts, 1))


# --- the Intake: what it cannot deliver it drops, counted, and never refuses -----------


def _intake_config() -> Config:
    tree = minimal()
    tree["accounts"][0]["mo_numbers"] = ["2233"]
    return parse_config(tree)


def _stored_mo(path: str) -> tuple[list[str], list[str]]:
    """(message_id of every stored MO item, every LINK id the store has seen)."""
    conn = sqlite3.connect(path)
    try:
        items = [row[0] for row in conn.execute("SELECT message_id FROM receipts ORDER BY seq")]
        seen = [row[0] for row in conn.execute("SELECT upstream_id FROM mo_seen ORDER BY 1")]
    finally:
        conn.close()
    return items, seen


class IntakeDropTests(TestCase):
    """Intake.mo_received with a real SQLite store, the real reactor and worker thread."""

    @inlineCallbacks
    def start(self) -> Generator[Deferred[Any], Any, None]:
        """The intake over a fresh store, as the service builds it (gateway/tap.py)."""
        self.path = self.mktemp() + "/gateway.sqlite"
        config = _intake_config()
        store = SqliteStore(reactor, self.path, synchronous="normal", clock=lambda: NOW)
        yield store.open()
        self.addCleanup(store.close)
        self.metrics = Metrics()
        self.deliverer = ReceiptDeliverer(reactor, store, self.metrics)
        dispatcher = Dispatcher(reactor, store, {}, {}, self.metrics, lambda receipts: None)
        self.intake = Intake(reactor, config, store, dispatcher, self.deliverer, self.metrics)

    def counted(self, account: str, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "smppgw_mo_total", {"account": account, "outcome": outcome}
        )
        return value or 0.0

    @inlineCallbacks
    def test_undeliverable_mo_is_dropped_and_counted_not_retried(
        self,
    ) -> Generator[Deferred[Any], Any, None]:
        yield self.start()
        good = mo(upstream_id="good")
        # Each routes to shop1 (2233) and no deliver_sm can carry it.
        undeliverable = [
            mo(upstream_id="long-source", source="x" * 21),
            mo(upstream_id="big-segment", udh=bytes.fromhex("0500032A0302"), text="a" * 154),
            mo(upstream_id="bad-udh", udh=b"\x05\x00"),
            mo(upstream_id="too-long", text="a" * (153 * 255 + 1)),
        ]
        for attempt in (1, 2):
            # The Deferred fires with success: the route answers LINK as for a stored
            # MO (HTTP 200, deliver_sm_resp OK), so LINK does not send it again.
            result = yield self.intake.mo_received([*undeliverable, good])
            self.assertIsNone(result)
            # A copy LINK sends anyway is dropped and counted again, never refused.
            self.assertEqual(self.counted("shop1", "undeliverable"), 4.0 * attempt)
        self.assertEqual(self.counted("shop1", "accepted"), 1.0)
        self.assertEqual(self.counted("shop1", "duplicate"), 1.0)
        # Only the good MO is stored and queued for the ESME.
        self.assertEqual(_stored_mo(self.path), (["good"], ["good"]))
        self.assertEqual(self.deliverer.depth(MO), (1, NOW))

    @inlineCallbacks
    def test_unrouted_mo_is_dropped_and_counted(self) -> Generator[Deferred[Any], Any, None]:
        yield self.start()
        # No account claims 9999 and there is no default account.
        for attempt in (1, 2):
            result = yield self.intake.mo_received([mo(upstream_id="lost", destination="9999")])
            self.assertIsNone(result)
            self.assertEqual(self.counted("", "unrouted"), float(attempt))
        self.assertEqual(_stored_mo(self.path), ([], []))
        self.assertEqual(self.deliverer.depth(MO), (0, None))
