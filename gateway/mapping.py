"""Tables as data: submit_sm -> Common fields, Common result codes -> receipts.

Responsible for DESIGN sections 4 and 5: how a submit_sm becomes the
per-message fields of a Common `sendRequestMessage` (`map_submit`), how a
Common delivery-report resultCode becomes a receipt's stat/err (`RESULT_CODES`),
what the gateway's own receipts say (`EXPIRED_IN_QUEUE`, `rejection_outcome`)
and, for accounts with accept = "upstream", which command_status an upstream
refusal becomes (`upstream_status`).

What always holds:
- Every table is a literal, read-only mapping built at import; config overrides
  make a new mapping (`merge_result_codes`), they never mutate these.
- `map_submit` returns a `MappedSubmit` or raises `SubmitRefused` carrying an
  SMPP 3.4 command_status (never RINVDCS: the caller upgrades RSUBMITFAIL for
  data_coding trouble to RINVDCS only for ESMEs bound as 5.0, so RSUBMITFAIL
  is used for nothing but content the data_coding cannot carry).
- Premium fields come from the account (`premium`), then from the vendor TLVs
  the account maps (`vendor_tlvs`), a TLV present in the PDU winning; tariff
  goes on the first segment of an ESME-segmented message only.
- Destinations leave here as `+<digits>` (E.164, at most 15 digits).
- Envelope fields (platformId, platformPartnerId, useDeliveryReport,
  deliveryReportGates, refId, relativeValidityTime, priority) belong to the
  connector; this module only says what they should be (`validity_s`, `priority`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from gateway.smpp.pdu import (
    ESM_CLASS_UDHI,
    CommandStatus,
    MessageState,
    SubmitSm,
    Tag,
    sar_numbers,
)
from gateway.smpp.receipts import STAT_STATE
from gateway.smpp.text import TextError, decode_content, is_gsm
from gateway.smpp.times import add_months, parse_smpp_time, rfc3339

__all__ = [
    "COMMON_ERRORS",
    "CUSTOM_PREFIX",
    "DEFAULT_SHORT_NUMBER_DIGITS",
    "ERR_MAX",
    "ERR_OUT_OF_RANGE",
    "EXPIRED_IN_QUEUE",
    "PREMIUM_FIELDS",
    "PREMIUM_TYPES",
    "RESULT_CODES",
    "SEND_REFUSALS",
    "SHORT_NUMBER_DIGITS",
    "UNKNOWN_OUTCOME",
    "UPSTREAM_CODE_STATUS",
    "UPSTREAM_HTTP_STATUS",
    "VENDOR_TAGS",
    "VENDOR_TYPES",
    "AccountPolicy",
    "MappedSubmit",
    "Outcome",
    "SubmitRefused",
    "VendorTlv",
    "default_vendor_type",
    "map_submit",
    "merge_result_codes",
    "outcome_for",
    "premium_problem",
    "receipt_err",
    "refusal_is_temporary",
    "rejection_outcome",
    "resolve_destination",
    "resolve_source",
    "upstream_status",
    "vendor_field_problem",
    "vendor_type_problem",
]

_S = CommandStatus


class SubmitRefused(Exception):
    """A submit_sm the gateway will not take; answer it with `status`."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# Common sendRequestMessage premium fields (seed 001) and their JSON types.
PREMIUM_TYPES: Final[Mapping[str, type]] = MappingProxyType(
    {
        "tariff": int,
        "currency": str,
        "productCategory": int,
        "productDescription": str,
        "age": int,
        "moReferenceId": str,
    }
)
PREMIUM_FIELDS: Final = frozenset(PREMIUM_TYPES)
_COMMON_INT_MAX: Final = 2**31 - 1  # Common's Integer is a signed 32-bit number

