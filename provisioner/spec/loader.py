"""Read DataProduct specs from files and directories into models, or into located findings.

Who calls it: every CLI command that takes PATH arguments, and the operator (from a dict). The
loader never raises on bad input: it returns findings that name file:line:column and the field
path, so `validate` can report every problem at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from provisioner.spec import models
from provisioner.spec.findings import Finding, SpecError, format_path
from provisioner.spec.overlaps import overlap_findings
from provisioner.spec.salvage import salvage
from provisioner.spec.semantics import Problem, check_product
from provisioner.spec.wording import Worded, translate
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


def _validation_findings(file: str, document: Document, errors: list[Worded]) -> list[Finding]:
    findings: list[Finding] = []
    for worded in errors:
        text = worded.message
        if text == "unknown field":
            name = str(worded.path[-1]) if worded.path else "?"
            # typos, not cousins; never the name itself (a field known elsewhere, e.g. a secretRef's key)
            close = difflib.get_close_matches(name, [n for n in _KNOWN_FIELDS if n != name], n=1, cutoff=0.75)
            text = f"unknown field {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        line, column = document.locate(worded.path, at_key=worded.at_key)
        findings.append(Finding(file, line, column, format_path(worded.path), text))
    return findings


def product_from_document(file: str, document: Document) -> tuple[models.DataProduct | None, list[Finding]]:
    """Validate one document: the model, then the rules that need the whole product (on what
    validated, when some fields did not: see `salvage`)."""
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
        errors = translate(document.data, error.errors())
        findings += _validation_findings(file, document, errors)
        salvaged = salvage(document.data, errors)
        if salvaged is not None:
            findings += [problem_finding(file, document, problem) for problem in salvaged.problems()]
        return None, findings
    findings += [problem_finding(file, document, problem) for problem in check_product(product)]
    return (None if findings else product), findings


def problem_finding(file: str, document: Document, problem: Problem) -> Finding:
    """A problem found in a product, at its file:line:column (within an expression, at the column
    the problem names)."""
    line, column = document.locate(problem.path, at_key=problem.at_key)
    if problem.column_offset is not None:
        position = document.positions.get(problem.path)
        if position is not None and position.line == line:
            column += problem.column_offset + (1 if position.quoted else 0)
    return Finding(file, line, column, format_path(problem.path), problem.message)


#: Files Kustomize reads: a folder Argo CD or Flux syncs holds one beside the specs.
KUSTOMIZE_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


@dataclass(slots=True)
class Scan:
    """What reading spec files found: valid specs, findings (errors) and notes (what was skipped)."""

    specs: list[LoadedSpec] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)


def _other_kind(document: Document) -> str | None:
    """The kind of a document that is some other resource (not ours), or None: a document with
    this project's apiVersion group or kind DataProduct is a spec, however broken."""
    data = document.data
    if not isinstance(data, dict):
        return None
    kind, api_version = data.get("kind"), data.get("apiVersion")
    if not isinstance(kind, str) or kind == models.KIND:
        return None
    if isinstance(api_version, str) and api_version.split("/")[0] == models.API_VERSION.split("/")[0]:
        return None
    return kind


def _scan_text(text: str, file: str, scan: Scan) -> None:
    try:
        for document in read_documents(text):
            if document.data is None and not document.duplicate_keys:
                continue  # an empty document (a trailing `---`) holds nothing to check
            other = _other_kind(document)
            if other is not None:
                scan.notes.append(Finding(file, document.start_line, 1, "",
                                          f"skipped: a {other}, not a DataProduct"))
                continue
            product, problems = product_from_document(file, document)
            scan.findings.extend(problems)
            if product is not None:
                scan.specs.append(LoadedSpec(product, file, document))
    except YamlLimitError as error:
        scan.findings.append(Finding(file, error.line, error.column, "", error.message))


def load_text(text: str, file: str = "<string>") -> tuple[list[LoadedSpec], list[Finding]]:
    """Load every document of one YAML text (other kinds and empty documents are skipped)."""
    scan = Scan()
    _scan_text(text, file, scan)
    return scan.specs, scan.findings


def spec_files(paths: Iterable[Path]) -> tuple[list[Path], list[Finding]]:
    """Expand directories (recursively, sorted) into their .yaml/.yml files."""
    files: list[Path] = []
    findings: list[Finding] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if (p.suffix in SPEC_SUFFIXES or p.name in KUSTOMIZE_FILES) and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            findings.append(Finding(str(path), 1, 1, "", "no such file or directory"))
    return files, findings


def scan_paths(paths: Iterable[Path]) -> Scan:
    """Read every spec under `paths`: names must be unique per namespace across all of them, and
    no two products may share a table, Redis keys or a dead-letter topic (`overlap_findings`)."""
    files, findings = spec_files(paths)
    scan = Scan(findings=findings)
    for file in files:
        if file.name in KUSTOMIZE_FILES:
            scan.notes.append(Finding(str(file), 1, 1, "", "skipped: a Kustomize file, not a DataProduct"))
            continue
        try:
            if file.stat().st_size > MAX_FILE_BYTES:
                scan.findings.append(Finding(str(file), 1, 1, "", f"file is larger than {MAX_FILE_BYTES // 1024} KiB"))
                continue
            raw = file.read_bytes()
        except OSError as error:
            scan.findings.append(Finding(str(file), 1, 1, "", f"cannot read: {error.strerror or error}"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line = raw.count(b"\n", 0, error.start) + 1
            column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
            scan.findings.append(Finding(str(file), line, column, "",
                                         f"not UTF-8 text: byte 0x{raw[error.start]:02X} cannot start a character"))
            continue
        _scan_text(text, str(file), scan)
    seen: dict[tuple[str, str], LoadedSpec] = {}
    for spec in scan.specs:
        ident = (spec.product.metadata.namespace, spec.product.name)
        if ident in seen:
            line, column = spec.document.locate(("metadata", "name"))
            first = seen[ident]
            scan.findings.append(Finding(spec.file, line, column, "metadata.name",
                                         f"data product {ident[1]!r} is also defined in {first.file}"))
        seen.setdefault(ident, spec)
    scan.findings.extend(overlap_findings(list(seen.values())))
    return scan


def load_paths(paths: Iterable[Path]) -> tuple[list[LoadedSpec], list[Finding]]:
    """Load every spec under `paths` (see `scan_paths`); the notes are left out."""
    scan = scan_paths(paths)
    return scan.specs, scan.findings


def load_products(paths: Iterable[Path]) -> list[LoadedSpec]:
    """Load specs or raise SpecError with every finding (for commands that need valid specs)."""
    specs, findings = load_paths(paths)
    if findings:
        raise SpecError(findings)
    if not specs:
        raise SpecError([Finding("", 1, 1, "", "no specs found (looked for *.yaml and *.yml)")])
    return specs
