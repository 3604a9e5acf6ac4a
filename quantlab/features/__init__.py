"""Point-in-time feature store for backtest candidates.

>>> from quantlab.features import DEFAULT, build_features, load_features  # doctest: +SKIP
>>> feats = build_features("data", stage1_result)  # doctest: +SKIP

Features (definitions in :mod:`quantlab.features.definitions`) are computed from data stamped
at or before each candidate's entry time, versioned by a hash of their definitions, and stored
as Parquet per entry day plus a DuckDB table (:mod:`quantlab.features.build`).
"""

from __future__ import annotations

from quantlab.features.build import (
    build_features,
    calendar_features,
    close_to_close_vol,
    features_dir,
    features_file,
    load_features,
    realized_vol,
    spot_series,
)
from quantlab.features.definitions import (
    CODE_VERSION,
    DEFAULT,
    FEATURES,
    FeatureParams,
    FeatureSet,
)

__all__ = [
    "CODE_VERSION",
    "DEFAULT",
    "FEATURES",
    "FeatureParams",
    "FeatureSet",
    "build_features",
    "calendar_features",
    "close_to_close_vol",
    "features_dir",
    "features_file",
    "load_features",
    "realized_vol",
    "spot_series",
]
