"""Maintenance, apart from sending: rescue what workers left behind, plan and gate, make due groups into rows, purge.

What River's maintenance services (``job_rescuer``, ``job_scheduler``, ``job_cleaner``) and Oban's plugins
(``lifeline``, ``stager``, ``pruner``) do for their queues. It sends nothing: the send path (``dispatch.Dispatcher``)
claims only the rows this pass made due. It runs as the beat's ``notifier.maintain`` task in a Celery fleet, and at
the start of every tick of ``notifier dispatch`` (``Dispatcher.prepare``).

Each step runs in a transaction of its own, and a step that fails does not stop the steps after it: a campaign
whose planning or purge fails is logged and tried again next pass while the others go on; a step over the whole
ledger that fails (recovering leases, materializing, …) lets the rest of the pass run, then fails the pass with its
error, so a tick or a task never reports a broken ledger as a quiet pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from notifier import approval, daily_cap, purge
from notifier.config import Settings
from notifier.ledger import claims, holds, queries, tallies
from notifier.ledger.db import transaction
from notifier.ledger.models import CampaignRow, CampaignState
from notifier.planner import plan_zone, send_channels
from notifier.studio import store

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class MaintenanceReport:
    """What one maintenance pass did (ids and counts only, never personal data)."""

    planned_groups: int = 0
    materialized: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # campaign id → why nothing of it may be sent
    recovered: dict[str, int] = field(default_factory=dict)  # "campaign:resend|skip" → rows found uncertain
    requeued: int = 0  # rows of chunks the broker lost, due again
    purged: dict[str, int] = field(default_factory=dict)  # campaign id → recipients whose personal data was deleted
    held: str | None = None  # why this pass did nothing at all (the host's clock disagrees with the ledger's)
    failed: list[str] = field(default_factory=list)  # steps that failed ("materialize", "plan:<campaign id>", …)


def clock_hold(sessions: sessionmaker[Session], settings: Settings, now: datetime, *,
               simulated_clock: bool) -> str | None:
    """Why nothing may act at ``now``: this host's clock disagrees with the ledger's by more than
    NOTIFIER_MAX_CLOCK_SKEW_SECONDS (never for a simulated clock). Noted in the ledger for status.

    Maintenance and the send path both ask: a clock a day ahead would skip a campaign as past its deadline."""
    if simulated_clock:
        return None
    return holds.check_clock(sessions, now, timedelta(seconds=settings.max_clock_skew_seconds))


class ContentGate:
    """The approval gate, asked by maintenance and by the send path alike: which scheduled campaigns' copy may not
    be sent now (blocked, or changed since it was approved: the verdict ``status``, ``campaign list`` and the
    dashboard show, from the same ``approval.check``)."""

    def __init__(self, settings: Settings, forget: Callable[[str], None]) -> None:
        self.settings = settings
        self.forget = forget  # told of a campaign whose copy changed: what was rendered from the old copy must go
        self.fingerprints: dict[str, str] = {}  # campaign id → fingerprint of the copy being sent

    def verdicts(self, session: Session) -> dict[str, str | None]:
        """Each scheduled campaign's id → why its copy may not be sent, or None; this machine's copy of the stored
        campaigns is brought up to date first."""
        store.sync(session, self.settings)
        return {row.id: self.refusal(row) for row in queries.active_campaigns(session)}

    def refused(self, session: Session) -> dict[str, str]:
        """The scheduled campaigns nothing of which may be sent now, with why."""
        return {campaign_id: why for campaign_id, why in self.verdicts(session).items() if why}

    def refusal(self, row: CampaignRow) -> str | None:
        """Why this campaign's copy may not be sent now, else None. A copy that cannot be checked is refused."""
        try:
            verdict = approval.check(row, *self.settings.copy_dirs(row.id))
        except Exception as exc:
            log.exception("campaign %s: the approved copy could not be checked", row.id)
            return f"the approved copy could not be checked ({type(exc).__name__})"
        if self.fingerprints.get(row.id, verdict.fingerprint) != verdict.fingerprint:
            self.forget(row.id)  # a long-running process must not send what it rendered from the old copy
        self.fingerprints[row.id] = verdict.fingerprint
        return verdict.refusal or None


