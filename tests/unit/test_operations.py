"""The sans-IO parts of gateway.mt.operations: query answers and PDU conversions."""

from __future__ import annotations

from gateway.mapping import AccountPolicy, map_submit
from gateway.mt.operations import (
    apply_replacement,
    data_sm_as_submit,
    multi_as_submit,
    query_answer,
    replacement_submit,
)
from gateway.smpp import pdu as p
from gateway.store.base import FINAL, QUEUED, SENT, Message, MessageStatus

M = p.MessageState
NOW = 1_760_000_000.0


def status(state: int, stat: str | None = None, err: int | None = None, done: float | None = None):
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
    mapped = map_submit(submit, AccountPolicy(), now=NOW)
    assert mapped.fields["userData"] == "hi"
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


def _queued(**overrides: object) -> Message:
    values: dict[str, object] = dict(
        id="m1",
        account="shop1",
        connector="common",
        fields={
            "source": "SHOP",
            "sourceTON": "ALPHANUMERIC",
            "destination": "+4712345678",
            "destinationTON": "MSISDN",
            "dcs": "TEXT",
            "userData": "old",
            "tariff": 100,
            "customParameters": {"campaign": "x", "scheduledTime": "2030-01-01T00:00:00Z"},
        },
        submitted_at=NOW,
        expires_at=NOW + 3600,
        validity_s=3600,
        registered_delivery=1,
        source_addr="SHOP",
        source_ton=5,
        dest_addr="4712345678",
        dest_ton=1,
        dest_npi=1,
        text_head="old",
    )
    values.update(overrides)
    return Message(**values)  # type: ignore[arg-type]


def test_replacement_keeps_premium_fields_and_untouched_times() -> None:
    message = _queued()
    replace = p.ReplaceSm(message_id="m1", registered_delivery=2, short_message=b"new \x1b\x65")
    submit = replacement_submit(message, replace)
    mapped = map_submit(submit, AccountPolicy(), now=NOW)
    apply_replacement(message, submit, mapped, replace, NOW)
    assert message.fields["userData"] == "new \u20ac"
    assert message.fields["tariff"] == 100
    assert message.fields["customParameters"] == {
        "campaign": "x",
        "scheduledTime": "2030-01-01T00:00:00Z",
    }
    assert (message.registered_delivery, message.text_head) == (2, "new \u20ac")
    assert (message.expires_at, message.validity_s) == (NOW + 3600, 3600)


def test_replacement_with_new_times() -> None:
    message = _queued()
    replace = p.ReplaceSm(
        message_id="m1",
        validity_period="000000020000000R",
        schedule_delivery_time="000000010000000R",
        short_message=b"later",
    )
    submit = replacement_submit(message, replace)
    mapped = map_submit(submit, AccountPolicy(min_validity_s=60), now=NOW)
    apply_replacement(message, submit, mapped, replace, NOW)
    assert message.fields["customParameters"]["scheduledTime"] != "2030-01-01T00:00:00Z"
    # Valid 2 h from the scheduled time (1 h ahead), not from now.
    assert message.validity_s == 7200 and message.expires_at == NOW + 3600 + 7200


def test_replacement_of_a_sar_message_keeps_its_udh() -> None:
    message = _queued(fields={"userDataHeader": "050003070201", "dcs": "TEXT", "userData": "a"})
    submit = replacement_submit(message, p.ReplaceSm(short_message=b"b"))
    assert submit.esm_class & p.ESM_CLASS_UDHI
    assert submit.short_message == bytes.fromhex("050003070201") + b"b"
