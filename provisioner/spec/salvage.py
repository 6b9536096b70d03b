"""The whole-product rules of a spec whose fields do not all validate, in the same run.

The rules of `semantics` need a model, and a document with a field-level error makes none. So the
broken parts are cut out of a copy of the document (the value an error names; the mapping that
lacks a required field, or a stand-in where the product cannot do without one) until the rest
validates, and the rules run on that model. A default now stands where the user wrote something
else, so a problem is kept only when neither its own path nor anything it read (`Problem.reads`)
was cut: the rules speak only of what the user wrote. Paths are given back in the document's own
numbering (a cut list item moves the later ones up in the copy).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Final

from pydantic import ValidationError

from provisioner.spec.models import API_VERSION, KIND, DataProduct
from provisioner.spec.semantics import Problem, check_product
from provisioner.spec.wording import REQUIRED, Worded, key_text, translate

Path = tuple[str | int, ...]

#: Required values the rules cannot do without a product for: a stand-in lets the rest be checked
#: (whatever reads them is passed over, as for any cut).
_STAND_INS: Final[dict[Path, str]] = {
    ("apiVersion",): API_VERSION,
    ("kind",): KIND,
    ("metadata", "name"): "x",
    ("spec", "source", "topic"): "x",
}
#: Each round cuts at least one value; a document with more broken parts is not salvaged.
MAX_ROUNDS: Final = 16


def _overlaps(a: Path, b: Path) -> bool:
    return a[: len(b)] == b or b[: len(a)] == a


@dataclass(frozen=True, slots=True)
class Salvaged:
    """A model of what validated, what was cut (document paths) and the cuts of list items as made
    in the copy, in order (to number paths as the document does)."""

    product: DataProduct
    cut: tuple[Path, ...]
    removed: tuple[Path, ...]

    def original(self, path: Path) -> Path:
        """`path` in the copy, numbered as in the document."""
        return _original(path, self.removed)

    def problems(self) -> list[Problem]:
        """The whole-product problems of what the user wrote, at document paths."""
        kept = []
        for problem in check_product(self.product):
            path = self.original(problem.path)
            reads = [self.original(p) for p in problem.reads]
            if not any(_overlaps(cut, seen) for cut in self.cut for seen in (path, *reads)):
                kept.append(replace(problem, path=path))
        return kept


def _original(path: Path, removed: Iterable[Path]) -> Path:
    for gone in reversed(list(removed)):
        depth = len(gone) - 1
        if len(path) > depth and path[:depth] == gone[:depth]:
            index, was = path[depth], gone[depth]
            if isinstance(index, int) and isinstance(was, int) and index >= was:
                path = (*path[:depth], index + 1, *path[depth + 1:])
    return path


def _child_key(node: dict[Any, Any], part: str | int) -> Any:
    """The key of `node` a path part names (paths write a key that is not a string as YAML does)."""
    if part in node:
        return part
    return next((key for key in node if key_text(key) == part), _MISSING)


_MISSING: Final = object()


def _cut(data: Any, path: Path) -> bool:
    """Remove `path` from `data`; False when the path names nothing there."""
    parent = data
    for part in path[:-1]:
        if isinstance(parent, dict):
            key = _child_key(parent, part)
            if key is _MISSING:
                return False
            parent = parent[key]
        elif isinstance(parent, list) and isinstance(part, int) and 0 <= part < len(parent):
            parent = parent[part]
        else:
            return False
    last = path[-1]
    if isinstance(parent, dict):
        key = _child_key(parent, last)
        if key is _MISSING:
            return False
        del parent[key]
        return True
    if isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
        del parent[last]
        return True
    return False


def _order(path: Path) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, part) if isinstance(part, int) else (1, part) for part in path)


def salvage(data: Any, worded: list[Worded]) -> Salvaged | None:
    """A model of `data` without the parts `worded` (its field-level errors) names, or None when
    too little of it validates to check the product as a whole."""
    if not isinstance(data, dict):
        return None
    doc = copy.deepcopy(data)
    cut: list[Path] = []
    removed: list[Path] = []
    for _ in range(MAX_ROUNDS):
        targets: set[Path] = set()
        for error in worded:
            missing = error.message == REQUIRED
            if missing and error.path in _STAND_INS and isinstance(parent := _parent(doc, error.path), dict):
                parent[error.path[-1]] = _STAND_INS[error.path]
                cut.append(error.path)
                continue
            target = error.path[:-1] if missing else error.path
            if not target:
                return None
            targets.add(target)
        # Outermost only, and the later items of a list first, so each cut path is still right.
        outermost = [t for t in targets if not any(o != t and t[: len(o)] == o for o in targets)]
        for target in sorted(outermost, key=_order, reverse=True):
            if not _cut(doc, target):
                return None
            cut.append(_original(target, removed))
            if isinstance(target[-1], int):
                removed.append(target)
        try:
            product = DataProduct.model_validate(doc)
        except ValidationError as error:
            worded = translate(doc, error.errors())
            continue
        return Salvaged(product, tuple(cut), tuple(removed))
    return None


def _parent(doc: dict[str, Any], path: Path) -> Any:
    node: Any = doc
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    return node