class Maintenance:
    """One pass over the ledger: rescue, then plan, gate and materialize, then fold the counts and purge. Sends
    nothing."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, gate: ContentGate, *,
                 simulated_clock: bool = False) -> None:
        self.sessions = sessions
        self.settings = settings
        self.gate = gate
        self.simulated_clock = simulated_clock  # a simulated clock (the demo, tests) is not checked
        self._errors: list[Exception] = []

    def run(self, now: datetime) -> MaintenanceReport:
        """Everything maintenance owes at ``now``; raises the first error of a failed ledger-wide step once every
        step has had its turn."""
        report = MaintenanceReport()
        report.held = clock_hold(self.sessions, self.settings, now, simulated_clock=self.simulated_clock)
        if report.held is not None:
            log.error("nothing sent: %s", report.held)
            return report
        self._errors = []
        self._rescue(now, report)
        self._schedule(now, report)
        self._clean(now, report)
        for campaign_id, why in report.refused.items():
            log.error("campaign %s: nothing sent: %s", campaign_id, why)
        for key, n in report.recovered.items():
            log.warning("%d rows of %s were in flight when their worker died: marked uncertain", n, key)
        if report.requeued:
            log.warning("%d queued rows were never picked up (a lost chunk): due again", report.requeued)
        if self._errors:
            raise self._errors[0]
        return report

    def _rescue(self, now: datetime, report: MaintenanceReport) -> None:
        """Rows a dead worker left ``sending`` become uncertain; rows of a chunk the broker lost are due again."""
        report.recovered = self._step(report, "recover", lambda s: claims.recover_expired(s, now)) or {}
        report.requeued = self._step(report, "requeue", lambda s: claims.requeue_lost(s, now)) or 0

    def _schedule(self, now: datetime, report: MaintenanceReport) -> None:
        """Plan the zones new recipients brought, check each campaign's copy, and materialize the groups due."""
        verdicts = self._step(report, "gate", self.gate.verdicts)
        if verdicts is None:
            return  # without the verdicts nothing is made due this pass
        report.refused = {campaign_id: why for campaign_id, why in verdicts.items() if why}
        for campaign_id in verdicts:  # each campaign alone: one that cannot be planned leaves the others planned
            try:
                with transaction(self.sessions) as s:
                    report.planned_groups += _plan(s, campaign_id)
            except Exception:
                log.exception("campaign %s: planning new zones failed; tried again next pass", campaign_id)
                report.failed.append(f"plan:{campaign_id}")
        report.materialized = self._step(report, "materialize", lambda s: queries.materialize_due(
            s, now, send_channels, exclude=report.refused)) or 0
        self._step(report, "statistics", lambda s: queries.refresh_statistics(s, report.materialized))

    def _clean(self, now: datetime, report: MaintenanceReport) -> None:
        """The live counts' deltas folded (ledger.tallies); then campaigns whose ``purge_after`` ran out: their
        recipients' personal data goes, each campaign alone."""
        self._step(report, "tallies", tallies.roll_up)
        self._step(report, "cap days", lambda s: daily_cap.forget_old_days(s, now))
        due = self._step(report, "purge", lambda s: list(purge.due(s, now))) or []
        outbox = self.settings.outbox_dir if self.settings.transport == "outbox" else None
        for campaign_id in due:
            try:
                report.purged[campaign_id] = purge.purge(self.sessions, campaign_id, now, outbox).recipients
            except Exception:  # this campaign stays due; the pass goes on
                log.exception("campaign %s: the scheduled purge failed", campaign_id)
                report.failed.append(f"purge:{campaign_id}")
                continue
            log.warning("campaign %s: purged the personal data of %d recipients (purge_after)", campaign_id,
                        report.purged[campaign_id])

    def _step(self, report: MaintenanceReport, name: str, work: Callable[[Session], T]) -> T | None:
        """A ledger-wide step in a transaction of its own: on failure the pass goes on, and fails at its end."""
        try:
            with transaction(self.sessions) as s:
                return work(s)
        except Exception as exc:
            if self._errors:  # the first is raised at the end of the pass, with its traceback; the others go here
                log.exception("maintenance: %s failed", name)
            else:
                log.error("maintenance: %s failed (%s); the other steps go on", name, type(exc).__name__)
            self._errors.append(exc)
            report.failed.append(name)
            return None


def _plan(session: Session, campaign_id: str) -> int:
    """The send groups of zones the campaign's audience gained since it was last planned; groups created."""
    row = session.get(CampaignRow, campaign_id)
    if row is None or row.state != CampaignState.SCHEDULED:
        return 0  # paused or cancelled since the verdicts were read
    return queries.plan_groups(session, row, row.scheduled_at, plan_zone)[1]
