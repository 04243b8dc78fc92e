"""push tokens keyed by a digest: the unique key holds 16 bytes of a token, not its text; no second index

A push token is about 160 characters, and the unique key on (recipient, token) held each one again: with the heap,
every token was stored twice, and a second index on the recipient alone duplicated the key's first column.
- PostgreSQL: the unique key is over (recipient, the token's MD5 as 16 bytes), an index on an expression; MD5 is
  a key here, not a secret (the tokens are in the table beside it).
- Both: the index on the recipient alone goes; the unique key's first column serves every lookup by recipient.
SQLite keeps its key on the text (it has no MD5 to index; an embedded ledger is small).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIGEST_KEY = "CREATE UNIQUE INDEX {name} ON push_tokens (recipient_seq, decode(md5(token), 'hex'))"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DIGEST_KEY.format(name="uq_push_token_digest"))
        op.execute("ALTER TABLE push_tokens DROP CONSTRAINT uq_push_token")
        op.execute("ALTER INDEX uq_push_token_digest RENAME TO uq_push_token")
    op.drop_index("ix_push_tokens_recipient_seq", table_name="push_tokens")


def downgrade() -> None:
    op.create_index("ix_push_tokens_recipient_seq", "push_tokens", ["recipient_seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX uq_push_token")
        op.execute("ALTER TABLE push_tokens ADD CONSTRAINT uq_push_token UNIQUE (recipient_seq, token)")
