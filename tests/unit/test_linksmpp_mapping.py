"""LINK's SMPP route as data, row by row (gateway.connectors.linksmpp.mapping).

Expected values are written out here, never read from the module's own tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.connectors.linksmpp.mapping import (
    MappingError,
    esme_status,
    id_forms,
    is_receipt,
    mo_from_deliver_sm,
    outcome_for_status,
    report_from_deliver_sm,
    submit_pdus,
)
from gateway.mt.submission import AccountPolicy, SubmitRefused, map_submit, message_from
from gateway.records import (
    Alphabet,
    Body,
    IncomingMo,
    Message,
    Outcome,
    OutcomeKind,
    Party,
    PartyKind,
    Report,
)
from gateway.smpp.codec import encode
from gateway.smpp.pdu import CommandStatus, DeliverSm, MessageState, SubmitSm, Tag
from gateway.smpp.receipts import ReceiptError
from gateway.smpp.text import decode_content
from gateway.smpp.times import format_relative
from tests.support import records

S = CommandStatus
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "^{}\\[~]|€\f"
SHOP = Party(PartyKind.ALPHANUMERIC, "Shop")


def message(
    text: str | None = "Hello",
    *,
    data: bytes | None = None,
    udh: bytes | None = None,
    alphabet: Alphabet | None = None,
    flash: bool = False,
    **overrides: Any,
) -> Message:
    """A message from "Shop" to +4799999999, sent at NOW, valid for an hour."""
    body = Body(
        text=None if data is not None else text,
        data=data,
        udh=udh,
        alphabet=alphabet,
        flash=flash,
    )
    values: dict[str, Any] = {
        "account": "acc",
        "sender": SHOP,
        "recipient": "+4799999999",
        "body": body,
        "submitted_at": NOW,
        "expires_at": NOW + 3600,
        "validity_s": 3600,
    }
    values.update(overrides)
    return records.message("m1", **values)


def pdus_of(msg: Message, ref: int = 7, now: float = NOW) -> list[SubmitSm]:
    return submit_pdus(msg, ref, now=now)


def one(msg: Message | None = None, **kw: Any) -> SubmitSm:
    pdus = pdus_of(msg if msg is not None else message(**kw))
    assert len(pdus) == 1
    return pdus[0]


def error(msg: Message) -> int:
    with pytest.raises(MappingError) as info:
        pdus_of(msg)
    return info.value.status


def esme_submit(**fields: Any) -> SubmitSm:
    """A submit_sm as an ESME sends it: from "Shop" (ton 5) to 4799999999 (ton 1)."""
    values: dict[str, Any] = {
        "source_addr_ton": 5,
        "source_addr": "Shop",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": "4799999999",
        "registered_delivery": 1,
        "short_message": b"Hello",
    }
    values.update(fields)
    return SubmitSm(**values)


def via_esme(submit: SubmitSm, now: float = NOW) -> list[SubmitSm]:
    """What LINK gets for an ESME's submit_sm: read by the account's rules
    (gateway.mt.submission), made a Message as admission does, then mapped."""
    sub = map_submit(submit, AccountPolicy(), now=now)
    msg = message_from(submit, sub, message_id="m1", account="shop1", connector="link", now=now)
    return submit_pdus(msg, 7, now=now)


def refused(submit: SubmitSm) -> int:
    """The status an ESME's submit_sm is refused with before it could reach LINK."""
    with pytest.raises(SubmitRefused) as info:
        via_esme(submit)
    return info.value.status


# --- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        (Party(PartyKind.ALPHANUMERIC, "Shop"), ("Shop", 5, 0)),
        (Party(PartyKind.SHORT_CODE, "2233"), ("2233", 3, 0)),
        (Party(PartyKind.MSISDN, "+4712345678"), ("4712345678", 1, 1)),
    ],
)
def test_source_ton(sender: Party, expected: tuple[str, int, int]) -> None:
    pdu = one(message(sender=sender))
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == expected


