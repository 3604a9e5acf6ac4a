"""The meta-labeler gate of the live runner: a registered model, its threshold and features."""

from __future__ import annotations

from typing import Any

import numpy as np

from quantlab.errors import ConfigError
from quantlab.live.config import MetaLabelerConfig
from quantlab.strategy.rules import meta_label_reason


class MetaGate:
    """A registered meta-labeler with its threshold and feature set, as live applies it.

    Parameters
    ----------
    model : mlflow.pyfunc.PyFuncModel or object with ``predict(pandas.DataFrame)``
        Returns P(take) per row (:class:`quantlab.ml.train.ProbaModel`).
    threshold : float
        Candidates with ``p < threshold`` are skipped.
    feature_set : FeatureSet
        The set the model was trained on.
    columns : list of str, optional
        The model's input columns (default: the feature set's).
    name, version, run_id : str
        Where it came from (for records and messages).
    """

    def __init__(
        self,
        model: Any,
        threshold: float,
        feature_set: Any,
        columns: list[str] | None = None,
        *,
        name: str = "",
        version: str = "",
        run_id: str = "",
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"meta_labeler threshold must be in [0, 1] (got {threshold!r}).")
        self.model, self.threshold, self.feature_set = model, float(threshold), feature_set
        self.columns = list(columns or feature_set.columns)
        self.name, self.version, self.run_id = name, version, run_id

    @classmethod
    def load(cls, cfg: MetaLabelerConfig) -> MetaGate:
        """Resolve ``models:/MODEL@ALIAS`` in the registry, load that version, and read the
        threshold (unless ``cfg.threshold``) and feature set its training run logged."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        from quantlab.features import FeatureSet
        from quantlab.tracking import tracking_uri

        uri = cfg.tracking_uri or tracking_uri()
        client = MlflowClient(uri)
        where = f"models:/{cfg.model}@{cfg.alias} (registry {uri})"
        try:
            mv = client.get_model_version_by_alias(cfg.model, cfg.alias)
            if not mv.run_id:
                raise ConfigError(
                    f"meta_labeler: {where} has no training run to read the "
                    "threshold and feature set from; register it with quantlab train"
                )
            run = client.get_run(mv.run_id)
        except MlflowException as exc:
            raise ConfigError(
                f"meta_labeler: cannot resolve {where}: {exc.message}. Train and register one "
                "with `quantlab train CONFIG`, or fix meta_labeler.model / alias / tracking_uri."
            ) from exc
        params, tags = run.data.params, run.data.tags
        if cfg.threshold is not None:
            thr = cfg.threshold
        elif "threshold" in params:
            thr = float(params["threshold"])
        else:
            raise ConfigError(
                f"meta_labeler: the training run {mv.run_id} of {where} logged no 'threshold'; "
                "set meta_labeler.threshold."
            )
        fs = FeatureSet(params.get("feature_set", "core"))
        logged = params.get("feature_set_version") or tags.get("quantlab.feature_set_version")
        if logged and logged != fs.version:
            raise ConfigError(
                f"meta_labeler: {where} was trained on feature set {fs.name!r} version {logged}, "
                f"but this code computes version {fs.version} (definitions, parameters or the "
                "event calendar changed): retrain the model."
            )
        prev = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:  # the version the alias resolved to above, not whatever it points to now
            model = mlflow.pyfunc.load_model(f"models:/{cfg.model}/{mv.version}")
        finally:
            mlflow.set_tracking_uri(prev)
        schema = model.metadata.get_input_schema()
        columns = schema.input_names() if schema is not None else None
        return cls(
            model, thr, fs, columns, name=cfg.model, version=str(mv.version), run_id=str(mv.run_id)
        )

    def proba(self, rows: Any) -> np.ndarray:
        """P(take) of feature rows (a polars frame of :func:`quantlab.features.build_features`
        columns), float64."""
        from quantlab.features.live import matrix

        if rows.height == 0:
            return np.empty(0)
        return np.asarray(self.model.predict(matrix(rows, self.columns)), dtype=np.float64)

    def reason(self, p: float) -> str:
        """Empty when ``p`` passes, else ``meta_labeler p=0.41<0.55`` (digits enough to differ)."""
        return meta_label_reason(p, self.threshold)


__all__ = ["MetaGate"]
