"""Embedded Redis and PostgreSQL: TCP URLs, reuse from the state dir, data surviving stop/start,
passwords required, one space per data product."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest
import redis
import redis.connection

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
    assert postgres_server.url.startswith("postgresql://postgres:")
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


def _command_lines() -> str:
    """Every process's command line on this machine, as `ps` shows them."""
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
    return "\n".join(lines)


def test_redis_refuses_a_client_without_the_password(redis_server: ServerHandle) -> None:
    password = redis.connection.parse_url(redis_server.url)["password"]
    assert password
    port = redis_server.server.port
    anonymous = redis.Redis(host="127.0.0.1", port=port)
    wrong = redis.Redis(host="127.0.0.1", port=port, password="not-" + password)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.set("intruder", "x")
        with pytest.raises(redis.AuthenticationError):
            wrong.get("survivor")
    finally:
        anonymous.close()
        wrong.close()
    secret = Path(redis_server.server.folder) / "password"
    assert secret.read_text().strip() == password
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((Path(redis_server.server.folder) / "redis.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(redis_server.server.folder).stat().st_mode) == 0o700  # its data files too
    assert password not in _command_lines()
    assert password not in redis_server.server.masked_url
    assert password not in json.dumps(redis_server.server.to_dict())


def test_postgres_refuses_a_client_without_the_password(postgres_server: ServerHandle) -> None:
    server = postgres_server.server
    password = psycopg.conninfo.conninfo_to_dict(server.url)["password"]
    assert password
    for attempt in (f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres",
                    f"host=127.0.0.1 port={server.port} user=postgres dbname=postgres password=not-{password}"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(attempt, connect_timeout=5).close()
    hba = (Path(server.folder) / "data" / "pg_hba.conf").read_text().splitlines()
    assert [line for line in hba if line and not line.startswith("#")] == ["host all all 127.0.0.1/32 scram-sha-256"]
    secret = Path(server.folder) / "password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((Path(server.folder) / "data").stat().st_mode) == 0o700
    assert password not in _command_lines()
    assert password not in (Path(server.folder) / "postgres.log").read_text(errors="replace")


def test_every_product_gets_its_own_space(redis_server: ServerHandle, postgres_server: ServerHandle) -> None:
    redis_a = embedded.space_url(redis_server.server, "team", "a")
    redis_b = embedded.space_url(redis_server.server, "team", "b")
    assert redis_a != redis_b
    assert embedded.space_url(redis_server.server, "team", "a") == redis_a  # kept: the same space again
    first, second = redis.Redis.from_url(redis_a), redis.Redis.from_url(redis_b)
    try:
        first.set("shared:key", "a")
        second.set("shared:key", "b")
        second.flushdb()  # whatever one product does to its whole space
        assert first.get("shared:key") == b"a"
    finally:
        first.close()
        second.close()
    long_name = "p" * 63
    pg_a = embedded.space_url(postgres_server.server, "team", "a")
    pg_long = embedded.space_url(postgres_server.server, "n" * 63, long_name)
    assert len({pg_a, pg_long, postgres_server.url}) == 3
    for url, value in ((pg_a, "a"), (pg_long, "long")):
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("CREATE TABLE IF NOT EXISTS shared (v text)")
            connection.execute("DELETE FROM shared")
            connection.execute("INSERT INTO shared VALUES (%s)", (value,))
    with psycopg.connect(pg_a) as connection:
        assert connection.execute("SELECT v FROM shared").fetchall() == [("a",)]


def test_servers_started_without_a_password_are_restarted_with_one(tmp_path: Path) -> None:
    # A state directory from before passwords were required: Redis without `requirepass`,
    # PostgreSQL trusting every local connection, data in both.
    try:
        old_redis, old_postgres = embedded.start_redis(tmp_path), embedded.start_postgres(tmp_path)
        client = redis.Redis.from_url(old_redis.url)
        client.set("kept", "yes")
        client.close()
        with psycopg.connect(old_postgres.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE kept (v text)")
            connection.execute("INSERT INTO kept VALUES ('yes')")
        config = Path(old_redis.folder) / "redis.conf"
        config.write_text("\n".join(line for line in config.read_text().splitlines()
                                    if not line.startswith("requirepass")) + "\n")
        (Path(old_redis.folder) / "password").unlink()
        (Path(old_postgres.folder) / "data" / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
        (Path(old_postgres.folder) / "password").unlink()

        new_redis, new_postgres = embedded.start_redis(tmp_path), embedded.start_postgres(tmp_path)
        assert new_redis.pid != old_redis.pid and new_postgres.pid != old_postgres.pid
        assert new_redis.url != old_redis.url and new_postgres.url != old_postgres.url
        client = redis.Redis.from_url(new_redis.url)
        try:
            assert client.get("kept") == b"yes"
        finally:
            client.close()
        with psycopg.connect(new_postgres.url) as connection:
            assert connection.execute("SELECT v FROM kept").fetchall() == [("yes",)]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=new_redis.port).get("kept")
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(f"host=127.0.0.1 port={new_postgres.port} user=postgres dbname=postgres",
                            connect_timeout=5).close()
    finally:
        embedded.stop_all(tmp_path)