@pytest.mark.parametrize(
    ("addr", "ton", "expected"),
    [
        ("Shop", 5, ("Shop", 5, 0)),
        ("2233", 3, ("2233", 3, 0)),
        ("+4712345678", 1, ("4712345678", 1, 1)),
        ("4712345678", 1, ("4712345678", 1, 1)),
    ],
)
def test_source_ton_from_an_esme(addr: str, ton: int, expected: tuple[str, int, int]) -> None:
    (pdu,) = via_esme(esme_submit(source_addr=addr, source_addr_ton=ton))
    assert (pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi) == expected


def test_destination_is_international() -> None:
    pdu = one(message(recipient="+4799999999"))
    assert (pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi) == ("4799999999", 1, 1)


@pytest.mark.parametrize("destination", ["+47abc", "", "+" + "1" * 21])
def test_bad_destination_never_reaches_link(destination: str) -> None:
    assert refused(esme_submit(destination_addr=destination)) == S.ESME_RINVDSTADR


@pytest.mark.parametrize(
    "sender",
    [
        Party(PartyKind.ALPHANUMERIC, ""),
        Party(PartyKind.ALPHANUMERIC, "Søk"),  # source_addr is single octets
        Party(PartyKind.ALPHANUMERIC, "x" * 21),
        Party(PartyKind.SHORT_CODE, "1" * 21),
    ],
)
def test_bad_source(sender: Party) -> None:
    assert error(message(sender=sender)) == S.ESME_RINVSRCADR


# --- content ------------------------------------------------------------------------------


def test_plain_gsm_text() -> None:
    pdu = one(message("Hello {world} €"))
    assert pdu.data_coding == 0
    assert pdu.esm_class == 0
    assert pdu.short_message == b"Hello \x1b(world\x1b) \x1be"
    assert pdu.registered_delivery == 1
    assert pdu.priority_flag == 0
    assert pdu.schedule_delivery_time == ""


def test_registered_delivery_is_1_whatever_the_esme_asked() -> None:
    assert one(message(registered_delivery=0)).registered_delivery == 1


def test_non_gsm_text_is_ucs2() -> None:
    pdu = one(message("Привет"))
    assert pdu.data_coding == 8
    assert pdu.short_message == "Привет".encode("utf-16-be")


@pytest.mark.parametrize(
    ("msg", "coding"),
    [
        (message("Hi", flash=True), 0x10),
        (message("Привет", flash=True), 0x18),
        (message(data=b"\x01\x02", flash=True), 0x14),
        (
            message("Hi", udh=bytes.fromhex("050003010201"), alphabet=Alphabet.GSM, flash=True),
            0x10,
        ),
        (
            message("Hi", udh=bytes.fromhex("050003010201"), alphabet=Alphabet.UCS2, flash=True),
            0x18,
        ),
    ],
)
def test_flash(msg: Message, coding: int) -> None:
    assert one(msg).data_coding == coding


def test_flash_false_is_plain() -> None:
    assert one(message("Hi", flash=False)).data_coding == 0


def test_flash_from_an_esme() -> None:
    # data_coding 0x10: GSM 03.38 general group, message class 0 (flash).
    (pdu,) = via_esme(esme_submit(data_coding=0x10, short_message=b"Hi"))
    assert (pdu.data_coding, pdu.short_message) == (0x10, b"Hi")


def test_esme_segmented_gsm() -> None:
    udh = bytes.fromhex("050003AA0201")
    pdu = one(message("Hi €", udh=udh, alphabet=Alphabet.GSM))
    assert pdu.esm_class == 0x40
    assert pdu.data_coding == 0
    assert pdu.short_message == udh + b"Hi \x1be"


