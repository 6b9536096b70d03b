"""The operator's status reads keep one Redis client per server, against a real Redis: many
products' positions read over and over open no connection per read, and each product still sees
its own positions."""

from __future__ import annotations

import base64
from typing import Any, cast

import redis

from provisioner.kube.client import KubeClient
from provisioner.kube.observe import Observer
from provisioner.kube.reconcile import parse_product
from provisioner.stores.redis import RedisStore
from tests.integration.conftest import redis_server  # noqa: F401  (fixture)


def _product(name: str) -> dict[str, Any]:
    return {"apiVersion": "provisioner.dev/v1alpha1", "kind": "DataProduct",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"source": {"topic": "orders.v1"}, "fields": {"order_id": "event.order_id"}, "key": "order_id",
                     "stores": [{"name": "cache", "redis": {"connection": {"secretRef": {"name": "url", "key": "url"}}}}]}}


def test_status_reads_share_one_client_per_server(redis_server: Any) -> None:  # noqa: F811
    url = redis_server.url
    secrets = [{"kind": "Secret", "metadata": {"name": "url"}, "data": {"url": base64.b64encode(url.encode()).decode()}}]
    products = [parse_product(_product(f"p{i}")) for i in range(5)]
    admin = redis.Redis.from_url(url)
    for index, product in enumerate(products):  # where each product's consumer got to, as it writes it
        store = RedisStore(product, product.spec.stores[0], url)
        admin.sadd(store.positions_key + b":partitions", 0)
        admin.set(store.partition_key(0), 100 + index)
    before = admin.info("stats")["total_connections_received"]
    observer = Observer(cast(KubeClient, object()), None, store_timeout=2.0)
    for _ in range(10):
        for index, product in enumerate(products):
            [observed] = observer.observe(product, "shop", secrets)
            assert observed.positions == {0: 100 + index}, observed.error
    opened = admin.info("stats")["total_connections_received"] - before
    assert opened <= 2, opened  # 50 observations, each reading positions and the version record
    admin.close()
