"""The ESME operations beyond submit_sm: submit_multi, data_sm, query_sm, cancel_sm, replace_sm.

Each takes a decoded request and an account and fires with the response PDU;
`Gateway` (gateway/core.py) does the admission, mapping and storing they
share with submit_sm.

What holds for every operation:
- An ESME reaches only its own account's messages: another account's id is
  answered as if it did not exist (RQUERYFAIL, RCANCELFAIL, RREPLACEFAIL).
- cancel_sm and replace_sm change only messages still queued in the gateway
  and not in a request to LINK at that moment; once a message left, LINK has
  no way to take it back, so the answer is RCANCELFAIL / RREPLACEFAIL.
- Their responses go out only after the change is durable, like submit_sm's.
- submit_multi makes one message per destination, each with its own refId
  towards LINK (reports must find exactly one message), all known to the ESME
  by the one id of the submit_multi_resp: receipts and query_sm use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Final

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.config import AccountSettings
from gateway.connectors.base import ACCEPTED, SubmitOutcome
from gateway.core import Gateway, count_parts, hold_scheduled
from gateway.mapping import MappedSubmit, Outcome, upstream_status
from gateway.mt.dispatcher import receipt_for
from gateway.smpp import pdu as p
from gateway.smpp.receipts import STAT_STATE
from gateway.smpp.times import format_absolute
from gateway.store.base import FINAL, Finish, Message, MessageStatus, Receipt

log = Logger()
S = p.CommandStatus

# A cancelled message ends as LINK's own "deleted" ends (DESIGN 5: 1003 -> DELETED/221).
CANCELLED: Final = Outcome("DELETED", 221, True, STAT_STATE["DELETED"])

# Refusals that concern one destination of a submit_multi (an unsuccess_sme
# entry); any other refusal is the same for every destination and refuses the PDU.
_PER_DESTINATION: Final = frozenset({S.ESME_RINVDSTADR, S.ESME_RINVDSTTON, S.ESME_RINVDSTNPI})
_DL_NAME: Final = 2

# The Common fields replace_sm recomputes; the rest (premium fields, custom
# parameters from vendor TLVs) stays as the original submit_sm set it.
_CONTENT_FIELDS: Final = frozenset(
    {"source", "sourceTON", "destination", "destinationTON", "dcs", "userData", "userDataHeader"}
)
_SCHEDULED = "scheduledTime"


class Operations:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _count(self, account: AccountSettings, command: str, ok: bool) -> None:
        m = self.gateway.metrics
        m.child(m.operations, account.system_id, command, "ok" if ok else "failed").inc()

    # --- data_sm ---------------------------------------------------------------

    def data_sm(
        self, account: AccountSettings, pdu: p.DataSm, interface_version: int
    ) -> Deferred[p.DataSmResp]:
        """Taken like a submit_sm whose content is its message_payload."""
        d = self.gateway.submit(account, data_sm_as_submit(pdu), interface_version)
        return d.addCallback(lambda r: p.DataSmResp(status=r.status, message_id=r.message_id))

    # --- submit_multi --------------------------------------------------------------

    def submit_multi(
        self, account: AccountSettings, pdu: p.SubmitMulti, interface_version: int
    ) -> Deferred[p.SubmitMultiResp]:
        gateway = self.gateway
        limit = gateway.config.smpp.max_destinations
        if not 0 < len(pdu.dest_addresses) <= limit:
            return succeed(p.SubmitMultiResp(status=S.ESME_RINVNUMDESTS))
        failed: list[p.UnsuccessSme] = []
        addresses = []
        for dest in pdu.dest_addresses:
            if dest.dest_flag == _DL_NAME:
                # The gateway keeps no distribution lists: each is an unknown name.
                failed.append(_unsuccess(0, 0, dest.dl_name, S.ESME_RINVDLNAME))
            else:
                addresses.append(dest)
        if not addresses:
            return succeed(p.SubmitMultiResp(status=S.ESME_RINVDLNAME))
        refused = gateway.admit(account, len(addresses))
        if refused is not None:
            return succeed(p.SubmitMultiResp(status=refused))
        now = gateway.reactor.seconds()
        messages: list[Message] = []
        for dest in addresses:
            submit = multi_as_submit(pdu, dest)
            mapped = gateway.map(account, submit, interface_version, now)
            if isinstance(mapped, MappedSubmit):
                reply_id = messages[0].id if messages else None
                messages.append(
                    gateway.new_message(account, submit, mapped, now, interface_version, reply_id)
                )
            elif mapped in _PER_DESTINATION:
                failed.append(
                    _unsuccess(
                        dest.dest_addr_ton, dest.dest_addr_npi, dest.destination_addr, mapped
                    )
                )
            else:
                return succeed(p.SubmitMultiResp(status=mapped))
        if not messages:
            return succeed(p.SubmitMultiResp(status=failed[0].error_status_code))
        reply_id = messages[0].id
        if account.accept == "upstream":
            return self._multi_upstream(account, messages, failed)

        def answer(status: int) -> p.SubmitMultiResp:
            if status:
                return p.SubmitMultiResp(status=status)
            return p.SubmitMultiResp(message_id=reply_id, unsuccess_smes=failed)

        return gateway.accept_stored(account, messages).addCallback(answer)

    def _multi_upstream(
        self, account: AccountSettings, messages: list[Message], failed: list[p.UnsuccessSme]
    ) -> Deferred[p.SubmitMultiResp]:
        """accept = "upstream": each destination's own answer from LINK, as for submit_sm."""
        gateway = self.gateway

        def sent(_: None) -> Deferred[p.SubmitMultiResp]:
            attempts = [gateway.dispatcher.submit_now(m) for m in messages]
            return DeferredList(attempts, consumeErrors=True).addCallback(answered)

        def answered(results: list[tuple[bool, SubmitOutcome]]) -> p.SubmitMultiResp:
            accepted = 0
            for message, (ok, outcome) in zip(messages, results, strict=True):
                if ok and outcome.kind == ACCEPTED:
                    accepted += 1
                    continue
                status = (
                    upstream_status(
                        http_status=outcome.http_status,
                        common_code=outcome.code,
                        temporary=outcome.kind != "rejected",
                    )
                    if ok
                    else S.ESME_RSYSERR
                )
                failed.append(
                    _unsuccess(message.dest_ton, message.dest_npi, message.dest_addr, status)
                )
            m = gateway.metrics
            m.child(m.submits, account.system_id, "accepted").inc(accepted)
            m.child(m.submits, account.system_id, "refused").inc(len(messages) - accepted)
            if not accepted:
                return p.SubmitMultiResp(status=failed[-1].error_status_code)
            return p.SubmitMultiResp(message_id=messages[0].id, unsuccess_smes=failed)

        return gateway.store.add_messages(messages).addCallback(sent)

    # --- query_sm ----------------------------------------------------------------

    def query_sm(self, account: AccountSettings, pdu: p.QuerySm) -> Deferred[p.QuerySmResp]:
        def answer(rows: list[MessageStatus]) -> p.QuerySmResp:
            self._count(account, "query_sm", bool(rows))
            if not rows:
                return p.QuerySmResp(status=S.ESME_RQUERYFAIL)
            state, final_date, error_code = query_answer(rows)
            response = p.QuerySmResp(
                message_id=pdu.message_id,
                final_date=final_date,
                message_state=state,
                error_code=error_code,
            )
            if account.route_tlv is not None:
                # Opt-in: smpplib and others refuse TLVs they do not know.
                routes = ",".join(dict.fromkeys(row.connector for row in rows))
                response.tlvs.append((account.route_tlv, routes.encode()[:64] + b"\0"))
            return response

        if not pdu.message_id:
            return succeed(answer([]))
        return self.gateway.store.query(account.system_id, pdu.message_id).addCallback(answer)

    # --- cancel_sm ---------------------------------------------------------------

    def cancel_sm(self, account: AccountSettings, pdu: p.CancelSm) -> Deferred[p.CancelSmResp]:
        gateway = self.gateway
        messages = self._cancellable(account, pdu)
        if not messages:
            self._count(account, "cancel_sm", False)
            return succeed(p.CancelSmResp(status=S.ESME_RCANCELFAIL))
        gateway.dispatcher.withdraw(messages)
        now = gateway.reactor.seconds()
        finishes = [
            Finish(m.id, CANCELLED.stat, CANCELLED.err, now, receipt_for(m, CANCELLED, now))
            for m in messages
        ]
        for message in messages:
            log.info(
                "{account} cancelled {message_id}",
                account=account.system_id,
                message_id=message.id,
            )

        def done(receipts: list[Receipt]) -> p.CancelSmResp:
            self._count(account, "cancel_sm", True)
            gateway.receipts_stored(receipts)
            return p.CancelSmResp()

        def failed(failure: Failure) -> p.CancelSmResp:
            log.failure(
                "could not store a cancellation of {account}", failure, account=account.system_id
            )
            return p.CancelSmResp(status=S.ESME_RSYSERR)

        return gateway.store.finish(finishes).addCallbacks(done, failed)

    def _cancellable(self, account: AccountSettings, pdu: p.CancelSm) -> list[Message]:
        """SMPP 3.4 section 4.9: by message_id, or every queued message from source to
        destination (narrowed by service_type when given)."""
        if pdu.message_id:
            candidates = self._waiting_by_id(account, pdu.message_id)
        elif pdu.source_addr and pdu.destination_addr:
            candidates = self.gateway.dispatcher.waiting_of(account.system_id)
        else:
            return []
        return [
            m
            for m in candidates
            if (not pdu.source_addr or m.source_addr == pdu.source_addr)
            and (not pdu.destination_addr or m.dest_addr == pdu.destination_addr)
            and (not pdu.service_type or m.service_type == pdu.service_type)
        ]

    def _waiting_by_id(self, account: AccountSettings, message_id: str) -> list[Message]:
        return [
            m
            for m in self.gateway.dispatcher.waiting_with(message_id)
            if m.account == account.system_id
        ]

    # --- replace_sm --------------------------------------------------------------

    def replace_sm(
        self, account: AccountSettings, pdu: p.ReplaceSm, interface_version: int
    ) -> Deferred[p.ReplaceSmResp]:
        gateway = self.gateway
        messages = [
            m
            for m in self._waiting_by_id(account, pdu.message_id)
            if not pdu.source_addr or m.source_addr == pdu.source_addr
        ]
        if not messages:
            self._count(account, "replace_sm", False)
            return succeed(p.ReplaceSmResp(status=S.ESME_RREPLACEFAIL))
        now = gateway.reactor.seconds()
        replacements = []
        for message in messages:
            submit = replacement_submit(message, pdu)
            mapped = gateway.map(account, submit, interface_version, now)
            if not isinstance(mapped, MappedSubmit):
                self._count(account, "replace_sm", False)
                return succeed(p.ReplaceSmResp(status=mapped))
            replacements.append((message, submit, mapped))
        for message, submit, mapped in replacements:
            due = message.next_attempt_at
            apply_replacement(message, submit, mapped, pdu, now, account.hold_scheduled)
            if message.next_attempt_at != due:
                gateway.dispatcher.reschedule(message)
        stored = [gateway.store.replace_message(m) for m, _, _ in replacements]

        def done(_: object) -> p.ReplaceSmResp:
            self._count(account, "replace_sm", True)
            return p.ReplaceSmResp()

        return DeferredList(stored, fireOnOneErrback=True, consumeErrors=True).addCallbacks(
            done, lambda _: p.ReplaceSmResp(status=S.ESME_RSYSERR)
        )


