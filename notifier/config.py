"""Every setting, read from the environment in one place (the CLI, workers and a web app share it)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from notifier.errors import ConfigError

# The shipped campaign, its templates and catalogs: package data in a wheel; in the source tree notifier/_data/* are
# links to the folders at the project's root, resolved here so that paths read as they are.
SHIPPED = {name: (Path(__file__).resolve().parent / "_data" / name).resolve()
           for name in ("templates", "locales", "campaigns")}
# Installed from a wheel, the shipped folders are files inside the package (no links): they are read, never written.
_INSTALLED = not (Path(__file__).resolve().parent / "_data" / "campaigns").is_symlink()
_SETTING_OF = {"templates": "NOTIFIER_TEMPLATES_DIR", "locales": "NOTIFIER_LOCALES_DIR",
               "campaigns": "NOTIFIER_CAMPAIGNS_DIR"}
TRANSPORTS = ("outbox", "providers")
STORED_MARK = ".version"  # beside a campaign's YAML in the studio folder: the ledger's version this machine holds


DEFAULT_SECRET = "change-me"
KNOWN_SECRETS = frozenset({DEFAULT_SECRET, "", "secret", "changeme", "change-me-please"})
MIN_SECRET_LENGTH = 16
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0", ""})
NEW_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # how to make one


@dataclass(frozen=True)
class Settings:
    """Runtime settings. Build with :func:`load_settings`; override with :meth:`with_`."""

    database_url: str = "sqlite:///notifier.db"
    outbox_dir: Path = Path("outbox")
    templates_dir: Path = SHIPPED["templates"]
    locales_dir: Path = SHIPPED["locales"]
    campaigns_dir: Path = SHIPPED["campaigns"]
    studio_dir: Path = Path("studio")  # this machine's copy of the campaigns kept in the ledger (notifier.studio.store)
    transport: str = "outbox"
    batch_size: int = 500
    lease_seconds: int = 300  # how long a worker may hold a row it is sending
    queue_lease_seconds: int = 120  # how long a chunk may wait in the broker before it is queued again
    broker_url: str = "redis://127.0.0.1:6379/0"
    tick_seconds: float = 30.0
    chunk_size: int = 500
    rate_limit_url: str | None = None  # Redis shared by every worker for per-channel rate limits
    # Retries: exponential backoff from retry_base to retry_max, with jitter, until the deadline, give_up after the
    # send fell due, or max_attempts, whichever comes first (a day-long outage a week before a deadline loses nothing).
    max_attempts: int = 25
    retry_base_seconds: float = 60.0
    retry_max_seconds: float = 900.0
    give_up_seconds: float = 86_400.0
    window_grace_seconds: float = 900.0  # a send may start this long after the window's end, never later
    max_clock_skew_seconds: float = 120.0  # a tick on a clock further from the ledger database's sends nothing
    # Providers (NOTIFIER_TRANSPORT=providers)
    sendgrid_api_key: str | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_asm_group: int | None = None  # unsubscribe group for marketing campaigns
    google_credentials: Path | None = None  # a service-account JSON (GOOGLE_APPLICATION_CREDENTIALS)
    fcm_endpoint: str = "https://fcm.googleapis.com"
    email_from: str = "TikTok Music <no-reply@music.example.com>"
    public_url: str = "http://localhost:8000"  # where the unsubscribe links point
    secret_key: str = DEFAULT_SECRET  # keys and signs unsubscribe links; refused by real providers
    secret_key_previous: tuple[str, ...] = ()  # older keys whose links still work (rotation)
    # An address whose mail SendGrid Inbound Parse posts to POST /webhooks/sendgrid/inbound: List-Unsubscribe then
    # offers a mailto: beside the https link; None: the link only.
    unsubscribe_mailto: str | None = None
    http_timeout: float = 10.0  # SendGrid: seconds per socket operation of a request (push: the two below)
    http_connect_timeout: float = 10.0  # push: getting a connection (DNS, TCP, TLS); past it, a plain retry
    http_read_timeout: float = 10.0  # push: FCM's answer to a request written; past it, uncertain
    push_concurrency: int = 64
    email_rate: float | None = None  # messages per second for this process; None = unlimited
    push_rate: float | None = None
    # notifier serve
    sendgrid_webhook_key: str | None = None  # base64 public key of SendGrid's Signed Event Webhook
    webhook_tolerance_seconds: float = 600.0  # a signed batch older than this is refused; 0: no age check
    webhook_max_bytes: int = 8 * 1024 * 1024  # a bigger request body gets 413
    api_token: str | None = None  # bearer token of POST /actions and the studio's API
    # The dashboard: NOTIFIER_ADMIN_PASSWORD holds a hash (notifier admin hash-password) or, for local use only,
    # the password itself, which is hashed as it is read and never kept.
    admin_password_hash: str | None = None
    admin_password_was_plain: bool = False
    # Categories whose campaign versions need a second person's approval before they are scheduled, once the
    # ledger has a team (notifier.team.approvals); NOTIFIER_FOUR_EYES=service,marketing or none.
    four_eyes: tuple[str, ...] = ("service",)
    # At most this many messages per recipient, local day and channel across all campaigns (notifier.daily_cap);
    # NOTIFIER_DAILY_CAP=1 for every channel, or email=1,push=2. Empty: no cap.
    daily_cap: tuple[tuple[str, int], ...] = ()
    # Single sign-on by OpenID Connect (notifier.team.sso): all three or none; the claim and its values' roles.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_role_claim: str = "groups"
    oidc_roles: tuple[tuple[str, str], ...] = ()

    @property
    def sso(self) -> bool:
        return self.oidc_issuer is not None

    def copy_dirs(self, campaign_id: str) -> tuple[Path, Path]:
        """(templates folder, locales folder) of a campaign's copy on this machine: the studio's copy of a campaign
        kept in the ledger (``notifier.studio.store.sync`` marks it), else the settings' folders."""
        if (Path(self.studio_dir) / "campaigns" / f"{campaign_id}{STORED_MARK}").is_file():
            return Path(self.studio_dir) / "templates", Path(self.studio_dir) / "locales"
        return Path(self.templates_dir), Path(self.locales_dir)

    @property
    def secret_keys(self) -> list[str]:
        """The key links and tokens are made with, then the previous ones they are still accepted under."""
        return [self.secret_key, *self.secret_key_previous]

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _number(env: Mapping[str, str], name: str, default: float | None, kind: type = int, *,
            zero: str | None = None) -> float | None:
    """A positive number from ``env``; with ``zero`` (what 0 means), 0 is allowed too."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a {'whole ' if kind is int else ''}number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and zero is None) or value >= 10**12:
        allowed = f"0 ({zero}) or a positive number" if zero else "a positive number"
        raise ConfigError(f"{name}: must be {allowed}, got {raw}")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_number(env, name, default) or default)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return float(_number(env, name, default, float) or default)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """A span in seconds where 0 means "off"."""
    value = _number(env, name, default, float, zero="off")
    return default if value is None else value


def _guessable(value: str | None) -> str | None:
    """Why a secret is one anybody could know ("not set", "the default", "too short"), or None when it is not."""
    if not value:
        return "not set"
    if value in KNOWN_SECRETS:
        return "the default" if value == DEFAULT_SECRET else "a well-known value"
    return "too short" if len(value) < MIN_SECRET_LENGTH else None


def production_problems(settings: Settings) -> list[str]:
    """What keeps the links in messages from being safe: a secret anyone knows, a public URL that leads nowhere.
    The words fit the transport: real providers reach real people; a server in front of the outbox still checks the
    links it is shown."""
    from urllib.parse import urlsplit

    providers = settings.transport == "providers"
    problems = []
    why = _guessable(settings.secret_key)
    if why:
        need = ("with real providers it must be" if providers
                else "anyone could forge the unsubscribe links it signs; set")
        problems.append(f"NOTIFIER_SECRET_KEY is {why}: {need} a private random string of at least "
                        f"{MIN_SECRET_LENGTH} characters ({NEW_SECRET})")
    url = urlsplit(settings.public_url)
    host = url.hostname or ""
    if url.scheme != "https" or host in LOCAL_HOSTS or host.endswith(".localhost"):
        need = ("with real providers the unsubscribe links must lead to the public https address of notifier serve"
                if providers else "set the public https address of notifier serve, where the unsubscribe links lead")
        problems.append(f"NOTIFIER_PUBLIC_URL is {settings.public_url!r}: {need}")
    return problems


def serving_problems(settings: Settings) -> list[str]:
    """Every setting ``notifier serve`` refuses to start without, at once: the secrets of
    :func:`production_problems`, SendGrid's webhook key, an API token nobody can guess and a hashed admin password."""
    problems = production_problems(settings)
    if not settings.sendgrid_webhook_key:
        problems.append("NOTIFIER_SENDGRID_WEBHOOK_KEY is not set: without it nobody can tell SendGrid's events from "
                        "forged ones (copy the verification key from SendGrid's Signed Event Webhook settings)")
    else:
        from notifier.channels.sendgrid_events import load_verification_key

        try:
            load_verification_key(settings.sendgrid_webhook_key)
        except ConfigError as exc:
            problems.append(str(exc))
    if settings.admin_password_was_plain:
        problems.append("NOTIFIER_ADMIN_PASSWORD holds a password: outside --dev it must hold its hash, so that no "
                        "process listing or environment dump shows it (run: notifier admin hash-password)")
    why = _guessable(settings.api_token)
    if why:
        problems.append(f"NOTIFIER_API_TOKEN is {'not set' if why == 'not set' else 'too weak'}: POST /actions needs "
                        f"a private random token of at least {MIN_SECRET_LENGTH} characters ({NEW_SECRET})")
    return problems


