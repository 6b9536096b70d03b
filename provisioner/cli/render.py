"""`provisioner render PATH... [-d DIR] [-o yaml|json]`: each product's Kubernetes objects as plain
manifests, for GitOps without the operator; and `provisioner crd`: the DataProduct CRD.

Secrets are left out unless --with-secrets; the output (a comment at the top, and stderr) names the
Secrets to create and their keys. Managed stores' passwords derive from a credentials key
(PROVISIONER_CREDENTIALS_KEY, or a key file created on first use), so every render made with the
same key gives the same bytes. `${NAME}` in a connection URL is expanded only for the variables
named with `--env NAME`: the spec's author does not choose what of the renderer's environment goes
into a Secret. Files are written only under `--output-dir`, as `<namespace>/<product>.<format>`,
both names DNS labels.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from provisioner.cli.options import (
    KAFKA_SECRET_OPTION,
    KEY_ENV,
    STORAGE_SIZE_OPTION,
    environment_key,
    image_option,
    kafka_secret_name,
    platform_bootstrap_option,
)
from provisioner.cli.output import err_console, fail
from provisioner.files import file_lock, write_atomically
from provisioner.kube import render as kube_render
from provisioner.kube.crd import crd_yaml
from provisioner.kube.credentials import new_key
from provisioner.kube.render import (
    DEFAULT_IMAGE,
    DEFAULT_POSTGRES_IMAGE,
    DEFAULT_REDIS_IMAGE,
    Rendered,
    RenderOptions,
    RenderRefused,
)
from provisioner.spec.findings import Finding, SpecError
from provisioner.spec.loader import LoadedSpec, load_products
from provisioner.spec.names import check_rfc1123_label

FORMATS = ("yaml", "json")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _credentials_key(key_file: Path) -> bytes:
    """The key managed stores' passwords derive from: the environment's, else the key file's
    (created with a random key, readable by its owner only, on first use)."""
    configured = environment_key()
    if configured is not None:
        return configured
    with file_lock(key_file.with_name(key_file.name + ".lock")):
        if not key_file.exists():
            write_atomically(key_file, new_key().hex() + "\n")
            err_console.print(f"created the credentials key {escape(str(key_file))}: keep it, or passwords change")
        text = key_file.read_text(encoding="utf-8").strip()
    if len(text) < 32:
        fail(f"{key_file} holds no usable key (at least 32 characters)")
    return text.encode()


def render(
    paths: list[Path] = typer.Argument(..., help="Spec files or directories (searched for *.yaml, *.yml)."),
    output_dir: Path | None = typer.Option(None, "--output-dir", "-d",
                                           help="Write <namespace>/<product>.<format> files here (default: stdout)."),
    output: str = typer.Option("yaml", "--output", "-o", help="yaml (multi-document) or json (a v1 List)."),
    namespace: str | None = typer.Option(None, "--namespace", help="Put every object here (default: each spec's)."),
    kafka_bootstrap: str = platform_bootstrap_option(..., "The platform's Kafka bootstrap servers, for the consumers."),
    image: str = image_option("consumer", DEFAULT_IMAGE),
    redis_image: str = image_option("redis", DEFAULT_REDIS_IMAGE),
    postgres_image: str = image_option("postgres", DEFAULT_POSTGRES_IMAGE),
    storage_size: str = STORAGE_SIZE_OPTION,
    with_secrets: bool = typer.Option(False, "--with-secrets",
                                      help="Also render Secrets: managed stores' credentials, connection URLs."),
    env: list[str] = typer.Option([], "--env", metavar="NAME",
                                  help="With --with-secrets: expand ${NAME} in connection URLs from this "
                                       "environment variable (repeatable; no other variable is expanded)."),
    key_file: Path = typer.Option(Path(".provisioner/credentials.key"), "--credentials-key-file",
                                  help=f"Key of managed stores' passwords, if {KEY_ENV} is not set "
                                       "(created on first use)."),
    kafka_secret: str | None = KAFKA_SECRET_OPTION,
) -> None:
    """Render each product's Kubernetes objects (consumers, managed stores, their Secrets) as YAML or JSON."""
    if output not in FORMATS:
        fail(f"-o/--output is the format, yaml or json, not {output!r}; "
             f"to write files into a folder use --output-dir/-d {output}")
    if namespace is not None:
        try:
            check_rfc1123_label(namespace, 63)
        except ValueError as error:
            fail(f"--namespace: {error}")
    environ = _chosen_variables(env)
    specs = load_products(paths)
    products = [spec.product for spec in specs]
    needs_key = with_secrets and any(store.managed for product in products for store in product.spec.stores)
    options = RenderOptions(
        kafka_bootstrap=kafka_bootstrap, namespace=namespace, image=image, redis_image=redis_image,
        postgres_image=postgres_image, storage_size=storage_size, with_secrets=with_secrets,
        credentials_key=_credentials_key(key_file) if needs_key else None, environ=environ,
        kafka_secret=kafka_secret_name(kafka_secret),
    )
    rendered = []
    for spec in specs:  # one at a time, so a refusal names its file
        try:
            rendered.extend(kube_render.render([spec.product], options))
        except RenderRefused as refused:
            raise SpecError([refusal_finding(spec, refused)]) from None
    for result in rendered:
        for secret in result.secrets_to_create:
            err_console.print(f"[yellow]create Secret[/] {escape(str(secret))}")
    if output_dir is None:
        sys.stdout.write(_text(rendered, output))
        return
    root = output_dir.resolve()
    for result in rendered:
        target = (output_dir / result.namespace / f"{result.product}.{output}").resolve()
        if not target.is_relative_to(root):  # names are DNS labels; this holds whatever a spec says
            fail(f"refusing to write {target} outside {root}")
        write_atomically(target, _text([result], output))
        err_console.print(f"wrote {escape(str(target))} ({len(result.objects)} objects)")


def _chosen_variables(names: list[str]) -> dict[str, str]:
    """The variables named with --env and their values; each must be a name and set."""
    chosen = {}
    for name in names:
        if not _VARIABLE_NAME.fullmatch(name):
            fail(f"--env {name!r}: not a variable name (letters, digits, '_', not starting with a digit)")
        if name not in os.environ:
            fail(f"--env {name}: the variable is not set")
        chosen[name] = os.environ[name]
    return chosen


def refusal_finding(spec: LoadedSpec, refused: RenderRefused) -> Finding:
    """A render's refusal as a finding at the field it names, in the spec's file."""
    line, column = spec.document.locate(refused.parts)
    return Finding(spec.file, line, column, refused.path, str(refused))


def _text(rendered: list[Rendered], output: str) -> str:
    if output == "yaml":
        return "".join(result.yaml() for result in rendered)
    items: list[Any] = [obj for result in rendered for obj in result.objects]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2, ensure_ascii=False) + "\n"


def crd() -> None:
    """Print the DataProduct CustomResourceDefinition (generated from the spec model)."""
    sys.stdout.write(crd_yaml())
