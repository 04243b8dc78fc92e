"""Fault injection: what share of a provider's requests fail, and how, drawn from a seeded generator.

``POST /_emulator/faults`` merges a JSON object such as ``{"sendgrid": {"503": 0.1}, "seed": 42}``. Per provider:

    drop, 429, 500, 503    shares of requests cut off or answered with that status (both providers)
    403                    SendGrid: the sender is not a verified Sender Identity; FCM: PERMISSION_DENIED
    401                    FCM: UNAUTHENTICATED, as for an access token it does not accept
    latency_ms             delay before every answer; retry_after: the Retry-After it sends
    reject_api_key         SendGrid: every mail/send answers 401, as for a revoked API key
    reject_token_exchange  FCM: Google's token endpoint answers 400 invalid_grant, so google-auth raises RefreshError
    *_tokens               FCM: device tokens that always get UNREGISTERED, INVALID_ARGUMENT or SENDER_ID_MISMATCH
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any

from notifier.errors import FaultsError

PROVIDERS = ("sendgrid", "fcm")

# Per-request faults in the order the one uniform draw is compared against them (new kinds go last, so a seed
# draws what it drew before).
DROP, RATE_LIMITED, INTERNAL, UNAVAILABLE, UNAUTHORIZED, FORBIDDEN = "drop", "429", "500", "503", "401", "403"
_DRAWN = (DROP, RATE_LIMITED, INTERNAL, UNAVAILABLE, UNAUTHORIZED, FORBIDDEN)
_DRAWN_BY = {"sendgrid": (DROP, RATE_LIMITED, INTERNAL, UNAVAILABLE, FORBIDDEN), "fcm": _DRAWN}
_TOKEN_LISTS = ("unregistered_tokens", "invalid_tokens", "sender_mismatch_tokens")
_FLAGS = {"sendgrid": ("reject_api_key",), "fcm": ("reject_token_exchange",)}  # on or off for every request
_COMMON = {"latency_ms", "retry_after"}
_KEYS = {"sendgrid": {*_COMMON, *_DRAWN_BY["sendgrid"], *_FLAGS["sendgrid"]},
         "fcm": {*_COMMON, *_DRAWN_BY["fcm"], *_TOKEN_LISTS, *_FLAGS["fcm"]}}


@dataclass(frozen=True)
class ProviderFaults:
    """How one provider misbehaves: shares of requests per fault kind, delay, and tokens that always fail."""

    shares: dict[str, float] = field(default_factory=dict)  # keys from _DRAWN
    latency_ms: float = 0.0
    retry_after: int = 1
    unregistered_tokens: frozenset[str] = frozenset()
    invalid_tokens: frozenset[str] = frozenset()
    sender_mismatch_tokens: frozenset[str] = frozenset()
    reject_api_key: bool = False  # SendGrid only
    reject_token_exchange: bool = False  # FCM only: Google's token endpoint

    @property
    def thresholds(self) -> tuple[tuple[float, str], ...]:
        """Cumulative upper bounds for one uniform draw; empty when nothing is to be drawn."""
        out, total = [], 0.0
        for kind in _DRAWN:
            share = self.shares.get(kind, 0.0)
            if share > 0:
                total += share
                out.append((total, kind))
        return tuple(out)

    @property
    def token_faults(self) -> dict[str, str]:
        """Device token → the FCM error code it always gets."""
        out = dict.fromkeys(self.sender_mismatch_tokens, "SENDER_ID_MISMATCH")
        out.update(dict.fromkeys(self.invalid_tokens, "INVALID_ARGUMENT"))
        out.update(dict.fromkeys(self.unregistered_tokens, "UNREGISTERED"))
        return out

    def merged(self, provider: str, update: Any) -> ProviderFaults:
        """This configuration with the keys of a JSON object applied on top; raises FaultsError."""
        if not isinstance(update, dict):
            raise FaultsError(f"{provider}: expected an object")
        unknown = sorted(set(update) - _KEYS[provider])
        if unknown:
            raise FaultsError(f"{provider}: unknown keys {', '.join(unknown)}")
        shares, changes = dict(self.shares), {}
        for key, value in update.items():
            if key in _DRAWN:
                shares[key] = _number(provider, key, value, 0.0, 1.0)
            elif key == "latency_ms":
                changes[key] = _number(provider, key, value, 0.0, 600_000.0)
            elif key == "retry_after":
                changes[key] = int(_number(provider, key, value, 0.0, 86_400.0))
            elif key in _FLAGS[provider]:
                if not isinstance(value, bool):
                    raise FaultsError(f"{provider}.{key}: expected true or false")
                changes[key] = value
            else:
                if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                    raise FaultsError(f"{provider}.{key}: expected a list of strings")
                changes[key] = frozenset(value)
        if sum(shares.values()) > 1.0 + 1e-9:
            raise FaultsError(f"{provider}: the shares of {', '.join(_DRAWN_BY[provider])} add up to more than 1")
        return replace(self, shares=shares, **changes)

    def as_json(self, provider: str) -> dict[str, Any]:
        out: dict[str, Any] = {kind: self.shares.get(kind, 0.0) for kind in _DRAWN_BY[provider]}
        out.update(latency_ms=self.latency_ms, retry_after=self.retry_after)
        out.update({flag: getattr(self, flag) for flag in _FLAGS[provider]})
        return out


def _number(provider: str, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise FaultsError(f"{provider}.{key}: expected a number from {low:g} to {high:g}")
    return float(value)


def _rng(seed: int | None, provider: str) -> random.Random:
    """One generator per provider, so one provider's traffic does not shift the other's draws; unseeded: OS entropy."""
    return random.Random(None if seed is None else f"{seed}:{provider}")


class FaultPlan:
    """The current faults of every provider, each with its own seeded generator so draws are reproducible."""

    def __init__(self, seed: int | None = None) -> None:
        self.providers = {p: ProviderFaults() for p in PROVIDERS}
        self._thresholds = {p: () for p in PROVIDERS}
        self.token_faults: dict[str, str] = {}
        self.seed = seed
        self._rngs = {p: _rng(seed, p) for p in PROVIDERS}

    def update(self, body: Any) -> None:
        """Merge a partial configuration such as ``{"fcm": {"503": 0.1}, "seed": 42}``; all or nothing."""
        if not isinstance(body, dict):
            raise FaultsError("expected a JSON object")
        unknown = sorted(set(body) - {*PROVIDERS, "seed"})
        if unknown:
            raise FaultsError(f"unknown keys {', '.join(unknown)}")
        seed = body.get("seed", self.seed)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise FaultsError("seed: expected an integer")
        merged = {p: self.providers[p].merged(p, body[p]) if p in body else self.providers[p] for p in PROVIDERS}
        self.providers = merged
        self._thresholds = {p: f.thresholds for p, f in merged.items()}
        self.token_faults = merged["fcm"].token_faults
        if "seed" in body:
            self.seed = seed
            self._rngs = {p: _rng(seed, p) for p in PROVIDERS}

    def draw(self, provider: str) -> str | None:
        """The fault this request of ``provider`` gets, or None; draws only when some share is set."""
        thresholds = self._thresholds[provider]
        if not thresholds:
            return None
        u = self._rngs[provider].random()
        for bound, kind in thresholds:
            if u < bound:
                return kind
        return None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {p: f.as_json(p) for p, f in self.providers.items()}
        fcm = self.providers["fcm"]
        for key in _TOKEN_LISTS:
            out["fcm"][key] = sorted(getattr(fcm, key))
        out["seed"] = self.seed
        return out