# SMPP 3.4 section 5.3.2: tags 0x1400-0x3FFF are for SMSC vendors to define.
VENDOR_TAGS: Final = range(0x1400, 0x3FFF + 1)
VENDOR_TYPES: Final = ("int", "string", "hex")
CUSTOM_PREFIX: Final = "customParameters."
# customParameters the gateway sets itself from the submit_sm's own fields.
_RESERVED_CUSTOM: Final = frozenset({"scheduledTime"})


def premium_problem(name: str, value: object) -> str | None:
    """Why `value` cannot be Common's premium field `name`, or None if it can."""
    kind = PREMIUM_TYPES.get(name)
    if kind is None:
        return f"unknown premium field {name!r}; known: {', '.join(sorted(PREMIUM_FIELDS))}"
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if not 0 <= value <= _COMMON_INT_MAX:
            return f"must be 0 to {_COMMON_INT_MAX}"
    elif not isinstance(value, str):
        return "must be a string"
    return None


def vendor_field_problem(target: str) -> str | None:
    """Why a vendor TLV cannot fill `target`, or None if it can."""
    if target.startswith(CUSTOM_PREFIX):
        name = target[len(CUSTOM_PREFIX) :]
        if not name or not name.isascii() or not name.isprintable() or " " in name:
            return "customParameters.<name> needs a name of printable ASCII, no spaces"
        if name in _RESERVED_CUSTOM:
            return f"customParameters.{name} is set by the gateway itself"
        return None
    if target not in PREMIUM_FIELDS:
        known = ", ".join(sorted(PREMIUM_FIELDS))
        return f"must be one of {known} or customParameters.<name>, not {target!r}"
    return None


def vendor_type_problem(target: str, kind: str) -> str | None:
    """Why a TLV of type `kind` cannot fill `target`, or None if it can."""
    if kind not in VENDOR_TYPES:
        return f"must be one of {', '.join(VENDOR_TYPES)}, not {kind!r}"
    if PREMIUM_TYPES.get(target) is int and kind != "int":
        return f'{target} is an integer in Common: use type = "int"'
    return None


def default_vendor_type(target: str) -> str:
    """The type a vendor TLV has when the config does not say: the field's own."""
    return "int" if PREMIUM_TYPES.get(target) is int else "string"


@dataclass(frozen=True, slots=True)
class VendorTlv:
    """How one vendor TLV fills a Common field (`field`: a premium field or
    `customParameters.<name>`); `type` says how its octets read:

    - "int": a big-endian unsigned integer of 1, 2 or 4 octets (SMPP 3.4
      section 3.1 Integer); the decimal digits when the field is a string;
    - "string": a C-Octet String (one trailing NUL dropped), UTF-8, no NUL inside;
    - "hex": any octets, as upper-case hex digits.

    An empty string or hex value means "not given" (SMPP's NULL string), so
    the account's own value stays.
    """

    field: str
    type: str

    def __post_init__(self) -> None:
        problem = vendor_field_problem(self.field) or vendor_type_problem(self.field, self.type)
        if problem is not None:
            raise ValueError(problem)

    def decode(self, raw: bytes) -> object | None:
        """The value for Common, None for "not given"; ValueError if the octets are bad."""
        if self.type == "int":
            if len(raw) not in (1, 2, 4):
                raise ValueError(f"an integer of {len(raw)} octets (need 1, 2 or 4)")
            number = int.from_bytes(raw, "big")
            if PREMIUM_TYPES.get(self.field) is not int:
                return str(number)
            if number > _COMMON_INT_MAX:
                raise ValueError(f"{number} is too large for Common's {self.field}")
            return number
        if self.type == "hex":
            return raw.hex().upper() or None
        text = raw[:-1] if raw.endswith(b"\0") else raw
        if b"\0" in text:
            raise ValueError("a NUL inside the string")
        try:
            return text.decode("utf-8") or None
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None


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
        if self.short_number_digits is None:
            digits = SHORT_NUMBER_DIGITS.get(cc, DEFAULT_SHORT_NUMBER_DIGITS)
            object.__setattr__(self, "short_number_digits", digits)
        elif not 1 <= self.short_number_digits <= _SHORTNUMBER_MAX:
            raise ValueError(f"short_number_digits must be 1-{_SHORTNUMBER_MAX}")
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
        # Frozen, but read on every PDU: computed once here.
        object.__setattr__(self, "vendor_tlvs", MappingProxyType(dict(self.vendor_tlvs)))
        object.__setattr__(self, "vendor_tags", frozenset(self.vendor_tlvs))


