"""Admission: a validating webhook served by the operator, running `provisioner validate`'s checks.

The API server sends every create and update of a DataProduct to the operator, which answers with
`reconcile.parse_product`: a spec `provisioner validate` would refuse is refused by the API server
with validate's own words (`kubectl apply` prints them), so an invalid spec never reaches etcd.
kopf serves the endpoint; `ConfiguringServer` keeps the ValidatingWebhookConfiguration (by
server-side apply of its one webhook: the bundle ships it empty, so the operator only patches it
by name) pointing at it with the current caBundle, and removes the webhook on a clean stop. Not
kopf's `settings.admission.managed`: that always manages a MutatingWebhookConfiguration too, and
so needs the right to create any webhook configuration in the cluster.
failurePolicy is Ignore: while no operator answers (a rollout, a crash), products are
admitted and the operator reports an invalid one as Ready=False/InvalidSpec when it is back.

Certificates: the operator makes its own with the openssl CLI in a private directory (`/tmp` in
the bundle, an emptyDir): a CA (EC P-256, valid 10 years, new at every start, and the caBundle with
it) and a serving certificate signed by it for the Service's DNS names and 127.0.0.1, valid
30 days. A thread checks it every hour and replaces it when fewer than 10 days remain, with one
atomic rename of the file holding certificate and key; kopf re-reads the files every minute and
restarts its HTTPS listener with the new certificate (the CA and so the caBundle stay the same).
No private key leaves the directory; nothing is stored in the cluster.

Called by `provisioner.operator.main` when the operator runs with `--webhook`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kopf

from provisioner.errors import ProvisionerError, SetupError
from provisioner.kube.client import KINDS, KubeClient
from provisioner.kube.names import clash_message, object_names
from provisioner.kube.reconcile import parse_product, spec_problem
from provisioner.kube.render import RenderRefused
from provisioner.spec.findings import SpecError

__all__ = ["CA_DAYS", "CHECK_EVERY_S", "RENEW_BEFORE_DAYS", "SERVING_DAYS", "Certificates", "ConfiguringServer",
           "ServiceWebhookServer", "WebhookConfig", "register_validation", "validation_message"]

log = logging.getLogger("provisioner.operator")

CA_DAYS = 3650
SERVING_DAYS = 30
RENEW_BEFORE_DAYS = 10
CHECK_EVERY_S = 3600.0


@dataclass(frozen=True)
class WebhookConfig:
    port: int = 9443
    host: str | None = None  # URL clientConfig https://host:port (development, tests)
    service: str | None = None  # "namespace/name": a Service clientConfig (in a cluster)
    service_port: int = 443
    configuration: str = "provisioner.dev"  # name of the managed ValidatingWebhookConfiguration
    cert_dir: Path | None = None
    check_every: float = CHECK_EVERY_S


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SetupError(f"openssl {args[0]} failed: {result.stderr.strip()[-300:]}")


class Certificates:
    """A CA and a serving certificate in `directory` (see the module docstring)."""

    def __init__(self, directory: Path, dns_names: Sequence[str], ips: Sequence[str] = ("127.0.0.1",), *,
                 serving_days: int = SERVING_DAYS, renew_before_days: int = RENEW_BEFORE_DAYS) -> None:
        self.directory = directory
        self.dns_names = list(dns_names)
        self.ips = list(ips)
        self.serving_days = serving_days
        self.renew_before_days = renew_before_days
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def serving_file(self) -> Path:
        """Certificate and private key in one PEM file (swapped in one rename)."""
        return self.directory / "serving.pem"

    def create(self) -> None:
        """A new CA and a serving certificate."""
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "ca.key", "-out", "ca.crt.new", "-days", str(CA_DAYS),
                 "-subj", "/CN=provisioner-webhook-ca",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=self.directory)
        os.chmod(self.directory / "ca.key", 0o600)
        os.replace(self.directory / "ca.crt.new", self.ca_file)
        self.renew()

    def renew(self) -> None:
        """A new serving certificate (and key) signed by the CA, swapped in atomically."""
        sans = [f"DNS:{name}" for name in self.dns_names] + [f"IP:{ip}" for ip in self.ips]
        with tempfile.TemporaryDirectory(dir=self.directory) as scratch:
            work = Path(scratch)
            (work / "ext.cnf").write_text(
                f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n")
            _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", "serving.key", "-out", "serving.csr", "-subj",
                     f"/CN={(self.dns_names or self.ips)[0]}", cwd=work)
            _openssl("x509", "-req", "-in", "serving.csr", "-CA", str(self.ca_file), "-CAkey",
                     str(self.directory / "ca.key"), "-CAcreateserial", "-CAserial", "ca.srl",
                     "-days", str(self.serving_days), "-extfile", "ext.cnf", "-out", "serving.crt", cwd=work)
            combined = work / "serving.pem"
            combined.write_bytes((work / "serving.crt").read_bytes() + (work / "serving.key").read_bytes())
            os.chmod(combined, 0o600)
            os.replace(combined, self.serving_file)

    def due(self) -> bool:
        """Whether the serving certificate is missing or expires within `renew_before_days`."""
        if not self.serving_file.exists():
            return True
        result = subprocess.run(["openssl", "x509", "-checkend", str(self.renew_before_days * 86400), "-noout",
                                 "-in", str(self.serving_file)], capture_output=True, check=False)
        return result.returncode != 0

    def keep_fresh(self, stop: threading.Event, every: float) -> threading.Thread:
        """Check every `every` seconds from a daemon thread; renew when due."""
        def loop() -> None:
            while not stop.wait(every):
                try:
                    if self.due():
                        self.renew()
                        log.info("webhook: serving certificate renewed (valid %d days)", self.serving_days)
                except (SetupError, OSError) as error:
                    log.error("webhook: cannot renew the serving certificate: %s", error)

        thread = threading.Thread(target=loop, name="webhook-certificates", daemon=True)
        thread.start()
        return thread


class ServiceWebhookServer(kopf.WebhookServer):
    """kopf's HTTPS server, telling the API server to call it through a Service (in a cluster)
    instead of a URL."""

    def __init__(self, *, service: tuple[str, str], service_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.service_port = service_port

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        async for config in super().__call__(fn):
            service_config: dict[str, Any] = {
                "service": {"namespace": self.service[0], "name": self.service[1], "port": self.service_port,
                            "path": self.path or ""}}
            if "caBundle" in config:
                service_config["caBundle"] = config["caBundle"]
            yield service_config


HANDLER_ID = "validate-dataproduct"


class ConfiguringServer:
    """A webhook server whose every client config (address, caBundle) is written to the
    ValidatingWebhookConfiguration `name` as its one webhook, which a clean stop removes."""

    def __init__(self, inner: kopf.WebhookServer, client: KubeClient, name: str) -> None:
        self.inner = inner
        self.client = client
        self.name = name

    async def __aenter__(self) -> ConfiguringServer:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        served = False
        try:
            async for client_config in self.inner(fn):
                await asyncio.to_thread(self._write, [self.webhook(client_config)])
                served = True
                yield client_config
        finally:
            if served:  # nothing left that calls an operator that is gone (failurePolicy aside)
                with contextlib.suppress(ProvisionerError):
                    self._write([])

    def webhook(self, client_config: Mapping[str, Any]) -> dict[str, Any]:
        """The one webhook: DataProducts' creates and updates to `/validate-dataproduct`."""
        config: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in client_config.items()}
        if "url" in config:
            config["url"] = f"{str(config['url']).rstrip('/')}/{HANDLER_ID}"
        if "service" in config:
            config["service"]["path"] = f"{config['service'].get('path', '')}/{HANDLER_ID}"
        group, version = KINDS["DataProduct"].api_version.split("/")
        return {
            "name": f"{HANDLER_ID}.{self.name}", "clientConfig": config,
            "rules": [{"apiGroups": [group], "apiVersions": [version], "resources": [KINDS["DataProduct"].plural],
                       "operations": ["CREATE", "UPDATE"], "scope": "*"}],
            # Ignore: while no operator answers, products are admitted and reported as
            # Ready=False/InvalidSpec later; a stopped operator must not block every apply.
            "failurePolicy": "Ignore", "sideEffects": "None", "matchPolicy": "Equivalent", "timeoutSeconds": 30,
            "admissionReviewVersions": ["v1", "v1beta1"],
        }

    def _write(self, webhooks: list[dict[str, Any]]) -> None:
        self.client.apply({"apiVersion": KINDS["ValidatingWebhookConfiguration"].api_version,
                           "kind": "ValidatingWebhookConfiguration", "metadata": {"name": self.name},
                           "webhooks": webhooks})