def require_production_secrets(settings: Settings) -> None:
    """Refuse to reach real recipients with a secret anyone knows or links that lead nowhere, naming every problem."""
    _refuse(production_problems(settings), "real providers need these settings")


def require_serving_secrets(settings: Settings) -> None:
    """Refuse to start ``notifier serve`` without what :func:`serving_problems` asks for, naming all of it at once."""
    _refuse(serving_problems(settings), "notifier serve needs these settings (for local use only: notifier serve "
                                        "--dev)")


def _refuse(problems: list[str], headline: str) -> None:
    """One problem is one line; several are a headline and a line each."""
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("\n  ".join([f"{headline}:", *problems]))


def _check(settings: Settings) -> Settings:
    if settings.lease_seconds < 3:
        raise ConfigError("NOTIFIER_LEASE_SECONDS: at least 3 (a task's time limits must fit inside the lease)")
    return settings


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    d = Settings()
    transport = env.get("NOTIFIER_TRANSPORT") or d.transport
    if transport not in TRANSPORTS:
        raise ConfigError(f"NOTIFIER_TRANSPORT: unknown transport {transport!r} (expected: {', '.join(TRANSPORTS)})")
    credentials = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    asm = _number(env, "NOTIFIER_SENDGRID_ASM_GROUP", None)
    return _check(Settings(
        database_url=env.get("NOTIFIER_DATABASE_URL") or d.database_url,
        outbox_dir=Path(env.get("NOTIFIER_OUTBOX_DIR") or d.outbox_dir),
        templates_dir=Path(env.get("NOTIFIER_TEMPLATES_DIR") or d.templates_dir),
        locales_dir=Path(env.get("NOTIFIER_LOCALES_DIR") or d.locales_dir),
        campaigns_dir=Path(env.get("NOTIFIER_CAMPAIGNS_DIR") or d.campaigns_dir),
        studio_dir=Path(env.get("NOTIFIER_STUDIO_DIR") or d.studio_dir),
        transport=transport,
        batch_size=_int(env, "NOTIFIER_BATCH_SIZE", d.batch_size),
        lease_seconds=_int(env, "NOTIFIER_LEASE_SECONDS", d.lease_seconds),
        queue_lease_seconds=_int(env, "NOTIFIER_QUEUE_LEASE_SECONDS", d.queue_lease_seconds),
        broker_url=env.get("NOTIFIER_BROKER_URL") or d.broker_url,
        tick_seconds=float(_number(env, "NOTIFIER_TICK_SECONDS", d.tick_seconds, float) or d.tick_seconds),
        chunk_size=_int(env, "NOTIFIER_CHUNK_SIZE", d.chunk_size),
        rate_limit_url=env.get("NOTIFIER_RATE_LIMIT_URL") or None,
        max_attempts=_int(env, "NOTIFIER_MAX_ATTEMPTS", d.max_attempts),
        retry_base_seconds=_float(env, "NOTIFIER_RETRY_BASE_SECONDS", d.retry_base_seconds),
        retry_max_seconds=_float(env, "NOTIFIER_RETRY_MAX_SECONDS", d.retry_max_seconds),
        give_up_seconds=_float(env, "NOTIFIER_GIVE_UP_SECONDS", d.give_up_seconds),
        window_grace_seconds=_float(env, "NOTIFIER_WINDOW_GRACE_SECONDS", d.window_grace_seconds),
        max_clock_skew_seconds=_float(env, "NOTIFIER_MAX_CLOCK_SKEW_SECONDS", d.max_clock_skew_seconds),
        sendgrid_api_key=env.get("SENDGRID_API_KEY") or None,
        sendgrid_host=(env.get("NOTIFIER_SENDGRID_HOST") or d.sendgrid_host).rstrip("/"),
        sendgrid_asm_group=int(asm) if asm else None,
        google_credentials=Path(credentials) if credentials else None,
        fcm_endpoint=(env.get("NOTIFIER_FCM_ENDPOINT") or d.fcm_endpoint).rstrip("/"),
        email_from=env.get("NOTIFIER_EMAIL_FROM") or d.email_from,
        public_url=(env.get("NOTIFIER_PUBLIC_URL") or d.public_url).rstrip("/"),
        secret_key=env.get("NOTIFIER_SECRET_KEY") or d.secret_key,
        secret_key_previous=tuple(k.strip() for k in (env.get("NOTIFIER_SECRET_KEY_PREVIOUS") or "").split(",")
                                  if k.strip()),
        unsubscribe_mailto=_mailto_address(env.get("NOTIFIER_UNSUBSCRIBE_MAILTO") or ""),
        http_timeout=float(_number(env, "NOTIFIER_HTTP_TIMEOUT", d.http_timeout, float) or d.http_timeout),
        http_connect_timeout=_float(env, "NOTIFIER_HTTP_CONNECT_TIMEOUT", d.http_connect_timeout),
        http_read_timeout=_float(env, "NOTIFIER_HTTP_READ_TIMEOUT",  # unset: NOTIFIER_HTTP_TIMEOUT, as before
                                 _float(env, "NOTIFIER_HTTP_TIMEOUT", d.http_read_timeout)),
        push_concurrency=_int(env, "NOTIFIER_PUSH_CONCURRENCY", d.push_concurrency),
        email_rate=_number(env, "NOTIFIER_EMAIL_RATE", None, float),
        push_rate=_number(env, "NOTIFIER_PUSH_RATE", None, float),
        sendgrid_webhook_key=env.get("NOTIFIER_SENDGRID_WEBHOOK_KEY") or None,
        webhook_tolerance_seconds=_seconds(env, "NOTIFIER_WEBHOOK_TOLERANCE_SECONDS", d.webhook_tolerance_seconds),
        webhook_max_bytes=_int(env, "NOTIFIER_WEBHOOK_MAX_BYTES", d.webhook_max_bytes),
        api_token=env.get("NOTIFIER_API_TOKEN") or None,
        four_eyes=_four_eyes(env.get("NOTIFIER_FOUR_EYES")),
        daily_cap=parse_daily_cap(env.get("NOTIFIER_DAILY_CAP") or ""),
        **_oidc(env),
        **_admin_password(env.get("NOTIFIER_ADMIN_PASSWORD") or ""),
    ))