# --- the sans-IO parts ---------------------------------------------------------


def _unsuccess(ton: int, npi: int, address: str, status: int) -> p.UnsuccessSme:
    return p.UnsuccessSme(
        dest_addr_ton=ton, dest_addr_npi=npi, destination_addr=address, error_status_code=status
    )


def query_answer(rows: list[MessageStatus]) -> tuple[int, str, int]:
    """(message_state, final_date, error_code) for the messages known by one id.

    ENROUTE while any is still with the gateway or LINK. Once all are final:
    DELIVERED when every one was, else the first failure's state; error_code is
    its err where that fits the field's one octet, else 255.
    """
    if any(row.state != FINAL for row in rows):
        return p.MessageState.ENROUTE, "", 0
    failures = [row for row in rows if row.stat != "DELIVRD"]
    row = failures[0] if failures else rows[0]
    state = STAT_STATE.get(row.stat or "", p.MessageState.UNKNOWN)
    err = row.err or 0
    done = max(r.done_at or 0.0 for r in rows)
    return state, format_absolute(done) if done else "", err if err <= 0xFF else 0xFF


def _relative(seconds: int) -> str:
    """An SMPP relative time (`YYMMDDhhmmss000R`) of at most 99 days."""
    seconds = min(max(seconds, 1), 99 * 86400 + 86399)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02}{hours:02}{minutes:02}{secs:02}000R"


