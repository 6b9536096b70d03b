"""Read DataProduct specs from files and directories into models, or into located findings.

Who calls it: every CLI command that takes PATH arguments, and the operator (from a dict). The
loader never raises on bad input: it returns findings that name file:line:column and the field
path, so `validate` can report every problem at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from provisioner.spec import models
from provisioner.spec.findings import Finding, SpecError, format_path
from provisioner.spec.semantics import check_product
from provisioner.spec.wording import translate
from provisioner.spec.yamlsafe import MAX_FILE_BYTES, Document, YamlLimitError, read_documents

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    """A valid DataProduct and where it came from."""

    product: models.DataProduct
    file: str
    document: Document


def _known_field_names() -> list[str]:
    names: set[str] = set()
    for value in vars(models).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
            for name, info in value.model_fields.items():
                names.add(info.alias or name)
    return sorted(names)


_KNOWN_FIELDS = _known_field_names()


def _validation_findings(file: str, document: Document, error: ValidationError) -> list[Finding]:
    findings: list[Finding] = []
    for worded in translate(document.data, error.errors()):
        text = worded.message
        if text == "unknown field":
            name = str(worded.path[-1]) if worded.path else "?"
            close = difflib.get_close_matches(name, _KNOWN_FIELDS, n=1)
            text = f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        line, column = document.locate(worded.path, at_key=worded.at_key)
        findings.append(Finding(file, line, column, format_path(worded.path), text))
    return findings


def product_from_document(file: str, document: Document) -> tuple[models.DataProduct | None, list[Finding]]:
    """Validate one document: the model, then the rules that need the whole product."""
    findings = [
        Finding(file, pos.line, pos.column, format_path(path), "duplicate key: the later value would win")
        for path, pos in document.duplicate_keys
    ]
    if not isinstance(document.data, dict):
        line, column = document.locate(())
        findings.append(Finding(file, line, column, "", "a spec document must be a mapping (apiVersion, kind, ...)"))
        return None, findings
    try:
        product = models.DataProduct.model_validate(document.data)
    except ValidationError as error:
        return None, findings + _validation_findings(file, document, error)
    for problem in check_product(product):
        line, column = document.locate(problem.path, at_key=problem.at_key)
        if problem.column_offset is not None:
            position = document.positions.get(problem.path)
            if position is not None and position.line == line:
                column += problem.column_offset + (1 if position.quoted else 0)
        findings.append(Finding(file, line, column, format_path(problem.path), problem.message))
    return (None if findings else product), findings


def load_text(text: str, file: str = "<string>") -> tuple[list[LoadedSpec], list[Finding]]:
    """Load every document of one YAML text."""
    specs: list[LoadedSpec] = []
    findings: list[Finding] = []
    try:
        for document in read_documents(text):
            product, problems = product_from_document(file, document)
            findings.extend(problems)
            if product is not None:
                specs.append(LoadedSpec(product, file, document))
    except YamlLimitError as error:
        findings.append(Finding(file, error.line, error.column, "", error.message))
    return specs, findings


def spec_files(paths: Iterable[Path]) -> tuple[list[Path], list[Finding]]:
    """Expand directories (recursively, sorted) into their .yaml/.yml files."""
    files: list[Path] = []
    findings: list[Finding] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in SPEC_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            findings.append(Finding(str(path), 1, 1, "", "no such file or directory"))
    return files, findings


def load_paths(paths: Iterable[Path]) -> tuple[list[LoadedSpec], list[Finding]]:
    """Load every spec under `paths`; names must be unique per namespace across all of them."""
    files, findings = spec_files(paths)
    specs: list[LoadedSpec] = []
    for file in files:
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                findings.append(Finding(str(file), 1, 1, "", f"file is larger than {MAX_FILE_BYTES // 1024} KiB"))
                continue
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            findings.append(Finding(str(file), 1, 1, "", f"cannot read: {error}"))
            continue
        loaded, problems = load_text(text, str(file))
        specs.extend(loaded)
        findings.extend(problems)
    seen: dict[tuple[str, str], LoadedSpec] = {}
    for spec in specs:
        ident = (spec.product.metadata.namespace, spec.product.name)
        if ident in seen:
            line, column = spec.document.locate(("metadata", "name"))
            first = seen[ident]
            findings.append(Finding(spec.file, line, column, "metadata.name",
                                    f"data product {ident[1]!r} is also defined in {first.file}"))
        seen.setdefault(ident, spec)
    return specs, findings


def load_products(paths: Iterable[Path]) -> list[LoadedSpec]:
    """Load specs or raise SpecError with every finding (for commands that need valid specs)."""
    specs, findings = load_paths(paths)
    if findings:
        raise SpecError(findings)
    if not specs:
        raise SpecError([Finding("", 1, 1, "", "no specs found (looked for *.yaml and *.yml)")])
    return specs
