"""`python -m provisioner` under yappi (CPU clock, every thread), for `bench/operator.py --profile DIR`.

Each SIGUSR1 writes the CPU time spent since the previous one to DIR/phase-N.txt (the top
functions by own and by cumulative time) and starts over, so the benchmark can profile the
convergence and the idle minute apart. yappi is a development tool, not a dependency: install
it anywhere on PYTHONPATH (`pip install --target DIR yappi`).
"""

from __future__ import annotations

import io
import itertools
import signal
import sys
from pathlib import Path
from typing import Any

import yappi  # type: ignore[import-not-found,unused-ignore]

OUT = Path(sys.argv.pop(1))
phases = itertools.count()


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
    yappi.set_clock_type("cpu")
    yappi.start(builtins=False, profile_threads=True)
    signal.signal(signal.SIGUSR1, dump)
    sys.argv[0] = "provisioner"
    from provisioner.cli.app import main

    main()
