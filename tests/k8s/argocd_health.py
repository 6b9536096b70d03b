"""Run the bundle's Argo CD health check (operators/gitops/argocd-health-dataproduct.lua) in a real
Lua interpreter (lupa bundles one), on a DataProduct as the operator wrote it, as Argo CD runs it:
the object as the global `obj`, the chunk's return value the health."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).parents[2] / "operators" / "gitops" / "argocd-health-dataproduct.lua"


def health(body: dict[str, Any]) -> tuple[str, str]:
    """(status, message) the health check gives `body`."""
    lupa = pytest.importorskip("lupa")
    runtime = lupa.LuaRuntime(unpack_returned_tuples=False)
    runtime.globals().obj = runtime.table_from(body, recursive=True)
    result = runtime.execute(SCRIPT.read_text())
    return str(result["status"]), str(result["message"])
