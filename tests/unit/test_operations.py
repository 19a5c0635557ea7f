"""The sans-IO parts of query_sm, data_sm, submit_multi and replace_sm: query answers
(gateway.mt.operations), PDU conversions (gateway.mt.admission) and replacements."""

from __future__ import annotations

from typing import Any

from gateway.connectors.common.mapping import message_fields
from gateway.mt.admission import data_sm_as_submit, multi_as_submit
from gateway.mt.operations import query_answer, replaced, replacement_submit
from gateway.mt.submission import AccountPolicy, map_submit
from gateway.records import Alphabet, Body, Message
from gateway.smpp import pdu as p
from gateway.smpp.times import rfc3339
from gateway.store.base import FINAL, QUEUED, SENT, MessageStatus
from tests.support.records import message

M = p.MessageState
NOW = 1_760_000_000.0
# A month ahead: within the 3 months a schedule may be, beyond hold_scheduled.
SCHEDULED = NOW + 30 * 86400.0


def status(
    state: int, stat: str | None = None, err: int | None = None, done: float | None = None
) -> MessageStatus:
    return MessageStatus(state, stat, err, done, "common")


def test_query_answer_is_enroute_until_every_destination_is_final() -> None:
    assert query_answer([status(QUEUED)]) == (M.ENROUTE, "", 0)
    assert query_answer([status(SENT)]) == (M.ENROUTE, "", 0)
    assert query_answer([status(FINAL, "DELIVRD", 0, NOW), status(SENT)]) == (M.ENROUTE, "", 0)


def test_query_answer_of_final_messages() -> None:
    state, final_date, error = query_answer([status(FINAL, "DELIVRD", 0, 1_700_000_000.0)])
    assert (state, final_date, error) == (M.DELIVERED, "231114221320000+", 0)
    # The first failure decides; an err wider than the field's octet becomes 255.
    rows = [status(FINAL, "DELIVRD", 0, NOW), status(FINAL, "UNDELIV", 222, NOW + 1)]
    assert query_answer(rows)[0::2] == (M.UNDELIVERABLE, 222)
    assert query_answer([status(FINAL, "REJECTD", 945, NOW)])[0::2] == (M.REJECTED, 255)
    assert query_answer([status(FINAL, "DELETED", 221, NOW)])[0] == M.DELETED
    assert query_answer([status(FINAL, "EXPIRED", 220, NOW)])[0] == M.EXPIRED


def test_data_sm_becomes_a_submit_sm_with_its_payload_and_ttl() -> None:
    data = p.DataSm(
        sequence=7,
        service_type="WAP",
        source_addr_ton=5,
        source_addr="SHOP",
        dest_addr_ton=1,
        destination_addr="4712345678",
        esm_class=0,
        registered_delivery=1,
        data_coding=8,
        tlvs=[(p.Tag.MESSAGE_PAYLOAD, b"\0h\0i"), (p.Tag.QOS_TIME_TO_LIVE, b"\0\1\x51\x81")],
    )
    submit = data_sm_as_submit(data)
    assert (submit.source_addr, submit.destination_addr, submit.data_coding) == (
        "SHOP",
        "4712345678",
        8,
    )
    # 86401 s: one day and one second, as an SMPP relative time.
    assert submit.validity_period == "000001000001000R"
    submission = map_submit(submit, AccountPolicy(), now=NOW)
    assert submission.body.text == "hi"
    assert submission.validity_s == 86401
    assert data_sm_as_submit(p.DataSm(destination_addr="1")).validity_period == ""


def test_multi_as_submit_takes_each_destination() -> None:
    multi = p.SubmitMulti(
        source_addr="SHOP",
        short_message=b"x",
        registered_delivery=1,
        dest_addresses=[p.DestAddress(dest_addr_ton=1, dest_addr_npi=1, destination_addr="47")],
    )
    submit = multi_as_submit(multi, multi.dest_addresses[0])
    assert (submit.destination_addr, submit.dest_addr_ton, submit.short_message) == ("47", 1, b"x")
    assert submit.registered_delivery == 1