_MAILTO_ADDRESS = re.compile(r"[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def _mailto_address(raw: str) -> str | None:
    """The unsubscribe address, plain (it goes into a mailto: URI as it is), or None when not set."""
    address = raw.strip()
    if not address:
        return None
    if not _MAILTO_ADDRESS.fullmatch(address):
        raise ConfigError(f"NOTIFIER_UNSUBSCRIBE_MAILTO: expected a plain address such as "
                          f"unsubscribe@mail.example.com (letters, digits, '.', '_', '+', '-'), got {raw!r}")
    return address


ROLES = ("viewer", "editor", "approver", "admin")  # notifier.team.roles.Role, in order
_LOCAL = ("localhost", "127.0.0.1", "::1")


def parse_roles(raw: str, setting: str = "NOTIFIER_OIDC_ROLES") -> tuple[tuple[str, str], ...]:
    """``value=role,value=role``: each claim value and the role it gives."""
    found = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        value, sep, role = part.rpartition("=")
        if not sep or not value.strip():
            raise ConfigError(f"{setting}: {part!r} is not value=role (say, marketing=editor)")
        if role.strip() not in ROLES:
            raise ConfigError(f"{setting}: {role.strip()!r} is not one of {', '.join(ROLES)}")
        found.append((value.strip(), role.strip()))
    if not found:
        raise ConfigError(f"{setting}: map at least one value of the role claim to a role (say, marketing=editor)")
    return tuple(found)


def check_issuer(issuer: str) -> str:
    """The issuer URL, https unless the provider runs on this machine."""
    from urllib.parse import urlsplit

    parts = urlsplit(issuer)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOCAL):
        raise ConfigError(f"NOTIFIER_OIDC_ISSUER: {issuer!r} must be an https URL (http only for localhost)")
    return issuer.rstrip("/")


