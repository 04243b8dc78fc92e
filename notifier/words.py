"""What the ledger's codes say to people, in one place: delivery states, phases, skip reasons, categories, waits, and
a send's waves ("30 days before Playlist transfer" for ``playlist-transfer@P30D``).

The CLI prints them in English, the source text; the dashboard in the reader's language, through its catalog
(``python -m notifier.web.locales`` extracts the messages of this module too). The codes stay beside the words
wherever a reader may need them: ``--json``, logs, ``campaign retry --reason``.
"""

from __future__ import annotations

import gettext as _gettext
import re
from collections.abc import Sequence
from datetime import time, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from notifier.campaign import Campaign, Deadline
from notifier.ledger.states import WINDOW_WAIT_TICK, DeliveryState, Phase, ReportState, SkipReason, TickCount
from notifier.planner import parse_send_key

if TYPE_CHECKING:
    from notifier.review import Sample

__all__ = ["BLOCKED", "ENGLISH", "Translator", "Words", "tick_word", "window_wait"]


def _(message: str) -> str:
    """Marks a message for the dashboard's catalog; it is translated where it is shown."""
    return message


class Translator(Protocol):
    """What the words need of a language: gettext's two functions (``gettext.NullTranslations``: English)."""

    def gettext(self, message: str) -> str: ...
    def ngettext(self, singular: str, plural: str, n: int) -> str: ...


ENGLISH: Translator = _gettext.NullTranslations()

SKIP_REASONS: dict[str, str] = {
    SkipReason.DEADLINE_PASSED.value: _("its deadline had passed"),
    SkipReason.ACTION_DONE.value: _("they had already done what it asks"),
    SkipReason.CANCELLED.value: _("the campaign was cancelled"),
    SkipReason.NO_ADDRESS.value: _("no address or push token"),
    SkipReason.UNCERTAIN.value: _("the provider may already have it (no answer came), and the campaign says not to "
                                  "risk a second copy"),
    SkipReason.SUPERSEDED.value: _("a later reminder for the same deadline was already due"),
    SkipReason.SUPPRESSED.value: _("the address or token is on the suppression list"),
    SkipReason.NOT_IN_AUDIENCE.value: _("they no longer meet the campaign's or the deadline's condition (where)"),
    SkipReason.CAPPED.value: _("the daily cap across campaigns was full on every day left before the deadline"),
}
STATES: dict[str, str] = {
    DeliveryState.PENDING.value: _("pending"), DeliveryState.QUEUED.value: _("queued"),
    DeliveryState.SENDING.value: _("sending"), DeliveryState.SENT.value: _("sent"),
    DeliveryState.SKIPPED.value: _("skipped"), DeliveryState.FAILED.value: _("failed"),
    ReportState.PLANNED.value: _("planned"),  # a send whose rows do not exist yet: no state of a row
}
PHASES: dict[str, str] = {
    Phase.DRAFT.value: _("draft"), Phase.SCHEDULED.value: _("scheduled"), Phase.SENDING.value: _("sending"),
    Phase.BLOCKED.value: _("blocked"), Phase.FINISHED.value: _("finished"), Phase.PAUSED.value: _("paused"),
    Phase.CANCELLED.value: _("cancelled"),
}
BLOCKED = _("the copy changed since it was approved: schedule again to approve it")  # see notifier.approval
CATEGORIES = {
    "service": _("service: reaches those who unsubscribed from marketing"),
    "marketing": _("marketing: honours opt-outs"),
}

# The ledger's text for a row that waits for the recipient's delivery window (written by the dispatcher).
_WINDOW_WAIT = "waiting for the delivery window ({start}–{end} local time)"
_WINDOW_WAIT_RE = re.compile(r"waiting for the delivery window \((\d\d:\d\d)–(\d\d:\d\d) local time\)")


def window_wait(window: tuple[time, time]) -> str:
    """The ledger's text for a row that waits until the recipient's window opens (its last error)."""
    return _WINDOW_WAIT.format(start=f"{window[0]:%H:%M}", end=f"{window[1]:%H:%M}")


