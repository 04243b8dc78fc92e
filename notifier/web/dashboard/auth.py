"""Who may use the dashboard: the admin password (kept only as a scrypt hash), signed session cookies carrying a
CSRF token, and a limit on failed logins.

A session is a signed cookie: ``base64(json) . HMAC-SHA256`` under a key derived from ``NOTIFIER_SECRET_KEY``. It
names the user, its CSRF token, its expiry and a fingerprint of the password hash, so changing the password ends
every session; a logout ends its session at once, kept in the ledger for every serving process
(``access.Dashboard.end``). A device cookie, signed the same way under a key of its own, marks a browser that has
logged in before, so a guesser cannot lock it out (:class:`Devices`). :class:`Login` is the seam for another way
of proving who someone is (an SSO proxy, say): the pages only ever see an :class:`Identity`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self

from notifier.team.passwords import COST as COST
from notifier.team.passwords import MIN_PASSWORD_LENGTH as MIN_PASSWORD_LENGTH
from notifier.team.passwords import check_password_hash as check_password_hash
from notifier.team.passwords import hash_password as hash_password
from notifier.team.passwords import verify_password as verify_password
from notifier.team.passwords import weak_password as weak_password


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- who is logged in -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Someone the dashboard trusts, with the CSRF token of their session: ``admin`` (the shared password of a
    ledger without a team) or ``person:<id>`` with their role and email, read from the ledger on each request."""

    user: str
    csrf: str
    expires: int  # Unix time
    epoch: int = 0  # the person's when the session began: a change of password, role or state ends it
    role: str = "viewer"  # the ledger says (access.Dashboard.confirmed); never more than that by default
    email: str = "admin"
    person_id: int | None = None


class Login(Protocol):
    """A way to prove who someone is: the password form today, an SSO proxy's assertion tomorrow."""

    def authenticate(self, user: str, password: str) -> str | None:
        """The user's name when the proof holds, else None."""


@dataclass(frozen=True)
class PasswordLogin:
    """The one admin of ``NOTIFIER_ADMIN_PASSWORD``."""

    password_hash: str
    user: str = "admin"

    def authenticate(self, user: str, password: str) -> str | None:
        return self.user if verify_password(self.password_hash, password) else None


@dataclass(frozen=True)
class _Signed:
    """Cookies whose value is a JSON document and its HMAC: what they say holds only if this server wrote it,
    before ``lifetime`` ran out and under the current password (``epoch``, a fingerprint of its hash)."""

    key: bytes
    epoch: str
    lifetime: int
    clock: Callable[[], float] = time.time
    purpose: ClassVar[bytes] = b""

    @classmethod
    def of(cls, secret: str, password_hash: str, **kw: Any) -> Self:
        if not cls.purpose:  # each kind of cookie its own key: one can never pass for another
            raise TypeError(f"{cls.__name__} needs a purpose of its own")
        key = hashlib.sha256(cls.purpose + b"\0" + secret.encode("utf-8")).digest()
        epoch = hashlib.sha256(password_hash.encode("ascii")).hexdigest()[:16]
        return cls(key, epoch, **kw)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode("ascii"), hashlib.sha256).digest())

    def _seal(self, doc: dict[str, Any]) -> str:
        payload = _b64(json.dumps({**doc, "v": self.epoch}, separators=(",", ":")).encode("utf-8"))
        return f"{payload}.{self._sign(payload)}"

    def _open(self, cookie: str | None) -> dict[str, Any] | None:
        """The document, or None (missing, forged, expired, or from before a password change)."""
        if not cookie or len(cookie) > 1024 or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not (payload.isascii() and mac.isascii()):  # a cookie a neighbour site set: nothing, not an error
            return None
        if not hmac.compare_digest(mac.encode("ascii", "replace"), self._sign(payload).encode("ascii")):
            return None
        try:
            doc = json.loads(_unb64(payload))
            fresh = doc.get("v") == self.epoch and int(doc["e"]) > self.clock()
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return doc if fresh else None