# --- addresses (DESIGN section 4, first two rows) ----------------------------

# SMPP 3.4 section 5.2.5 type_of_number values.
TON_UNKNOWN: Final = 0
TON_INTERNATIONAL: Final = 1
TON_NATIONAL: Final = 2
TON_NETWORK: Final = 3
TON_SUBSCRIBER: Final = 4
TON_ALPHANUMERIC: Final = 5
TON_ABBREVIATED: Final = 6

# Up to this many digits a source sent with ton 0 or 1 is a short code, not an
# MSISDN, by the account's country code (DESIGN 4): where mobile numbers have 8
# digits (Norway, Denmark) an 8-digit number is a mobile, and short codes have
# at most 5 or 6. Elsewhere 8, the guess from before there was a table.
SHORT_NUMBER_DIGITS: Final[Mapping[str, int]] = MappingProxyType(
    {"45": 6, "46": 6, "47": 6, "358": 6}
)
DEFAULT_SHORT_NUMBER_DIGITS: Final = 8
# A number sent with ton 0 and this many digits or fewer is national (completed
# with the account's country code); longer ones already carry their country code.
_NATIONAL_MAX: Final = 8
_SHORTNUMBER_MAX: Final = 14  # Common: "1-14 digits"
_E164_MAX: Final = 15


def _digits(value: str) -> bool:
    # isdigit alone accepts superscripts and other scripts' digits.
    return value.isascii() and value.isdigit()


def _international(addr: str) -> str | None:
    """The digits after `+` or `00`, or None if `addr` has neither prefix."""
    if addr.startswith("+"):
        return addr[1:]
    if addr.startswith("00"):
        return addr[2:]
    return None


def _msisdn(digits: str, status: int, what: str) -> str:
    if not _digits(digits) or not 0 < len(digits) <= _E164_MAX:
        raise SubmitRefused(status, f"{what} is not a number of at most 15 digits")
    if digits.startswith("0"):
        # A country code never starts with 0: this is a national number.
        raise SubmitRefused(status, f"international {what} starting with 0 (a trunk prefix)")
    return "+" + digits


def _national(digits: str, country_code: str, status: int, what: str) -> str:
    if not country_code:
        raise SubmitRefused(status, f"national {what} but the account has no country code")
    # One leading 0 is the trunk prefix; it is not dialled from abroad.
    return _msisdn(country_code + (digits[1:] if digits.startswith("0") else digits), status, what)


def _alphanumeric(addr: str) -> bool:
    """Seed 001: an alphanumeric source is 2-11 characters beginning with a non-digit."""
    return 2 <= len(addr) <= 11 and not addr[0].isdigit() and is_gsm(addr) and not addr.isspace()


