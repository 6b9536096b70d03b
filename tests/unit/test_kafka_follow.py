"""The operator's Kafka settings follow their file as a mounted Secret changes: the kubelet swaps
the folder the files link into, and the observer switches to what the file now says; a file that
does not read keeps the previous settings."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from provisioner.operator.kafka_follow import follow
from provisioner.stream.observe import KafkaObserver
from provisioner.stream.settings import load_kafka_settings


def mount(folder: Path, version: str, text: str) -> None:
    """Write the Secret's content as the kubelet does: a new folder, then `..data` swapped to it."""
    (folder / version).mkdir()
    (folder / version / "client.properties").write_text(text)
    link = folder / "..data_tmp"
    link.symlink_to(version)
    os.replace(link, folder / "..data")
    if not (folder / "client.properties").is_symlink():
        (folder / "client.properties").symlink_to("..data/client.properties")


def eventually(what: str, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_observer_switches_to_a_rotated_file_and_keeps_the_last_good_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    mount(tmp_path, "v1", "bootstrap.servers=first:9092\n")
    path = tmp_path / "client.properties"
    settings = load_kafka_settings(path, None)
    assert settings is not None
    observer = KafkaObserver(settings)
    stop = threading.Event()
    thread = follow(path, None, settings, observer, stop, every=0.01)
    try:
        mount(tmp_path, "v2", "bootstrap.servers=second:9092\n")
        eventually("the second address", lambda: observer.bootstrap == "second:9092")
        with caplog.at_level(logging.WARNING, "provisioner.operator"):
            mount(tmp_path, "v3", "security.protocol=SASL_SSL\nbootstrap.servers=third:9092\n")  # no credentials
            eventually("the refusal logged", lambda: "needs sasl.username" in caplog.text)
        assert observer.bootstrap == "second:9092"
        mount(tmp_path, "v4", "bootstrap.servers=fourth:9092\n")
        eventually("the fourth address", lambda: observer.bootstrap == "fourth:9092")
        assert caplog.text.count("needs sasl.username") == 1
    finally:
        stop.set()
        thread.join(5)
        observer.close(timeout=1)
    assert not thread.is_alive()
