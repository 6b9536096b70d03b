"""A watch whose version the server no longer has (410 as an ERROR event) lists the kind again,
hands the listing over as events of type None, and watches on from the listing's version.

A real API server answers so only once its watch cache has moved past the version, which a fresh
test server does not do on cue; this plays the server's side of that exchange over real HTTP."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from provisioner.kube.client import KubeClient
from provisioner.kube.watch import KindWatch, WatchPool

WAIT_S = 30.0  # bounds each wait; never a measure


def config_map(name: str, version: str, value: str) -> dict[str, Any]:
    return {"kind": "ConfigMap", "apiVersion": "v1", "data": {"v": value},
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.asked: list[tuple[str, dict[str, list[str]]]] = []
        self.release = threading.Event()


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *_: Any) -> None:
        return

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        self.server.asked.append((url.path, query))
        if "watch" not in query:
            self.answer([json.dumps({"kind": "ConfigMapList", "metadata": {"resourceVersion": "50"},
                                     "items": [config_map("listed", "49", "1")]})])
        elif query["resourceVersion"] == ["7"]:
            self.answer([json.dumps({"type": "ADDED", "object": config_map("early", "8", "1")}),
                         json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})])
        else:
            self.answer([json.dumps({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "metadata": {
                "resourceVersion": "55"}}}), json.dumps({"type": "MODIFIED", "object": config_map("listed", "56", "2")})],
                hold=True)

    def answer(self, lines: list[str], hold: bool = False) -> None:
        body = "".join(line + "\n" for line in lines).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if not hold:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        self.wfile.flush()
        self.server.release.wait(WAIT_S)


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def test_gone_lists_again_and_watches_from_the_listing(server: Server) -> None:
    configuration = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    kube = KubeClient(client.ApiClient(configuration))
    seen: queue.Queue[tuple[str | None, str, str]] = queue.Queue()

    def deliver(events: list[tuple[str | None, dict[str, Any]]]) -> None:
        for kind, obj in events:
            seen.put((kind, obj["metadata"]["name"], obj["data"]["v"]))

    pool = WatchPool(kube, 1)
    watch = KindWatch(pool, "ConfigMap", "ns", {"app.kubernetes.io/managed-by": "provisioner"}, deliver, "7")
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        assert [seen.get(timeout=WAIT_S) for _ in range(3)] == [
            ("ADDED", "early", "1"),  # what came before the error is kept
            (None, "listed", "1"),  # the listing, as a listing
            ("MODIFIED", "listed", "2"),  # then the watch from the listing's version
        ]
        assert watch.resource_version == "56"
    finally:
        watch.stop()
        server.release.set()
        thread.join(WAIT_S)
        pool.close()
        kube.close()
    assert not thread.is_alive()
    versions = [(query.get("watch"), query.get("resourceVersion")) for _, query in server.asked]
    assert versions[:3] == [(["1"], ["7"]), (None, None), (["1"], ["50"])]
    assert all(query["labelSelector"] == ["app.kubernetes.io/managed-by=provisioner"] for _, query in server.asked)
