"""`python -m provisioner` under yappi (CPU clock, every thread), for `bench/operator.py --profile DIR`.

Each SIGUSR1 writes the CPU time spent since the previous one to DIR/phase-N.txt (the top
functions by own and by cumulative time) and starts over, so the benchmark can profile the
convergence and the idle minute apart. yappi is a development tool, not a dependency: install
it anywhere on PYTHONPATH (`pip install --target DIR yappi`). With BENCH_TRACEMALLOC=1, memory
instead: the lines that allocated what is live at each SIGUSR1 (tracemalloc, slower still).
"""

from __future__ import annotations

import io
import itertools
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import yappi  # type: ignore[import-not-found,unused-ignore]

OUT = Path(sys.argv.pop(1))
phases = itertools.count()


def dump_memory(*_: Any) -> None:
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("lineno")
    total = sum(stat.size for stat in stats)
    lines = [f"live: {total / 1e6:.1f} MB traced"] + [str(stat) for stat in stats[:60]]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"memory-{next(phases)}.txt").write_text("\n".join(lines) + "\n")


def dump(*_: Any) -> None:
    stats = yappi.get_func_stats()
    parts = []
    for sort in ("tsub", "ttot"):
        text = io.StringIO()
        stats.sort(sort, "desc").print_all(out=text, columns={0: ("name", 110), 1: ("ncall", 9), 2: ("tsub", 8),
                                                               3: ("ttot", 8), 4: ("tavg", 8)})
        parts.append(f"== by {sort}\n" + "\n".join(text.getvalue().splitlines()[:250]))
    threads = io.StringIO()
    yappi.get_thread_stats().print_all(out=threads)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"phase-{next(phases)}.txt").write_text(threads.getvalue() + "\n" + "\n".join(parts))
    yappi.clear_stats()


if __name__ == "__main__":
    if os.environ.get("BENCH_TRACEMALLOC") == "1":
        tracemalloc.start(1)
        signal.signal(signal.SIGUSR1, dump_memory)
    else:
        yappi.set_clock_type("cpu")
        yappi.start(builtins=False, profile_threads=True)
        signal.signal(signal.SIGUSR1, dump)
    sys.argv[0] = "provisioner"
    from provisioner.cli.app import main

    main()
