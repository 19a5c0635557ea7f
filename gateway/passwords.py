"""Salted password hashes for SMPP accounts: scrypt, compared in constant time.

The format is `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost can
be raised later without invalidating stored hashes. SMPP passwords are at most
8 octets on the wire (some ESMEs send more), which makes a slow hash the only
protection a leaked config file has.
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


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=1 << _LOG2_N, r=_R, p=_P, dklen=32)
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


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches; slow on purpose, so run it off the reactor."""
    try:
        log2_n, r, p, salt, expected = _parse(stored)
    except ValueError:
        return False
    digest = hashlib.scrypt(
        password.encode("latin-1", "replace"),
        salt=salt,
        n=1 << log2_n,
        r=r,
        p=p,
        dklen=len(expected),
    )
    return hmac.compare_digest(digest, expected)
