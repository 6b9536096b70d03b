"""How to reach Kafka: the one connection every Kafka call of a process uses (spec.md, "Connections").

Read from a client properties file in the format Kafka's own tools take (`--command-config`), so a
user pastes the file they already use with `kafka-console-consumer`: `bootstrap.servers`,
`security.protocol`, `sasl.mechanism` with `sasl.username`/`sasl.password` or a Java-style
`sasl.jaas.config`, TLS from PEM files (librdkafka's `ssl.ca.location`, `ssl.certificate.location`,
`ssl.key.location`, or Java's `ssl.truststore.location`/`ssl.keystore.location` with type PEM),
`ssl.endpoint.identification.algorithm` (empty turns host-name verification off), and the schema
registry's `schema.registry.url`, `basic.auth.user.info`, `schema.registry.ssl.ca.location`.
Values may be `${ENV_VAR}`.

`KafkaSettings` is what the rest of the package passes around; `rdkafka_config` and
`kafka_python_config` spell it for each client. Errors name file:line and never quote a secret.
Pure: reads the file and the environment it is given, nothing else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from provisioner.errors import ConfigurationError

__all__ = [
    "KAFKA_CONFIG_ENV",
    "KafkaConfigError",
    "KafkaSettings",
    "KafkaTarget",
    "SchemaRegistrySettings",
    "kafka_python_config",
    "load_kafka_settings",
    "parse_kafka_properties",
    "rdkafka_config",
    "settings_of",
]

KAFKA_CONFIG_ENV: Final = "PROVISIONER_KAFKA_CONFIG"
PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_JAAS = re.compile(
    r"^\s*(?P<module>[\w.$]+)\s+(?:required|requisite|sufficient|optional)(?P<options>.*?);?\s*$", re.DOTALL)
_JAAS_OPTION = re.compile(r'\s*(?P<name>[\w.-]+)\s*=\s*(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<bare>[^\s;"]+))')
_JAAS_MODULES: Final = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}


class KafkaConfigError(ConfigurationError):
    """The Kafka client properties file is unreadable or wrong; the message names file:line."""


@dataclass(frozen=True, slots=True)
class SchemaRegistrySettings:
    """The schema registry's address, basic-auth `user:password` and CA file, kept for the
    registry client."""

    url: str
    user_info: str | None = field(default=None, repr=False)
    ca_location: str | None = None


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """One Kafka connection: where, and how to prove who we are. `str()` is the address only, so
    the object is safe to put in a message; the password and key never appear in `repr` either."""

    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password: str | None = field(default=None, repr=False)
    verify_hostname: bool = True
    schema_registry: SchemaRegistrySettings | None = None
    source: str | None = None  # the file it was read from, as given, for messages
    config_file: str | None = None  # the same, absolute: what a child process is handed

    def __str__(self) -> str:
        return self.bootstrap

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def principal(self) -> str:
        """Who we connect as, for messages: the SASL user, the client certificate, or nobody."""
        if self.uses_sasl and self.sasl_username:
            return f"user {self.sasl_username!r}"
        if self.ssl_certificate_location:
            return f"the certificate in {self.ssl_certificate_location}"
        return "an anonymous client"

    def with_bootstrap(self, bootstrap: str | None) -> KafkaSettings:
        """These settings at another address (`--bootstrap` overrides the file's)."""
        return self if not bootstrap else replace(self, bootstrap=bootstrap)


#: What the stream layer accepts as a connection: settings, or a bare plaintext address.
KafkaTarget = KafkaSettings | str


def settings_of(target: KafkaTarget) -> KafkaSettings:
    """`target` as settings: a bare address is a plaintext, unauthenticated connection."""
    return target if isinstance(target, KafkaSettings) else KafkaSettings(bootstrap=target)


# -- parsing -------------------------------------------------------------------------------------


def _unescape(value: str) -> str:
    """Java properties escapes in a value: `\\:` `\\=` `\\\\` `\\t` `\\n` (enough for client files)."""
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char != "\\":
            out.append(char)
            continue
        following = next(chars, "")
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(following, following))
    return "".join(out)


def _split(line: str) -> tuple[str, str]:
    """A logical properties line as (key, value): the separator is the first unescaped `=`, `:`
    or whitespace."""
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            index += 2
            continue
        if char in "=:" or char.isspace():
            break
        index += 1
    key = line[:index]
    rest = line[index:].lstrip()
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip()
    return _unescape(key), _unescape(rest)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, logical line) pairs: comments and blanks dropped, a trailing backslash
    continuing onto the next line (as `sasl.jaas.config` often does)."""
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip()
        if pending is None:
            if not stripped or stripped[0] in "#!":
                continue
            start, current = number, stripped
        else:
            start, current = pending[0], pending[1] + stripped
        trailing = len(current) - len(current.rstrip("\\"))
        if trailing % 2 == 1:
            pending = (start, current[:-1])
            continue
        pending = None
        lines.append((start, current))
    if pending is not None:
        lines.append(pending)
    return lines


def parse_kafka_properties(text: str, where: str, environ: Mapping[str, str]) -> dict[str, tuple[int, str]]:
    """Each key's value (`${VAR}` expanded from `environ`) and the line it is on."""
    values: dict[str, tuple[int, str]] = {}
    for number, line in _logical_lines(text):
        key, raw = _split(line)

        def expand(match: re.Match[str], key: str = key, number: int = number) -> str:
            name = match.group(1)
            if name not in environ:
                raise KafkaConfigError(f"{where}:{number}: {key}: environment variable {name} is not set")
            return environ[name]

        values[key] = (number, _ENV_REFERENCE.sub(expand, raw).strip())
    return values


