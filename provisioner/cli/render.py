"""`provisioner render PATH... [-o DIR]`: each product's Kubernetes objects as plain manifests, for
GitOps without the operator; and `provisioner crd`: the DataProduct CRD.

Secrets are left out unless --with-secrets; the output (a comment at the top, and stderr) names the
Secrets to create and their keys. Managed stores' passwords derive from a credentials key
(PROVISIONER_CREDENTIALS_KEY, or a key file created on first use), so every render made with the
same key gives the same bytes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.markup import escape

from provisioner.cli.output import err_console, fail
from provisioner.files import file_lock, write_atomically
from provisioner.kube import render as kube_render
from provisioner.kube.crd import crd_yaml
from provisioner.kube.credentials import new_key
from provisioner.kube.render import DEFAULT_IMAGE, DEFAULT_POSTGRES_IMAGE, DEFAULT_REDIS_IMAGE, RenderOptions
from provisioner.spec.loader import load_products

KEY_ENV = "PROVISIONER_CREDENTIALS_KEY"


def _credentials_key(key_file: Path) -> bytes:
    """The key managed stores' passwords derive from: the environment's, else the key file's
    (created with a random key, readable by its owner only, on first use)."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        if len(configured.encode()) < 16:
            fail(f"{KEY_ENV} must be at least 16 characters")
        return configured.encode()
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
    output_dir: Path | None = typer.Option(None, "--output-dir", "-o",
                                           help="Write <namespace>/<product>.yaml files here (default: stdout)."),
    namespace: str | None = typer.Option(None, "--namespace", help="Put every object here (default: each spec's)."),
    kafka_bootstrap: str = typer.Option(..., "--kafka-bootstrap", envvar="PROVISIONER_KAFKA_BOOTSTRAP",
                                        help="The platform's Kafka bootstrap servers, for the consumers."),
    image: str = typer.Option(DEFAULT_IMAGE, "--image", help="The provisioner image the consumers run."),
    redis_image: str = typer.Option(DEFAULT_REDIS_IMAGE, "--redis-image", help="Image of managed Redis stores."),
    postgres_image: str = typer.Option(DEFAULT_POSTGRES_IMAGE, "--postgres-image",
                                       help="Image of managed Postgres stores."),
    storage_size: str = typer.Option("1Gi", "--storage-size", help="Volume size of each managed store."),
    with_secrets: bool = typer.Option(False, "--with-secrets",
                                      help="Also render Secrets: managed stores' credentials, connection URLs."),
    key_file: Path = typer.Option(Path(".provisioner/credentials.key"), "--credentials-key-file",
                                  help=f"Key of managed stores' passwords, if {KEY_ENV} is not set "
                                       "(created on first use)."),
) -> None:
    """Render each product's Kubernetes objects (consumers, managed stores, their Secrets) as YAML."""
    products = [spec.product for spec in load_products(paths)]
    needs_key = with_secrets and any(store.managed for product in products for store in product.spec.stores)
    options = RenderOptions(
        kafka_bootstrap=kafka_bootstrap, namespace=namespace, image=image, redis_image=redis_image,
        postgres_image=postgres_image, storage_size=storage_size, with_secrets=with_secrets,
        credentials_key=_credentials_key(key_file) if needs_key else None,
    )
    rendered = kube_render.render(products, options)
    for result in rendered:
        for secret in result.secrets_to_create:
            err_console.print(f"[yellow]create Secret[/] {escape(str(secret))}")
    if output_dir is None:
        sys.stdout.write("".join(result.yaml() for result in rendered))
        return
    for result in rendered:
        target = output_dir / result.namespace / f"{result.product}.yaml"
        write_atomically(target, result.yaml())
        err_console.print(f"wrote {escape(str(target))} ({len(result.objects)} objects)")


def crd() -> None:
    """Print the DataProduct CustomResourceDefinition (generated from the spec model)."""
    sys.stdout.write(crd_yaml())