def resolve_source(
    addr: str, ton: int, *, default_country_code: str = "", short_number_digits: int = 8
) -> tuple[str, str]:
    """(source, sourceTON) for Common.

    - ton 5, or ton 0 with letters: ALPHANUMERIC, 2-11 GSM characters beginning
      with a non-digit. An all-digit (or `+digits`) address under ton 5 is read
      by the number rules of ton 0, as the ESME most likely meant a number.
    - `+`/`00`: MSISDN.
    - ton 3 and 6: SHORTNUMBER.
    - ton 1: MSISDN `+digits`; at most `short_number_digits` digits is a
      SHORTNUMBER (ESMEs commonly send short codes as ton 1); a leading 0 is
      refused (an international number never starts with 0).
    - ton 2 and 4: national, always an MSISDN: a trunk 0 dropped, the
      account's country code added.
    - ton 0: at most `short_number_digits` digits a SHORTNUMBER; a leading 0,
      or at most 8 digits with a country code, national; else an international
      MSISDN.

    Bad address: ESME_RINVSRCADR; a ton above 6: ESME_RINVSRCTON.
    """
    bad = _S.ESME_RINVSRCADR
    if not addr:
        raise SubmitRefused(bad, "empty source address")
    if ton > TON_ABBREVIATED:
        raise SubmitRefused(_S.ESME_RINVSRCTON, f"source TON {ton} not supported")
    intl = _international(addr)
    number = intl is not None or _digits(addr)
    if ton == TON_ALPHANUMERIC and number:
        ton = TON_UNKNOWN
    if ton == TON_ALPHANUMERIC or (ton == TON_UNKNOWN and not number):
        if not _alphanumeric(addr):
            raise SubmitRefused(
                bad, "alphanumeric source must be 2-11 GSM characters beginning with a non-digit"
            )
        return addr, "ALPHANUMERIC"
    if intl is not None:
        return _msisdn(intl, bad, "source"), "MSISDN"
    if not number:
        raise SubmitRefused(bad, "source address is not a number")
    if ton in (TON_NETWORK, TON_ABBREVIATED):
        return _short_number(addr, bad), "SHORTNUMBER"
    if ton in (TON_NATIONAL, TON_SUBSCRIBER):
        return _national(addr, default_country_code, bad, "source"), "MSISDN"
    if len(addr) <= short_number_digits:
        return _short_number(addr, bad), "SHORTNUMBER"
    if ton == TON_UNKNOWN and (
        addr.startswith("0") or (default_country_code and len(addr) <= _NATIONAL_MAX)
    ):
        return _national(addr, default_country_code, bad, "source"), "MSISDN"
    return _msisdn(addr, bad, "source"), "MSISDN"


def _short_number(addr: str, status: int) -> str:
    if len(addr) > _SHORTNUMBER_MAX:
        raise SubmitRefused(status, "short number longer than 14 digits")
    return addr


def resolve_destination(addr: str, ton: int, default_country_code: str) -> str:
    """`+<digits>` for Common's destination (destinationTON is always MSISDN).

    `+`/`00` prefix: international whatever the ton. ton 1: international; a
    leading 0 is refused (an international number never starts with 0). ton 2,
    4 and 6: national, completed with the country code after dropping one trunk
    `0`. ton 0: a leading `0`, or at most 8 digits with a country code
    configured, is national; anything else international. Bad address:
    ESME_RINVDSTADR; ton 3, 5 or above 6: ESME_RINVDSTTON (Common delivers to
    MSISDNs only).
    """
    bad = _S.ESME_RINVDSTADR
    if ton in (TON_NETWORK, TON_ALPHANUMERIC) or ton > TON_ABBREVIATED:
        raise SubmitRefused(_S.ESME_RINVDSTTON, f"destination TON {ton} not supported")
    intl = _international(addr)
    if intl is not None:
        return _msisdn(intl, bad, "destination")
    if not _digits(addr):
        raise SubmitRefused(bad, "destination address is not a number")
    if ton == TON_INTERNATIONAL:
        return _msisdn(addr, bad, "destination")
    if ton in (TON_NATIONAL, TON_SUBSCRIBER, TON_ABBREVIATED):
        return _national(addr, default_country_code, bad, "destination")
    if addr.startswith("0") or (default_country_code and len(addr) <= _NATIONAL_MAX):
        return _national(addr, default_country_code, bad, "destination")
    return _msisdn(addr, bad, "destination")


# --- submit_sm -> Common ----------------------------------------------------


