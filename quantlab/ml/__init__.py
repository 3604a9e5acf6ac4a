"""Machine learning for meta-labeling: leak-free CV splitters, sample weights, LightGBM model.

``quantlab.ml.cv`` and ``quantlab.ml.weights`` need only numpy; ``MetaLabeler``,
``choose_threshold`` and ``cross_validate`` (scikit-learn, LightGBM) load on first access.
"""

from __future__ import annotations

from typing import Any

from quantlab.ml.cv import PurgedKFold, WalkForward
from quantlab.ml.weights import label_uniqueness

_LAZY = {"MetaLabeler", "choose_threshold", "cross_validate"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from quantlab.ml import metalabeler

        return getattr(metalabeler, name)
    raise AttributeError(f"module 'quantlab.ml' has no attribute {name!r}")


__all__ = [
    "MetaLabeler",
    "PurgedKFold",
    "WalkForward",
    "choose_threshold",
    "cross_validate",
    "label_uniqueness",
]
