"""A submit_sm read by its account's rules: the route-neutral parts of a message.

Responsible for DESIGN section 4 as far as no route is concerned: the sender
and recipient (gateway/addresses.py), the content decoded by its data_coding
(or the octets), the UDH of a message the ESME segmented (or made from its
sar_* TLVs), validity and schedule as times, the priority flag, the receipt
request and the vendor fields (`map_submit`). Each connector then maps the
resulting `Message` to its own wire.

What always holds:
- `map_submit` returns a `Submission` or raises `SubmitRefused` carrying an
  SMPP 3.4 command_status (never RINVDCS: the caller upgrades RSUBMITFAIL for
  data_coding trouble to RINVDCS only for ESMEs bound as 5.0, so RSUBMITFAIL
  is used for nothing but content the data_coding cannot carry).
- A part of a long message whose UDH holds only the concatenation element is
  numbered (`Submission.concat`) for gateway/mt/reassembly.py, unless the
  account says `reassemble = "never"`; only then may it be longer than one SMS.
- Premium fields come from the account (`premium`), then from the vendor TLVs
  the account maps (`vendor_tlvs`), a TLV present in the PDU winning; tariff
  goes on the first segment of an ESME-segmented message only.
- The validity is counted from the schedule when there is one, and clamped to
  the account's limits (Common's: 15 minutes to 48 hours) here, once.
- Pure: no I/O; `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from gateway.addresses import (
    DEFAULT_SHORT_NUMBER_DIGITS,
    SHORT_NUMBER_MAX,
    AddressRefused,
    resolve_destination,
    resolve_source,
    short_number_digits,
)
from gateway.mt.vendor import (
    CUSTOM_PREFIX,
    VENDOR_TAGS,
    VendorTlv,
    premium_problem,
)
from gateway.records import Address, Alphabet, Body, Message, Party, record
from gateway.smpp.pdu import ESM_CLASS_UDHI, CommandStatus, SubmitSm, Tag, sar_numbers
from gateway.smpp.text import Concat, TextError, count_segments, decode_content
from gateway.smpp.times import add_months, parse_smpp_time

_S = CommandStatus


class SubmitRefused(Exception):
    """A submit_sm the gateway will not take; answer it with `status`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


REASSEMBLE_POLICIES: Final = ("oversized", "always", "never")


@dataclass(frozen=True)
class AccountPolicy:
    """What an account's config says about mapping its messages.

    `vendor_tags` is derived: the tags of `vendor_tlvs`, which a server should
    not count as unknown TLVs.
    """

    default_country_code: str = ""
    default_alphabet: str = "gsm"
    # What data_coding 1 means: IA5/ASCII (SMPP 3.4), or GSM 03.38 as some
    # client libraries send under it (SMPP-NOTES section 5).
    ia5_alphabet: str = "ascii"
    # A source of at most this many digits (ton 0 or 1) is a short code; None:
    # SHORT_NUMBER_DIGITS for the country code, else DEFAULT_SHORT_NUMBER_DIGITS.
    short_number_digits: int | None = None
    platform_id: str = ""
    platform_partner_id: str = ""
    gate_ids: tuple[str, ...] = ()
    min_validity_s: int = 900
    max_validity_s: int = 172800
    premium: Mapping[str, object] = field(default_factory=dict)
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    vendor_tlvs: Mapping[int, VendorTlv] = field(default_factory=dict)
    # Parts of a long message: put back together only when one would not fit
    # one SMS ("oversized"), always, or never (gateway/mt/reassembly.py).
    reassemble: str = "oversized"
    vendor_tags: frozenset[int] = field(init=False, default=frozenset(), compare=False)

    def __post_init__(self) -> None:
        cc = self.default_country_code
        if cc and not (cc.isascii() and cc.isdigit() and len(cc) <= 3 and cc[0] != "0"):
            raise ValueError(f"default_country_code must be 1-3 digits: {cc!r}")
        if self.default_alphabet not in ("gsm", "latin1"):
            raise ValueError(
                f"default_alphabet must be 'gsm' or 'latin1': {self.default_alphabet!r}"
            )
        if self.ia5_alphabet not in ("ascii", "gsm"):
            raise ValueError(f"ia5_alphabet must be 'ascii' or 'gsm': {self.ia5_alphabet!r}")
        if self.reassemble not in REASSEMBLE_POLICIES:
            raise ValueError(f"reassemble must be one of {', '.join(REASSEMBLE_POLICIES)}")
        if self.short_number_digits is None:
            object.__setattr__(self, "short_number_digits", short_number_digits(cc))
        elif not 1 <= self.short_number_digits <= SHORT_NUMBER_MAX:
            raise ValueError(f"short_number_digits must be 1-{SHORT_NUMBER_MAX}")
        if not 0 < self.min_validity_s <= self.max_validity_s:
            raise ValueError("need 0 < min_validity_s <= max_validity_s")
        for name, value in self.premium.items():
            problem = premium_problem(name, value)
            if problem is not None:
                raise ValueError(f"premium {name}: {problem}")
        targets: set[str] = set()
        for tag, spec in self.vendor_tlvs.items():
            if tag not in VENDOR_TAGS:
                raise ValueError(f"vendor TLV 0x{tag:04X} is outside 0x1400-0x3FFF")
            if spec.field in targets:
                raise ValueError(f"two vendor TLVs fill {spec.field}")
            targets.add(spec.field)
        # Frozen, but read on every PDU: computed once here. Read-only copies, so that
        # a message whose fields are the account's shares them instead of copying.
        object.__setattr__(self, "vendor_tlvs", MappingProxyType(dict(self.vendor_tlvs)))
        object.__setattr__(self, "premium", MappingProxyType(dict(self.premium)))
        object.__setattr__(
            self, "custom_parameters", MappingProxyType(dict(self.custom_parameters))
        )
        object.__setattr__(self, "vendor_tags", frozenset(self.vendor_tlvs))


