"""The CEL values that have no Python counterpart: optionals and types."""

from __future__ import annotations

from typing import Any


class Optional:
    """A CEL `optional_type` value: `optional.of(v)` (present) or `optional.none()` (absent)."""

    __slots__ = ("present", "value")

    def __init__(self, present: bool, value: Any = None) -> None:
        self.present = present
        self.value = value

    def __repr__(self) -> str:
        return f"optional.of({self.value!r})" if self.present else "optional.none()"

    def __eq__(self, other: object) -> bool:
        from .runtime import eq

        if type(other) is not Optional:
            return NotImplemented
        if self.present != other.present:
            return False
        return not self.present or eq(self.value, other.value)

    def __hash__(self) -> int:
        return hash(self.present)


NONE = Optional(False)


def some(value: Any) -> Optional:
    return Optional(True, value)


class CelType:
    """A CEL type value, such as the result of `type(1)` or the identifier `int`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return type(other) is CelType and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


TYPE_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type",
                        "google.protobuf.Timestamp", "google.protobuf.Duration", "optional_type"})
"""The type identifiers an expression may name (`type(x) == int`)."""
