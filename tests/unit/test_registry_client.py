"""The schema registry client against a loopback HTTP server answering as registries do: what it
asks, what it keeps, and how each failure is sorted (a dead letter or a retry), never quoting the
credentials."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import AuthenticationError, AuthorizationError, UnavailableError, is_retryable
from provisioner.formats.schemas import Reference, RegisteredSchema, UnknownSchema
from provisioner.local.processes import free_port
from provisioner.stream.registry import (
    UNKNOWN_TTL,
    RegistryClient,
    SchemaRegistryUnavailable,
    SchemaRejected,
    registry_for,
)
from provisioner.stream.settings import (
    KafkaConfigError,
    KafkaSettings,
    SchemaRegistrySettings,
    kafka_settings_from,
    parse_kafka_properties,
)

SECRET = "s3cr3t-pw"


class Registry:
    """Canned answers by path; records every request's path and Authorization header."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, Any]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.posted: list[Any] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                registry.posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.do_GET()

            def do_GET(self) -> None:
                registry.requests.append((self.path, self.headers.get("Authorization")))
                status, body = registry.answers.get(self.path, (404, {"error_code": 40403}))
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    running = Registry()
    yield running
    running.close()


def client(url: str, user_info: str | None = f"reader:{SECRET}", clock: Any = None) -> RegistryClient:
    settings = SchemaRegistrySettings(url=url, user_info=user_info)
    return RegistryClient(settings, timeout=2, **({"clock": clock} if clock else {}))


def test_schemas_by_id_and_references_by_subject_version_are_fetched_once_with_basic_auth(registry: Registry) -> None:
    registry.answers["/schemas/ids/7"] = (200, {"schema": '"string"'})
    registry.answers["/schemas/ids/8"] = (200, {"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF",
                                                "references": [{"name": "a.proto", "subject": "a b", "version": 2}]})
    registry.answers["/subjects/a%20b/versions/2"] = (200, {"schema": "x", "schemaType": "PROTOBUF"})
    c = client(registry.url)
    for _ in range(3):
        assert c.schema(7) == RegisteredSchema("AVRO", '"string"')
    assert c.schema(8).references == (Reference("a.proto", "a b", 2),)
    assert c.version("a b", 2).text == "x"
    c.version("a b", 2)
    token = base64.b64encode(f"reader:{SECRET}".encode()).decode()
    assert registry.requests == [("/schemas/ids/7", f"Basic {token}"), ("/schemas/ids/8", f"Basic {token}"),
                                 ("/subjects/a%20b/versions/2", f"Basic {token}")]


def test_an_unknown_id_is_a_dead_letter_and_is_not_asked_again_for_a_while(registry: Registry) -> None:
    now = [100.0]
    c = client(registry.url, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(UnknownSchema, match="schema id 5 is not known"):
            c.schema(5)
    assert len(registry.requests) == 1
    now[0] += UNKNOWN_TTL + 1
    registry.answers["/schemas/ids/5"] = (200, {"schema": '"long"'})
    assert c.schema(5).text == '"long"'
    assert not is_retryable(UnknownSchema("x"))


@pytest.mark.parametrize(("status", "kind", "words"), [
    (401, AuthenticationError, "refused the credentials"),
    (403, AuthorizationError, "HTTP 403"),
    (500, UnavailableError, "HTTP 500"),
    (503, UnavailableError, "HTTP 503"),
    (302, UnavailableError, "HTTP 302"),
])
def test_refusals_and_server_errors_are_retried_never_dead_letters(registry: Registry, status: int,
                                                                    kind: type[Exception], words: str) -> None:
    registry.answers["/schemas/ids/1"] = (status, {"message": "no"})
    with pytest.raises(kind, match=words) as raised:
        client(registry.url).schema(1)
    assert is_retryable(raised.value)
    assert SECRET not in str(raised.value)
    assert len(registry.requests) == 1  # a redirect is not followed with the credentials


def test_an_unreachable_registry_or_a_garbled_answer_is_retried(registry: Registry) -> None:
    registry.answers["/schemas/ids/1"] = (200, b"<html>")
    registry.answers["/schemas/ids/2"] = (200, {"no": "schema"})
    c = client(registry.url)
    for schema_id in (1, 2):
        with pytest.raises(UnavailableError) as garbled:
            c.schema(schema_id)
        assert is_retryable(garbled.value)
    with pytest.raises(UnavailableError, match="does not answer") as down:
        client(f"http://reader:{SECRET}@127.0.0.1:{free_port()}").schema(1)
    assert SECRET not in str(down.value)


def test_a_consumer_of_schema_d_records_needs_a_registry_in_its_settings(tmp_path: Path) -> None:
    assert registry_for(("json", "string"), "localhost:9092") is None
    with pytest.raises(KafkaConfigError, match="source format avro needs a schema registry"):
        registry_for(("avro", "string"), "localhost:9092")
    settings = KafkaSettings("k:9092", schema_registry=SchemaRegistrySettings("http://r:8081"))
    assert isinstance(registry_for(("json", "protobuf"), settings), RegistryClient)


def test_the_registry_settings_come_from_the_client_properties(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    text = ("bootstrap.servers=k:9092\nschema.registry.url=${SR_URL}\nbasic.auth.user.info=u:${SR_PW}\n"
            "schema.registry.ssl.ca.location=ca.pem\n")
    values = parse_kafka_properties(text, "client.properties", {"SR_URL": "https://sr:8081", "SR_PW": SECRET})
    settings = kafka_settings_from(values, "client.properties", tmp_path)
    assert settings.schema_registry == SchemaRegistrySettings("https://sr:8081", f"u:{SECRET}", str(tmp_path / "ca.pem"))
    assert SECRET not in repr(settings)
    bad = parse_kafka_properties("schema.registry.url=file:///etc/passwd\n", "c.properties", {})
    with pytest.raises(KafkaConfigError, match=r"c\.properties:1: schema\.registry\.url must be an http"):
        kafka_settings_from(bad, "c.properties", tmp_path)


def test_consume_refuses_a_schema_d_spec_without_a_registry_before_touching_anything() -> None:
    from typer.testing import CliRunner

    from provisioner.cli.app import app

    spec = Path(__file__).resolve().parents[2] / "specs" / "avro" / "payments.yaml"
    result = CliRunner().invoke(app, ["consume", "--spec", str(spec), "--store", "latest", "--bootstrap",
                                      "127.0.0.1:1", "--store-url", "redis://127.0.0.1:1"])
    assert result.exit_code == 1
    assert "source format avro needs a schema registry" in result.output


def test_a_schema_is_registered_under_its_subject_and_a_refusal_says_why(registry: Registry) -> None:
    registry.answers["/subjects/t%2Fx-value/versions"] = (200, {"id": 12})
    schema = RegisteredSchema("PROTOBUF", 'syntax = "proto3";', (Reference("a.proto", "a", 1),))
    assert client(registry.url).register("t/x-value", schema) == 12
    assert registry.posted == [{"schema": 'syntax = "proto3";', "schemaType": "PROTOBUF",
                                "references": [{"name": "a.proto", "subject": "a", "version": 1}]}]
    registry.answers["/subjects/bad-value/versions"] = (422, {"error_code": 42201, "message": "Invalid schema"})
    with pytest.raises(SchemaRejected, match="refused the schema for subject 'bad-value': Invalid schema"):
        client(registry.url).register("bad-value", schema)
    registry.answers["/subjects/down-value/versions"] = (503, b"busy")
    with pytest.raises(SchemaRegistryUnavailable, match="HTTP 503"):
        client(registry.url).register("down-value", schema)