def _jaas_credentials(value: str, mechanism: str, at: str) -> tuple[str, str]:
    """The username and password of a `sasl.jaas.config` for `mechanism` (its module must fit)."""
    match = _JAAS.match(value)
    if match is None:
        raise KafkaConfigError(f"{at}: sasl.jaas.config: expected '<LoginModule> required username=\"...\" "
                               f"password=\"...\";'")
    module = match.group("module")
    fits = _JAAS_MODULES.get(module)
    if fits is None:
        known = ", ".join(sorted(_JAAS_MODULES))
        raise KafkaConfigError(f"{at}: sasl.jaas.config: login module {module} is not supported (one of {known})")
    if mechanism not in fits:
        raise KafkaConfigError(f"{at}: sasl.jaas.config: {module.rsplit('.', 1)[-1]} does not do "
                               f"sasl.mechanism {mechanism}")
    options: dict[str, str] = {}
    rest = match.group("options")
    position = 0
    while position < len(rest.rstrip()):
        option = _JAAS_OPTION.match(rest, position)
        if option is None:
            raise KafkaConfigError(f"{at}: sasl.jaas.config: cannot read the options after {module}")
        quoted = option.group("quoted")
        options[option.group("name")] = (re.sub(r"\\(.)", r"\1", quoted) if quoted is not None
                                         else option.group("bare"))
        position = option.end()
    missing = [name for name in ("username", "password") if not options.get(name)]
    if missing:
        raise KafkaConfigError(f"{at}: sasl.jaas.config: no {' and no '.join(missing)}")
    return options["username"], options["password"]


def _pem_file(values: dict[str, tuple[int, str]], where: str, path_key: str, type_key: str | None,
              base: Path) -> str | None:
    """The PEM file `path_key` names, made absolute against the properties file's folder; a Java
    store of another type (JKS, PKCS12) is refused with what to do instead."""
    if path_key not in values:
        return None
    number, path = values[path_key]
    if not path:
        return None
    if type_key is not None:
        store_type = values.get(type_key, (number, "JKS"))[1].upper()
        if store_type != "PEM":
            raise KafkaConfigError(f"{where}:{number}: {path_key}: only PEM files are read; set {type_key}=PEM "
                                   f"and point it at a PEM file (convert a {store_type} store with keytool/openssl)")
    resolved = Path(path).expanduser()
    if not resolved.is_absolute():
        resolved = base / resolved
    if not resolved.is_file():
        raise KafkaConfigError(f"{where}:{number}: {path_key}: no such file {str(resolved)!r}")
    return str(resolved)


def _choice(values: dict[str, tuple[int, str]], where: str, key: str, allowed: tuple[str, ...],
            default: str) -> str:
    number, value = values.get(key, (0, default))
    chosen = value.upper()
    if chosen not in allowed:
        raise KafkaConfigError(f"{where}:{number}: {key}: {value!r} is not one of {', '.join(allowed)}")
    return chosen


