"""`provisioner doctor PATH...`: check, before running anything, that the consumers of these specs
can do their work with these settings.

The settings are resolved as `up` and `consume` resolve them: Kafka from --kafka-config
(PROVISIONER_KAFKA_CONFIG) with --bootstrap over its address, else --bootstrap, else the dev broker;
each store's URL from --store-url (PROVISIONER_STORE_URL, for the one store --store names), else its
spec's connection.url with ${ENV} expanded, else, for a managed store, the embedded server `up` runs
under --state-dir. One line per check with a hint when it fails (runtime/doctor.py says what each
check asks and how); `-o json` for scripts. Exit 1 when a check fails; warnings do not fail.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from provisioner.cli.options import BOOTSTRAP_OPTION, KAFKA_CONFIG_OPTION, STATE_DIR_OPTION, kafka_connection
from provisioner.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, print_json
from provisioner.errors import ProvisionerError
from provisioner.local import embedded
from provisioner.runtime.connection import mask_url, store_url
from provisioner.runtime.doctor import Check, StoreTarget, failed, kafka_checks, store_checks
from provisioner.spec.loader import load_products
from provisioner.spec.models import DataProduct, StoreSpec
from provisioner.stores.probe import probe_store
from provisioner.stream.probe import KafkaProbe

_MARKS = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]", "skip": "[dim]skip[/]"}


def _target(product: DataProduct, store: StoreSpec, explicit: str | None, state_dir: Path) -> StoreTarget:
    spec = store.redis or store.postgres
    if explicit is None and spec is not None and spec.connection is None:
        server = embedded.find(store.kind, state_dir)
        if server is None:
            return StoreTarget(product, store, None, "managed",
                               skip=f"managed store: no embedded {store.kind} runs under {state_dir} "
                                    "(`provisioner up` starts it)")
        url = embedded.space_url(server, product.metadata.namespace, product.name)
        return StoreTarget(product, store, url, mask_url(url))
    try:
        url = store_url(store, explicit)
    except ProvisionerError as error:
        return StoreTarget(product, store, None, "", problem=error)
    return StoreTarget(product, store, url, mask_url(url))


def _print(checks: list[Check]) -> None:
    for check in checks:
        line = f"{_MARKS[check.status]} {escape(check.name)}: {escape(check.detail)}"
        if check.hint and check.status in ("fail", "warn"):
            line += f" [dim]-> {escape(check.hint)}[/]"
        console.print(line, markup=True)
    counts = {status: sum(c.status == status for c in checks) for status in ("ok", "warn", "fail", "skip")}
    console.print(", ".join(f"{n} {status}" for status, n in counts.items() if n))


def doctor(
    paths: list[Path] = typer.Argument(..., help="Spec files or folders, as for `up`."),
    store: str | None = typer.Option(None, "--store", help="Check only this store of each product."),
    store_url_option: str | None = typer.Option(None, "--store-url", envvar="PROVISIONER_STORE_URL",
                                                show_envvar=True,
                                                help="The URL of the one store --store names (as for `consume`)."),
    bootstrap: str | None = BOOTSTRAP_OPTION,
    kafka_config: Path | None = KAFKA_CONFIG_OPTION,
    timeout: float = typer.Option(10.0, "--timeout", min=0.5, help="Seconds each check may wait for an answer."),
    state_dir: Path = STATE_DIR_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Check that Kafka and the stores accept what the consumers of these specs will ask."""
    products = [loaded.product for loaded in load_products(paths)]
    pairs = [(p, s) for p in products for s in p.spec.stores if store is None or s.name == store]
    if not pairs:
        fail(f"no product has a store named {store!r}")
    if store_url_option and len(pairs) > 1:
        fail(f"--store-url is the URL of one store, but {len(pairs)} stores are selected: name one with --store")
    checks: list[Check]
    try:
        settings = kafka_connection(kafka_config, bootstrap, state_dir)
    except ProvisionerError as error:  # no address, or a properties file with a mistake: still check the stores
        checks = [Check("kafka settings", "fail", str(error),
                        "pass --kafka-config FILE or --bootstrap HOST:PORT (or run `provisioner dev kafka up`)")]
    else:
        probe = KafkaProbe(settings, timeout=timeout)
        try:
            checks = kafka_checks(settings, products, probe, store=store)
        finally:
            probe.close()
    targets = [_target(p, s, store_url_option, state_dir) for p, s in pairs]
    checks += store_checks(targets, lambda p, s, url: probe_store(p, s, url, timeout=timeout))
    if output == OutputFormat.json:
        print_json({"ok": not failed(checks), "checks": [check.to_dict() for check in checks]})
    else:
        _print(checks)
    if failed(checks):
        raise typer.Exit(1)
