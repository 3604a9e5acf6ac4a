"""The research notebooks execute end to end on a small synthetic store, so they cannot rot.

One store (``MARKET`` in tests/conftest.py: 12 sessions of the synthetic SPX/SPXW market, a
narrower strike band than the demo's) is built once per test run; each pytest-xdist worker's
notebooks share a private copy of it. Every notebook runs in a fresh Jupyter kernel (nbclient)
with ``cwd = research/`` and the environment a user would set: ``QUANTLAB_STORE`` (the store),
``QUANTLAB_QUICK=1`` (small grids, few trials), ``QUANTLAB_WORK`` (where its outputs go: a
temporary folder), ``MLFLOW_TRACKING_URI`` (a temporary sqlite store), ``NUMBA_NUM_THREADS=1``
and ``MPLBACKEND=Agg``.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[2]
RESEARCH = REPO / "research"
NOTEBOOKS = (
    "01_pricing_and_smile",
    "02_credit_spread_backtest",
    "03_sweeps_and_overfitting",
    "04_meta_labeling",
    "05_live_day_review",
    "06_greeks_and_risk",
    "07_walkforward_and_costs",
)
# what each notebook must leave under <QUANTLAB_WORK>/out/research/<name>/ (glob patterns)
WRITES = {
    "02_credit_spread_backtest": ("report.html", "results.duckdb", "trades.parquet"),
    "03_sweeps_and_overfitting": ("sweep.duckdb", "summary.json", "mlflow_parent_run_id"),
    "04_meta_labeling": ("optuna.db",),
    "05_live_day_review": ("SIM-*.duckdb", "reconcile-*.html"),
    "06_greeks_and_risk": (
        "report.html",
        "greeks.png",
        "scenarios_worst.png",
        "risk_trades.parquet",
        "attribution_daily.parquet",
    ),
    "07_walkforward_and_costs": (
        "walkforward/walkforward.html",
        "walkforward/summary.json",
        "cost_curve.parquet",
        "fill-k-*.png",
    ),
}
ABSOLUTE_PATH = re.compile(r"""["'](?:/(?:work|home|tmp|Users|mnt|root|opt|var)/|[A-Za-z]:\\)""")


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(RESEARCH / f"{name}.ipynb", as_version=4)


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(
    name: str,
    research_store: Path,
    mlflow_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    env = {
        "QUANTLAB_STORE": str(research_store),
        "QUANTLAB_QUICK": "1",
        "QUANTLAB_WORK": str(tmp_path),
        "MLFLOW_TRACKING_URI": mlflow_uri,
        "NUMBA_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    nb = _read(name)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(RESEARCH)}}
    )
    try:
        client.execute()
    except CellExecutionError as exc:
        pytest.fail(f"research/{name}.ipynb failed:\n{exc}", pytrace=False)
    cells = _code_cells(nb)
    assert all(c.execution_count for c in cells), "a code cell did not run"
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    out = tmp_path / "out" / "research" / name
    for pattern in WRITES.get(name, ()):
        assert list(out.glob(pattern)), f"{name} wrote no {pattern} under {out}"
    assert not (RESEARCH / "mlruns").exists(), "MLflow wrote under research/"
    assert not (RESEARCH / "out").exists(), "outputs landed under research/"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_clean(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    cells = _code_cells(nb)
    dirty = [i for i, c in enumerate(cells) if c.outputs or c.execution_count is not None]
    assert not dirty, (
        f"research/{name}.ipynb carries outputs in code cells {dirty}: "
        "run `.venv/bin/python research/strip_outputs.py`"
    )
    first = cells[0].source
    assert 'os.environ.get("QUANTLAB_STORE", "data/demo")' in first
    assert 'os.environ.get("QUANTLAB_QUICK") == "1"' in first
    assert nb.cells[0].cell_type == "markdown", "a notebook opens with what the trader learns"
    for c in cells:
        assert not ABSOLUTE_PATH.search(c.source), f"hard-coded absolute path in {name}: {c.source}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_missing_store_says_make_demo(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _code_cells(_read(name))[0].source
    monkeypatch.setenv("QUANTLAB_STORE", str(tmp_path / "no-store-here"))
    monkeypatch.chdir(RESEARCH)
    with pytest.raises(FileNotFoundError, match=r"`make demo`") as info:
        exec(compile(first, f"{name}.ipynb[first cell]", "exec"), {})
    assert str(tmp_path / "no-store-here") in str(info.value)