def kafka_settings_from(values: dict[str, tuple[int, str]], where: str, base: Path) -> KafkaSettings:
    """Typed settings from parsed properties (see `parse_kafka_properties`)."""
    def at(key: str) -> str:
        return f"{where}:{values[key][0]}" if key in values else where

    def get(key: str) -> str | None:
        value = values.get(key, (0, ""))[1]
        return value or None

    protocol = _choice(values, where, "security.protocol", PROTOCOLS, "PLAINTEXT")
    mechanism = username = password = None
    if protocol.startswith("SASL_"):
        mechanism = _choice(values, where, "sasl.mechanism", MECHANISMS, "PLAIN")
        username, password = get("sasl.username"), get("sasl.password")
        if get("sasl.jaas.config") is not None:
            if username or password:
                raise KafkaConfigError(f"{at('sasl.jaas.config')}: set sasl.jaas.config or "
                                       f"sasl.username/sasl.password, not both")
            username, password = _jaas_credentials(values["sasl.jaas.config"][1], mechanism, at("sasl.jaas.config"))
        if not username or not password:
            raise KafkaConfigError(f"{where}: security.protocol {protocol} needs sasl.username and sasl.password "
                                   f"(or sasl.jaas.config)")
    ca = _pem_file(values, where, "ssl.ca.location", None, base)
    truststore = _pem_file(values, where, "ssl.truststore.location", "ssl.truststore.type", base)
    if ca and truststore:
        raise KafkaConfigError(f"{at('ssl.truststore.location')}: set ssl.ca.location or ssl.truststore.location, "
                               f"not both")
    certificate = _pem_file(values, where, "ssl.certificate.location", None, base)
    key = _pem_file(values, where, "ssl.key.location", None, base)
    keystore = _pem_file(values, where, "ssl.keystore.location", "ssl.keystore.type", base)
    if keystore is not None:
        if certificate or key:
            raise KafkaConfigError(f"{at('ssl.keystore.location')}: set ssl.keystore.location or "
                                   f"ssl.certificate.location/ssl.key.location, not both")
        # A Java PEM key store holds the certificate chain and the private key in one file.
        certificate = key = keystore
    if (certificate is None) != (key is None):
        raise KafkaConfigError(f"{where}: a client certificate needs both ssl.certificate.location and "
                               f"ssl.key.location")
    tls_keys = [k for k in ("ssl.ca.location", "ssl.truststore.location", "ssl.certificate.location",
                            "ssl.keystore.location") if get(k)]
    if tls_keys and protocol not in ("SSL", "SASL_SSL"):
        raise KafkaConfigError(f"{at(tls_keys[0])}: {tls_keys[0]} is set but security.protocol is {protocol} "
                               f"(SSL or SASL_SSL uses it)")
    registry = None
    if get("schema.registry.url") is not None:
        if not re.match(r"(?i)^https?://[^/]", values["schema.registry.url"][1]):
            raise KafkaConfigError(f"{at('schema.registry.url')}: schema.registry.url must be an http:// or "
                                   f"https:// URL")
        registry = SchemaRegistrySettings(
            url=values["schema.registry.url"][1], user_info=get("basic.auth.user.info"),
            ca_location=_pem_file(values, where, "schema.registry.ssl.ca.location", None, base))
    bootstrap = get("bootstrap.servers") or ""
    return KafkaSettings(
        bootstrap=bootstrap, security_protocol=protocol, sasl_mechanism=mechanism, sasl_username=username,
        sasl_password=password, ssl_ca_location=ca or truststore, ssl_certificate_location=certificate,
        ssl_key_location=key, ssl_key_password=get("ssl.key.password"),
        verify_hostname=values.get("ssl.endpoint.identification.algorithm", (0, "https"))[1].lower() == "https",
        schema_registry=registry, source=where,
    )


def load_kafka_settings(path: Path | None, bootstrap: str | None, *,
                        environ: Mapping[str, str] | None = None) -> KafkaSettings | None:
    """The settings of `--kafka-config` (`path`), with `--bootstrap` overriding its address; None
    when neither is given (the caller falls back to the dev broker)."""
    env = os.environ if environ is None else environ
    if path is None:
        return KafkaSettings(bootstrap=bootstrap) if bootstrap else None
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise KafkaConfigError(f"{where}: cannot read the Kafka client properties: {reason}") from None
    values = parse_kafka_properties(text, where, env)
    settings = replace(kafka_settings_from(values, where, path.resolve().parent),
                       config_file=str(path.resolve())).with_bootstrap(bootstrap)
    if not settings.bootstrap:
        raise KafkaConfigError(f"{where}: no bootstrap.servers (set it in the file or pass --bootstrap)")
    return settings


# -- each client's spelling --------------------------------------------------------------------


def rdkafka_config(settings: KafkaSettings) -> dict[str, Any]:
    """The connection in librdkafka's (confluent-kafka's) configuration names."""
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap,
                              "security.protocol": settings.security_protocol.lower()}
    if settings.uses_sasl:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password
    if settings.uses_tls:
        config["ssl.endpoint.identification.algorithm"] = "https" if settings.verify_hostname else "none"
        if settings.ssl_ca_location:
            config["ssl.ca.location"] = settings.ssl_ca_location
        if settings.ssl_certificate_location:
            config["ssl.certificate.location"] = settings.ssl_certificate_location
            config["ssl.key.location"] = settings.ssl_key_location
        if settings.ssl_key_password:
            config["ssl.key.password"] = settings.ssl_key_password
    return config


def kafka_python_config(settings: KafkaSettings) -> dict[str, Any]:
    """The connection as kafka-python's keyword arguments."""
    config: dict[str, Any] = {"bootstrap_servers": settings.bootstrap,
                              "security_protocol": settings.security_protocol}
    if settings.uses_sasl:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = settings.sasl_password
    if settings.uses_tls:
        config["ssl_check_hostname"] = settings.verify_hostname
        if settings.ssl_ca_location:
            config["ssl_cafile"] = settings.ssl_ca_location
        if settings.ssl_certificate_location:
            config["ssl_certfile"] = settings.ssl_certificate_location
            config["ssl_keyfile"] = settings.ssl_key_location
        if settings.ssl_key_password:
            config["ssl_password"] = settings.ssl_key_password
    return config
