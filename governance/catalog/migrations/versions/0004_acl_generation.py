"""ACL generation counter: bumped with every scope change, read before reusing a cached
scope resolution.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acl_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(sa.text("INSERT INTO acl_generation (id, generation) VALUES (1, 0)"))


def downgrade() -> None:
    op.drop_table("acl_generation")
