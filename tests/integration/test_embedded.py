"""Embedded Redis and PostgreSQL: TCP URLs, reuse from the state dir, data surviving stop/start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import redis

from provisioner.local import embedded
from tests.integration.conftest import ServerHandle


def test_redis_data_survives_stop_and_start(redis_server: ServerHandle) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("survivor", "yes")
    client.close()
    url = redis_server.url
    redis_server.stop()
    assert embedded.find("redis", redis_server.state_dir) is None
    assert redis_server.start() == url  # same port again: clients reconnect to the same URL
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.get("survivor") == b"yes"
    finally:
        client.close()


def test_postgres_data_survives_stop_and_start(postgres_server: ServerHandle) -> None:
    assert postgres_server.url.startswith("postgresql://postgres@127.0.0.1:")
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS survivors (name text PRIMARY KEY)")
        connection.execute("INSERT INTO survivors VALUES ('yes') ON CONFLICT DO NOTHING")
    url = postgres_server.url
    postgres_server.stop()
    assert embedded.find("postgres", postgres_server.state_dir) is None
    assert postgres_server.start() == url
    with psycopg.connect(postgres_server.url) as connection:
        assert connection.execute("SELECT name FROM survivors").fetchall() == [("yes",)]


def test_servers_outlive_their_starter_and_are_reused(tmp_path: Path) -> None:
    # Started by another process that exits: the servers keep running, found from the state dir.
    script = (
        "import sys; from pathlib import Path; from provisioner.local import embedded as e; "
        "d = Path(sys.argv[1]); print(e.start_redis(d).url); print(e.start_postgres(d).url)"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            check=True)
    redis_url, postgres_url = result.stdout.split()
    try:
        redis_found = embedded.start_redis(tmp_path)
        postgres_found = embedded.start_postgres(tmp_path)
        assert (redis_found.url, postgres_found.url) == (redis_url, postgres_url)
        assert redis.Redis.from_url(redis_url).ping()
        with psycopg.connect(postgres_url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        assert sorted(embedded.stop_all(tmp_path)) == ["postgres", "redis"]
    assert embedded.find("redis", tmp_path) is None
    assert embedded.find("postgres", tmp_path) is None
    assert embedded.stop_all(tmp_path) == []
