"""Legal holds, document contributors and forgotten subjects (right to be forgotten), document
origins (for pruning a full export) and tombstone reasons.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:01:40.841728
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forgotten_subjects",
        sa.Column("principal", sa.String(length=600), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal"),
    )
    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="document|source|subject"),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=600), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "value"),
    )
    op.create_table(
        "document_contributors",
        sa.Column("document_id", sa.String(length=1024), nullable=False),
        sa.Column("principal", sa.String(length=600), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "principal"),
    )
    with op.batch_alter_table("document_contributors", schema=None) as batch_op:
        batch_op.create_index("ix_document_contributors_principal", ["principal"], unique=False)

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True, comment="why tombstoned or purged"))
        batch_op.add_column(
            sa.Column("origin", sa.String(length=1024), nullable=True, comment="the export / drop folder it came from")
        )
        batch_op.create_index(batch_op.f("ix_documents_origin"), ["origin"], unique=False)

    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "blocks",
                sa.JSON(),
                nullable=True,
                comment='[{"author": principal|null, "text": ...}]: lets a subject be removed and the rest re-indexed',
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("blocks")

    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_documents_origin"))
        batch_op.drop_column("origin")
        batch_op.drop_column("status_reason")

    with op.batch_alter_table("document_contributors", schema=None) as batch_op:
        batch_op.drop_index("ix_document_contributors_principal")

    op.drop_table("document_contributors")
    op.drop_table("holds")
    op.drop_table("forgotten_subjects")