def test_esme_segmented_ucs2() -> None:
    udh = bytes.fromhex("050003AA0202")
    pdu = one(message("Hi", udh=udh, alphabet=Alphabet.UCS2))
    assert (pdu.esm_class, pdu.data_coding) == (0x40, 8)
    assert pdu.short_message == udh + "Hi".encode("utf-16-be")


def test_esme_segment_goes_as_it_came() -> None:
    udh = bytes.fromhex("050003AA0201")
    (pdu,) = via_esme(esme_submit(esm_class=0x40, data_coding=8, short_message=udh + b"\x00H"))
    assert (pdu.esm_class, pdu.data_coding, pdu.short_message) == (0x40, 8, udh + b"\x00H")


def test_binary() -> None:
    pdu = one(message(data=b"\xde\xad\xbe\xef"))
    assert (pdu.data_coding, pdu.esm_class, pdu.short_message) == (4, 0, b"\xde\xad\xbe\xef")


def test_binary_with_udh() -> None:
    udh = bytes.fromhex("0605040B8423F0")
    pdu = one(message(data=b"\x0a\x0b", udh=udh, alphabet=Alphabet.BINARY))
    assert pdu.esm_class == 0x40
    assert pdu.short_message == bytes.fromhex("0605040B8423F00A0B")


def test_long_binary_is_split() -> None:
    pdus = pdus_of(message(data=b"\xab" * 300), 9)
    assert [len(p.short_message) for p in pdus] == [140, 140, 38]
    assert [p.short_message[:6].hex() for p in pdus] == [
        "050003090301",
        "050003090302",
        "050003090303",
    ]
    assert all((p.data_coding, p.esm_class) == (4, 0x40) for p in pdus)


@pytest.mark.parametrize(
    ("msg", "status"),
    [
        (
            message("Привет", udh=bytes.fromhex("050003010201"), alphabet=Alphabet.GSM),
            S.ESME_RSUBMITFAIL,
        ),
        (message("a" * (153 * 255 + 1)), S.ESME_RINVMSGLEN),
        (message("ж" * (67 * 255 + 1)), S.ESME_RINVMSGLEN),
        (
            message(
                data=b"\xab" * 300, udh=bytes.fromhex("050003010201"), alphabet=Alphabet.BINARY
            ),
            S.ESME_RINVMSGLEN,
        ),
    ],
)
def test_content_errors(msg: Message, status: int) -> None:
    assert error(msg) == status


# --- segmentation ----------------------------------------------------------------------


def test_one_sms_is_not_split() -> None:
    assert len(pdus_of(message("a" * 160), 1)) == 1
    assert len(pdus_of(message("ж" * 70), 1)) == 1


def test_long_gsm_text() -> None:
    pdus = pdus_of(message("a" * 161), 0x1FF)  # the reference is 8-bit
    assert [p.esm_class for p in pdus] == [0x40, 0x40]
    assert [p.short_message[:6] for p in pdus] == [
        bytes((5, 0, 3, 0xFF, 2, 1)),
        bytes((5, 0, 3, 0xFF, 2, 2)),
    ]
    assert [len(p.short_message) - 6 for p in pdus] == [153, 8]
    assert all(p.registered_delivery == 1 for p in pdus)


def test_gsm_escape_pair_is_never_split() -> None:
    # 152 septets, then '€' (ESC e): octets 153 and 154.
    pdus = pdus_of(message("a" * 152 + "€" + "b" * 10), 3)
    bodies = [p.short_message[6:] for p in pdus]
    assert bodies[0] == b"a" * 152
    assert bodies[1] == b"\x1be" + b"b" * 10


def test_surrogate_pair_is_never_split() -> None:
    # 66 code units, then a surrogate pair: units 67 and 68.
    pdus = pdus_of(message("ж" * 66 + "😀" + "ж" * 10), 3)
    bodies = [p.short_message[6:] for p in pdus]
    assert bodies[0] == ("ж" * 66).encode("utf-16-be")
    assert bodies[1] == ("😀" + "ж" * 10).encode("utf-16-be")


