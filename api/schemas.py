"""What each route accepts, as pydantic models: checked at the edge (lengths, ranges, no NUL,
unknown fields refused by name) and written into the OpenAPI document from the same models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.errors import InputError
from shared.service.training import MODEL_NAME

MAX_PAGE = 1_000_000
# A team model's name, as training gives it.
ModelName = Annotated[str, StringConstraints(strip_whitespace=True, pattern=MODEL_NAME.pattern)]
Text = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$")]
Path = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")]


class Request(BaseModel):
    """Fields of one route; any other is refused by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class JobsPage(Request):
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    per_page: int = Field(default=20, ge=1, le=100)


class Download(Request):
    redirect: Annotated[str, StringConstraints(max_length=5)] | None = Field(
        default=None, description="any value: answer with a presigned store URL where one works"
    )


class LabelsForm(Request):
    model_name: ModelName | None = Field(default=None, description="the team model to train")


class TrainForm(Request):
    name: ModelName = Field(description="the team model's name (letters, digits, . _ -)")
    label: Text | None = Field(default=None, description="the label column (default: by name)")


class ApplyUnlabeled(Request):
    filepath: Path = Field(description="a file you uploaded: its name, or the key returned")
    model_name: Text | None = Field(default=None, description="score with this model only")


M = TypeVar("M", bound=Request)


def parse(model: type[M], values: Mapping[str, Any], where: str) -> M:
    """`values` as `model`; a 400 naming the first field that is wrong (or unknown)."""
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        known = ", ".join(f"`{name}`" for name in model.model_fields)
        raise InputError(f"unknown {where} field {unknown[0][:80]!r}: expected {known}")
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or where
        message = error["msg"]
        if error["type"] == "string_pattern_mismatch":
            message = "no NUL character"
            if error.get("ctx", {}).get("pattern") == MODEL_NAME.pattern:
                message = (
                    f"invalid model name {str(error['input'])[:80]!r}: 1-80 letters, digits, "
                    "'.', '_' or '-', starting with a letter or digit"
                )
        raise InputError(f"{where} field `{field}`: {message}") from None


def query_parameters(model: type[Request]) -> list[dict[str, Any]]:
    """The model's fields as OpenAPI query parameters."""
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": field}
        for name, field in schema["properties"].items()
    ]


def form_schema(model: type[Request], file: bool = True) -> dict[str, Any]:
    """The model's fields (and a `file` part) as an OpenAPI multipart or JSON body schema."""
    schema = model.model_json_schema()
    properties = dict(schema["properties"])
    required = list(schema.get("required", []))
    if file:
        properties = {"file": {"type": "string", "format": "binary"}, **properties}
        required = ["file", *required]
    return {
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }
