"""Where sweep tasks run: a local process pool (default) or Ray. Same tasks, same results."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from quantlab.errors import ConfigError


class ProcessExecutor:
    """``concurrent.futures`` process pool with the spawn start method (safe with numba threads)."""

    name = "process"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)

    def run(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        """Yield ``(task index, result)`` as tasks finish."""
        if not tasks:
            return
        if self.workers == 1 or len(tasks) == 1:
            for i, t in enumerate(tasks):
                yield i, fn(*t)
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=ctx) as pool:
            futs = {pool.submit(fn, *t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futs):
                yield futs[fut], fut.result()

    def close(self) -> None:
        pass


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
        self._owned = not ray.is_initialized()
        if self._owned:
            ray.init(num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False)

    def run(self, fn: Callable[..., Any], tasks: Sequence[tuple]) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        if not tasks:
            return
        remote = ray.remote(fn)
        refs = {remote.remote(*t): i for i, t in enumerate(tasks)}
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