@dataclass(frozen=True)
class Sessions(_Signed):
    """Signs and reads session cookies."""

    lifetime: int = 8 * 3600
    purpose: ClassVar[bytes] = b"notifier dashboard sessions"

    def issue(self, user: str, epoch: int = 0) -> tuple[str, Identity]:
        """A new session for ``user``: the cookie's value and who it proves."""
        ident = Identity(user, secrets.token_urlsafe(32), int(self.clock()) + self.lifetime, epoch)
        return self._seal({"u": ident.user, "c": ident.csrf, "e": ident.expires, "p": epoch}), ident

    def read(self, cookie: str | None) -> Identity | None:
        """Who the cookie says (the ledger still has to confirm a person: ``access.identity``), or None."""
        doc = self._open(cookie)
        try:
            return Identity(str(doc["u"]), str(doc["c"]), int(doc["e"]), int(doc.get("p", 0))) if doc else None
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True)
class Devices(_Signed):
    """A browser that has logged in here before carries a device cookie (OWASP's "device cookies"): its failed
    logins are counted on their own and never against the cap on everyone, so a guesser who fills that cap locks
    out strangers, not the admin's own browser."""

    lifetime: int = 90 * 86400
    purpose: ClassVar[bytes] = b"notifier dashboard devices"

    def issue(self) -> str:
        return self._seal({"d": secrets.token_urlsafe(16), "e": int(self.clock()) + self.lifetime})

    def read(self, cookie: str | None) -> str | None:
        """The device's id, or None."""
        doc = self._open(cookie)
        device = doc.get("d") if doc else None
        return device if isinstance(device, str) and device else None


@dataclass(frozen=True)
class SsoFlows(_Signed):
    """A single sign-on under way (its state, nonce, PKCE verifier and where to go after), between the redirect to
    the identity provider and its answer: ten minutes."""

    lifetime: int = 600
    purpose: ClassVar[bytes] = b"notifier dashboard sso flows"

    def issue(self, flow: dict[str, str]) -> str:
        return self._seal({"f": flow, "e": int(self.clock()) + self.lifetime})

    def read(self, cookie: str | None) -> dict[str, Any] | None:
        doc = self._open(cookie)
        flow = doc.get("f") if doc else None
        return flow if isinstance(flow, dict) else None


def same_token(expected: str, given: str | None) -> bool:
    """A CSRF token check in constant time."""
    return bool(given) and hmac.compare_digest(expected.encode("utf-8"), str(given).encode("utf-8", "replace"))


# --- failed logins ----------------------------------------------------------------------------------------------


@dataclass
class LoginLimiter:
    """At most ``per_client`` failed logins per client and ``overall`` in all per ``window`` seconds (which
    slows a distributed guesser too); a success clears that client's count. A browser with a device cookie
    (:class:`Devices`) is limited on its own: its attempts neither count in all nor wait for the others'."""

    per_client: int = 5
    overall: int = 100
    window: float = 900.0
    clock: Callable[[], float] = time.monotonic
    _clients: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window:
            q.popleft()

    @staticmethod
    def _key(client: str, device: str | None) -> str:
        return f"device {device}" if device else f"client {client}"

    def retry_after(self, client: str, device: str | None = None) -> int:
        """Seconds until ``client`` (or its ``device``) may try again; 0: now."""
        with self._lock:
            return self._wait(client, device, self.clock())

    def attempt(self, client: str, device: str | None = None) -> int:
        """Count an attempt before its password is checked (so a burst in parallel is limited like one after
        another): 0 when it may go on, else the seconds to wait. A success takes it back (:meth:`succeeded`)."""
        with self._lock:
            wait = self._wait(client, device, self.clock())
            if not wait:
                self._record(client, device, self.clock())
        return wait

    def _wait(self, client: str, device: str | None, now: float) -> int:
        self._trim(self._all, now)
        q = self._clients.get(self._key(client, device), deque())
        self._trim(q, now)
        waits = [q[0] + self.window - now] if len(q) >= self.per_client else []
        if device is None and len(self._all) >= self.overall:
            waits.append(self._all[0] + self.window - now)
        return max(1, int(max(waits)) + 1) if waits else 0

    def _record(self, client: str, device: str | None, now: float) -> None:
        if len(self._clients) > 10_000:  # forget idle clients rather than grow without bound
            for key in [k for k, q in self._clients.items() if not q or q[-1] <= now - self.window]:
                del self._clients[key]
        self._clients.setdefault(self._key(client, device), deque()).append(now)
        if device is None:
            self._all.append(now)

    def failed(self, client: str, device: str | None = None) -> None:
        """An attempt that was not counted by :meth:`attempt`."""
        with self._lock:
            self._record(client, device, self.clock())

    def succeeded(self, client: str, device: str | None = None) -> None:
        """The right password: these attempts are forgotten, and the last one no longer counts in all."""
        with self._lock:
            q = self._clients.pop(self._key(client, device), None)
            if device is None and q and q[-1] in self._all:
                self._all.remove(q[-1])