def _submit_like(pdu: p.Pdu, **overrides: object) -> p.SubmitSm:
    """A submit_sm with every field `pdu` shares with one by name, then `overrides`."""
    shared = {name: getattr(pdu, name) for name in _SUBMIT_FIELDS if hasattr(pdu, name)}
    shared["tlvs"] = list(pdu.tlvs)
    shared.update(overrides)
    return p.SubmitSm(**shared)


_SUBMIT_FIELDS: Final = tuple(
    f.name for f in dataclasses.fields(p.SubmitSm) if f.name not in ("tlvs", "status")
)


def data_sm_as_submit(pdu: p.DataSm) -> p.SubmitSm:
    """The submit_sm a data_sm amounts to: content in message_payload, validity from
    qos_time_to_live (seconds) when given."""
    ttl = pdu.tlv_int(p.Tag.QOS_TIME_TO_LIVE)
    return _submit_like(pdu, validity_period=_relative(ttl) if ttl else "")


def multi_as_submit(pdu: p.SubmitMulti, dest: p.DestAddress) -> p.SubmitSm:
    return _submit_like(
        pdu,
        dest_addr_ton=dest.dest_addr_ton,
        dest_addr_npi=dest.dest_addr_npi,
        destination_addr=dest.destination_addr,
    )


