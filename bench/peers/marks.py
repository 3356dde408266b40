"""Timing and memory marks for the measured processes (standard library only: the peers'
wrapper scripts import it in the peers' own venvs, with this folder first on ``sys.path``).

A process calls ``mark("start")`` once its imports are done and ``mark("end")`` when its run
returns; both go to the file named by ``INFLOW_BENCH_MARKS`` as ``name value`` lines, so the
tool's own stdout stays its output. ``end`` also writes the process's peak RSS: ``VmHWM`` (this
process image only: ``ru_maxrss`` would count the pre-``exec`` copy of the parent that forked
it) and the largest of its own reaped children, in KiB.
"""

from __future__ import annotations

import os
import resource
import time


def _hwm_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:  # noqa: PTH123 (hot path: no pathlib)
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def mark(name: str) -> None:
    """Append ``name <time.time()>`` to the marks file (nothing when none is set)."""
    path = os.environ.get("INFLOW_BENCH_MARKS")
    if not path:
        return
    lines = [f"{name} {time.time():.6f}"]
    if name == "end":
        lines.append(f"rss_kib {_hwm_kib()}")
        lines.append(f"children_rss_kib {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
    with open(path, "a", encoding="utf-8") as out:  # noqa: PTH123
        out.write("\n".join(lines) + "\n")