@dataclass(frozen=True)
class MappedSubmit:
    """One Common sendRequestMessage's own fields and what the connector needs.

    `text_head` is the first 20 characters for the receipt ("" for binary);
    `wants_receipt` is registered_delivery & 0x13, what the ESME asked for.
    """

    fields: dict[str, object]
    validity_s: int
    scheduled_at: float | None
    priority: str | None
    text_head: str
    wants_receipt: int


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


def map_submit(submit: SubmitSm, policy: AccountPolicy, *, now: float) -> MappedSubmit:
    """DESIGN section 4 for one submit_sm; SubmitRefused with the status to answer.

    Content comes from short_message or the message_payload TLV; both non-empty
    is ESME_RINVMSGLEN (SMPP 3.4 5.3.2.32: with message_payload, sm_length must
    be 0, so the length is what is wrong).
    """
    source, source_ton = resolve_source(
        submit.source_addr,
        submit.source_addr_ton,
        default_country_code=policy.default_country_code,
        short_number_digits=policy.short_number_digits or DEFAULT_SHORT_NUMBER_DIGITS,
    )
    destination = resolve_destination(
        submit.destination_addr, submit.dest_addr_ton, policy.default_country_code
    )
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

    fields: dict[str, object] = {
        "source": source,
        "sourceTON": source_ton,
        "destination": destination,
        "destinationTON": "MSISDN",
        "dcs": content.dcs,
        "userData": content.text if content.text is not None else content.hex,
    }
    if content.udh is not None:
        fields["userDataHeader"] = content.udh.hex().upper()
    premium = dict(policy.premium)
    custom = dict(policy.custom_parameters)
    if policy.vendor_tlvs and submit.tlvs:
        _apply_vendor_tlvs(submit, policy.vendor_tlvs, premium, custom)
    # Common: "If you are splitting a long message into multiple segments
    # yourself, set price only on the first segment."
    if content.udh is not None and "tariff" in premium and _later_segment(content.udh):
        del premium["tariff"]
    fields.update(premium)
    if content.flash:
        custom["flash.sms"] = "true"
    if scheduled_at is not None:
        custom["scheduledTime"] = rfc3339(scheduled_at)
    if custom:
        fields["customParameters"] = custom

    return MappedSubmit(
        fields=fields,
        validity_s=validity_s,
        scheduled_at=scheduled_at,
        priority="HIGH" if submit.priority_flag >= 1 else None,
        text_head=(content.text or "")[:20],
        wants_receipt=submit.registered_delivery & _RECEIPT_BITS,
    )


def _apply_vendor_tlvs(
    submit: SubmitSm,
    specs: Mapping[int, VendorTlv],
    premium: dict[str, object],
    custom: dict[str, str],
) -> None:
    """Lay the configured vendor TLVs the PDU carries over the account's values.

    A value that does not read as its configured type is the ESME's error:
    ESME_RINVOPTPARAMVAL (SMPP 3.4 section 5.1.3), never silently dropped.
    """
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


def _later_segment(udh: bytes) -> bool:
    # decode_content has validated this UDH already, so the walk cannot overrun.
    pos = 1
    while pos < len(udh):
        iei, length = udh[pos], udh[pos + 1]
        if iei == 0x00 or iei == 0x08:
            return udh[pos + 1 + length] != 1
        pos += 2 + length
    return False


