"""Common's incoming SmsMessage (seed 000, "Incoming objects") -> IncomingMo.

What always holds: :func:`incoming_mo_from_object` raises nothing but
:class:`BadCallback`, whatever the object holds, and what it returns can always
be delivered (gateway.intake.mo.check_deliverable). Besides seed 000's four
fields (messageId, destination, source, userData) it reads the optional fields
a Common SmsMessage shares with the send request (seed 001): ``dcs`` (TEXT,
GSM, UCS2: userData is text; BINARY: userData is hex octets),
``userDataHeader`` (hex, one segment of a long MO), ``sourceTON`` /
``destinationTON`` (MSISDN, SHORTNUMBER, ALPHANUMERIC; a hint, unknown names
ignored). Every other field (keyword, operator, timestamps, customParameters,
...) is ignored. Pure: the caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from gateway.addresses import TON_ALPHANUMERIC, TON_INTERNATIONAL, TON_NETWORK
from gateway.connectors.common.payloads import BadCallback
from gateway.intake.mo import Undeliverable, check_deliverable
from gateway.records import IncomingMo

__all__ = ["incoming_mo_from_object"]

# Common's TON names (seed 001, "TON") as SMPP type_of_number.
_COMMON_TON: Final[Mapping[str, int]] = MappingProxyType(
    {
        "MSISDN": TON_INTERNATIONAL,
        "SHORTNUMBER": TON_NETWORK,
        "ALPHANUMERIC": TON_ALPHANUMERIC,
    }
)
_TEXT_DCS: Final = frozenset({"TEXT", "GSM", "UCS2"})
_BINARY_DCS: Final = "BINARY"
_ID_MAX: Final = 64  # a message_id is C65 wherever SMPP carries one


def incoming_mo_from_object(obj: Mapping[str, object], *, connector: str, now: float) -> IncomingMo:
    """Check and convert one SmsMessage object; BadCallback says what is wrong."""
    if not isinstance(obj, Mapping):
        raise BadCallback("an SmsMessage must be an object")
    upstream_id = _required_text(obj, "messageId")
    if len(upstream_id) > _ID_MAX:
        raise BadCallback(f"'messageId' longer than {_ID_MAX} characters")
    source = _required_text(obj, "source")
    destination = _required_text(obj, "destination")
    if "userData" not in obj:
        raise BadCallback("missing 'userData'")
    user_data = obj["userData"]
    # An empty XML element and a JSON null both say "no text".
    if user_data is None:
        user_data = ""
    elif not isinstance(user_data, str):
        raise BadCallback("'userData' must be a string")
    text: str | None = None
    binary: bytes | None = None
    if _dcs(obj.get("dcs")) == _BINARY_DCS:
        binary = _hex(user_data, "userData")
    else:
        text = _without_lone_surrogates(user_data)
    udh = _udh(obj.get("userDataHeader"))
    mo = IncomingMo(
        upstream_id=upstream_id,
        source=source,
        destination=destination,
        text=text,
        binary=binary,
        udh=udh,
        source_ton=_ton_hint(obj.get("sourceTON")),
        dest_ton=_ton_hint(obj.get("destinationTON")),
        connector=connector,
        received_at=now,
    )
    # Refuse now, while LINK can still be told, what could not be delivered later.
    try:
        check_deliverable(mo)
    except Undeliverable as e:
        raise BadCallback(e.reason) from None
    return mo


def _required_text(obj: Mapping[str, object], name: str) -> str:
    value = obj.get(name)
    # A number as a JSON number (seed 000 types source and destination as Number).
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadCallback(f"missing or empty '{name}'")
    if not isinstance(value, str):
        raise BadCallback(f"'{name}' must be a string")
    return value.strip()


def _dcs(value: object) -> str:
    if value is None or value == "":
        return "TEXT"
    if isinstance(value, str):
        name = value.strip().upper()
        if name in _TEXT_DCS or name == _BINARY_DCS:
            return name
    raise BadCallback(f"'dcs' {_clip(value)!r} is not TEXT, GSM, UCS2 or BINARY")


def _hex(value: str, name: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise BadCallback(f"'{name}' is not hex-encoded octets") from None


def _udh(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadCallback("'userDataHeader' must be a hex string")
    octets = _hex(value, "userDataHeader")
    return octets or None


def _ton_hint(value: object) -> int | None:
    if isinstance(value, str):
        return _COMMON_TON.get(value.strip().upper())
    return None


def _without_lone_surrogates(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16 so that two halves of one pair become the character.
        return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")
    return text


def _clip(value: object) -> str:
    return str(value)[:40]
