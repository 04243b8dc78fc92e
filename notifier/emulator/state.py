"""Everything the emulator remembers, in memory: accepted messages, counters, faults, issued tokens, trusted keys."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from notifier.emulator.faults import FaultPlan


class EmulatorState:
    """The one mutable object behind every endpoint; the server runs on one event loop, so no locks."""

    def __init__(self, seed: int | None = None) -> None:
        self.faults = FaultPlan(seed)
        self.emails: list[dict[str, Any]] = []
        self.pushes: list[dict[str, Any]] = []
        self.requests: Counter[tuple[str, str]] = Counter()  # (endpoint, status or "drop") → count
        self.injected: Counter[tuple[str, str]] = Counter()  # (provider, fault kind) → count
        self.access_tokens: set[str] = set()
        self.public_keys: dict[str, Any] = {}  # private_key_id → RSA public key of credentials we trust
        self.sequence = itertools.count(1)  # numbers FCM message names

    def count(self, endpoint: str, status: int | str) -> None:
        self.requests[endpoint, str(status)] += 1

    def injected_fault(self, provider: str, kind: str) -> None:
        self.injected[provider, kind] += 1

    def reset(self) -> None:
        """Forget messages, counters and faults; keep issued tokens and keys so running clients stay authorized."""
        self.faults = FaultPlan()
        self.emails.clear()
        self.pushes.clear()
        self.requests.clear()
        self.injected.clear()

    def stats(self) -> dict[str, Any]:
        requests: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.requests.items()):
            requests.setdefault(endpoint, {})[status] = n
        faults: dict[str, dict[str, int]] = {}
        for (provider, kind), n in sorted(self.injected.items()):
            faults.setdefault(provider, {})[kind] = n
        return {
            "requests": requests,
            "emails_accepted": len(self.emails),
            "pushes_accepted": len(self.pushes),
            "faults": faults,
            "access_tokens": len(self.access_tokens),
        }
