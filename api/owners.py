"""An owner's own defaults: GET/PUT /api/v1/settings (the expected fraud rate of their files)."""

from __future__ import annotations

from typing import Annotated, Any

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import require_token
from api.services import services
from shared.db.models import OwnerSettings
from shared.errors import InputError

bp = Blueprint("owners", __name__, url_prefix="/api/v1")


class Defaults(BaseModel):
    """What an owner may set for all their jobs."""

    model_config = ConfigDict(extra="forbid")

    expected_fraud_rate: Annotated[float, Field(gt=0, lt=0.5)] | None = Field(
        default=None,
        description="the share of fraud your files hold: probabilities are shifted so that "
        "their mean is this rate, unless a job states its own or your team model leads",
    )


@bp.get("/settings")
@require_token
def get_defaults() -> Response:
    with services().session() as session:
        own = session.get(OwnerSettings, g.owner)
        return jsonify(_view(own))


@bp.put("/settings")
@require_token
def put_defaults() -> Response:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InputError('send JSON, e.g. {"expected_fraud_rate": 0.01} (null clears it)')
    try:
        defaults = Defaults.model_validate(body)
    except ValidationError as exc:
        item = exc.errors()[0]
        name = ".".join(str(p) for p in item["loc"]) or "body"
        raise InputError(f"invalid setting {name}: {item['msg']}") from None
    with services().session() as session:
        own = session.get(OwnerSettings, g.owner) or OwnerSettings(owner=g.owner)
        own.expected_fraud_rate = defaults.expected_fraud_rate
        session.add(own)
        session.commit()
        return jsonify(_view(own))


def _view(own: OwnerSettings | None) -> dict[str, Any]:
    return {"expected_fraud_rate": own.expected_fraud_rate if own is not None else None}
