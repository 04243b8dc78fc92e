"""Every error notifier raises on purpose, in one tree.

    NotifierError                 anything notifier raises on purpose
    ├── UserError                 bad input or a refused command: one clear line, exit code 2
    │   ├── CampaignError         a campaign file is wrong; carries every Problem (file, line, field)
    │   ├── AudienceError         an audience file cannot be read at all (row problems are Rejections)
    │   ├── CampaignStateError    a command does not fit the campaign's state (cancelled, ...)
    │   │   └── NotFound          no such campaign, recipient or file (a 404 on the dashboard)
    │   ├── ConfigError           a setting is missing or malformed
    │   ├── RenderError           a template is missing, refused by the sandbox or failed to render
    │   ├── CatalogError          a catalog is missing or unreadable
    │   ├── PreviewError          a preview asked for a locale, deadline, wave or channel the campaign lacks
    │   ├── RefundError           a refund field that cannot be shown (also a ValueError); carries ``field``
    │   ├── FaultsError           a fault configuration the emulator cannot apply
    │   ├── EventsError           an Event Webhook configuration or key the emulator cannot use; carries ``field``
    │   └── RequestRefused        notifier serve refuses a request (a bad webhook signature, an old or malformed
    │                             batch, a wrong token); carries the HTTP ``status``; nothing of it is applied
    ├── EmulatorStartError        the emulator process did not come up
    └── DeliveryError             a channel could not deliver; the dispatcher turns it into a ledger state
        ├── TransientError        try again later (retry_after seconds, when the provider said)
        │   └── ThrottledError    the provider rate-limited us (retry_after seconds)
        ├── PermanentError        this message will never go through as it is
        │   └── InvalidRecipientError  the address or token is invalid: never retry it
        └── ChannelConfigError    the channel itself cannot send (credentials refused, a token refresh fails):
                                  nothing of it goes out until an operator fixes ``setting``; not the message's fault

Tracebacks are for bugs; a UserError is printed by the CLI as one line.
"""

from __future__ import annotations

from dataclasses import dataclass


class NotifierError(Exception):
    """Base of every error notifier raises on purpose."""


class UserError(NotifierError):
    """Bad input or a refused command: the CLI prints it as one line and exits with code 2."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an input file, located as precisely as we can."""

    file: str
    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class CampaignError(UserError):
    """A campaign file is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def field(self) -> str | None:
        return self.problems[0].field


class AudienceError(UserError):
    """An audience file cannot be read at all (unknown format, missing header)."""


class CampaignStateError(UserError):
    """The command does not fit the campaign's current state, or the campaign is unknown."""


class NotFound(CampaignStateError):
    """No such campaign, recipient or file."""


class ConfigError(UserError):
    """A setting is missing or malformed."""


class RenderError(UserError):
    """A template is missing, refused by the sandbox or failed to render; names template, campaign and locale."""


class CatalogError(UserError):
    """A catalog is missing or unreadable; names the file and what to run."""


class PreviewError(UserError):
    """The preview asked for a locale, deadline, wave or channel the campaign does not have."""


class RefundError(UserError, ValueError):
    """A refund field that cannot be shown: ``field`` is refund_amount or refund_currency."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class FaultsError(UserError):
    """A fault configuration the emulator cannot apply (unknown key, share outside 0..1, ...)."""


class EventsError(UserError):
    """An Event Webhook configuration or key the emulator cannot use; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.reason = field, message


class EmulatorStartError(NotifierError):
    """The emulator process did not come up."""


class RequestRefused(UserError):
    """A webhook request we refuse, with the HTTP status to answer (401, 403, 400, 413) and why, in one line."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


class DeliveryError(NotifierError):
    """A channel could not deliver a message."""

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class TransientError(DeliveryError):
    """Worth retrying later."""

    def __init__(self, message: str, *, retry_after: float | None = None, uncertain: bool = False,
                 **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.uncertain = uncertain  # the request may have been taken before it failed (a timeout, a cut connection)


class ThrottledError(TransientError):
    """The provider rate-limited us; wait at least ``retry_after`` seconds."""


class PermanentError(DeliveryError):
    """This message will never be accepted as it is."""


class InvalidRecipientError(PermanentError):
    """The address or token is invalid; never retry it."""


class ChannelConfigError(DeliveryError):
    """The channel itself cannot send: credentials refused (401/403), a token refresh that fails, a missing key or
    sender. Nothing of this channel goes out until an operator fixes ``setting`` (an environment variable such as
    SENDGRID_API_KEY); the message is not at fault, so it waits without spending an attempt.
    """

    def __init__(self, message: str, *, setting: str, provider: str = "", status: int | None = None) -> None:
        super().__init__(message, provider=provider, status=status)
        self.setting = setting


def raised_at(exc: BaseException) -> str:
    """Where an exception was raised, as file:line of its innermost frame: a bug's place without its message,
    which may quote the data it choked on (an address, a name) and so never goes into logs or the ledger."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    return f"{tb.tb_frame.f_code.co_filename.replace(chr(92), '/').rsplit('/', 1)[-1]}:{tb.tb_lineno}"
