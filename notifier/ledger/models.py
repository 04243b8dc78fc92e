"""The SQL ledger: the truth about who must get what, and what happened to each message.

Campaigns are planned compactly as send groups (one row per time zone and send) and materialized into
one delivery row per (campaign, send group, recipient, channel) when a group falls due.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal_column,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

# The vocabulary lives in states.py; importable from here too, as before.
from notifier.ledger.states import FINAL_STATES as FINAL_STATES
from notifier.ledger.states import OPEN_STATES as OPEN_STATES
from notifier.ledger.states import CampaignState as CampaignState
from notifier.ledger.states import DeliveryState as DeliveryState
from notifier.ledger.states import SkipReason as SkipReason

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class CampaignRow(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(Text)  # path of the campaign file it was scheduled from
    spec: Mapped[str] = mapped_column(Text)  # the YAML text as scheduled; re-parsed when needed
    state: Mapped[str] = mapped_column(String(16))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    planned_zones: Mapped[list[str]] = mapped_column(JSON, default=list)  # zones whose send groups exist
    content_fingerprint: Mapped[str | None] = mapped_column(String(64))  # templates + catalogs as approved
    content_manifest: Mapped[dict[str, str] | None] = mapped_column(JSON)  # file → digest, to show changes
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # its recipients' personal data removed


class Recipient(Base):
    __tablename__ = "recipients"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    timezone: Mapped[str] = mapped_column(String(64), index=True)
    timezone_guessed: Mapped[bool] = mapped_column(Boolean, default=False)
    country: Mapped[str | None] = mapped_column(String(2))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    import_run: Mapped[str | None] = mapped_column(String(36))
    import_line: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # email, name, tokens and attributes removed


class PushToken(Base):
    __tablename__ = "push_tokens"
    # A recipient has each token once. On PostgreSQL the key is over the token's MD5 (16 bytes, not its ~160
    # characters: migration 0013), on SQLite over its text; writers say ON CONFLICT DO NOTHING, which both take.
    # Its first column serves every lookup by recipient: there is no other index.
    __table_args__ = (UniqueConstraint("recipient_seq", "token", name="uq_push_token"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    recipient_seq: Mapped[int] = mapped_column(ForeignKey("recipients.seq", ondelete="CASCADE"))
    token: Mapped[str] = mapped_column(String(4096))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deactivated_reason: Mapped[str | None] = mapped_column(String(200))


class RecipientAction(Base):
    """Something a recipient did that can make reminders pointless (skip_if), e.g. refund_requested."""

    __tablename__ = "recipient_actions"
    __table_args__ = (UniqueConstraint("recipient_seq", "action", name="uq_recipient_action"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    recipient_seq: Mapped[int] = mapped_column(ForeignKey("recipients.seq", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class SendGroup(Base):
    """One planned send for every recipient of one time zone: the compact plan."""

    __tablename__ = "send_groups"
    __table_args__ = (
        UniqueConstraint("campaign_id", "timezone", "send_key", name="uq_send_group"),
        Index("ix_send_groups_due", "send_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    timezone: Mapped[str] = mapped_column(String(64))
    send_key: Mapped[str] = mapped_column(String(400))
    wave: Mapped[str] = mapped_column(String(32))
    deadlines: Mapped[list[str]] = mapped_column(JSON)
    send_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the last deadline it carries
    materialized_upto: Mapped[int] = mapped_column(BigInteger, default=0)  # highest recipient seq done


class DeliveryRow(Base):
    """One message to one recipient on one channel: what the ledger tracks. It goes out at most once, except a
    row left uncertain (its worker died mid-request, or the provider took the request and never answered: a read
    timeout, a cut connection), which a campaign with ``on_uncertain: resend`` may send a second time."""

    __tablename__ = "deliveries"
    # On PostgreSQL the table is partitioned by campaign (migration 0014, ``ledger.partitions``): the primary key and
    # the unique key below are each partition's own there, as the database allows.
    __table_args__ = (
        # The group names the campaign: the key holds numbers and the channel only (migration 0012).
        UniqueConstraint("group_id", "recipient_seq", "channel", name="uq_delivery"),
        # Open rows only: a completed row leaves them, so claims and completions write fewer index entries.
        Index("ix_deliveries_due", "channel", "next_attempt_at", "id", postgresql_where=text("state = 'pending'"),
              sqlite_where=text("state = 'pending'")),
        # Rows under a lease (queued or sending), for recovery. Keyed on the lease, not on the state: a completion
        # names its rows' state, and with an index whose predicate that implied the planner walked this index (and
        # its entries of rows completed since the last vacuum) instead of the primary key: 100 ms a batch, not 5.
        Index("ix_deliveries_leased", "lease_until", postgresql_where=text("lease_until IS NOT NULL"),
              sqlite_where=text("lease_until IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys: checked on every row written, they were half the cost of materializing (migration 0010); the
    # ledger writes a row only from the campaign, group and recipient it names, and deletes none of them.
    campaign_id: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[int] = mapped_column(BigId)  # its send group: send key, wave, deadlines
    recipient_seq: Mapped[int] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(200))  # the worker task holding the lease
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)  # the provider may have it: no answer came
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))
    content_version: Mapped[int | None] = mapped_column(Integer)  # the copy it was sent with (content_versions)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


def state_is(*states: DeliveryState) -> ColumnElement[bool]:
    """The row is in one of ``states``, with the states written into the SQL rather than bound: a prepared statement's
    generic plan can only use the partial indexes (open rows only) when their predicate is in the statement's text."""
    words = [literal_column(f"'{DeliveryState(s).value}'") for s in states]
    return DeliveryRow.state == words[0] if len(words) == 1 else DeliveryRow.state.in_(words)


