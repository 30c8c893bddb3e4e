"""Team models and labels: registry rows carry an owner ("" for the shared library), jobs a
kind (score or train); tables record each file of confirmed outcomes and each owner's
defaults.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reference_models") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=False, server_default=""))
        batch.drop_constraint("uq_reference_models_name_version", type_="unique")
        batch.create_unique_constraint(
            "uq_reference_models_owner_name_version", ["owner", "name", "version"]
        )
        batch.create_index("ix_reference_models_owner", ["owner"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="score"))
    op.create_table(
        "label_sets",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("schema", sa.String(64), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("positives", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    for column in ("owner", "job_id", "schema"):
        op.create_index(f"ix_label_sets_{column}", "label_sets", [column])
    op.create_table(
        "owner_settings",
        sa.Column("owner", sa.String(200), primary_key=True),
        sa.Column("expected_fraud_rate", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("owner_settings")
    op.drop_table("label_sets")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("reference_models") as batch:
        batch.drop_index("ix_reference_models_owner")
        batch.drop_constraint("uq_reference_models_owner_name_version", type_="unique")
        batch.create_unique_constraint("uq_reference_models_name_version", ["name", "version"])
        batch.drop_column("owner")
