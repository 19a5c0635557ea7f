"""MT admission: a submit_sm (submit_multi, data_sm) becomes stored messages, or a status.

Responsible for DESIGN sections 3 and 7 on the way in: the account's rate and
queue limits, the mapping of each message by its account's rules
(gateway/mt/submission.py), its id, its route, whether a schedule is held here,
and the answer to the ESME. It knows nothing of sockets: the transport layer
hands it decoded PDUs and gets PDUs back.

What always holds: a submit_sm is answered ESME_ROK only after its message is
committed (accept = "stored") or after LINK accepted it (accept = "upstream").
Every refusal is counted (`smpp_submits_total`) and logged at most once a
minute per account and status.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger

from gateway.config import AccountSettings, Config
from gateway.ids import IdGenerator
from gateway.logs import Repeats
from gateway.metrics import Metrics
from gateway.mt.dispatcher import Dispatcher
from gateway.mt.longmessages import LongMessages
from gateway.mt.router import Router
from gateway.mt.submission import Submission, SubmitRefused, map_submit, message_from
from gateway.ratelimit import TokenBucket
from gateway.records import Address, Message, OutcomeKind, Receipt, SubmitOutcome
from gateway.smpp import pdu as p
from gateway.smpp.escapes import EscapeCarry
from gateway.smpp.text import TextError, is_gsm_coding
from gateway.smpp.times import format_relative
from gateway.store.base import Store, StoreFull

log = Logger()
S = p.CommandStatus

# Refusals that concern one destination of a submit_multi (an unsuccess_sme
# entry); any other refusal is the same for every destination and refuses the PDU.
_PER_DESTINATION: Final = frozenset({S.ESME_RINVDSTADR, S.ESME_RINVDSTTON, S.ESME_RINVDSTNPI})
_DL_NAME: Final = 2


class Admission:
    def __init__(
        self,
        reactor: Any,
        config: Config,
        store: Store,
        dispatcher: Dispatcher,
        router: Router,
        metrics: Metrics,
        on_receipts: Callable[[list[Receipt]], None],
        *,
        node: int = 0,
    ) -> None:
        self._reactor = reactor
        self.config = config
        self.store = store
        self.dispatcher = dispatcher
        self.metrics = metrics
        # Receipts the gateway made itself (cancel_sm) go the way LINK's go.
        self.on_receipts = on_receipts
        self._router = router
        self._ids = IdGenerator(reactor.seconds, node)
        self._escapes = EscapeCarry(reactor.seconds)
        self._buckets: dict[str, TokenBucket] = {}
        # Refusals an ESME can repeat at will: a line a minute per kind.
        self._refusals = Repeats()
        self.long = LongMessages(
            reactor,
            store,
            dispatcher,
            metrics,
            on_receipts,
            self.whole_id,
            timeout=config.smpp.reassembly_timeout,
        )
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        """Run with a reloaded config: removed accounts' buckets go, an unchanged
        one keeps its tokens."""
        self.config = config
        self.long.timeout = config.smpp.reassembly_timeout
        buckets = {}
        for account in config.accounts.values():
            bucket = self._buckets.get(account.system_id)
            if bucket is None or (bucket.rate, bucket.burst) != (account.rate, account.burst):
                bucket = TokenBucket(account.rate, account.burst, self._reactor.seconds)
            buckets[account.system_id] = bucket
        self._buckets = buckets

    def now(self) -> float:
        return float(self._reactor.seconds())

    # --- submit_sm -------------------------------------------------------------

    def submit(
        self, account: AccountSettings, pdu: p.SubmitSm, interface_version: int
    ) -> Deferred[p.SubmitSmResp]:
        refused = self.admit(account, 1)
        if refused is not None:
            return succeed(p.SubmitSmResp(status=refused))
        now = self.now()
        submission = self.map(account, pdu, interface_version, now)
        if not isinstance(submission, Submission):
            return succeed(p.SubmitSmResp(status=submission))
        message = self.new_message(account, pdu, submission, now, interface_version)
        if submission.concat is not None:
            held = self.long.take(
                message,
                submission.concat,
                submission.fits,
                account.policy.reassemble,
                account.max_waiting_parts,
            )
            if held is not None:
                return held.addCallback(self._held_answer, account, message)
        if account.accept == "upstream":
            sent = self.store.add_messages([message]).addCallback(
                lambda _: self._submit_upstream(account, message)
            )
            return sent.addErrback(self._store_full, account)

        def answer(status: int) -> p.SubmitSmResp:
            if status:
                return p.SubmitSmResp(status=status)
            return p.SubmitSmResp(message_id=message.id)

        return self.accept_stored(account, [message]).addCallback(answer)

    def _held_answer(
        self, answer: tuple[int, str], account: AccountSettings, message: Message
    ) -> p.SubmitSmResp:
        status, outcome = answer
        self.metrics.child(self.metrics.submits, account.system_id, outcome).inc()
        if status:
            return p.SubmitSmResp(status=status)
        return p.SubmitSmResp(message_id=message.id)

    def whole_id(self, account: str) -> str:
        """An id for a message made of parts: never told to an ESME (each part has
        its own), so any account's format does; LINK sees it as refId."""
        settings = self.config.accounts.get(account)
        return self._ids.next(settings.message_id_format if settings else "decimal")

    def data_sm(
        self, account: AccountSettings, pdu: p.DataSm, interface_version: int
    ) -> Deferred[p.DataSmResp]:
        """Taken like a submit_sm whose content is its message_payload."""
        d = self.submit(account, data_sm_as_submit(pdu), interface_version)
        return d.addCallback(lambda r: p.DataSmResp(status=r.status, message_id=r.message_id))

    def admit(self, account: AccountSettings, count: int) -> int | None:
        """The status refusing `count` new messages at once, or None to go on."""
        m = self.metrics
        name = account.system_id
        if not self._buckets[name].take(count):
            m.child(m.submits, name, "throttled").inc(count)
            return S.ESME_RTHROTTLED
        waiting = self.dispatcher.queued_by_account.get(name, 0) + self.long.held(name)
        if waiting + count > account.max_queue:
            m.child(m.submits, name, "queue_full").inc(count)
            return S.ESME_RMSGQFUL
        return None

    def map(
        self, account: AccountSettings, pdu: p.SubmitSm, interface_version: int, now: float
    ) -> Submission | int:
        """DESIGN section 4 for one message, or the status refusing it (counted)."""
        name = account.system_id
        policy = account.policy
        # Segments only (a cheap test first: most messages have neither).
        if (pdu.esm_class & p.ESM_CLASS_UDHI or pdu.tlvs) and is_gsm_coding(
            pdu.data_coding, policy.default_alphabet, policy.ia5_alphabet
        ):
            pdu = self._escapes.repair(name, pdu)
        try:
            return map_submit(pdu, policy, now=now)
        except SubmitRefused as e:
            status, reason = e.status, e.reason
        except TextError as e:
            status, reason = e.status, str(e)
        left_out = self._refusals.note((name, status), now)
        if left_out is not None:
            log.info(
                "refused a submit_sm of {account} with {status:#04x}: {reason}"
                " ({left_out} more such refusals since the last line)",
                account=name,
                status=status,
                reason=reason,
                left_out=left_out,
            )
        self.metrics.child(self.metrics.submits, name, "refused").inc()
        if status == S.ESME_RSUBMITFAIL and interface_version >= 0x50:
            # No 3.4 status says "bad data_coding"; 5.0 binds get the one that does.
            status = S.ESME_RINVDCS
        return status

    def new_message(
        self,
        account: AccountSettings,
        pdu: p.SubmitSm,
        submission: Submission,
        now: float,
        interface_version: int,
        reply_id: str | None = None,
    ) -> Message:
        if interface_version <= p.SMPP_33 and account.short_message_id != "none":
            message_id = self.store.short_id(account.short_message_id)
        else:
            message_id = self._ids.next(account.message_id_format)
        choice = self._router.place(account.system_id, submission.recipient)
        return message_from(
            pdu,
            submission,
            message_id=message_id,
            account=account.system_id,
            connector=choice.connector,
            now=now,
            hold_scheduled=account.hold_scheduled,
            billing_receipt=account.billing_receipts,
            reply_id=reply_id,
        )

    def accept_stored(self, account: AccountSettings, messages: list[Message]) -> Deferred[int]:
        """Store messages and queue them; fires with ESME_ROK once they are durable."""
        m = self.metrics
        name = account.system_id

        def accepted(_: None) -> int:
            self.dispatcher.enqueue(messages)
            m.child(m.submits, name, "accepted").inc(len(messages))
            return S.ESME_ROK

        def failed(failure: Any) -> int:
            if failure.check(StoreFull):
                return self._full(name, len(messages))
            log.failure("could not store a message of {account}", failure, account=name)
            m.child(m.submits, name, "error").inc(len(messages))
            # 0x08 is one of the statuses ESMEs such as Kannel retry (SMPP-NOTES section 3).
            return S.ESME_RSYSERR

        return self.store.add_messages(messages).addCallbacks(accepted, failed)

    def _store_full(self, failure: Any, account: AccountSettings) -> p.SubmitSmResp:
        failure.trap(StoreFull)
        return p.SubmitSmResp(status=self._full(account.system_id, 1))

    def _full(self, account: str, count: int) -> int:
        # Logged by the store, once a minute. RMSGQFUL is what ESMEs retry later
        # without taking the gateway for broken (SMPP-NOTES section 3).
        self.metrics.child(self.metrics.submits, account, "store_full").inc(count)
        return S.ESME_RMSGQFUL

    def _submit_upstream(
        self, account: AccountSettings, message: Message
    ) -> Deferred[p.SubmitSmResp]:
        m = self.metrics

        def answered(outcome: SubmitOutcome) -> p.SubmitSmResp:
            if outcome.kind is OutcomeKind.ACCEPTED:
                m.child(m.submits, account.system_id, "accepted").inc()
                return p.SubmitSmResp(message_id=message.id)
            m.child(m.submits, account.system_id, "refused").inc()
            return p.SubmitSmResp(status=outcome.esme_status or S.ESME_RSYSERR)

        return self.dispatcher.submit_now(message).addCallback(answered)

    # --- submit_multi ------------------------------------------------------------

    def submit_multi(
        self, account: AccountSettings, pdu: p.SubmitMulti, interface_version: int
    ) -> Deferred[p.SubmitMultiResp]:
        """One message per destination, each with its own id towards LINK (reports
        must find exactly one message), all known to the ESME by the one id of the
        submit_multi_resp: receipts and query_sm use it."""
        limit = self.config.smpp.max_destinations
        if not 0 < len(pdu.dest_addresses) <= limit:
            return succeed(p.SubmitMultiResp(status=S.ESME_RINVNUMDESTS))
        failed: list[p.UnsuccessSme] = []
        addresses = []
        for dest in pdu.dest_addresses:
            if dest.dest_flag == _DL_NAME:
                # The gateway keeps no distribution lists: each is an unknown name.
                failed.append(_unsuccess(Address(dest.dl_name), S.ESME_RINVDLNAME))
            else:
                addresses.append(dest)
        if not addresses:
            return succeed(p.SubmitMultiResp(status=S.ESME_RINVDLNAME))
        refused = self.admit(account, len(addresses))
        if refused is not None:
            return succeed(p.SubmitMultiResp(status=refused))
        now = self.now()
        messages: list[Message] = []
        for dest in addresses:
            submit = multi_as_submit(pdu, dest)
            submission = self.map(account, submit, interface_version, now)
            if isinstance(submission, Submission) and not submission.fits:
                # Parts are put back together per destination of a submit_sm only.
                return succeed(p.SubmitMultiResp(status=S.ESME_RINVMSGLEN))
            if isinstance(submission, Submission):
                reply_id = messages[0].id if messages else None
                messages.append(
                    self.new_message(account, submit, submission, now, interface_version, reply_id)
                )
            elif submission in _PER_DESTINATION:
                address = Address(dest.destination_addr, dest.dest_addr_ton, dest.dest_addr_npi)
                failed.append(_unsuccess(address, submission))
            else:
                return succeed(p.SubmitMultiResp(status=submission))
        if not messages:
            return succeed(p.SubmitMultiResp(status=failed[0].error_status_code))
        reply_id = messages[0].id
        if account.accept == "upstream":
            return self._multi_upstream(account, messages, failed)

        def answer(status: int) -> p.SubmitMultiResp:
            if status:
                return p.SubmitMultiResp(status=status)
            return p.SubmitMultiResp(message_id=reply_id, unsuccess_smes=failed)

        return self.accept_stored(account, messages).addCallback(answer)

    def _multi_upstream(
        self, account: AccountSettings, messages: list[Message], failed: list[p.UnsuccessSme]
    ) -> Deferred[p.SubmitMultiResp]:
        """accept = "upstream": each destination's own answer from LINK, as for submit_sm."""

        def sent(_: None) -> Deferred[p.SubmitMultiResp]:
            attempts = [self.dispatcher.submit_now(m) for m in messages]
            return DeferredList(attempts, consumeErrors=True).addCallback(answered)

        def answered(results: list[tuple[bool, SubmitOutcome]]) -> p.SubmitMultiResp:
            accepted = 0
            for message, (ok, outcome) in zip(messages, results, strict=True):
                if ok and outcome.kind is OutcomeKind.ACCEPTED:
                    accepted += 1
                    continue
                status = (outcome.esme_status or S.ESME_RSYSERR) if ok else S.ESME_RSYSERR
                failed.append(_unsuccess(message.destination, status))
            m = self.metrics
            m.child(m.submits, account.system_id, "accepted").inc(accepted)
            m.child(m.submits, account.system_id, "refused").inc(len(messages) - accepted)
            if not accepted:
                return p.SubmitMultiResp(status=failed[-1].error_status_code)
            return p.SubmitMultiResp(message_id=messages[0].id, unsuccess_smes=failed)

        return self.store.add_messages(messages).addCallback(sent)


# --- the sans-IO parts ---------------------------------------------------------


def _unsuccess(address: Address, status: int) -> p.UnsuccessSme:
    return p.UnsuccessSme(
        dest_addr_ton=address.ton,
        dest_addr_npi=address.npi,
        destination_addr=address.addr,
        error_status_code=status,
    )


def submit_like(pdu: p.Pdu, **overrides: object) -> p.SubmitSm:
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
    return submit_like(pdu, validity_period=format_relative(ttl) if ttl else "")


def multi_as_submit(pdu: p.SubmitMulti, dest: p.DestAddress) -> p.SubmitSm:
    return submit_like(
        pdu,
        dest_addr_ton=dest.dest_addr_ton,
        dest_addr_npi=dest.dest_addr_npi,
        destination_addr=dest.destination_addr,
    )


__all__ = ["Admission", "data_sm_as_submit", "multi_as_submit", "submit_like"]