# A row's send key is its group's, read through the group (never stored twice): for ORM reads and filters; the
# counting and hot paths join send_groups themselves.
DeliveryRow.send_key = column_property(  # type: ignore[attr-defined]
    select(SendGroup.send_key).where(SendGroup.id == DeliveryRow.group_id).correlate_except(SendGroup)
    .scalar_subquery())


class ContentVersion(Base):
    """A fingerprint of approved copy (templates and catalogs), numbered: a sent row names its copy by this
    number, 4 bytes, instead of carrying the 64-character fingerprint (migration 0012)."""

    __tablename__ = "content_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)


# The copy a row was sent with, as its fingerprint: for ORM reads.
DeliveryRow.content_fingerprint = column_property(  # type: ignore[attr-defined]
    select(ContentVersion.fingerprint).where(ContentVersion.id == DeliveryRow.content_version)
    .correlate_except(ContentVersion).scalar_subquery())


class DeliveryTally(Base):
    """How many of a campaign's delivery rows have one key (group, locale, channel, state, reason): kept by
    triggers in the transaction that changes a row (migration 0011), read by the live counts (``ledger.tallies``).
    On PostgreSQL a key may have several rows (deltas, summed on read, folded by maintenance); '' stands for NULL."""

    __tablename__ = "delivery_tallies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[int] = mapped_column(BigInteger)
    locale: Mapped[str] = mapped_column(String(35))
    channel: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    n: Mapped[int] = mapped_column(BigInteger)
    uncertain: Mapped[int] = mapped_column(BigInteger)


