"""Source time of permission state, and the page ancestry of documents: scopes and documents
remember how new the export was that last set them, so an older export never overrides a newer one (invariant 7).

``source_as_of`` is a sortable stamp (``ingest.sources.base.as_of_stamp``): the newest
timestamp the export states, then the export's file time as a tie-breaker.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scopes") as batch:
        batch.add_column(
            sa.Column(
                "source_as_of",
                sa.String(length=64),
                nullable=True,
                comment="how new the export was that last stated this scope",
            )
        )
    with op.batch_alter_table("documents") as batch:
        batch.add_column(
            sa.Column(
                "source_as_of",
                sa.String(length=64),
                nullable=True,
                comment="how new the export was that last stated this document",
            )
        )
        batch.add_column(
            sa.Column(
                "ancestry",
                sa.Text(),
                nullable=True,
                comment="ids of the pages above it at the source, root first (Confluence)",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("ancestry")
        batch.drop_column("source_as_of")
    with op.batch_alter_table("scopes") as batch:
        batch.drop_column("source_as_of")