NamesHeld = Callable[[str, str], Mapping[tuple[str, str], str]]  # (namespace, product) -> {(kind, name): holder}


def validation_message(body: Mapping[str, Any], held: NamesHeld | None = None) -> str | None:
    """What `provisioner validate` says about the resource, or None when it is valid; with `held`,
    also the object names another product of the namespace already renders."""
    try:
        product = parse_product(body)
        names = object_names(product)
    except SpecError as error:
        return spec_problem(error)
    except RenderRefused as refused:  # two of its own stores' objects would share a name
        return f"{refused.path}: {refused}"
    if held is None:
        return None
    taken = held(body["metadata"]["namespace"], product.name)
    shared = sorted((kind, name) for _, kind, name in names if (kind, name) in taken)
    if not shared:
        return None
    return "metadata.name: " + clash_message([f"{kind} {name}" for kind, name in shared],
                                             sorted({taken[key] for key in shared}))


def _not_a_failure(record: logging.LogRecord) -> bool:
    """Drop kopf's ERROR "failed permanently" for a refusal: refusing an invalid spec is the
    webhook doing its job, logged at INFO by `validate` with the reason."""
    return not record.getMessage().startswith(f"Webhook {HANDLER_ID!r} failed permanently")


def register_validation(registry: kopf.OperatorRegistry, held: NamesHeld | None = None) -> None:
    """The admission check: validate's, and with `held` (the operator's view of the namespace's
    products) no object name another product already renders."""
    product_kind = KINDS["DataProduct"]
    group, version = product_kind.api_version.split("/")
    kopf_objects = logging.getLogger("kopf.objects")
    if _not_a_failure not in kopf_objects.filters:
        kopf_objects.addFilter(_not_a_failure)

    def validate(body: kopf.Body, operation: str | None = None, **_: Any) -> None:
        message = validation_message(dict(body), held)
        if message is not None:
            metadata = body.get("metadata") or {}
            log.info("admission: refused %s of DataProduct %s/%s: %s", operation or "a request",
                     metadata.get("namespace"), metadata.get("name"), message)
            raise kopf.AdmissionError(message, code=422)

    kopf.on.validate(group, version, product_kind.plural, registry=registry, id=HANDLER_ID,
                     operations=["CREATE", "UPDATE"], ignore_failures=True)(validate)