def replacement_submit(message: Message, pdu: p.ReplaceSm) -> p.SubmitSm:
    """The original submit_sm with replace_sm's content, times and receipt request.

    replace_sm carries no data_coding or esm_class: the original's apply. A UDH
    the gateway built from sar_* TLVs is not in the new short_message, so it is
    put back in front of it.
    """
    short_message = pdu.short_message
    esm_class = message.esm_class
    udh = message.fields.get("userDataHeader")
    if udh and not esm_class & p.ESM_CLASS_UDHI:
        short_message = bytes.fromhex(str(udh)) + short_message
        esm_class |= p.ESM_CLASS_UDHI
    return p.SubmitSm(
        service_type=message.service_type,
        source_addr_ton=message.source_ton,
        source_addr_npi=message.source_npi,
        source_addr=message.source_addr,
        dest_addr_ton=message.dest_ton,
        dest_addr_npi=message.dest_npi,
        destination_addr=message.dest_addr,
        esm_class=esm_class,
        priority_flag=1 if message.priority else 0,
        schedule_delivery_time=pdu.schedule_delivery_time,
        validity_period=pdu.validity_period,
        registered_delivery=pdu.registered_delivery,
        data_coding=message.data_coding,
        short_message=short_message,
    )


def apply_replacement(
    message: Message,
    submit: p.SubmitSm,
    mapped: MappedSubmit,
    pdu: p.ReplaceSm,
    now: float,
    hold: float = 0.0,
) -> None:
    """Give a queued message its replacement, in place (the dispatcher holds it).

    Empty times keep the original's (SMPP 3.4 section 4.10.1: NULL means no
    change); fields the content does not decide stay as they were.
    """
    fields = {k: v for k, v in message.fields.items() if k not in _CONTENT_FIELDS}
    custom = dict(_custom(fields))
    if pdu.schedule_delivery_time:
        # The new time decides again whether the message waits here or at LINK.
        custom.pop(_SCHEDULED, None)
        held, message.next_attempt_at = hold_scheduled(mapped, hold, now)
        if _SCHEDULED in _custom(held):
            custom[_SCHEDULED] = _custom(held)[_SCHEDULED]
    fields.pop("customParameters", None)
    if custom:
        fields["customParameters"] = custom
    fields.update({k: v for k, v in mapped.fields.items() if k in _CONTENT_FIELDS})
    message.fields = fields
    message.registered_delivery = submit.registered_delivery
    message.text_head = mapped.text_head
    message.parts = count_parts(fields)
    if pdu.validity_period:
        start = mapped.scheduled_at if mapped.scheduled_at and mapped.scheduled_at > now else now
        message.validity_s = mapped.validity_s
        message.expires_at = start + mapped.validity_s


def _custom(fields: Mapping[str, object]) -> Mapping[str, str]:
    custom = fields.get("customParameters")
    return custom if isinstance(custom, dict) else {}


__all__ = [
    "CANCELLED",
    "Operations",
    "apply_replacement",
    "data_sm_as_submit",
    "multi_as_submit",
    "query_answer",
    "replacement_submit",
]
