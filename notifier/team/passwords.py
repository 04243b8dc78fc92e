"""Passwords of the dashboard's people (and of its shared admin before a team): scrypt hashes with a sane cost,
checked in constant time, and the rule a new password must meet."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from notifier.errors import ConfigError

SCHEME = "scrypt"
MIN_PASSWORD_LENGTH = 12
_HASH = re.compile(r"^scrypt\$(\d{1,7})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9_-]{16,})\$([A-Za-z0-9_-]{32,})$")
# scrypt's cost: 2**15 × 8 × 128 bytes = 32 MiB and about 0.1 s a try on one core; OWASP's minimum is 2**17 × 8 × 1
# with less memory per try, or 2**15 with r=8: the same work.
COST = (2**15, 8, 1)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


def hash_password(password: str, *, cost: tuple[int, int, int] = COST) -> str:
    """``scrypt$N$r$p$salt$hash``: what NOTIFIER_ADMIN_PASSWORD may hold instead of the password itself."""
    n, r, p = cost
    salt = secrets.token_bytes(16)
    return f"{SCHEME}${n}${r}${p}${_b64(salt)}${_b64(_scrypt(password, salt, n, r, p))}"


def check_password_hash(value: str, setting: str = "NOTIFIER_ADMIN_PASSWORD") -> str:
    """``value`` if it is a well-formed hash with a sane cost, else a ConfigError naming ``setting``."""
    m = _HASH.match(value)
    if m is None:
        raise ConfigError(f"{setting}: not a password hash (expected scrypt$N$r$p$salt$hash, from: notifier admin "
                          "hash-password)")
    n, r, p = int(m[1]), int(m[2]), int(m[3])
    if n < 2**14 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or n * r * 128 > 256 * 1024 * 1024:
        raise ConfigError(f"{setting}: scrypt cost N={n}, r={r}, p={p} is outside what notifier accepts "
                          "(N a power of two from 16384, r 1-32, p 1-16, at most 256 MiB)")
    return value


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the hash ``stored``, in time that does not depend on where they differ."""
    m = _HASH.match(stored)
    if m is None or len(password) > 1024:
        return False
    n, r, p, salt, want = int(m[1]), int(m[2]), int(m[3]), _unb64(m[4]), _unb64(m[5])
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), want)


def weak_password(password: str) -> str | None:
    """Why ``password`` is too weak for an admin, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"at least {MIN_PASSWORD_LENGTH} characters"
    if len(set(password)) < 5:
        return "too few different characters"
    return None
