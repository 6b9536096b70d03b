"""A thin client of a Confluent-compatible schema registry (Confluent, Apicurio's ccompat API,
Karapace, Redpanda, the dev registry): the two GETs a consumer needs, cached, and the POST that
registers a schema (`provisioner dev produce --format`).

Own and thin rather than confluent-kafka's `SchemaRegistryClient`: that one brings httpx, authlib,
attrs and cachetools into every consumer for two GET requests, and its failures (httpx's
exceptions, `SchemaRegistryError` with a status) would still need sorting into what matters here:

- an id the registry does not know (404) is `UnknownSchema`: the record is a dead letter (such
  answers are remembered for `UNKNOWN_TTL` seconds, so a flood of records naming a bad id does
  not become a flood of requests);
- no answer, a timeout, a 5xx, refused credentials (401/403) or an untrusted certificate is a
  retryable `UnavailableError` (`AuthenticationError`, `AuthorizationError`, `TLSError` where it
  is one of those): the consumer backs off and its status says which; never a dead letter.

Settings come from the Kafka client properties (`schema.registry.url`, `basic.auth.user.info`,
`schema.registry.ssl.ca.location`; spec.md, "Connections"). No message quotes the credentials.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Final

from provisioner.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigurationError,
    TLSError,
    UnavailableError,
)
from provisioner.formats import BINARY_FORMATS
from provisioner.formats.schemas import Reference, RegisteredSchema, SchemaSource, UnknownSchema
from provisioner.stream.settings import KafkaConfigError, KafkaTarget, SchemaRegistrySettings, settings_of

__all__ = ["RegistryClient", "SchemaRegistryUnavailable", "SchemaRejected", "registry_for"]

TIMEOUT: Final = 10.0
UNKNOWN_TTL: Final = 10.0
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
_ACCEPT: Final = "application/vnd.schemaregistry.v1+json, application/json"


class SchemaRegistryUnavailable(UnavailableError):
    """The schema registry did not answer, or answered with a server error: retry later."""


class SchemaRegistryRefused(AuthenticationError):
    """The schema registry refused our credentials (401)."""


class SchemaRegistryForbidden(AuthorizationError):
    """The schema registry accepted who we are but not this request (403)."""


class SchemaRejected(ConfigurationError):
    """The schema registry refused to register a schema (invalid, or incompatible with the subject)."""


class SchemaRegistryTLSError(TLSError):
    """The schema registry's certificate is not trusted (or not for its host)."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _shown_url(url: str) -> str:
    """The registry's URL without any user info, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _registered(body: Any, what: str) -> RegisteredSchema:
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise SchemaRegistryUnavailable(f"the schema registry's answer for {what} has no schema")
    references = tuple(
        Reference(str(ref.get("name", "")), str(ref.get("subject", "")), int(ref.get("version", 0)))
        for ref in body.get("references") or () if isinstance(ref, dict))
    return RegisteredSchema(str(body.get("schemaType") or "AVRO"), body["schema"], references)


def _message(body: bytes) -> str:
    """The `message` of a registry's error answer (its whole text when it has none)."""
    try:
        found = json.loads(body)
    except ValueError:
        found = None
    text = found.get("message") if isinstance(found, dict) else None
    return str(text) if text else body.decode("utf-8", "replace").strip()[:300]


