"""Store URLs: `${ENV}` expansion, managed stores, and passwords that never reach a message."""

from __future__ import annotations

import random

import pytest

from provisioner.runtime.backoff import Backoff
from provisioner.runtime.connection import StoreUrlError, expand_env, store_url
from provisioner.spec.models import StoreSpec
from provisioner.stores.base import mask_url, scrub_secrets


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://app:s3cret@db:5432/x", "postgresql://app:***@db:5432/x"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://db/x?user=app&password=s3cret&sslmode=require",
         "postgresql://db/x?user=app&password=***&sslmode=require"),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
    ],
)
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "s3cret" not in mask_url(url)


def test_scrub_secrets_removes_raw_and_decoded_passwords() -> None:
    url = "postgresql://app:p%40ss@db/x"
    message = 'connection failed for "app" with password p@ss (p%40ss)'
    assert "p@ss" not in scrub_secrets(message, url)
    assert "p%40ss" not in scrub_secrets(message, url)


def test_expand_env_replaces_variables_and_names_missing_ones() -> None:
    assert expand_env("redis://:${PW}@h:1/0", {"PW": "x"}) == "redis://:x@h:1/0"
    with pytest.raises(StoreUrlError, match="MISSING") as raised:
        expand_env("redis://:${MISSING}@h/0", {"OTHER": "secret-value"})
    assert "secret-value" not in str(raised.value)


def store(**connection: object) -> StoreSpec:
    return StoreSpec.model_validate({"name": "db", "postgres": {"connection": connection} if connection else {}})


def test_store_url_prefers_the_explicit_url() -> None:
    assert store_url(store(url="postgresql://a/b"), "postgresql://c/d") == "postgresql://c/d"
    assert store_url(store(url="postgresql://u:${PW}@a/b"), None, {"PW": "x"}) == "postgresql://u:x@a/b"


def test_managed_and_secret_stores_need_a_url() -> None:
    with pytest.raises(StoreUrlError, match="managed"):
        store_url(store())
    with pytest.raises(StoreUrlError, match="Secret"):
        store_url(store(secretRef={"name": "db", "key": "url"}))


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(base=0.5, cap=4.0, _random=random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(d <= 4.0 for d in delays)
    assert max(delays) > 2.0
    backoff.reset()
    assert backoff.next_delay() <= 0.5