# --- submit_sm -> Submission ------------------------------------------------


@record
class Submission:
    """What one submit_sm asks for, read by its account's rules; admission makes
    a `Message` of it. `text_head` is the first 20 characters for the receipt
    ("" for binary); `wants_receipt` is registered_delivery & 0x13.

    `concat` numbers a part of a long message that the account's policy may put
    back together (its UDH holds nothing but the concatenation element); `fits`
    is False for a part too long to go on as one SMS, which only that can carry.
    """

    sender: Party
    recipient: str
    body: Body
    validity_s: int
    scheduled_at: float | None
    priority: int
    premium: Mapping[str, object]
    custom: Mapping[str, str]
    text_head: str
    wants_receipt: int
    parts: int
    concat: Concat | None = None
    fits: bool = True


# registered_delivery: bits 1-0 receipt request, 0x10 intermediate notifications.
_RECEIPT_BITS: Final = 0x13
_MAX_PRIORITY: Final = 3  # 0-3 (GSM uses 0-1, ANSI-136 0-2, IS-95 0-3)
_SCHEDULE_MONTHS: Final = 3  # Common: "at most 3 months in the future"


def _sar_udh(submit: SubmitSm) -> bytes | None:
    """A concat UDH made from the SAR TLVs (SMPP 3.4 section 5.3.2.22-24), if all are there.

    ESMEs that segment with SAR TLVs expect the SMSC to add the UDH. An 8-bit
    reference keeps the 6-octet UDH the ESME's 153/67 part sizes assumed.
    """
    sar = sar_numbers(submit)
    if sar is None:
        return None
    ref, total, seq = sar
    if not (0 < total <= 255 and 0 < seq <= total and 0 <= ref <= 0xFFFF):
        raise SubmitRefused(_S.ESME_RINVOPTPARAMVAL, "bad sar_* segment numbers")
    if ref <= 0xFF:
        return bytes((0x05, 0x00, 0x03, ref, total, seq))
    return bytes((0x06, 0x08, 0x04, ref >> 8, ref & 0xFF, total, seq))