def test_same_message_and_ref_give_the_same_segments() -> None:
    first = pdus_of(message("x" * 400), 42)
    again = pdus_of(message("x" * 400), 42)
    assert [p.short_message for p in first] == [p.short_message for p in again]


def _rejoin(pdus: list[SubmitSm]) -> str:
    parts = []
    for pdu in pdus:
        body = pdu.short_message[6:] if pdu.esm_class & 0x40 else pdu.short_message
        if pdu.data_coding == 0:
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
    pdus = pdus_of(message(text), ref)
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
    assert pdus_of(msg, 1, now=NOW)[0].validity_period == "000000001001000R"


def test_validity_at_submission_is_the_full_period() -> None:
    msg = message(expires_at=NOW + 172800, validity_s=172800)
    assert pdus_of(msg, now=NOW)[0].validity_period == "000002000000000R"


def test_validity_past_its_end_is_the_shortest() -> None:
    msg = message(expires_at=NOW - 10)
    assert pdus_of(msg, now=NOW)[0].validity_period == "000000000001000R"


def test_validity_from_an_esme() -> None:
    (pdu,) = via_esme(esme_submit(validity_period="000000020000000R"))
    assert pdu.validity_period == "000000020000000R"


@pytest.mark.parametrize(("priority", "flag"), [(0, 0), (1, 1), (2, 1), (3, 1)])
def test_priority(priority: int, flag: int) -> None:
    assert one(message(priority=priority)).priority_flag == flag


def test_scheduled_time() -> None:
    due = datetime(2024, 1, 2, 5, 0, 0, tzinfo=UTC).timestamp()
    pdu = pdus_of(message(scheduled_at=due, expires_at=due + 3600), 1, now=NOW)[0]
    assert pdu.schedule_delivery_time == "240102050000000+"


def test_scheduled_time_with_offset_is_sent_in_utc() -> None:
    # 07:00 at UTC+2 (8 quarter hours): 05:00 UTC.
    (pdu,) = via_esme(esme_submit(schedule_delivery_time="240102070000008+"))
    assert pdu.schedule_delivery_time == "240102050000000+"


def test_scheduled_time_already_past_is_now() -> None:
    past = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
    pdu = pdus_of(message(scheduled_at=past), 1, now=NOW)[0]
    assert pdu.schedule_delivery_time == ""
    (from_esme,) = via_esme(esme_submit(schedule_delivery_time="240101000000000+"))
    assert from_esme.schedule_delivery_time == ""


@pytest.mark.parametrize("value", ["tomorrow", "240102050000000"])
def test_bad_scheduled_time(value: str) -> None:
    assert refused(esme_submit(schedule_delivery_time=value)) == S.ESME_RINVSCHED


def test_premium_fields_are_not_sent() -> None:
    plain = one(message())
    premium = one(
        message(
            premium={
                "tariff": 100,
                "currency": "NOK",
                "productCategory": 1,
                "productDescription": "x",
            },
            custom={"other": "y"},
        )
    )
    assert encode(premium) == encode(plain)


# --- submit_sm_resp status -> outcome ------------------------------------------------


def test_ok_is_accepted() -> None:
    assert outcome_for_status(0) == (OutcomeKind.ACCEPTED, None)


@pytest.mark.parametrize("status", [0x58, 0x14, 0x08, 0x64, 0x04])
def test_temporary(status: int) -> None:
    assert outcome_for_status(status) == (OutcomeKind.TEMPORARY, None)


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
    assert kind is OutcomeKind.REJECTED
    assert outcome == Outcome("REJECTD", err, True, MessageState.REJECTED)


def test_kinds_are_the_connector_interfaces() -> None:
    kinds = {outcome_for_status(s)[0] for s in (0, 0x58, 0x0B)}
    assert kinds == {OutcomeKind.ACCEPTED, OutcomeKind.TEMPORARY, OutcomeKind.REJECTED}


