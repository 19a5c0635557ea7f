"""Vendor fields: Common's premium fields and customParameters, from an account's
config and from the vendor TLVs (SMPP 3.4 section 5.3.2, tags 0x1400-0x3FFF) it maps.

Responsible for what those values may be (`premium_problem`,
`vendor_field_problem`, `vendor_type_problem`) and how a TLV's octets read
(`VendorTlv.decode`). Pure; the config checks with these, admission applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

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


__all__ = [
    "CUSTOM_PREFIX",
    "PREMIUM_FIELDS",
    "PREMIUM_TYPES",
    "VENDOR_TAGS",
    "VENDOR_TYPES",
    "VendorTlv",
    "default_vendor_type",
    "premium_problem",
    "vendor_field_problem",
    "vendor_type_problem",
]