def _oidc(env: Mapping[str, str]) -> dict[str, object]:
    """Single sign-on's settings: none, or issuer, client id, secret and the roles' mapping together."""
    names = ("NOTIFIER_OIDC_ISSUER", "NOTIFIER_OIDC_CLIENT_ID", "NOTIFIER_OIDC_CLIENT_SECRET", "NOTIFIER_OIDC_ROLES")
    given = {n: (env.get(n) or "").strip() for n in names}
    if not any(given.values()):
        return {}
    missing = [n for n, v in given.items() if not v]
    if missing:
        raise ConfigError(f"single sign-on needs {', '.join(missing)} too (or none of {', '.join(names)})")
    return {"oidc_issuer": check_issuer(given["NOTIFIER_OIDC_ISSUER"]),
            "oidc_client_id": given["NOTIFIER_OIDC_CLIENT_ID"],
            "oidc_client_secret": given["NOTIFIER_OIDC_CLIENT_SECRET"],
            "oidc_role_claim": (env.get("NOTIFIER_OIDC_ROLE_CLAIM") or "groups").strip(),
            "oidc_roles": parse_roles(given["NOTIFIER_OIDC_ROLES"])}


def parse_daily_cap(raw: str) -> tuple[tuple[str, int], ...]:
    """``1`` (every channel) or ``email=1,push=2`` → ((channel, limit), ...); empty: no cap."""
    from notifier.campaign import CHANNELS

    raw = raw.strip()
    if not raw:
        return ()
    if raw.isdigit():
        return tuple((ch, _cap_limit(raw)) for ch in CHANNELS)
    caps: dict[str, int] = {}
    for part in raw.split(","):
        channel, sep, number = (p.strip() for p in part.partition("="))
        if not sep or channel not in CHANNELS:
            raise ConfigError(f"NOTIFIER_DAILY_CAP: {part.strip()!r}: expected a number, or channel=number for "
                              f"{' and '.join(CHANNELS)} (email=1,push=2)")
        if channel in caps:
            raise ConfigError(f"NOTIFIER_DAILY_CAP: {channel} is given twice")
        caps[channel] = _cap_limit(number)
    return tuple(caps.items())