def map_submit(submit: SubmitSm, policy: AccountPolicy, *, now: float) -> Submission:
    """DESIGN section 4 for one submit_sm; SubmitRefused with the status to answer.

    Content comes from short_message or the message_payload TLV; both non-empty
    is ESME_RINVMSGLEN (SMPP 3.4 5.3.2.32: with message_payload, sm_length must
    be 0, so the length is what is wrong).
    """
    try:
        sender = resolve_source(
            submit.source_addr,
            submit.source_addr_ton,
            default_country_code=policy.default_country_code,
            short_number_digits=policy.short_number_digits or DEFAULT_SHORT_NUMBER_DIGITS,
        )
        recipient = resolve_destination(
            submit.destination_addr, submit.dest_addr_ton, policy.default_country_code
        )
    except AddressRefused as exc:
        raise SubmitRefused(exc.status, exc.reason) from None
    if submit.priority_flag > _MAX_PRIORITY:
        raise SubmitRefused(_S.ESME_RINVPRTFLG, f"priority_flag {submit.priority_flag}")

    payload = submit.short_message
    message_payload = submit.tlv(Tag.MESSAGE_PAYLOAD)
    if message_payload is not None:
        if payload:
            raise SubmitRefused(_S.ESME_RINVMSGLEN, "both short_message and message_payload")
        payload = message_payload
    udhi = bool(submit.esm_class & ESM_CLASS_UDHI)
    if not udhi:
        sar = _sar_udh(submit)
        if sar is not None:
            payload, udhi = sar + payload, True
    try:
        content = decode_content(
            submit.data_coding,
            payload,
            udhi=udhi,
            default_alphabet=policy.default_alphabet,
            ia5_alphabet=policy.ia5_alphabet,
            reassemble=policy.reassemble != "never",
        )
    except TextError as exc:
        raise SubmitRefused(exc.status, str(exc)) from None

    try:
        scheduled_at = parse_smpp_time(submit.schedule_delivery_time, now)
    except ValueError as exc:
        raise SubmitRefused(_S.ESME_RINVSCHED, str(exc)) from None
    if scheduled_at is not None:
        if scheduled_at <= now:
            scheduled_at = None  # a time already past means "now"
        elif scheduled_at > add_months(now, _SCHEDULE_MONTHS):
            raise SubmitRefused(_S.ESME_RINVSCHED, "scheduled more than 3 months ahead")
    # Validity runs from when the message is sent, i.e. the scheduled time: a
    # relative one ("valid 1 h") counts from there, not from now.
    start = now if scheduled_at is None else scheduled_at
    try:
        expires_at = parse_smpp_time(submit.validity_period, start)
    except ValueError as exc:
        raise SubmitRefused(_S.ESME_RINVEXPIRY, str(exc)) from None
    if expires_at is None:
        validity_s = policy.max_validity_s
    else:
        if expires_at <= start:
            raise SubmitRefused(_S.ESME_RINVEXPIRY, "validity ends before delivery starts")
        validity_s = min(max(int(expires_at - start), policy.min_validity_s), policy.max_validity_s)

    if content.text is not None:
        body = Body(text=content.text, udh=content.udh, flash=content.flash)
    else:
        body = Body(data=bytes.fromhex(content.hex or ""), udh=content.udh, flash=content.flash)
    if content.udh is not None and content.fits:
        # The ESME's segment goes as it is, in the alphabet decode_content chose.
        body = replace(body, alphabet=_SEGMENT_ALPHABETS[content.dcs])
    premium, custom = policy.premium, policy.custom_parameters
    if policy.vendor_tlvs and submit.tlvs:
        premium, custom = _with_vendor_tlvs(submit, policy.vendor_tlvs, premium, custom)
    # Common: "If you are splitting a long message into multiple segments
    # yourself, set price only on the first segment."
    if content.udh is not None and "tariff" in premium and _later_segment(content.udh):
        premium = MappingProxyType({k: v for k, v in premium.items() if k != "tariff"})
    return Submission(
        sender=sender,
        recipient=recipient,
        body=body,
        validity_s=validity_s,
        scheduled_at=scheduled_at,
        priority=submit.priority_flag,
        premium=premium,
        custom=custom,
        text_head=(content.text or "")[:20],
        wants_receipt=submit.registered_delivery & _RECEIPT_BITS,
        parts=segments_of(body),
        concat=content.concat,
        fits=content.fits,
    )


