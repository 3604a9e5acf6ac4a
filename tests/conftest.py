"""Shared test fixtures and settings."""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

settings.register_profile(
    "quantlab",
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("quantlab")


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data; skips the test when the reference data is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found: {path}")
    return path


# ------------------------------------------------------------------ synthetic stores

# The synthetic market most modules share, ``synthetic_store(**MARKET)``: 12 sessions of the
# "demo" market with a narrower strike band (SPXW <= 8 DTE, core moneyness 6%), seed 7. Every
# day derives from (seed, date): its days are byte-identical to a store of any sub-range.
MARKET = {
    "start": "2024-03-01",
    "end": "2024-03-18",
    "seed": 7,
    "profile": "demo",
    "dte_max": 8,
    "moneyness": 0.06,
}
# ... and a week of the "test" market (SPXW 0-3 DTE plus the 30-day pair), seed 7: from the
# first session after the switch to daylight saving time to the March monthly expiry.
TEST_WEEK = {"start": "2024-03-11", "end": "2024-03-15", "seed": 7, "profile": "test"}

SyntheticStore = Callable[..., Path]


def _run_dir(factory: pytest.TempPathFactory) -> Path:
    """This test run's temporary folder: under pytest-xdist, the folder common to all workers."""
    base = factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def copy_store(src: Path, dst: Path) -> Path:
    """A private copy of a store (for tests that write into it), without its day cache."""
    from quantlab.data import read

    top = Path(src)
    shutil.copytree(top, dst, ignore=lambda d, _: ["cache"] if Path(d) == top else [])
    read.clear_cache()
    return Path(dst)


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory: pytest.TempPathFactory) -> SyntheticStore:
    """``synthetic_store(start, end, seed, profile="demo", *, copy_to=None, **kw) -> Path``: a
    synthesized and ingested store (:func:`quantlab.data.synth.synthesize` arguments).

    Each distinct set of arguments is built once per test run, shared by every pytest-xdist
    worker: under ``<run tmp>/synthetic_stores/<hash>``, by the first worker to take the
    folder's file lock, in a temporary folder renamed into place when complete (a store that
    exists is whole). The shared store is read-only by convention (the day cache it writes is
    safe with concurrent readers); a test that writes into it (features, training, ingest,
    settlement imports) passes ``copy_to`` and gets a private copy there.
    """
    cache = _run_dir(tmp_path_factory) / "synthetic_stores"
    cache.mkdir(parents=True, exist_ok=True)

    def make(
        start: dt.date | str,
        end: dt.date | str,
        seed: int,
        profile: Any = "demo",
        *,
        copy_to: Path | None = None,
        **kw: Any,
    ) -> Path:
        from quantlab.data import read
        from quantlab.data.ingest import ingest
        from quantlab.data.synth import synthesize

        args = f"{start}..{end} seed={seed} profile={profile!r} {sorted(kw.items())!r}"
        store = cache / hashlib.sha256(args.encode()).hexdigest()[:16]
        with open(store.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not store.is_dir():
                tmp = store.with_suffix(f".tmp-{os.getpid()}")
                shutil.rmtree(tmp, ignore_errors=True)
                synthesize(start, end, seed, tmp, profile=profile, **kw)
                ingest(None, tmp)
                os.replace(tmp, store)
                store.with_suffix(".args").write_text(args + "\n")
        read.clear_cache()
        return store if copy_to is None else copy_store(store, copy_to)

    return make