def _window_opens(error: str | None) -> str | None:
    """"08:00" when ``error`` is the ledger's text of a wait for the delivery window, else None."""
    m = _WINDOW_WAIT_RE.fullmatch(error or "")
    return m[1] if m else None


# The ledger's text for a row that waits for a day under the daily cap across campaigns (notifier.daily_cap).
_CAP_WAIT = "waiting for the daily cap"


def cap_wait(limit: int, channel: str, by: Sequence[str]) -> str:
    """The ledger's text for a row that waits for the next day: the cap, and the campaigns that took today's
    places (ids: no personal data)."""
    return f"{_CAP_WAIT} ({limit} {channel} a day across campaigns; today's taken by {', '.join(by) or 'others'})"


def cap_full(limit: int, channel: str, by: Sequence[str]) -> str:
    """The ledger's text for a row skipped as capped: the cap was full on every day left before its deadline."""
    return f"{cap_wait(limit, channel, by)}{_CAP_FULL}"


_CAP_FULL = ", on every day left before the deadline"
_CAP_WAIT_RE = re.compile(re.escape(_CAP_WAIT) + r" \((\d+) (\w+) a day across campaigns; today's taken by (.*)\)"
                          rf"(?:{re.escape(_CAP_FULL)})?")  # cap_wait's text; cap_full adds the tail


def _cap_taken(error: str | None) -> tuple[int, str] | None:
    """(the cap, who took the day) when ``error`` is the ledger's text of a row the daily cap held back, else None."""
    m = _CAP_WAIT_RE.fullmatch(error or "")
    return (int(m[1]), m[3]) if m else None


def tick_word(state: str, error: str | None) -> str:
    """How a tick counts one outcome (a ``TickCount``): its state; for a row pending again, "waiting for 08:00 local"
    when it waits for the recipient's window (``WINDOW_WAIT_TICK``), "waiting for the daily cap" when the cap
    across campaigns was full today, else "retry"."""
    if state != DeliveryState.PENDING:
        return str(state)  # an outcome is sent, failed or skipped: TickCount's words
    if (error or "").startswith(_CAP_WAIT):
        return TickCount.CAP_WAIT.value
    opens = _window_opens(error)
    return WINDOW_WAIT_TICK.format(opens=opens) if opens else TickCount.RETRY.value


