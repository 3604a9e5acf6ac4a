"""Strip outputs, execution counts and timing metadata from the research notebooks.

Committed notebooks carry no outputs (``tests/research/test_notebooks.py`` checks it)::

    .venv/bin/python research/strip_outputs.py            # every research/*.ipynb, in place
    .venv/bin/python research/strip_outputs.py NB.ipynb   # only these
    .venv/bin/python research/strip_outputs.py --check    # list the dirty ones, exit 1 if any
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
# cell metadata that records a run rather than the notebook (Jupyter, nbclient, extensions)
RUN_METADATA = ("execution", "ExecuteTime", "collapsed", "scrolled")


def strip(nb: nbformat.NotebookNode) -> bool:
    """Remove outputs and run metadata in place; return whether anything changed."""
    changed = False
    for cell in nb.cells:
        for key in RUN_METADATA:
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
        if cell.cell_type != "code":
            continue
        if cell.outputs or cell.execution_count is not None:
            cell.outputs = []
            cell.execution_count = None
            changed = True
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("notebooks", nargs="*", type=Path, help="default: research/*.ipynb")
    ap.add_argument("--check", action="store_true", help="only report; exit 1 if any is dirty")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted(HERE.glob("*.ipynb"))
    dirty = []
    for path in paths:
        if not path.is_file():
            print(f"error: no notebook at {path}", file=sys.stderr)
            return 2
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            dirty.append(path)
            if not args.check:
                nbformat.validate(nb)
                nbformat.write(nb, path)
    verb = "has outputs" if args.check else "stripped"
    for path in dirty:
        print(f"{verb}: {path}")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
