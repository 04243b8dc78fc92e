"""What the ledger is told from above: a zone's plan, the rule of a send's channels, the approved copy's stamp.

The ledger sits below the planner and the renderer and imports neither (tests/test_layers.py): callers pass
``notifier.planner.plan_zone`` (a :data:`ZonePlanner`), ``notifier.planner.send_channels`` (a :data:`SendChannels`)
and a ``notifier.render.Content`` (a :class:`CopyStamp`), which fit these shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Protocol

from notifier.campaign import Campaign


class CopyStamp(Protocol):
    """The approved copy as the ledger keeps it: a fingerprint of the whole and each file's digest."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def manifest(self) -> Mapping[str, str]: ...


class PlannedSend(Protocol):
    """One send of a zone's plan: it becomes one send group."""

    @property
    def send_key(self) -> str: ...

    @property
    def wave(self) -> str: ...

    @property
    def deadlines(self) -> tuple[str, ...]: ...

    @property
    def send_at(self) -> datetime: ...

    @property
    def send_at_utc(self) -> datetime: ...


class PlannedZone(Protocol):
    """Every send of a campaign for one time zone, and when each deadline falls there."""

    @property
    def sends(self) -> Sequence[PlannedSend]: ...

    @property
    def deadline_instants(self) -> Mapping[str, datetime]: ...


ZonePlanner = Callable[[Campaign, tzinfo], PlannedZone]  # campaign, zone → its plan
SendChannels = Callable[[Campaign, str, str], tuple[str, ...]]  # campaign, zone name, send key → its channels