# --- submit_sm_resp status -> what an accept = "upstream" ESME gets ----------------------


@pytest.mark.parametrize(
    "status",
    [
        S.ESME_RINVDSTADR,
        S.ESME_RINVCMDID,  # 3: LINK's own status, not Common's result code 3
        S.ESME_RINVMSGLEN,
        S.ESME_RINVSRCADR,
        S.ESME_RINVDSTTON,
        S.ESME_RX_R_APPN,
        S.ESME_RSUBMITFAIL,
        S.ESME_RTHROTTLED,
        S.ESME_RMSGQFUL,
        S.ESME_RSYSERR,
        0x12345,
    ],
)
def test_link_status_reaches_the_esme_as_it_is(status: int) -> None:
    assert esme_status(status) == status


def test_link_status_3_is_not_a_throttle() -> None:
    assert int(S.ESME_RINVCMDID) == 3
    assert esme_status(3) == S.ESME_RINVCMDID
    assert esme_status(3) != S.ESME_RTHROTTLED
    assert outcome_for_status(3)[0] is OutcomeKind.REJECTED


def test_a_bind_state_link_and_we_disagree_about_is_a_system_error() -> None:
    assert esme_status(S.ESME_RINVBNDSTS) == S.ESME_RSYSERR
    assert outcome_for_status(S.ESME_RINVBNDSTS) == (OutcomeKind.TEMPORARY, None)


@pytest.mark.parametrize(
    ("status", "esme", "kind", "err"),
    [
        (S.ESME_RINVDSTADR, S.ESME_RINVDSTADR, OutcomeKind.REJECTED, 206),
        (S.ESME_RINVCMDID, S.ESME_RINVCMDID, OutcomeKind.REJECTED, 903),
        (S.ESME_RINVBNDSTS, S.ESME_RSYSERR, OutcomeKind.TEMPORARY, None),
        (S.ESME_RSYSERR, S.ESME_RSYSERR, OutcomeKind.TEMPORARY, None),
    ],
)
def test_refusal_for_an_upstream_esme(
    status: int, esme: int, kind: OutcomeKind, err: int | None
) -> None:
    """What the connector reports for LINK's refusal: the kind, the receipt, the status."""
    got_kind, rejection = outcome_for_status(status)
    assert (got_kind, esme_status(status)) == (kind, esme)
    assert (rejection.err if rejection else None) == err


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


def read(pdu: DeliverSm) -> Report:
    report = report_from_deliver_sm(pdu)
    assert report is not None
    return report


def test_receipt_default_format() -> None:
    report = report_from_deliver_sm(receipt_pdu(DEFAULT_FORMAT))
    done = datetime(2024, 1, 2, 3, 5, 6, tzinfo=UTC).timestamp()
    delivered = Outcome("DELIVRD", 0, True, MessageState.DELIVERED)
    assert report == Report("3000000001", delivered, reported_at=done, any_form=True)


def test_receipt_minute_format() -> None:
    report = report_from_deliver_sm(receipt_pdu(MINUTE_FORMAT))
    done = datetime(2024, 1, 2, 3, 5, tzinfo=UTC).timestamp()
    undelivered = Outcome("UNDELIV", 222, True, MessageState.UNDELIVERABLE)
    assert report == Report("B2D05E01", undelivered, reported_at=done, any_form=True)


