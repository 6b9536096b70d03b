"""The dev schema registry for integration tests: our srfake main (built into the cache on first
use), run on a fixed loopback port with a journal so it can be stopped and started again with the
same ids, optionally behind basic auth; and the Kafka settings that point a consumer at it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from provisioner.local import devregistry
from provisioner.local.processes import free_port
from provisioner.stream.settings import KafkaSettings, SchemaRegistrySettings


class TestRegistry:
    __test__ = False

    def __init__(self, work: Path, user_info: str | None = None) -> None:
        self.binary = devregistry.ensure_binary()
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.user_info = user_info
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        if self.user_info:
            env[devregistry.AUTH_ENV] = self.user_info
        self.process = devregistry.start_process(self.binary, self.port, self.work / "schemas.jsonl",
                                                 self.work / "registry.log", env)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None

    def settings(self, bootstrap: str, user_info: str | None = None) -> KafkaSettings:
        """Kafka at `bootstrap`, this registry (with `user_info`, default the registry's own)."""
        return KafkaSettings(bootstrap=bootstrap, schema_registry=SchemaRegistrySettings(
            url=self.url, user_info=user_info if user_info is not None else self.user_info))

    def client_config(self) -> dict[str, str]:
        config = {"url": self.url}
        if self.user_info:
            config["basic.auth.user.info"] = self.user_info
        return config