def segments_of(body: Body) -> int:
    """How many SMS a route makes of the body, for reports per part: a whole text
    is split (gateway.smpp.text's rule); a segment or octets go as one."""
    if body.text is None or body.udh is not None:
        return 1
    return count_segments(body.text)


_SEGMENT_ALPHABETS: Final = MappingProxyType(
    {"GSM": Alphabet.GSM, "UCS2": Alphabet.UCS2, "BINARY": Alphabet.BINARY}
)


def _with_vendor_tlvs(
    submit: SubmitSm,
    specs: Mapping[int, VendorTlv],
    account_premium: Mapping[str, object],
    account_custom: Mapping[str, str],
) -> tuple[Mapping[str, object], Mapping[str, str]]:
    """The account's values with the configured vendor TLVs the PDU carries laid over.

    A value that does not read as its configured type is the ESME's error:
    ESME_RINVOPTPARAMVAL (SMPP 3.4 section 5.1.3), never silently dropped.
    """
    premium, custom = dict(account_premium), dict(account_custom)
    for tag, spec in specs.items():
        raw = submit.tlv(tag)
        if raw is None:
            continue
        try:
            value = spec.decode(raw)
        except ValueError as exc:
            raise SubmitRefused(
                _S.ESME_RINVOPTPARAMVAL, f"vendor TLV 0x{tag:04X} ({spec.field}): {exc}"
            ) from None
        if value is None:
            continue
        if spec.field.startswith(CUSTOM_PREFIX):
            custom[spec.field[len(CUSTOM_PREFIX) :]] = str(value)
        else:
            premium[spec.field] = value
    return MappingProxyType(premium), MappingProxyType(custom)


def not_before(scheduled_at: float | None, hold: float, now: float) -> float:
    """When the gateway sends a message: at once (0), or at its schedule when that
    is due within `hold` seconds.

    A message held here can still be reached by cancel_sm and replace_sm until
    it is due, and goes to LINK then, its schedule passed. One due later goes
    to LINK now with its schedule, and from then on only LINK could cancel it.
    """
    if scheduled_at is None or scheduled_at <= now or scheduled_at - now > hold:
        return 0.0
    return scheduled_at


def message_from(
    pdu: SubmitSm,
    submission: Submission,
    *,
    message_id: str,
    account: str,
    connector: str,
    now: float,
    hold_scheduled: float = 0.0,
    billing_receipt: bool = False,
    reply_id: str | None = None,
) -> Message:
    """The Message the gateway keeps of an ESME's submit_sm read as `submission`.

    The validity runs from the schedule when there is one still ahead.
    """
    due = submission.scheduled_at
    start = due if due is not None and due > now else now
    return Message(
        id=message_id,
        account=account,
        connector=connector,
        source=Address(pdu.source_addr, pdu.source_addr_ton, pdu.source_addr_npi),
        destination=Address(pdu.destination_addr, pdu.dest_addr_ton, pdu.dest_addr_npi),
        sender=submission.sender,
        recipient=submission.recipient,
        body=submission.body,
        submitted_at=now,
        expires_at=start + submission.validity_s,
        validity_s=submission.validity_s,
        scheduled_at=due,
        not_before=not_before(due, hold_scheduled, now),
        priority=submission.priority,
        registered_delivery=pdu.registered_delivery,
        premium=submission.premium,
        custom=submission.custom,
        service_type=pdu.service_type,
        data_coding=pdu.data_coding,
        esm_class=pdu.esm_class,
        text_head=submission.text_head,
        parts=submission.parts,
        reply_id=reply_id,
        billing_receipt=billing_receipt,
    )


def _later_segment(udh: bytes) -> bool:
    # decode_content has validated this UDH already, so the walk cannot overrun.
    pos = 1
    while pos < len(udh):
        iei, length = udh[pos], udh[pos + 1]
        if iei == 0x00 or iei == 0x08:
            return udh[pos + 1 + length] != 1
        pos += 2 + length
    return False


__all__ = [
    "REASSEMBLE_POLICIES",
    "AccountPolicy",
    "Submission",
    "SubmitRefused",
    "map_submit",
    "message_from",
    "not_before",
    "segments_of",
]