def queued(**overrides: Any) -> Message:
    """A Common message of shop1 waiting in the gateway, with premium and custom
    fields and a schedule far ahead (sent to LINK with its scheduledTime)."""
    values: dict[str, Any] = dict(
        connector="common",
        body=Body(text="old"),
        text_head="old",
        submitted_at=NOW,
        expires_at=NOW + 3600,
        validity_s=3600,
        scheduled_at=SCHEDULED,
        premium={"tariff": 100},
        custom={"campaign": "x"},
    )
    values.update(overrides)
    return message("m1", **values)


def replace_with(
    original: Message, pdu: p.ReplaceSm, policy: AccountPolicy, hold: float = 0.0
) -> Message:
    """`original` as replace_sm `pdu` leaves it, mapped by `policy` at NOW."""
    submission = map_submit(replacement_submit(original, pdu), policy, now=NOW)
    return replaced(original, submission, pdu, NOW, hold)


def test_replacement_keeps_premium_fields_and_untouched_times() -> None:
    original = queued()
    pdu = p.ReplaceSm(message_id="m1", registered_delivery=2, short_message=b"new \x1b\x65")
    new = replace_with(original, pdu, AccountPolicy())
    assert new.body.text == "new \u20ac"
    assert (new.premium, new.custom) == ({"tariff": 100}, {"campaign": "x"})
    assert (new.registered_delivery, new.text_head) == (2, "new \u20ac")
    assert (new.expires_at, new.validity_s) == (NOW + 3600, 3600)
    assert (new.scheduled_at, new.not_before) == (SCHEDULED, 0.0)
    # What Common is sent of it.
    fields = message_fields(new, NOW)
    assert fields["userData"] == "new \u20ac"
    assert fields["tariff"] == 100
    assert fields["customParameters"] == {
        "campaign": "x",
        "scheduledTime": "2025-11-08T08:53:20Z",
    }
    assert original.body.text == "old"  # a new record; the queued one is as it was


def test_replacement_with_new_times() -> None:
    original = queued()
    pdu = p.ReplaceSm(
        message_id="m1",
        validity_period="000000020000000R",
        schedule_delivery_time="000000010000000R",
        short_message=b"later",
    )
    new = replace_with(original, pdu, AccountPolicy(min_validity_s=60))
    assert new.scheduled_at == NOW + 3600
    assert message_fields(new, NOW)["customParameters"]["scheduledTime"] == rfc3339(NOW + 3600)
    # Valid 2 h from the scheduled time (1 h ahead), not from now.
    assert new.validity_s == 7200 and new.expires_at == NOW + 3600 + 7200
    # The new schedule decides again where the message waits: at LINK (not held
    # here), or here when it is due within the account's hold_scheduled.
    assert new.not_before == 0.0
    held = replace_with(original, pdu, AccountPolicy(min_validity_s=60), hold=86400.0)
    assert held.not_before == NOW + 3600


def test_replacement_of_a_sar_message_keeps_its_udh() -> None:
    udh = bytes.fromhex("050003070201")
    original = queued(body=Body(text="a", udh=udh, alphabet=Alphabet.GSM))
    submit = replacement_submit(original, p.ReplaceSm(short_message=b"b"))
    assert submit.esm_class & p.ESM_CLASS_UDHI
    assert submit.short_message == udh + b"b"


def test_a_new_validity_without_a_new_schedule_counts_from_the_kept_schedule() -> None:
    """replace_sm leaves schedule_delivery_time NULL: the message keeps its schedule,
    and a relative validity counts from it, so it is not expired before it is due."""
    held = message(
        "m1",
        submitted_at=NOW,
        scheduled_at=NOW + 3600,
        not_before=NOW + 3600,
        expires_at=NOW + 7200,
        validity_s=3600,
    )
    pdu = p.ReplaceSm(message_id="m1", validity_period="000000003000000R", short_message=b"x")
    submission = map_submit(replacement_submit(held, pdu), AccountPolicy(), now=NOW)
    new = replaced(held, submission, pdu, NOW, 86400.0)
    assert new.not_before == NOW + 3600
    assert new.scheduled_at == NOW + 3600
    assert new.expires_at == NOW + 3600 + 1800
    assert new.validity_s == 1800
