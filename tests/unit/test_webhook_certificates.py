"""The webhook's certificates: a CA and a serving certificate for the Service's names and
127.0.0.1; renewal swaps the serving certificate and keeps the CA (so the caBundle stays)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from provisioner.operator.webhook import Certificates, validation_message


def _text(path: Path) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(path)], capture_output=True, text=True,
                          check=True).stdout


def test_serving_certificate_names_the_service_and_loopback(tmp_path: Path) -> None:
    certificates = Certificates(tmp_path / "c", ["provisioner-operator.provisioner-system.svc"])
    certificates.create()
    text = _text(certificates.serving_file)
    assert "DNS:provisioner-operator.provisioner-system.svc" in text and "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(certificates.ca_file),
                               str(certificates.serving_file)], capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    context = ssl.create_default_context(purpose=ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.serving_file, certificates.serving_file)  # what kopf loads
    assert (tmp_path / "c" / "ca.key").stat().st_mode & 0o077 == 0
    assert certificates.serving_file.stat().st_mode & 0o077 == 0
    assert not certificates.due()


def test_renewal_replaces_the_serving_certificate_and_keeps_the_ca(tmp_path: Path) -> None:
    certificates = Certificates(tmp_path, ["localhost"], serving_days=5, renew_before_days=10)
    certificates.create()
    ca, first = certificates.ca_file.read_bytes(), certificates.serving_file.read_bytes()
    assert certificates.due()  # valid 5 days, renewed when fewer than 10 remain
    certificates.renew()
    assert certificates.ca_file.read_bytes() == ca
    assert certificates.serving_file.read_bytes() != first
    assert subprocess.run(["openssl", "verify", "-CAfile", str(certificates.ca_file), str(certificates.serving_file)],
                          capture_output=True, check=False).returncode == 0


def test_validation_message_is_validates() -> None:
    body = {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": "orders", "namespace": "sales"},
            "spec": {"source": {"topic": "t"}, "fields": {"id": "event.id"}, "key": "nope",
                     "stores": [{"name": "cache", "redis": {}}]}}
    message = validation_message(body)
    assert message is not None and "nope" in message
    body["spec"]["key"] = "id"
    assert validation_message(body) is None
