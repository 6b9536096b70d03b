"""The operator's validating webhook against a real API server: the operator runs as a process on
127.0.0.1 with generated certificates, manages the ValidatingWebhookConfiguration (URL clientConfig
and caBundle), and the API server refuses an invalid DataProduct with validate's words and admits a
valid one; on a clean stop the webhook is removed again."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import ProvisionerError
from provisioner.kube.client import ApiRefusedError, KubeClient

from .operator_harness import product, running_operator, wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _webhooks(kube: KubeClient, name: str) -> list[dict[str, Any]] | None:
    config = kube.get("ValidatingWebhookConfiguration", None, name)
    return (config or {}).get("webhooks") or None


def test_invalid_products_are_refused_at_admission(operator_kubeconfig: Path, kube: KubeClient, namespace: str,
                                                   tmp_path: Path) -> None:
    port = _free_port()
    configuration = "provisioner.dev"  # the one name the bundle's RBAC lets the operator read and patch
    extra = ["--webhook", "--webhook-host", "127.0.0.1", "--webhook-port", str(port),
             "--webhook-configuration", configuration, "--webhook-cert-dir", str(tmp_path / "certs")]
    with running_operator(operator_kubeconfig, namespace, "127.0.0.1:1", tmp_path, extra=extra) as operator:
        webhooks = wait_for("the webhook configured", lambda: _webhooks(kube, configuration), timeout=60)
        assert len(webhooks) == 1
        hook = webhooks[0]
        assert hook["clientConfig"]["url"].startswith(f"https://127.0.0.1:{port}/")
        assert hook["clientConfig"]["caBundle"]
        assert hook["failurePolicy"] == "Ignore"
        assert hook["rules"][0]["resources"] == ["dataproducts"]
        assert (tmp_path / "certs" / "ca.crt").read_text() in \
            __import__("base64").b64decode(hook["clientConfig"]["caBundle"]).decode()

        invalid = product("bad-expr", namespace, "orders.v1")
        invalid["spec"]["fields"]["amount"] = "event.amount +"  # does not compile
        refused: ProvisionerError | None = None

        def try_invalid() -> bool:
            nonlocal refused
            try:
                kube.create(invalid)
            except ApiRefusedError as error:
                refused = error
                return True
            kube.delete("DataProduct", namespace, "bad-expr")  # admitted before the listener was up
            return False

        wait_for("an invalid product refused", try_invalid, timeout=30, every=1)
        message = str(refused)
        assert 'denied the request' in message, message
        assert "spec.fields.amount" in message, message
        assert kube.get("DataProduct", namespace, "bad-expr") is None

        unknown_key = product("bad-key", namespace, "orders.v1", key="nope")
        with pytest.raises(ApiRefusedError, match="nope"):
            kube.apply(unknown_key)
        assert kube.get("DataProduct", namespace, "bad-key") is None

        valid = kube.apply(product("good", namespace, "orders.v1"))
        assert valid["metadata"]["name"] == "good"
        # An update to an invalid spec is refused too; the stored spec stays.
        broken = product("good", namespace, "orders.v1")
        broken["spec"]["filter"] = "event.amount >"
        with pytest.raises(ApiRefusedError, match="filter"):
            kube.apply(broken)
        assert "filter" not in (kube.get("DataProduct", namespace, "good") or {})["spec"]
        text = operator.text()
        assert "Traceback" not in text
        # A refusal is the webhook doing its job: one INFO line with the reason, not an ERROR.
        assert f"INFO provisioner.operator: admission: refused CREATE of DataProduct {namespace}/bad-expr: " \
               "spec.fields.amount" in text, text[-3000:]
        assert "failed permanently" not in text
    # A clean stop removes the webhook, so nothing is refused while no operator answers.
    assert _webhooks(kube, configuration) is None
