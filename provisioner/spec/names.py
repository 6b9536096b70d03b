"""Name rules shared by the model, the stores and the Kubernetes renderer."""

from __future__ import annotations

import re

PRODUCT_NAME_MAX = 40
RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SQL_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
RESERVED_APPEND_COLUMNS = ("_op", "_partition", "_offset", "_timestamp")
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"  # noqa: S105 (the form of a key name, not a secret)
# Kubernetes' qualified names (label and annotation keys) and label values, as the API server checks them.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
POSITIONS_TABLE = "_provisioner_positions"
VERSIONS_TABLE = "_provisioner_versions"
# `spec.order`: the hidden column holding each row's order value, append mode's stale flag, and the
# schema's table of order markers (deletes in upsert mode, every key's last order in append mode)
# with its per-group bound on their order values (kept by a trigger on the markers).
ORDER_COLUMN = "_provisioner_order"
STALE_COLUMN = "_stale"
ORDER_COLUMNS = (ORDER_COLUMN, STALE_COLUMN)
ORDER_MARKERS_TABLE = "_provisioner_order_markers"
ORDER_HORIZON_TABLE = "_provisioner_order_horizon"


def check_rfc1123_label(value: str, max_length: int) -> None:
    """Raise ValueError unless `value` is a lowercase RFC 1123 label of at most `max_length` chars."""
    if len(value) > max_length:
        raise ValueError(f"{value!r} is longer than {max_length} characters")
    if not RFC1123_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not an RFC 1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )


def check_sql_identifier(value: str) -> None:
    """Raise ValueError unless `value` matches ^[a-z_][a-z0-9_]{0,62}$ (it is quoted anyway)."""
    if not SQL_IDENTIFIER.match(value):
        raise ValueError(
            f"{value!r} is not a valid SQL identifier: lowercase letters, digits and '_', "
            "starting with a letter or '_', at most 63 characters"
        )


def check_topic_name(value: str) -> None:
    """Raise ValueError unless `value` is a legal Kafka topic name."""
    if value in (".", "..") or not TOPIC_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a legal Kafka topic name: 1-249 characters of letters, digits, '.', '_' and '-'"
        )


def quote_identifier(name: str) -> str:
    """Double-quote a validated SQL identifier (validation first: never quote unchecked text)."""
    check_sql_identifier(name)
    return f'"{name}"'


def check_qualified_name(key: str) -> None:
    """Raise ValueError unless `key` is a Kubernetes label or annotation key: an optional DNS
    subdomain prefix (at most 253 characters) and '/', then a name of at most 63 characters of
    letters, digits, '-', '_' and '.', starting and ending with a letter or digit."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        raise ValueError(f"the prefix {prefix!r} of key {key!r} is not a DNS subdomain: lowercase letters, "
                             "digits, '-' and '.', at most 253 characters")
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        raise ValueError(f"key {key!r} is not a Kubernetes qualified name: at most 63 characters of letters, "
                         "digits, '-', '_' and '.', starting and ending with a letter or digit "
                         "(optionally after a DNS prefix and '/')")


def check_label_value(value: str) -> None:
    """Raise ValueError unless `value` is a Kubernetes label value (empty, or at most 63 characters
    of letters, digits, '-', '_' and '.', starting and ending with a letter or digit)."""
    if len(value) > 63 or not LABEL_VALUE.match(value):
        raise ValueError(f"label value {value!r} is not valid in Kubernetes: at most 63 characters of letters, "
                         "digits, '-', '_' and '.', starting and ending with a letter or digit")
