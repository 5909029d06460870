"""Audit event ids become 64-bit on PostgreSQL (one event per search: 32 bits run out in
~250 days at 100 searches/s). SQLite's INTEGER primary key is already 64-bit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(
            "audit_events", "id", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False
        )
        op.execute("ALTER SEQUENCE IF EXISTS audit_events_id_seq AS BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER SEQUENCE IF EXISTS audit_events_id_seq AS INTEGER")
        op.alter_column(
            "audit_events", "id", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False
        )
