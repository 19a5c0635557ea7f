"""The ESME operations on messages already taken: query_sm, cancel_sm, replace_sm.

Each takes a decoded request and an account and fires with the response PDU;
gateway/mt/admission.py does the mapping they share with submit_sm.

What holds for every operation:
- An ESME reaches only its own account's messages: another account's id is
  answered as if it did not exist (RQUERYFAIL, RCANCELFAIL, RREPLACEFAIL).
- cancel_sm and replace_sm change only messages still queued in the gateway
  (in memory or in the store's backlog) and not in a request to LINK at that
  moment; once a message left, LINK has no way to take it back, so the answer
  is RCANCELFAIL / RREPLACEFAIL.
- Their responses go out only after the change is durable, like submit_sm's.
- A submit_multi's destinations are reached by the one id its ESME knows.
"""

from __future__ import annotations

from dataclasses import replace

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from gateway.config import AccountSettings
from gateway.intake.receipts import CANCELLED, receipts_for
from gateway.mt.admission import Admission
from gateway.mt.submission import Submission, not_before
from gateway.records import Message, Receipt
from gateway.smpp import pdu as p
from gateway.smpp.receipts import STAT_STATE
from gateway.smpp.times import format_absolute
from gateway.store.base import FINAL, Finish, MessageStatus

log = Logger()
S = p.CommandStatus


