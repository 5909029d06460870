"""Shared deny lists: a deny list is stored once (``deny_lists``, ``deny_list_principals``)
and every scope that carries it points at it (``scopes.deny_list_id``). A Slack workspace
denies its deactivated accounts in every conversation; stored per scope, that was one row per
conversation and deactivated account. Deny rows written before (``scope_principals`` layer
-1) keep working until their scope is next written.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 14:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deny_lists",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False, comment="sha256 of the sorted principals"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest"),
        sqlite_autoincrement=True,  # ids never reused: a search may hold one it read a moment ago
    )
    op.create_table(
        "deny_list_principals",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(length=600), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["deny_lists.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("list_id", "principal"),
    )
    op.create_index("ix_deny_list_principals_principal", "deny_list_principals", ["principal", "list_id"])
    if op.get_bind().dialect.name == "sqlite":
        # A plain ADD COLUMN (SQLite allows a REFERENCES clause on a NULL-default column): a
        # batch copy of ``scopes`` would drop the old table, and with foreign keys on its
        # scope_principals rows would go with it.
        op.execute(sa.text("ALTER TABLE scopes ADD COLUMN deny_list_id INTEGER REFERENCES deny_lists (id)"))
    else:
        op.add_column(
            "scopes",
            sa.Column(
                "deny_list_id",
                sa.Integer(),
                nullable=True,
                comment="the shared deny list this scope carries (None: none)",
            ),
        )
        op.create_foreign_key("fk_scopes_deny_list_id", "scopes", "deny_lists", ["deny_list_id"], ["id"])
    op.create_index("ix_scopes_deny_list_id", "scopes", ["deny_list_id"])


def downgrade() -> None:
    op.drop_index("ix_scopes_deny_list_id", table_name="scopes")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_scopes_deny_list_id", "scopes", type_="foreignkey")
    op.drop_column("scopes", "deny_list_id")
    op.drop_index("ix_deny_list_principals_principal", table_name="deny_list_principals")
    op.drop_table("deny_list_principals")
    op.drop_table("deny_lists")
