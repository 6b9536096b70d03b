"""Findings: what validation says about a spec, as data with a location (rendered by the CLI)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

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


def format_path(parts: tuple[str | int, ...]) -> str:
    """`("spec", "stores", 1, "postgres", "table")` -> `spec.stores[1].postgres.table`; an empty key
    is written `""` so that it still shows."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = part or '""'
            text += f".{name}" if text else name
    return text