class Operations:
    def __init__(self, admission: Admission) -> None:
        self.admission = admission

    def _count(self, account: AccountSettings, command: str, ok: bool) -> None:
        m = self.admission.metrics
        m.child(m.operations, account.system_id, command, "ok" if ok else "failed").inc()

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
        return self.admission.store.query(account.system_id, pdu.message_id).addCallback(answer)

    # --- cancel_sm ---------------------------------------------------------------

    def cancel_sm(self, account: AccountSettings, pdu: p.CancelSm) -> Deferred[p.CancelSmResp]:
        # Parts of a long message still waiting for their siblings go with the
        # message they belong to, whichever part the ESME names.
        waiting = self.admission.long.cancel(
            account.system_id, pdu.message_id, pdu.source_addr, pdu.destination_addr
        )
        if waiting and pdu.message_id:
            return self._cancel_waiting(waiting).addCallback(lambda _: self._cancelled(account))
        found = self._cancellable(account, pdu)
        if waiting:
            found.addCallback(
                lambda queued: self._cancel_waiting(waiting).addCallback(lambda _: queued)
            )
        return found.addCallback(self._cancel, account, bool(waiting))

    def _cancelled(self, account: AccountSettings) -> p.CancelSmResp:
        self._count(account, "cancel_sm", True)
        return p.CancelSmResp()

    def _cancel_waiting(self, parts: list[Message]) -> Deferred[list[Receipt]]:
        """Finish parts that waited for their siblings as cancelled, with their receipts."""
        return self.admission.long.finish(parts, CANCELLED)

    def _cancel(
        self, messages: list[Message], account: AccountSettings, waited: bool = False
    ) -> Deferred[p.CancelSmResp]:
        admission = self.admission
        if not messages and waited:
            return succeed(self._cancelled(account))
        if not messages:
            self._count(account, "cancel_sm", False)
            return succeed(p.CancelSmResp(status=S.ESME_RCANCELFAIL))
        now = admission.now()
        finishes = [
            Finish(m.id, CANCELLED.stat, CANCELLED.err, now, receipts_for(m, CANCELLED, now))
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
            admission.on_receipts(receipts)
            return p.CancelSmResp()

        def failed(failure: Failure) -> p.CancelSmResp:
            log.failure(
                "could not store a cancellation of {account}", failure, account=account.system_id
            )
            return p.CancelSmResp(status=S.ESME_RSYSERR)

        return admission.dispatcher.cancel(messages, finishes).addCallbacks(done, failed)

    def _cancellable(self, account: AccountSettings, pdu: p.CancelSm) -> Deferred[list[Message]]:
        """SMPP 3.4 section 4.9: by message_id, or every queued message from source to
        destination (narrowed by service_type when given)."""
        dispatcher = self.admission.dispatcher
        if pdu.message_id:
            found = dispatcher.find(account.system_id, pdu.message_id)
        elif pdu.source_addr and pdu.destination_addr:
            found = dispatcher.find_to(account.system_id, pdu.destination_addr)
        else:
            return succeed([])

        def matching(candidates: list[Message]) -> list[Message]:
            return [
                m
                for m in candidates
                if (not pdu.source_addr or m.source.addr == pdu.source_addr)
                and (not pdu.destination_addr or m.destination.addr == pdu.destination_addr)
                and (not pdu.service_type or m.service_type == pdu.service_type)
            ]

        return found.addCallback(matching)

    # --- replace_sm --------------------------------------------------------------

    def replace_sm(
        self, account: AccountSettings, pdu: p.ReplaceSm, interface_version: int
    ) -> Deferred[p.ReplaceSmResp]:
        found = self.admission.dispatcher.find(account.system_id, pdu.message_id)
        return found.addCallback(self._replace, account, pdu, interface_version)

    def _replace(
        self,
        found: list[Message],
        account: AccountSettings,
        pdu: p.ReplaceSm,
        interface_version: int,
    ) -> Deferred[p.ReplaceSmResp]:
        admission = self.admission
        # A message made of parts is not replaced through one of them: its content
        # is theirs together.
        messages = [
            m
            for m in found
            if (not pdu.source_addr or m.source.addr == pdu.source_addr) and not m.members
        ]
        if not messages:
            self._count(account, "replace_sm", False)
            return succeed(p.ReplaceSmResp(status=S.ESME_RREPLACEFAIL))
        now = admission.now()
        replacements = []
        for message in messages:
            submission = admission.map(
                account, replacement_submit(message, pdu), interface_version, now
            )
            if not isinstance(submission, Submission):
                self._count(account, "replace_sm", False)
                return succeed(p.ReplaceSmResp(status=submission))
            replacements.append(replaced(message, submission, pdu, now, account.hold_scheduled))
        for message, before in zip(replacements, messages, strict=True):
            admission.dispatcher.replace(message, before)
        stored = [admission.store.replace_message(m) for m in replacements]

        def done(_: object) -> p.ReplaceSmResp:
            self._count(account, "replace_sm", True)
            return p.ReplaceSmResp()

        return DeferredList(stored, fireOnOneErrback=True, consumeErrors=True).addCallbacks(
            done, lambda _: p.ReplaceSmResp(status=S.ESME_RSYSERR)
        )


# --- the sans-IO parts ---------------------------------------------------------


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


def replacement_submit(message: Message, pdu: p.ReplaceSm) -> p.SubmitSm:
    """The original submit_sm with replace_sm's content, times and receipt request.

    replace_sm carries no data_coding or esm_class: the original's apply. A UDH
    the gateway built from sar_* TLVs is not in the new short_message, so it is
    put back in front of it.
    """
    short_message = pdu.short_message
    esm_class = message.esm_class
    udh = message.body.udh
    if udh and not esm_class & p.ESM_CLASS_UDHI:
        short_message = udh + short_message
        esm_class |= p.ESM_CLASS_UDHI
    schedule = pdu.schedule_delivery_time
    if not schedule and message.scheduled_at is not None:
        # NULL keeps the original schedule (SMPP 3.4 section 4.10.1), and a new
        # validity counts from it, as it does for a submit_sm.
        schedule = format_absolute(message.scheduled_at)
    source, destination = message.source, message.destination
    return p.SubmitSm(
        service_type=message.service_type,
        source_addr_ton=source.ton,
        source_addr_npi=source.npi,
        source_addr=source.addr,
        dest_addr_ton=destination.ton,
        dest_addr_npi=destination.npi,
        destination_addr=destination.addr,
        esm_class=esm_class,
        priority_flag=message.priority,
        schedule_delivery_time=schedule,
        validity_period=pdu.validity_period,
        registered_delivery=pdu.registered_delivery,
        data_coding=message.data_coding,
        short_message=short_message,
    )


def replaced(
    message: Message, submission: Submission, pdu: p.ReplaceSm, now: float, hold: float = 0.0
) -> Message:
    """The queued message with its replacement: a new record.

    Empty times keep the original's (SMPP 3.4 section 4.10.1: NULL means no
    change); what the content does not decide (the vendor fields) stays as the
    original submit_sm set it.
    """
    new = replace(
        message,
        sender=submission.sender,
        recipient=submission.recipient,
        body=submission.body,
        registered_delivery=pdu.registered_delivery,
        text_head=submission.text_head,
        parts=submission.parts,
    )
    if pdu.schedule_delivery_time:
        # The new time decides again whether the message waits here or at LINK.
        due = submission.scheduled_at
        new = replace(new, scheduled_at=due, not_before=not_before(due, hold, now))
    if pdu.validity_period:
        due = submission.scheduled_at
        start = due if due is not None and due > now else now
        new = replace(
            new, validity_s=submission.validity_s, expires_at=start + submission.validity_s
        )
    return new


__all__ = ["Operations", "query_answer", "replaced", "replacement_submit"]