class DeliveryEvent(Base):
    """What happened to a delivery over time: our attempts, and the provider's events (webhooks).

    A provider event carries the provider's own id (``provider_event_id``, unique: a replayed webhook batch adds
    nothing). One that names no delivery of ours (sent by something else on the same account, or purged since) is
    kept with ``delivery_id`` NULL, for its effect on the address.
    """

    __tablename__ = "delivery_events"
    __table_args__ = (UniqueConstraint("provider", "provider_event_id", name="uq_provider_event"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # On PostgreSQL no foreign key: both tables are partitioned by campaign and a campaign's rows and events go
    # together (migration 0014); SQLite keeps it.
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[str] = mapped_column(String(64), default="", server_default="")  # '' when not ours
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_event_id: Mapped[str | None] = mapped_column(String(128))


class Suppression(Base):
    """An address, push token or recipient that must not get (some) messages again, kept as a hash only.

    ``scope`` ``all`` stops every campaign on that channel (a hard bounce, a complaint); ``marketing`` stops
    marketing campaigns on every channel (an unsubscribe from marketing); ``campaign:<id>`` stops that campaign on
    every channel (an unsubscribe from a service message). Purging a campaign keeps these: they hold no address.
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("digest", "scope", name="uq_suppression"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the normalized address, token or recipient id
    kind: Mapped[str] = mapped_column(String(16))  # email | token | recipient
    scope: Mapped[str] = mapped_column(String(80))  # all | marketing | campaign:<campaign id>
    reason: Mapped[str] = mapped_column(String(64))  # an EventType / RejectReason word, or "manual"
    source: Mapped[str] = mapped_column(String(64))  # sendgrid | unsubscribe-link | cli | api
    campaign_id: Mapped[str | None] = mapped_column(String(64))  # the campaign whose message led to it, if known
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EndedSession(Base):
    """A dashboard session logged out before its cookie ran out: the cookie, even replayed, proves nothing any
    more, in any serving process and after a restart. Only a hash of the session's token is kept, until the
    cookie would have expired anyway."""

    __tablename__ = "ended_sessions"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the session's CSRF token
    until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class DispatchHold(Base):
    """Why the dispatcher sends nothing at all right now (its clock disagrees with the ledger's), so that
    ``status``, ``campaign list`` and the dashboard can say so; the row goes when a tick passes the check again."""

    __tablename__ = "dispatch_holds"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # what holds it: "clock:<host>"
    reason: Mapped[str] = mapped_column(Text)  # one line for an operator, no personal data
    since: Mapped[datetime] = mapped_column(UTCDateTime())  # on the ledger's clock
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the last tick that found it (the ledger's clock)


class CampaignVersion(Base):
    """One version of a campaign's files (its YAML, templates and catalogs), kept in the ledger so every server and
    worker reads the same campaign (``notifier.studio.store``); numbered 1, 2, ... per campaign, never changed."""

    __tablename__ = "campaign_versions"
    __table_args__ = (UniqueConstraint("campaign_id", "version", name="uq_campaign_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 over every path and its bytes
    origin: Mapped[str] = mapped_column(String(16))  # studio | api | import
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    author: Mapped[int | None] = mapped_column(Integer)  # the person who saved it (people.id); None: a command


class CampaignFile(Base):
    """One file of a campaign version, byte for byte (``campaign export`` writes it back exactly)."""

    __tablename__ = "campaign_files"

    version_id: Mapped[int] = mapped_column(ForeignKey("campaign_versions.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(300), primary_key=True)  # campaigns/x.yaml, templates/x/..., locales/...
    data: Mapped[bytes] = mapped_column(LargeBinary)


class AudienceUpload(Base):
    """An audience file uploaded in the studio, imported in the background; its progress, for any server to show."""

    __tablename__ = "audience_uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    file_name: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(8))  # csv | jsonl
    state: Mapped[str] = mapped_column(String(16))  # waiting | importing | done | failed
    mapping: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # column of the file -> field
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    read_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    guessed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    spool_path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AudienceUploadReject(Base):
    """A row of an upload that was not stored, with its line and why (downloadable as CSV)."""

    __tablename__ = "audience_upload_rejects"

    upload_id: Mapped[str] = mapped_column(ForeignKey("audience_uploads.id", ondelete="CASCADE"), primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(Text)


class CampaignSeed(Base):
    """An address or push token of the campaign's own people, who get its test sends."""

    __tablename__ = "campaign_seeds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # email | push
    address: Mapped[str] = mapped_column(String(4096))
    name: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(35))


class TestSend(Base):
    """A test message sent to a seed: kept apart from deliveries, so it is never counted in the campaign."""

    __tablename__ = "test_sends"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(35))
    send_key: Mapped[str] = mapped_column(String(400))
    outcome: Mapped[str] = mapped_column(String(16))  # sent | failed
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ResultTally(Base):
    """What became of a campaign's sent messages, per key (send group, locale, channel, metric): delivered,
    bounced, opened, clicked, converted... (``notifier.results``), added to in the transaction that records the
    event or the action, once per message and metric (``ResultFirst``)."""

    __tablename__ = "result_tallies"
    __table_args__ = (UniqueConstraint("campaign_id", "group_id", "locale", "channel", "metric",
                                       name="uq_result_tally"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[int] = mapped_column(BigInteger)
    locale: Mapped[str] = mapped_column(String(35))
    channel: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str] = mapped_column(String(80))  # opened, opened_machine, clicked, click:<link>, converted...
    n: Mapped[int] = mapped_column(BigInteger)


class ResultFirst(Base):
    """That one message has had one metric counted: the first open, the first click on a link; a later or
    replayed event finds its key taken and counts nothing."""

    __tablename__ = "result_firsts"

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    metric: Mapped[str] = mapped_column(String(80), primary_key=True)


class ActionDay(Base):
    """How many of a campaign's audience first did a deadline's ``skip_if`` action on one UTC day, and how many
    of them after the deadline had passed in their zone: the deadline's funnel (``notifier.results``)."""

    __tablename__ = "action_days"

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deadline_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    acted: Mapped[int] = mapped_column(BigInteger, default=0)
    late: Mapped[int] = mapped_column(BigInteger, default=0)


class Person(Base):
    """Someone of the team, with one role (``notifier.team.roles``): invited by an admin, active once they set
    their password, disabled rather than deleted (the audit log names them). ``epoch`` moves on every change of
    password, role or state, which ends their sessions."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower case
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # viewer | editor | approver | admin
    state: Mapped[str] = mapped_column(String(16))  # invited | active | disabled
    password_hash: Mapped[str | None] = mapped_column(Text)  # scrypt$...; None until the invitation is accepted
    sso_subject: Mapped[str | None] = mapped_column(String(600), unique=True)  # "<issuer> <sub>" of single sign-on
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Invite(Base):
    """A one-time link that lets an invited person set their password; only a hash of its token is kept."""

    __tablename__ = "invites"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the link's token
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """A personal API token: shown once, kept as a hash, revocable; what it does is done by its person."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the public part: ntf_<id>_<secret>
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the secret part
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApprovalRow(Base):
    """An approver's yes to one stored version of a campaign (its file, copy and translations): the four-eyes
    rule schedules only an approved latest version (``notifier.team.approvals``)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("campaign_id", "version", name="uq_approval_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))  # the version's (store.fingerprint)
    schedules: Mapped[str] = mapped_column(String(64))  # what scheduling it stores: its YAML and copy (approvals)
    approved_by: Mapped[int] = mapped_column(ForeignKey("people.id"))
    approved_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditLine(Base):
    """One line of the audit log: who did what, when, from where. Append-only (triggers refuse UPDATE and
    DELETE) and chained: each line's hash covers the previous line's, so a removed line shows."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)  # 1, 2, ... no gaps
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)  # person:<id> | cli:<os user> | system | api-token
    actor_name: Mapped[str] = mapped_column(String(254))  # the person's email then, or the actor again
    address: Mapped[str] = mapped_column(String(64))  # the client's IP address, or "-"
    action: Mapped[str] = mapped_column(String(32), index=True)
    campaign_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text)  # JSON, as hashed
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last line (one row): appending locks it, so lines are numbered and chained one at a time; a
    removed last line shows too."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class CapSlot(Base):
    """One message counted against its recipient's daily cap on its channel across campaigns (NOTIFIER_DAILY_CAP):
    taken just before the send, in the recipient's local ``day``, and given back when the message did not go."""

    __tablename__ = "cap_slots"
    __table_args__ = (Index("ix_cap_slots_recipient_day", "recipient_seq", "channel", "day"),
                      Index("ix_cap_slots_day", "day"))

    delivery_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    recipient_seq: Mapped[int] = mapped_column(BigId)
    channel: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())
