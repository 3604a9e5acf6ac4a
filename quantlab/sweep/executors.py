"""Where sweep tasks run: a local process pool (default) or Ray. Same tasks, same results."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any

from quantlab.errors import ConfigError


class ProcessExecutor:
    """``concurrent.futures`` process pool with the spawn start method (safe with numba threads).

    The pool starts with the first call of :meth:`run` that needs it and serves every later
    call until :meth:`close`: a sweep's stage 1, stage 2 and reports run on the same workers,
    which start Python, import and load the compiled kernels once.
    """

    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    def run(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(task index, result)`` as tasks finish (one task, or one worker: here)."""
        yield from self.start(fn, tasks)

    def start(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Submit ``tasks`` now and return an iterator of ``(task index, result)`` as they
        finish; tasks that run in this process (one worker, or a single task before the pool
        has started) run as it is iterated."""
        if not tasks:
            return iter(())
        if self.workers == 1 or (len(tasks) == 1 and self._pool is None):
            return ((i, fn(*t)) for i, t in enumerate(tasks))
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        futs = {self._pool.submit(fn, *t): i for i, t in enumerate(tasks)}
        return _as_completed(futs)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _as_completed(futs: dict[Future, int]) -> Iterator[tuple[int, Any]]:
    try:
        for fut in as_completed(futs):
            yield futs[fut], fut.result()
    finally:  # abandoned (an error, or the caller stopped): drop what has not started
        for fut in futs:
            fut.cancel()


class RayExecutor:
    """A local Ray cluster (``ray.init(num_cpus=workers)``), or the one ``RAY_ADDRESS`` names."""

    name = "ray"

    def __init__(self, workers: int) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--executor ray needs the 'ray' package: pip install 'ray>=2.9'"
            ) from None
        self._ray = ray
        self.workers = max(1, workers)
        self._owned = not ray.is_initialized()
        if self._owned:
            ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)

    def run(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(task index, result)`` as tasks finish."""
        yield from self.start(fn, tasks)

    def start(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Submit ``tasks`` now and return an iterator of ``(task index, result)`` as they
        finish."""
        if not tasks:
            return iter(())
        remote = self._ray.remote(fn)
        refs = {remote.remote(*t): i for i, t in enumerate(tasks)}
        return self._results(refs)

    def _results(self, refs: dict[Any, int]) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield refs[ref], ray.get(ref)

    def close(self) -> None:
        if self._owned:
            self._ray.shutdown()


def make_executor(name: str, workers: int) -> ProcessExecutor | RayExecutor:
    if name == "process":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(workers)
    raise ConfigError(f"executor must be 'process' or 'ray' (got {name!r}).")
