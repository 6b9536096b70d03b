"""Ports and processes on this machine: free ports for the local servers provisioner starts (Kafka,
Redis, Postgres) and the liveness and stopping of the processes it runs (servers and consumers).

Used by the rest of `provisioner.local`: the dev broker, the embedded servers and the supervisor."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Like a server's own socket: a port in TIME_WAIT is usable, so count it free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the kernel says is free on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so the kernel hands out different ones)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def accepts_connections(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port (within a second)."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1.0):
        return True
    return False


def live_process(pid: int) -> tuple[str, str] | None:
    """(name, command line) of a live, non-zombie process, or None; reaps it if it is our child."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return None
    if stat[stat.rfind(")") + 1:].split()[0] == "Z":
        return None
    return stat[stat.find("(") + 1: stat.rfind(")")], cmdline


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id runs (a zombie does not count)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return live_process(pid) is not None


def terminate(pid: int, alive: Callable[[], bool] | None = None, sig: signal.Signals = signal.SIGTERM,
              timeout: float = 30.0) -> bool:
    """Send `sig` (a clean shutdown), wait up to `timeout` for `alive()` (default: the pid lives) to
    turn false, then SIGKILL and wait for the process to be gone. True if it stopped by itself.

    `alive` lets a caller guard against pid reuse by also checking the process's name."""
    is_alive = alive if alive is not None else (lambda: pid_alive(pid))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive():
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while is_alive():
        time.sleep(0.05)
    return False
