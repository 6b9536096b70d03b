"""Findings: what validation says about a spec, as data with a location (rendered by the CLI)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Final

from provisioner.errors import InvalidSpecError


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a spec file: where it is (file:line:column, field path) and what is wrong."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpecError(InvalidSpecError):
    """Raised when specs cannot be loaded; carries every finding, not only the first."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("\n".join(str(f) for f in findings))


#: A key a path may write bare: dot-separated names, none empty, no brackets or quotes in them.
_BARE_KEY: Final = re.compile(r'[^.\[\]"]+(?:\.[^.\[\]"]+)*')


def key_segment(key: str) -> str:
    """A mapping key as a path writes it: bare (`postgres`, or a label key such as
    `app.kubernetes.io/name`), or quoted in brackets (`[""]`, `[".0"]`, `["a[0]"]`) where bare it
    would leave an empty segment between two dots or read as a list index."""
    return key if _BARE_KEY.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def format_path(parts: tuple[str | int, ...]) -> str:
    """`("spec", "stores", 1, "postgres", "table")` -> `spec.stores[1].postgres.table`; a key that
    is empty or would not read back as one key is quoted (`spec.fields[""]`, see `key_segment`)."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            segment = key_segment(part)
            text += f".{segment}" if text and not segment.startswith("[") else segment
    return text