# --- Common resultCode -> receipt (DESIGN section 5) ------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a receipt says: stat word, err (LINK's SMPP codes), final or not, state.

    `billing_pending`: final for the ESME, but LINK will report the billing
    (1007 "delivered, billed delayed"): the message stays open for that report.
    """

    stat: str
    err: int
    final: bool
    state: MessageState
    billing_pending: bool = False


def _outcome(stat: str, err: int, final: bool, *, billing_pending: bool = False) -> Outcome:
    return Outcome(stat, err, final, STAT_STATE[stat], billing_pending)


_DELIVERED = _outcome("DELIVRD", 0, True)
# Intermediate notifications say ENROUTE (message_state 1): SMPP 3.4 defines
# ACCEPTED as a final state, and LINK's SMPP route sends ACCEPTD as final.
_ENROUTE = _outcome("ENROUTE", 0, False)

RESULT_CODES: Final[Mapping[int, Outcome]] = MappingProxyType(
    {
        1001: _DELIVERED,
        1007: _outcome("DELIVRD", 0, True, billing_pending=True),
        1002: _outcome("EXPIRED", 220, True),
        1010: _outcome("EXPIRED", 220, True),
        1003: _outcome("DELETED", 221, True),
        1004: _outcome("UNDELIV", 222, True),
        1006: _outcome("UNDELIV", 222, True),
        1009: _outcome("UNDELIV", 222, True),
        1000: _ENROUTE,
        1011: _ENROUTE,
        1013: _ENROUTE,
        1005: _ENROUTE,
        1008: _ENROUTE,
        1012: _ENROUTE,
        2104: _outcome("UNDELIV", 101, True),
        2105: _outcome("UNDELIV", 103, True),
        2107: _outcome("UNDELIV", 103, True),
        2106: _outcome("UNDELIV", 206, True),
        2108: _outcome("REJECTD", 206, True),
        2000: _outcome("REJECTD", 939, True),
        2001: _outcome("REJECTD", 943, True),
        2002: _outcome("REJECTD", 943, True),
        2003: _outcome("REJECTD", 943, True),
        2100: _outcome("REJECTD", 945, True),
        2101: _outcome("REJECTD", 945, True),
        2102: _outcome("REJECTD", 945, True),
        2103: _outcome("REJECTD", 904, True),
        2200: _outcome("UNDELIV", 235, True),
        2201: _outcome("UNDELIV", 128, True),
        2207: _outcome("UNDELIV", 128, True),
        2202: _outcome("UNDELIV", 232, True),
        2203: _outcome("UNDELIV", 232, True),
        2204: _outcome("UNDELIV", 232, True),
        2205: _outcome("UNDELIV", 232, True),
        2206: _outcome("UNDELIV", 232, True),
        3000: _outcome("REJECTD", 252, True),
        3001: _outcome("REJECTD", 252, True),
        3002: _outcome("REJECTD", 252, True),
        4005: _outcome("REJECTD", 252, True),
        4000: _outcome("REJECTD", 903, True),
        4001: _outcome("REJECTD", 127, True),
        4002: _outcome("REJECTD", 127, True),
        4003: _outcome("REJECTD", 127, True),
        4004: _outcome("REJECTD", 127, True),
        4006: _outcome("REJECTD", 127, True),
        4007: _outcome("REJECTD", 225, True),
        0: _outcome("UNKNOWN", 255, True),
        5: _outcome("UNKNOWN", 255, True),
        1: _outcome("UNDELIV", 108, True),
        2: _outcome("UNDELIV", 108, True),
        6: _outcome("UNDELIV", 108, True),
        3: _outcome("REJECTD", 949, True),
        106: _outcome("REJECTD", 949, True),
        4: _outcome("EXPIRED", 10, True),
        104: _outcome("REJECTD", 236, True),
        105: _outcome("UNDELIV", 254, True),
    }
)

UNKNOWN_OUTCOME: Final = _outcome("UNKNOWN", 255, True)

# The receipt's err has three digits (Appendix B), and 999 is a real LINK code
# ("internal billing not successful"): an err from LINK that does not fit
# (network_error_code carries 16 bits) becomes 099, which LINK's table (seed 004)
# does not use, instead of being clamped into 999.
ERR_MAX: Final = 999
ERR_OUT_OF_RANGE: Final = 99


def receipt_err(err: int) -> int:
    """`err` as a receipt can carry it: as it is when 0-999, else ERR_OUT_OF_RANGE."""
    return err if 0 <= err <= ERR_MAX else ERR_OUT_OF_RANGE


# Result codes Common may give a message it did not take (its answer carries no
# messageId, in /sms/send's answer or an item of /sms/sendbatch's): True to retry
# it with backoff until its validity ends, False for a final REJECTD receipt
# with the err of the report table (RESULT_CODES), e.g. 106 -> 949, 104 -> 236.
# Codes 1000-1013 say where a taken message is: accepted. 2000-4007 (content,
# addresses, billing) and Common's error codes (1xxxxx) are final, as is any
# code not listed.
SEND_REFUSALS: Final[Mapping[int, bool]] = MappingProxyType(
    {
        0: True,  # unknown error: nothing says it would fail again
        1: True,  # temporary routing error
        2: False,  # permanent routing error
        3: True,  # throttling exceeded: LINK asks us to slow down
        4: True,  # timeout
        5: True,  # operator unknown error
        6: False,  # operator error
        104: False,  # configuration error: ours to fix (alert)
        105: True,  # LINK's internal error
        106: False,  # quota exceeded
    }
)


def refusal_is_temporary(code: int | None) -> bool | None:
    """For a message Common answered without a messageId: None when the code says
    it was taken (1000-1013, or no code), else whether the refusal is worth a retry."""
    if code is None or 1000 <= code <= 1013:
        return None
    return SEND_REFUSALS.get(code, False)


def outcome_for(code: int, table: Mapping[int, Outcome] = RESULT_CODES) -> Outcome:
    """The receipt for a delivery-report resultCode; UNKNOWN/255 for any other code."""
    return table.get(code, UNKNOWN_OUTCOME)


def merge_result_codes(overrides: Mapping[int, tuple[str, int, bool]]) -> Mapping[int, Outcome]:
    """RESULT_CODES with config rows (code -> (stat, err, final)) laid over it.

    ValueError names the first bad row: an unknown stat word or an err that
    does not fit the receipt's three digits.
    """
    merged = dict(RESULT_CODES)
    for code, (stat, err, final) in overrides.items():
        if stat not in STAT_STATE:
            raise ValueError(
                f"result code {code}: stat {stat!r} is not one of {sorted(STAT_STATE)}"
            )
        if not 0 <= err <= ERR_MAX:
            raise ValueError(f"result code {code}: err {err} is not 0-{ERR_MAX}")
        merged[code] = _outcome(stat, err, bool(final))
    return MappingProxyType(merged)


# --- receipts the gateway makes itself ------------------------------------

EXPIRED_IN_QUEUE: Final = _outcome("EXPIRED", 220, True)

# Common error resultCodes (seed 001, "Error Result Codes") -> (err, whether
# it is the account's misconfiguration, which deserves an alert, not just a
# REJECTD). Everything that names a credential, platform, currency or gate
# setting is ours to fix: 236 is LINK's "configuration error" err.
COMMON_ERRORS: Final[Mapping[int, tuple[int, bool]]] = MappingProxyType(
    {
        101100: (236, True),  # invalid authentication
        101101: (236, True),  # access denied
        106000: (255, False),  # unknown error
        106001: (127, False),  # parse error: the request's content
        106102: (236, True),  # unable to access SMSC credentials
        106200: (236, True),  # invalid or missing platformId
        106201: (236, True),  # invalid or missing platformPartnerId
        106202: (236, True),  # invalid or missing currency (comes from the account)
        106300: (236, True),  # no gates available
        106301: (236, True),  # specified gate unavailable
    }
)

_REJECTED_UNKNOWN: Final = _outcome("REJECTD", 255, True)


def rejection_outcome(
    common_code: int | None, table: Mapping[int, Outcome] = RESULT_CODES
) -> tuple[Outcome, bool]:
    """(receipt, is_misconfiguration) for a request Common refused (stored mode).

    Always REJECTD: the message never left. The err comes from COMMON_ERRORS,
    else from the delivery-report table if Common answered with one of those
    codes, else 255.
    """
    if common_code is None:
        return _REJECTED_UNKNOWN, False
    known = COMMON_ERRORS.get(common_code)
    if known is not None:
        return _outcome("REJECTD", known[0], True), known[1]
    row = table.get(common_code)
    if row is not None and row.final and row.stat != "DELIVRD":
        return _outcome("REJECTD", row.err, True), row.err == 236
    return _REJECTED_UNKNOWN, False


# --- accept = "upstream": upstream trouble -> command_status ----------------

# Permanent refusals by Common code. Misconfiguration becomes RSYSERR: the
# message is fine and the ESME should retry once the account is fixed, and 0x08
# is one of the statuses ESMEs such as Kannel retry (SMPP-NOTES section 3).
UPSTREAM_CODE_STATUS: Final[Mapping[int, CommandStatus]] = MappingProxyType(
    {
        2000: _S.ESME_RINVSRCADR,
        2001: _S.ESME_RINVSRCTON,
        2002: _S.ESME_RINVSRCTON,
        2003: _S.ESME_RINVSRCTON,
        2100: _S.ESME_RINVDSTTON,
        2101: _S.ESME_RINVDSTTON,
        2102: _S.ESME_RINVDSTTON,
        2104: _S.ESME_RINVDSTADR,
        2106: _S.ESME_RINVDSTADR,
        2108: _S.ESME_RINVDSTADR,
        4001: _S.ESME_RINVMSGLEN,
        4003: _S.ESME_RINVMSGLEN,
        4004: _S.ESME_RINVESMCLASS,
        3: _S.ESME_RTHROTTLED,
        101100: _S.ESME_RSYSERR,
        101101: _S.ESME_RSYSERR,
        106102: _S.ESME_RSYSERR,
        106200: _S.ESME_RSYSERR,
        106201: _S.ESME_RSYSERR,
        106202: _S.ESME_RSYSERR,
        106300: _S.ESME_RSYSERR,
        106301: _S.ESME_RSYSERR,
    }
)

# By HTTP status when Common gave no code we know. 401/403/404 are our
# credentials or URL (misconfiguration, see above); 408/429/5xx temporary.
UPSTREAM_HTTP_STATUS: Final[Mapping[int, CommandStatus]] = MappingProxyType(
    {
        401: _S.ESME_RSYSERR,
        403: _S.ESME_RSYSERR,
        404: _S.ESME_RSYSERR,
        408: _S.ESME_RMSGQFUL,
        413: _S.ESME_RINVMSGLEN,
        429: _S.ESME_RTHROTTLED,
    }
)


def upstream_status(
    *, http_status: int | None, common_code: int | None, temporary: bool
) -> CommandStatus:
    """The submit_sm_resp status when Common did not take a message (accept = "upstream").

    Temporary trouble is always 0x58, 0x14 or 0x08, the statuses ESMEs retry:
    429 or result code 3 (throttling) -> RTHROTTLED; timeouts, connection
    failures and temporary refusals of a message in a 200 answer (no HTTP
    error) -> RMSGQFUL, which also makes Kannel pause before resending; 5xx and
    temporary refusals in an HTTP error -> RSYSERR. Permanent refusals:
    UPSTREAM_CODE_STATUS by Common code, then UPSTREAM_HTTP_STATUS, else
    RSUBMITFAIL.
    """
    if http_status == 429 or (temporary and common_code == 3):
        return _S.ESME_RTHROTTLED
    if temporary or (http_status is not None and http_status >= 500):
        if http_status is None or http_status == 408:
            return _S.ESME_RMSGQFUL
        return _S.ESME_RSYSERR
    if common_code is not None:
        status = UPSTREAM_CODE_STATUS.get(common_code)
        if status is not None:
            return status
    if http_status is None:
        return _S.ESME_RSUBMITFAIL
    return UPSTREAM_HTTP_STATUS.get(http_status, _S.ESME_RSUBMITFAIL)