class RegistryClient:
    """A `SchemaSource` over HTTP: schemas by id and subject versions, each fetched once."""

    def __init__(self, settings: SchemaRegistrySettings, *, timeout: float = TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._base = settings.url.rstrip("/")
        self.shown = _shown_url(self._base)
        self._timeout = timeout
        self._clock = clock
        self._headers = {"Accept": _ACCEPT}
        if settings.user_info:
            token = base64.b64encode(settings.user_info.encode("utf-8")).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        if urllib.parse.urlsplit(self._base).scheme not in ("http", "https"):
            raise KafkaConfigError(f"schema.registry.url {self.shown!r} is not an http:// or https:// URL")
        context = ssl.create_default_context(cafile=settings.ca_location) if self._base.startswith("https:") else None
        # No redirects: following one would send the credentials wherever the answer points.
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirects)
        self._by_id: dict[int, RegisteredSchema] = {}
        self._versions: dict[tuple[str, int], RegisteredSchema] = {}
        self._unknown: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"RegistryClient({self.shown!r})"

    def schema(self, schema_id: int) -> RegisteredSchema:
        found = self._by_id.get(schema_id)
        if found is None:
            found = _registered(self._get(f"/schemas/ids/{schema_id}", f"schema id {schema_id}"),
                                f"schema id {schema_id}")
            self._by_id[schema_id] = found
        return found

    def version(self, subject: str, version: int) -> RegisteredSchema:
        key = (subject, version)
        found = self._versions.get(key)
        if found is None:
            path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/{version}"
            what = f"subject {subject!r} version {version}"
            found = _registered(self._get(path, what), what)
            self._versions[key] = found
        return found

    def latest(self, subject: str) -> tuple[int, RegisteredSchema]:
        """A subject's latest version and its schema (not cached: it is the one thing that moves)."""
        what = f"subject {subject!r}"
        body = self._get(f"/subjects/{urllib.parse.quote(subject, safe='')}/versions/latest", what)
        version = body.get("version") if isinstance(body, dict) else None
        return (version if isinstance(version, int) else 0), _registered(body, what)

    def register(self, subject: str, schema: RegisteredSchema) -> int:
        """Register `schema` under `subject` (a new version, or the one that holds it already); its id."""
        what = f"subject {subject!r}"
        body: dict[str, Any] = {"schema": schema.text, "schemaType": schema.schema_type, "references": [
            {"name": r.name, "subject": r.subject, "version": r.version} for r in schema.references]}
        answer = self._get(f"/subjects/{urllib.parse.quote(subject, safe='')}/versions", what, body)
        schema_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(schema_id, int) or isinstance(schema_id, bool):
            raise SchemaRegistryUnavailable(f"the schema registry at {self.shown} registered {what} without an id")
        return schema_id

    def _get(self, path: str, what: str, post: Any = None) -> Any:
        """The JSON body of GET `path` (POST of JSON `post` when given); UnknownSchema for a 404, a
        retryable error otherwise."""
        now = self._clock()
        until = self._unknown.get(path)
        if until is not None and now < until:
            raise UnknownSchema(f"{what} is not known to the schema registry at {self.shown}")
        headers, data = self._headers, None
        if post is not None:
            headers = {**headers, "Content-Type": "application/vnd.schemaregistry.v1+json"}
            data = json.dumps(post).encode("utf-8")
        # The scheme is http(s), checked when the settings were read and again in __init__.
        request = urllib.request.Request(self._base + path, data=data, headers=headers,  # noqa: S310
                                         method="GET" if data is None else "POST")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            with error:  # it holds the connection
                if post is not None and error.code in (409, 422):
                    raise SchemaRejected(f"the schema registry at {self.shown} refused the schema for {what}: "
                                         f"{_message(error.read(4096))}") from None
            raise self._refusal(error.code, path, what, now) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise SchemaRegistryTLSError(f"the schema registry at {self.shown} is not trusted: "
                                             f"{reason.verify_message}") from None
            raise SchemaRegistryUnavailable(f"the schema registry at {self.shown} does not answer: {reason}") from None
        except (TimeoutError, OSError) as error:
            raise SchemaRegistryUnavailable(f"the schema registry at {self.shown} does not answer: {error}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise SchemaRegistryUnavailable(f"the schema registry's answer for {what} is over "
                                            f"{MAX_RESPONSE_BYTES} bytes")
        try:
            return json.loads(raw)
        except ValueError:
            raise SchemaRegistryUnavailable(f"the schema registry at {self.shown} answered {what} "
                                            f"with something that is not JSON") from None

    def _refusal(self, status: int, path: str, what: str, now: float) -> Exception:
        if status == 404:
            self._unknown[path] = now + UNKNOWN_TTL
            if len(self._unknown) > 10_000:
                self._unknown = {p: t for p, t in self._unknown.items() if t > now}
            return UnknownSchema(f"{what} is not known to the schema registry at {self.shown}")
        if status == 401:
            return SchemaRegistryRefused(f"the schema registry at {self.shown} refused the credentials "
                                         f"(basic.auth.user.info): HTTP 401")
        if status == 403:
            return SchemaRegistryForbidden(f"the schema registry at {self.shown} denied {what} (HTTP 403): the "
                                           f"credentials in basic.auth.user.info are wrong or lack access")
        return SchemaRegistryUnavailable(f"the schema registry at {self.shown} answered HTTP {status} for {what}")


def registry_for(formats: tuple[str, ...], target: KafkaTarget) -> SchemaSource | None:
    """The registry client a consumer of records in `formats` needs (None when none is schema'd);
    a ConfigurationError when one is and the settings name no registry."""
    needed = [f for f in formats if f in BINARY_FORMATS]
    if not needed:
        return None
    settings = settings_of(target)
    if settings.schema_registry is None:
        where = f" ({settings.source})" if settings.source else ""
        raise KafkaConfigError(f"source format {needed[0]} needs a schema registry: set schema.registry.url in the "
                               f"Kafka client properties{where} (--kafka-config or PROVISIONER_KAFKA_CONFIG)")
    return RegistryClient(settings.schema_registry)
