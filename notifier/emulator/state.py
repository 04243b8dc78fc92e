"""Everything the emulator remembers, in memory: accepted messages, counters, faults, issued tokens, trusted keys,
and the Event Webhook's queue (``events``).

Two log modes. ``full`` (the default) keeps every accepted email and push as a dict, for tests that read what was
sent. ``ids`` keeps no bodies, addresses or tokens: per accepted message only the ``delivery_id`` the sender put in
it (email: the personalization's ``custom_args``; push: the message's ``data``), as a 64-bit integer in an
``array('q')``, or ``NO_ID`` when there was none (or it was not a whole number below 2**63), so ten million
messages take 80 MB instead of gigabytes.
"""

from __future__ import annotations

import itertools
from array import array
from collections import Counter
from typing import Any

from notifier.emulator.events import EventFeed, EventsConfig, EventSigner
from notifier.emulator.faults import FaultPlan

LOG_MODES = ("full", "ids")
NO_ID = -1  # an accepted message that carried no usable delivery_id (ids mode)


def delivery_id_of(value: Any) -> int:
    """The id as a 64-bit integer for the compact log, or NO_ID; cheap, since it runs once per message."""
    if type(value) is str and 0 < len(value) < 19 and value.isascii() and value.isdigit():
        return int(value)
    return NO_ID


class EmulatorState:
    """The one mutable object behind every endpoint; the server runs on one event loop, so no locks."""

    def __init__(self, seed: int | None = None, log: str = "full", events: EventsConfig | None = None,
                 events_signer: EventSigner | None = None) -> None:
        if log not in LOG_MODES:
            raise ValueError(f"log mode must be one of {', '.join(LOG_MODES)}, not {log!r}")
        self.log = log
        self.faults = FaultPlan(seed)
        self.emails: list[dict[str, Any]] = []  # full mode only
        self.pushes: list[dict[str, Any]] = []  # full mode only
        self.email_ids = array("q")  # ids mode only: one delivery_id (or NO_ID) per accepted email
        self.push_ids = array("q")  # ids mode only: one delivery_id (or NO_ID) per accepted push
        self.requests: Counter[tuple[str, str]] = Counter()  # (endpoint, status or "drop") → count
        self.injected: Counter[tuple[str, str]] = Counter()  # (provider, fault kind) → count
        self.access_tokens: set[str] = set()
        self.public_keys: dict[str, Any] = {}  # private_key_id → RSA public key of credentials we trust
        self.sequence = itertools.count(1)  # numbers FCM message names
        self.events = EventFeed(events or EventsConfig(), events_signer or EventSigner.generate(),
                                without_url=log == "full")  # the Event Webhook: what accepted mail posts back

    @property
    def ids_only(self) -> bool:
        return self.log == "ids"

    @property
    def emails_accepted(self) -> int:
        return len(self.email_ids) if self.ids_only else len(self.emails)

    @property
    def pushes_accepted(self) -> int:
        return len(self.push_ids) if self.ids_only else len(self.pushes)

    def count(self, endpoint: str, status: int | str) -> None:
        self.requests[endpoint, str(status)] += 1

    def injected_fault(self, provider: str, kind: str) -> None:
        self.injected[provider, kind] += 1

    def email_page(self, since: int, limit: int | None) -> list[dict[str, Any]]:
        """Accepted emails from offset ``since``; in ids mode each entry is only ``{"delivery_id": int | None}``."""
        return self._page(self.email_ids if self.ids_only else self.emails, since, limit)

    def push_page(self, since: int, limit: int | None) -> list[dict[str, Any]]:
        """Accepted pushes from offset ``since``; in ids mode each entry is only ``{"delivery_id": int | None}``."""
        return self._page(self.push_ids if self.ids_only else self.pushes, since, limit)

    def _page(self, log: list[dict[str, Any]] | array[int], since: int, limit: int | None) -> list[dict[str, Any]]:
        part = log[since:] if limit is None else log[since:since + limit]
        if isinstance(part, array):
            return [{"delivery_id": None if i == NO_ID else i} for i in part]
        return part

    def reset(self) -> None:
        """Forget messages, counters, faults and pending events; keep issued tokens and keys so running clients stay
        authorized (and the Event Webhook key its receiver trusts); events go back to the start-up configuration."""
        self.faults = FaultPlan()
        self.emails.clear()
        self.pushes.clear()
        self.email_ids = array("q")
        self.push_ids = array("q")
        self.requests.clear()
        self.injected.clear()
        self.events.reset()

    def stats(self) -> dict[str, Any]:
        requests: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.requests.items()):
            requests.setdefault(endpoint, {})[status] = n
        faults: dict[str, dict[str, int]] = {}
        for (provider, kind), n in sorted(self.injected.items()):
            faults.setdefault(provider, {})[kind] = n
        return {
            "log": self.log,
            "requests": requests,
            "emails_accepted": self.emails_accepted,
            "pushes_accepted": self.pushes_accepted,
            "faults": faults,
            "access_tokens": len(self.access_tokens),
        }