class Words:
    """The vocabulary in one language (``ENGLISH`` for the CLI, a page's catalog on the dashboard)."""

    def __init__(self, translator: Translator = ENGLISH) -> None:
        self._t = translator

    def _all(self, table: dict[str, str]) -> dict[str, str]:
        gettext = self._t.gettext
        return {code: gettext(message) for code, message in table.items()}

    @cached_property
    def skip(self) -> dict[str, str]:
        return self._all(SKIP_REASONS)

    @cached_property
    def state(self) -> dict[str, str]:
        return self._all(STATES)

    @cached_property
    def phase(self) -> dict[str, str]:
        return self._all(PHASES)

    @cached_property
    def category(self) -> dict[str, str]:
        return self._all(CATEGORIES)

    @cached_property
    def blocked(self) -> str:
        """Why a blocked campaign sends nothing, and what to do."""
        return self._t.gettext(BLOCKED)

    def skipped(self, reason: str | None) -> str:
        """A skip reason in words, the code beside them: "its deadline had passed (deadline_passed)"."""
        if not reason:
            return "-"
        words = self.skip.get(reason)
        return f"{words} ({reason})" if words else reason

    def reason(self, state: str, skip_reason: str | None, last_error: str | None, nothing: str = "-") -> str:
        """Why a message is where it is: a skip's reason (its code beside it), a wait, or a failure's error."""
        parts = [self.skipped(skip_reason)] if skip_reason else []
        if last_error:
            parts.append(self.detail(state, last_error))
        return "; ".join(parts) or nothing

    def detail(self, state: str, error: str) -> str:
        """A row's last error as its reason shows it: a pending row's wait in words, who took the day of a row the
        daily cap skipped, any other error as it is."""
        if state == DeliveryState.PENDING:
            return self.waiting(error)
        cap = _cap_taken(error)
        if cap is None:
            return error
        return self._t.gettext("%(cap)s, taken by %(by)s") % {"cap": self._per_day(cap[0]), "by": cap[1]}

    def waiting(self, error: str) -> str:
        """Why a pending row waits: "waiting for 08:00 local" for the recipient's window, the next day when the daily
        cap across campaigns is taken today, else the retry's reason."""
        gettext = self._t.gettext
        opens = _window_opens(error)
        if opens:
            return gettext("waiting for %(time)s local") % {"time": opens}
        cap = _cap_taken(error)
        if cap:
            return gettext("waiting for the next day: the daily cap across campaigns (%(cap)s) is taken today by "
                           "%(by)s") % {"cap": self._per_day(cap[0]), "by": cap[1]}
        return gettext("waiting to retry: %(reason)s") % {"reason": error}

    def _per_day(self, limit: int) -> str:
        return self._t.ngettext("%(num)d message a day", "%(num)d messages a day", limit) % {"num": limit}

    def never_sent(self, campaign: Campaign, sample: Sample, channel: str) -> str:
        """Why a sample's message on ``channel`` is never sent: "never sent: this deadline is announced by email
        only"; or the channel does carry its deadlines, merged otherwise, in other messages; or only some of them."""
        gettext = self._t.gettext
        deadlines = [campaign.deadline(d) for d in dict.fromkeys(i.deadline for i in sample.items)]
        on = [channel in d.channels for d in deadlines]
        one = len(deadlines) == 1
        if all(on):
            message = (_("never sent: %(channel)s carries this deadline in another message") if one else
                       _("never sent: %(channel)s carries these deadlines in other messages"))
        elif any(on):
            message = _("never sent: not every deadline of it is announced by %(channel)s")
        else:
            message = (_("never sent: this deadline is announced by %(channels)s only") if one else
                       _("never sent: these deadlines are announced by %(channels)s only"))
        channels = ", ".join(ch for ch in campaign.channels if any(ch in d.channels for d in deadlines))
        return gettext(message) % {"channel": channel, "channels": channels}

    def send(self, campaign: Campaign, send_key: str) -> str:
        """A send as people say it: "30 days before Playlist transfer"; a merged one "30 days before Playlist
        transfer, and 61 days before Refund"; a key the campaign no longer plans (an earlier file), as it is."""
        gettext = self._t.gettext
        parts = []
        for item in parse_send_key(send_key):
            d = next((x for x in campaign.deadlines if x.id == item.deadline), None)
            wave = next((w for w in d.waves if w.label == item.wave), None) if d else None
            if d is None or wave is None:
                return send_key
            parts.append(gettext("%(span)s before %(deadline)s") % {"span": self.span(wave.delta),
                                                                     "deadline": d.label or d.id})
        if len(parts) == 1:
            return parts[0]
        return gettext("%(first)s, and %(last)s") % {"first": ", ".join(parts[:-1]), "last": parts[-1]}

    def waves(self, deadline: Deadline) -> str:
        """Every wave of a deadline: "30 days, 7 days, 1 day before Playlist transfer"."""
        spans = ", ".join(self.span(w.delta) for w in deadline.waves)
        return self._t.gettext("%(span)s before %(deadline)s") % {"span": spans,
                                                                  "deadline": deadline.label or deadline.id}

    def span(self, delta: timedelta) -> str:
        """"30 days", "6 hours", "1 day 6 hours": a wave's length in whole units."""
        ngettext = self._t.ngettext
        minutes = int(delta.total_seconds() // 60)
        days, hours, mins = minutes // 1440, minutes % 1440 // 60, minutes % 60
        parts = [ngettext("%(num)d day", "%(num)d days", days) % {"num": days} if days else "",
                 ngettext("%(num)d hour", "%(num)d hours", hours) % {"num": hours} if hours else "",
                 ngettext("%(num)d minute", "%(num)d minutes", mins) % {"num": mins} if mins or not minutes else ""]
        return " ".join(p for p in parts if p)