def _cap_limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise ConfigError(f"NOTIFIER_DAILY_CAP: {text!r} is not a number of messages from 1 to 100")
    return int(text)


def _four_eyes(raw: str | None) -> tuple[str, ...]:
    """The categories that need approval: unset means service announcements; ``none`` means none."""
    from notifier.campaign import CATEGORIES

    if raw is None or not raw.strip():
        return ("service",)
    if raw.strip().lower() == "none":
        return ()
    found = tuple(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    wrong = [c for c in found if c not in CATEGORIES]
    if wrong:
        raise ConfigError(f"NOTIFIER_FOUR_EYES: {wrong[0]!r} is not a category ({', '.join(CATEGORIES)}, or none)")
    return found


def _admin_password(raw: str) -> dict[str, object]:
    """The dashboard's password as a hash: a hash is checked, a password is hashed at once."""
    if not raw:
        return {}
    from notifier.web.dashboard.auth import check_password_hash, hash_password, weak_password

    if raw.startswith("scrypt$"):
        return {"admin_password_hash": check_password_hash(raw)}
    why = "a well-known password" if raw in KNOWN_SECRETS else weak_password(raw)
    if why:
        raise ConfigError(f"NOTIFIER_ADMIN_PASSWORD is too weak: {why}")
    return {"admin_password_hash": hash_password(raw), "admin_password_was_plain": True}


def writable(folder: Path) -> Path:
    """``folder`` if notifier may write a campaign, templates or catalogs into it; a ConfigError naming the setting
    when it is the shipped data inside an installed package (a new campaign would land in site-packages)."""
    if _INSTALLED:
        resolved = Path(folder).resolve()
        for name, shipped in SHIPPED.items():
            if resolved == shipped or shipped in resolved.parents:
                raise ConfigError(f"{_SETTING_OF[name]} is the {name} folder shipped inside the installed package "
                                  f"({shipped}), which is never written: set NOTIFIER_CAMPAIGNS_DIR, "
                                  f"NOTIFIER_TEMPLATES_DIR and NOTIFIER_LOCALES_DIR to folders of your own")
    return Path(folder)