@pytest.mark.parametrize(
    ("stat", "expected", "state"),
    [
        ("DELIVRD", "DELIVRD", MessageState.DELIVERED),
        ("EXPIRED", "EXPIRED", MessageState.EXPIRED),
        ("DELETED", "DELETED", MessageState.DELETED),
        ("ACCEPTD", "ACCEPTD", MessageState.ACCEPTED),
        ("UNKNOWN", "UNKNOWN", MessageState.UNKNOWN),
        ("REJECTD", "REJECTD", MessageState.REJECTED),
        ("UNDELIV", "UNDELIV", MessageState.UNDELIVERABLE),
        ("ENROUTE", "ENROUTE", MessageState.ENROUTE),
        ("delivrd", "DELIVRD", MessageState.DELIVERED),
        ("DELIVERED", "DELIVRD", MessageState.DELIVERED),
        ("REJECTED", "REJECTD", MessageState.REJECTED),
        ("WHATEVER", "UNKNOWN", MessageState.UNKNOWN),
    ],
)
def test_receipt_stat_words(stat: str, expected: str, state: MessageState) -> None:
    text = f"id:1 submit date:2401020304 done date:2401020305 stat:{stat} err:042 text:"
    outcome = read(receipt_pdu(text.encode())).outcome
    assert (outcome.stat, outcome.err, outcome.state) == (expected, 42, state)
    # ENROUTE is LINK's only state on the way; every other one is final.
    assert outcome.final is (expected != "ENROUTE")


def test_receipt_id_from_the_tlv_first() -> None:
    pdu = receipt_pdu(DEFAULT_FORMAT, tlvs=[(Tag.RECEIPTED_MESSAGE_ID, b"b2d05e01\x00")])
    assert read(pdu).upstream_id == "b2d05e01"


def test_receipt_from_tlvs_alone() -> None:
    pdu = receipt_pdu(
        b"",
        tlvs=[
            (Tag.RECEIPTED_MESSAGE_ID, b"77\x00"),
            (Tag.MESSAGE_STATE, b"\x05"),
            (Tag.NETWORK_ERROR_CODE, b"\x03\x00\x65"),
        ],
    )
    undelivered = Outcome("UNDELIV", 101, True, MessageState.UNDELIVERABLE)
    assert report_from_deliver_sm(pdu) == Report("77", undelivered, any_form=True)


def test_receipt_in_message_payload() -> None:
    pdu = receipt_pdu(b"", tlvs=[(Tag.MESSAGE_PAYLOAD, DEFAULT_FORMAT)])
    assert read(pdu).upstream_id == "3000000001"


def test_receipt_matches_links_id_in_any_form() -> None:
    assert read(receipt_pdu(MINUTE_FORMAT)).any_form is True


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
    report = read(receipt_pdu(text))
    assert report.outcome.err == err and report.reported_at is None


def test_receipt_bad_date_is_unknown_not_an_error() -> None:
    text = b"id:1 submit date:2413990304 done date:2413990305 stat:DELIVRD err:000"
    report = read(receipt_pdu(text))
    assert report.reported_at is None and report.outcome.stat == "DELIVRD"


@pytest.mark.parametrize("esm_class", [0x04, 0x24, 0x44, 0x20, 0x0C])
def test_is_receipt(esm_class: int) -> None:
    assert is_receipt(esm_class)


@pytest.mark.parametrize("esm_class", [0x00, 0x40, 0x03, 0x08, 0x10, 0x80])
def test_is_not_receipt(esm_class: int) -> None:
    assert not is_receipt(esm_class)
    assert report_from_deliver_sm(receipt_pdu(DEFAULT_FORMAT, esm_class=esm_class)) is None


@pytest.mark.parametrize("text", [b"", b"garbage", b"stat:DELIVRD", b"id: stat:DELIVRD"])
def test_unreadable_receipt(text: bytes) -> None:
    with pytest.raises(ReceiptError):
        report_from_deliver_sm(receipt_pdu(text))


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
_STATES = {
    "ENROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
}


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
        report = report_from_deliver_sm(pdu)
    except ReceiptError:
        assert is_receipt(esm_class)
        return
    if report is None:
        assert not is_receipt(esm_class)
        return
    assert report.upstream_id
    outcome = report.outcome
    assert outcome.state == _STATES[outcome.stat]
    assert outcome.final is (outcome.stat != "ENROUTE")
    assert 0 <= outcome.err <= 999
    assert report.any_form


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
