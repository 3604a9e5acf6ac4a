"""Shared helpers of the benchmark scripts: steps in child processes, peak memory, load, sizes.

Each measured step runs in its own Python process (``script --step NAME --step-args JSON``) so
its peak memory is its own: the child reports ``getrusage(RUSAGE_SELF).ru_maxrss`` and
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (the largest of its own children, e.g. the spawn pool
of the backtester) on its last stdout line. The parent also samples the summed memory of the
whole process tree every 0.2 s (a concurrent peak that ``ru_maxrss`` cannot give when several
processes run at once; PSS, so shared libraries count once) and the load average around it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARK = "@@BENCH_RESULT@@ "
REPO = Path(__file__).resolve().parents[1]
GB = 1024**3
MB = 1024**2
PYCACHE = Path(tempfile.gettempdir()) / "quantlab_bench_pycache"
_BYTECODE = [True]


def load_avg() -> str:
    """``uptime``-style load averages (1, 5, 15 min) on this machine, e.g. ``"1.52/1.10/1.27"``."""
    a, b, c = os.getloadavg()
    return f"{a:.2f}/{b:.2f}/{c:.2f}"


def machine_line() -> str:
    """The machine a benchmark runs on: CPU model, cores, memory and the load average now."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"machine: {model}, {os.cpu_count()} cores{mem}; load average {load_avg()}"


def dir_size(path: Path | str, pattern: str = "*") -> int:
    """Bytes of the files under ``path`` matching ``pattern`` (0 when absent)."""
    p = Path(path)
    if not p.exists():
        return 0
    return sum(f.stat().st_size for f in p.rglob(pattern) if f.is_file())


def fmt_bytes(n: float) -> str:
    if n >= GB:
        return f"{n / GB:.2f} GB"
    if n >= MB:
        return f"{n / MB:.1f} MB"
    return f"{n / 1024:.0f} kB"


def fmt_rate(n: float) -> str:
    if n >= 1e6:
        return f"{n / 1e6:.2f} M/s"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k/s"
    return f"{n:.1f} /s"


def ok_mark(ok: bool | None) -> str:
    if ok is None:
        return ""
    return "[green]met[/green]" if ok else "[red]MISSED[/red]"


# --------------------------------------------------------------------------- child side


def emit(result: dict[str, Any]) -> None:
    """Called by a child step: print its result plus its own peak memory, as the last line."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = dict(result, _rss_self=self_kb * 1024, _rss_children=kids_kb * 1024)
    sys.stdout.flush()
    print(MARK + json.dumps(out, default=str), flush=True)


# --------------------------------------------------------------------------- parent side


def _pss(pid: int) -> int | None:
    """Proportional set size (bytes) of one process: shared pages split between sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _tree_mem(root_pid: int) -> int:
    """Summed memory (bytes) of ``root_pid`` and all its descendants: PSS where the kernel
    gives it (libraries mapped by every process count once), else resident set size."""
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        pid = int(entry.name)
        parent[pid] = int(rest[1])
        rss[pid] = int(rest[21]) * page
    total = 0
    for pid in rss:
        p = pid
        while p > 1:
            if p == root_pid:
                pss = _pss(pid)
                total += rss[pid] if pss is None else pss
                break
            p = parent.get(p, 0)
    return total


@dataclass
class StepResult:
    """What one child step returned, with its wall time, memory and the load around it."""

    name: str
    result: dict[str, Any]
    wall_s: float
    rss_self: int
    rss_children: int
    tree_peak: int
    load_before: str
    load_after: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def peak(self) -> int:
        """The largest of the three memory figures (bytes)."""
        return max(self.rss_self, self.rss_children, self.tree_peak)

    @property
    def load(self) -> str:
        return f"{self.load_before} → {self.load_after}"


def run_step(
    script: Path | str,
    step: str,
    args: dict[str, Any],
    *,
    echo: Callable[[str], None] | None = None,
    bytecode_cache: bool | None = None,
) -> StepResult:
    """Run ``script --step step --step-args json(args)`` in a fresh interpreter and wait.

    The child's stderr goes to ours (progress bars); its stdout is captured and the result
    line parsed. Raises ``RuntimeError`` with the child's output when it fails.

    With ``bytecode_cache`` (default: :func:`add_bytecode_flag`'s setting, on) the child (and its own pool workers) may write and reuse
    ``.pyc`` files under :data:`PYCACHE` (``PYTHONPYCACHEPREFIX``), as a normal installation
    does, even when the session sets ``PYTHONDONTWRITEBYTECODE``: without any ``.pyc`` every
    fresh process compiles pandas, polars, numba, exchange_calendars and quantlab from source
    (about 2 s more per process on the 2-core box). Nothing is written into the repository.
    """
    cmd = [sys.executable, str(script), "--step", step, "--step-args", json.dumps(args)]
    before = load_avg()
    env = dict(os.environ)
    if bytecode_cache if bytecode_cache is not None else _BYTECODE[0]:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=env, cwd=str(REPO)
    )
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], _tree_mem(proc.pid))
            except Exception:  # a process vanished mid-scan: try again next tick
                pass
            stop.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    stop.set()
    th.join()
    wall = time.perf_counter() - t0
    lines = out.splitlines()
    res_lines = [ln for ln in lines if ln.startswith(MARK)]
    for ln in lines:
        if not ln.startswith(MARK) and echo is not None:
            echo(ln)
    if proc.returncode != 0 or not res_lines:
        raise RuntimeError(
            f"benchmark step {step!r} failed (exit code {proc.returncode}); its output:\n{out}"
        )
    res = json.loads(res_lines[-1][len(MARK) :])
    return StepResult(
        name=step,
        result=res,
        wall_s=wall,
        rss_self=int(res.pop("_rss_self")),
        rss_children=int(res.pop("_rss_children")),
        tree_peak=peak[0],
        load_before=before,
        load_after=load_avg(),
    )


def console() -> Any:
    """A rich console that stays wide when the output is a file or a pipe
    (:func:`quantlab.console.wide_console`)."""
    from quantlab.console import wide_console

    return wide_console()


def add_bytecode_flag(ap: Any) -> None:
    """``--no-bytecode-cache``: run the steps with the session's bytecode settings as they are."""
    ap.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help=f"do not let step processes write/reuse .pyc files under {PYCACHE} (see "
        "benchmarks/_common.py: run_step)",
    )


def apply_bytecode_flag(args: Any) -> None:
    _BYTECODE[0] = not getattr(args, "no_bytecode_cache", False)


def median_ms(fn: Callable[[], Any], n: int) -> float:
    """Median wall time of ``n`` calls, in milliseconds."""
    import statistics

    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e3)
    return statistics.median(out)
