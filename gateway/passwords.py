"""Salted password hashes for SMPP accounts: scrypt, compared in constant time.

The format is `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost can
be raised later without invalidating stored hashes. SMPP passwords are at most
8 octets on the wire (some ESMEs send more), which makes a slow hash the only
protection a leaked config file has.

What is hashed is octets, never characters: the password field of a bind is a
C-Octet String (SMPP 3.4 section 4.1.1) whose character set the protocol does
not name, so the gateway compares exactly the octets the ESME sends. The hash
tool turns a typed password into the octets the ESME will send: UTF-8 by
default, Latin-1 for ESMEs configured in Latin-1 (`hash-password --encoding`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

_PREFIX = "scrypt"
_LOG2_N = 14
_R = 8
_P = 1
# The codec reads passwords of up to 16 octets (gateway/smpp/pdu.py, lenient
# beyond SMPP 3.4's 8): a longer one could never be sent, so never verify.
MAX_PASSWORD_OCTETS = 16
ENCODINGS = ("utf-8", "latin-1")


def password_octets(password: str, encoding: str = "utf-8") -> bytes:
    """The octets an ESME sends for `password` typed in `encoding`.

    ValueError when they cannot be sent in a bind: not encodable, a NUL, empty
    or longer than MAX_PASSWORD_OCTETS.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
    try:
        octets = password.encode(encoding)
    except UnicodeEncodeError:
        raise ValueError(f"the password has characters {encoding} cannot encode") from None
    if not octets:
        raise ValueError("empty password")
    if b"\0" in octets:
        raise ValueError("a NUL ends the password field of a bind")
    if len(octets) > MAX_PASSWORD_OCTETS:
        raise ValueError(
            f"{len(octets)} octets in {encoding}: a bind carries at most {MAX_PASSWORD_OCTETS}"
        )
    return octets


def hash_password(password: bytes | str, *, salt: bytes | None = None) -> str:
    """The stored form of `password`: its octets, or a str's UTF-8 octets."""
    octets = password.encode() if isinstance(password, str) else password
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(octets, salt=salt, n=1 << _LOG2_N, r=_R, p=_P, dklen=32)
    return "$".join(
        (
            _PREFIX,
            str(_LOG2_N),
            str(_R),
            str(_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def is_password_hash(value: str) -> bool:
    try:
        _parse(value)
    except ValueError:
        return False
    return True


def _parse(value: str) -> tuple[int, int, int, bytes, bytes]:
    parts = value.split("$")
    if len(parts) != 6 or parts[0] != _PREFIX:
        raise ValueError("not a scrypt hash")
    log2_n, r, p = (int(x) for x in parts[1:4])
    if not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("scrypt parameters out of range")
    return log2_n, r, p, base64.b64decode(parts[4]), base64.b64decode(parts[5])


def verify_password(password: bytes, stored: str) -> bool:
    """True when the octets `password` match; slow on purpose, so run it off the reactor."""
    try:
        log2_n, r, p, salt, expected = _parse(stored)
    except ValueError:
        return False
    digest = hashlib.scrypt(password, salt=salt, n=1 << log2_n, r=r, p=p, dklen=len(expected))
    return hmac.compare_digest(digest, expected)
