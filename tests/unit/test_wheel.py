"""The wheel, and so the operator's image, carries only what runs in production.

The harness the tests and benchmarks start (a kube-apiserver, Flux, a git server) lives in
tests/support; it must not find its way back into the package. (Building a Go binary is the
package's: `provisioner dev registry up` builds the dev schema registry.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]
HARNESS = {p.stem for p in (ROOT / "tests" / "support").glob("*.py")} - {"__init__"}
# What operators/Dockerfile's builder stage copies before `pip wheel .`: the image holds the wheel's files only.
IMAGE_SOURCES = ["pyproject.toml", "README.md", "provisioner", "templates"]


def build_wheel(tmp_path: Path) -> list[str]:
    """The wheel's file names, built from a copy of the image's sources (the checkout stays clean)."""
    source = tmp_path / "src"
    source.mkdir()
    for name in IMAGE_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        else:
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_harness_is_not_in_the_wheel(tmp_path: Path) -> None:
    names = build_wheel(tmp_path)
    assert {"kubeapi", "flux", "gitserver"} <= HARNESS
    modules = [n for n in names if n.endswith(".py")]
    assert "provisioner/cli/app.py" in modules  # the build did produce the package
    outside = [n for n in names if not n.startswith(("provisioner/", "provisioner-"))]
    assert outside == []
    shipped = [n for n in modules if Path(n).stem in HARNESS]
    assert shipped == [], f"test harness in the wheel: {shipped}"
    if shutil.which("gcc"):  # the Avro reader in C, built where there is a compiler
        assert [n for n in names if n.startswith("provisioner/formats/_avroc.") and n.endswith(".so")]


def test_the_image_copies_only_the_wheels_sources() -> None:
    dockerfile = (ROOT / "operators" / "Dockerfile").read_text()
    copied = [word.rstrip("/") for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.MULTILINE)
              for word in line.split()[:-1]]
    assert sorted(copied) == sorted(IMAGE_SOURCES)
    assert "pip wheel --no-deps --wheel-dir /wheels ." in dockerfile
    assert "COPY --from=build /wheels /wheels" in dockerfile