def server(config: WebhookConfig, stop: threading.Event, client: KubeClient) -> ConfiguringServer:
    """The HTTPS server with fresh certificates (renewed in the background until `stop`), keeping
    the ValidatingWebhookConfiguration `config.configuration` pointed at it through `client`."""
    return ConfiguringServer(_https_server(config, stop), client, config.configuration)


def _https_server(config: WebhookConfig, stop: threading.Event) -> kopf.WebhookServer:
    directory = config.cert_dir or Path(tempfile.mkdtemp(prefix="provisioner-webhook-"))
    dns_names: list[str] = []
    if config.service:
        namespace, name = config.service.split("/", 1)
        dns_names = [f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local"]
    if config.host and not config.host.replace(".", "").isdigit():
        dns_names.append(config.host)
    certificates = Certificates(directory, dns_names or ["localhost"])
    certificates.create()
    certificates.keep_fresh(stop, config.check_every)
    common: dict[str, Any] = {"port": config.port, "cafile": str(certificates.ca_file),
                              "certfile": str(certificates.serving_file), "pkeyfile": str(certificates.serving_file)}
    if config.service:
        namespace, name = config.service.split("/", 1)
        # In a Pod: every interface, the Service routes to the Pod's IP.
        return ServiceWebhookServer(service=(namespace, name), service_port=config.service_port,
                                    addr="0.0.0.0", **common)  # noqa: S104
    return kopf.WebhookServer(addr=config.host or "127.0.0.1", host=config.host or "127.0.0.1", **common)
