"""Error paths: pydantic's errors turned into `path: message` lines that name the key
(`targets[1].gatways: unknown key (did you mean 'gateways'?)`)."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
)
from pydantic.fields import FieldInfo

from exporter.config.model import Config
from exporter.config.values import Loc, PathPart, format_path

# --- error paths ------------------------------------------------------------------------


def unwrap_annotation(annotation: Any) -> tuple[Any, str | None]:
    """The type under `Annotated` and `X | None`, and the discriminator of a tagged union."""
    discriminator = None
    while True:
        if typing.get_origin(annotation) is Annotated:
            annotation, *metadata = typing.get_args(annotation)
            for item in metadata:
                if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
                    discriminator = item.discriminator
            continue
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation, discriminator


def is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _tagged_member(annotation: Any, discriminator: str, tag: object) -> Any:
    for member in typing.get_args(annotation):
        if tag in typing.get_args(member.model_fields[discriminator].annotation):
            return member
    return None


def child_annotation(annotation: Any, part: PathPart, data: object = None) -> tuple[Any, bool]:
    """The annotation found at `part` below `annotation`, and whether `part` is a step of
    the path users see: pydantic puts a tagged union's tag in `loc`, users never wrote it."""
    annotation, discriminator = unwrap_annotation(annotation)
    if discriminator is not None:
        member = _tagged_member(annotation, discriminator, part)
        if member is not None:
            return member, False
        tag = data.get(discriminator) if isinstance(data, Mapping) else None
        annotation = _tagged_member(annotation, discriminator, tag)
    if is_model(annotation):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return (field.annotation if field else None), True
    origin = typing.get_origin(annotation)
    if origin is dict:
        return typing.get_args(annotation)[1], True
    if origin in (list, tuple):
        return typing.get_args(annotation)[0], True
    return None, True


def field_names(annotation: Any) -> list[str]:
    annotation, discriminator = unwrap_annotation(annotation)
    members = typing.get_args(annotation) if discriminator else (annotation,)
    return [name for member in members if is_model(member) for name in member.model_fields]


def translate_error(error: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`(path, message)` pairs for one pydantic error, from its `loc` and `msg`, never
    from its input."""
    kind, ctx = error["type"], error.get("ctx") or {}
    loc: Loc = tuple(part for part in error["loc"] if part != "[key]")
    if kind == "config_problems":
        return [
            (path, message)
            for sub_loc, sub_message in ctx["problems"]
            for path, message in translate_error(
                {"type": "custom", "loc": loc + tuple(sub_loc), "msg": sub_message}
            )
        ]
    annotation: Any = Config
    parent: Any = None
    shown: list[PathPart] = []
    for part in loc:
        parent = annotation
        annotation, visible = child_annotation(annotation, part)
        if visible:
            shown.append(part)
    message = error["msg"]
    if kind == "extra_forbidden":
        message = "unknown key"
        close = difflib.get_close_matches(str(loc[-1]), field_names(parent), n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
    elif kind == "missing":
        message = "missing required key"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        discriminator = ctx["discriminator"].strip("'")
        shown.append(discriminator)
        expected = ctx.get("expected_tags") or ", ".join(
            repr(tag) for tag in _tags(annotation, discriminator)
        )
        message = (
            f"must be one of {expected}"
            if kind == "union_tag_invalid"
            else f"missing required key (one of {expected})"
        )
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = "expected a mapping"
    elif kind in ("list_type", "tuple_type"):
        message = "expected a list"
    return [(format_path(shown), message)]


def _tags(annotation: Any, discriminator: str) -> list[object]:
    union, _ = unwrap_annotation(annotation)
    return [
        tag
        for member in typing.get_args(union)
        for tag in typing.get_args(member.model_fields[discriminator].annotation)
    ]
