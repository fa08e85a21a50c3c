"""Request bodies that refuse fields they do not know, at any depth.

A misspelt optional field (`"filtres": {...}`) would otherwise be dropped without a word and
the request would run without it. The shared contracts in `keel.contracts` cannot simply
forbid extra fields: they are also workflow inputs, and a payload recorded by an older or
newer deployment must still load. So the check lives here, at the API's edge: a body model
walks the raw JSON against its own fields and those of every nested model, and names each
unknown one (422, `extra_forbidden`, with the closest known name when there is one).
"""

from __future__ import annotations

import difflib
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError, model_validator
from pydantic_core import InitErrorDetails


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold directly (through Optional/Union/Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType) or str(origin) == "typing.Annotated":
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    return []


def _items_in(annotation: Any) -> tuple[str, list[type[BaseModel]]]:
    """For list/dict annotations: ("list" | "dict", the models their items can be)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            kind, models = _items_in(arg)
            if models:
                return kind, models
    if origin in (list, tuple, set, frozenset):
        return "list", [m for arg in get_args(annotation) for m in _models_in(arg)]
    if origin is dict:
        args = get_args(annotation)
        return "dict", _models_in(args[1]) if len(args) == 2 else []
    return "", []


def unknown_fields(
    model: type[BaseModel], data: dict[str, Any], at: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], Any, list[str]]]:
    """Every key of `data` (and of nested objects) that `model` does not declare:
    (location, value, the model's field names)."""
    if model.model_config.get("extra") == "allow":
        return []
    known: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        known[name] = field.annotation
        if field.alias:
            known[field.alias] = field.annotation
    found: list[tuple[tuple[str | int, ...], Any, list[str]]] = []
    for key, value in data.items():
        if key not in known:
            found.append(((*at, key), value, sorted(model.model_fields)))
            continue
        annotation = known[key]
        nested = _models_in(annotation)
        if isinstance(value, dict) and len(nested) == 1:
            found += unknown_fields(nested[0], value, (*at, key))
            continue
        kind, items = _items_in(annotation)
        if len(items) != 1:
            continue
        if kind == "list" and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    found += unknown_fields(items[0], item, (*at, key, i))
        elif kind == "dict" and isinstance(value, dict):
            for name, item in value.items():
                if isinstance(item, dict):
                    found += unknown_fields(items[0], item, (*at, key, name))
    return found


class StrictBody(BaseModel):
    """Base of the API's request bodies: unknown fields anywhere are a 422 naming them."""

    @model_validator(mode="before")
    @classmethod
    def _refuse_unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        unknown = unknown_fields(cls, data)
        if unknown:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type="extra_forbidden",
                        loc=location,
                        input=value,
                        ctx={"known": names},
                    )
                    for location, value, names in unknown
                ],
            )
        return data


def suggestion(field: str, known: list[str]) -> str:
    """`did you mean 'filters'?` for a misspelt field, or the list of known fields."""
    close = difflib.get_close_matches(field, known, n=1)
    if close:
        return f"unknown field {field!r}: did you mean {close[0]!r}?"
    return f"unknown field {field!r}: known fields are {', '.join(known)}"
