"""Stopping the daemons the harness starts: each leads a session of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from provisioner.errors import SetupError


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL, the process group a daemon leads (it was started in a session of its
    own, so the group is the daemon and any children)."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait)
            return
    raise SetupError(f"process {proc.pid} survived SIGKILL")
