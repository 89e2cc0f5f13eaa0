"""``SurvivalEstimator``: :class:`~survmom.app.survival_model.SurvivalModel` behind scikit-learn's estimator
protocol, the one scikit-survival's estimators follow, so ``cross_val_score``, ``GridSearchCV`` and ``Pipeline``
take it.

* ``fit(X, y, sample_weight=None)``: ``X`` the features (a DataFrame, or an array or sparse matrix: columns ``x0,
  x1, ...``, as for a DataFrame whose column names are not text); ``y``
  the outcome as scikit-survival builds it (``sksurv.util.Surv.from_arrays(event, time)``): a structured array
  of one boolean field, the event, and one number field, the time; ``sample_weight`` case weights (the
  ``--weight-col`` design).
* ``predict(X)``: the risk score, higher = earlier event (the ``risk`` column of ``survmom predict``), the order
  scikit-survival's metrics take; ``score(X, y)``: Harrell's C-index of it.
* ``predict_survival_function(X)``: S(t) at the training event times ``unique_times_``, as step functions.

Parameters are the model options of ``survmom train`` (``hidden=(32,)``, ``loss="weibull"``, ``epochs=20``, ...)
and ``verbose``; ``get_params``/``set_params`` give and take them, so ``sklearn.base.clone`` copies an unfitted
estimator. Where scikit-learn is installed the class derives from its ``BaseEstimator`` (which gives the tags
its model selection asks for); survmom does not need it otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from survmom.app.survival_model import SurvivalModel
from survmom.errors import ConfigError, DataError
from survmom.training.config import TrainConfig

# What fit(X, y) gives instead: the columns come from X and y, the weights from sample_weight, the model file
# from the estimator, the validation rows from val_frac.
_NOT_PARAMETERS = ("time_col", "event_col", "event_value", "id_col", "entry_col", "weight_col", "strata",
                   "origin_col", "time_unit", "date_format", "features", "exclude", "delimiter", "encoding", "sheet",
                   "val", "out", "quiet")
PARAMETERS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in _NOT_PARAMETERS)
_WEIGHT = "sample_weight"

try:
    from sklearn.base import BaseEstimator as _Base
except ImportError:  # scikit-learn is optional: the protocol below needs nothing of it
    _Base = object


class StepSurvival:
    """S(t) of one row known at the times ``x`` (ascending) as the values ``y``, a right-continuous step function
    (scikit-survival's ``StepFunction`` for S): ``S(t) = y[k]`` for ``x[k] <= t < x[k+1]``, 1 before ``x[0]``."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __call__(self, t: float | np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.x, np.asarray(t, dtype=float), side="right") - 1
        return np.where(at >= 0, self.y[np.maximum(at, 0)], 1.0)

    def __repr__(self) -> str:
        return f"StepSurvival(x=<{len(self.x)} times>, y=<{len(self.y)} values>)"


class SurvivalEstimator(_Base):
    """A survmom model with scikit-learn's ``fit``/``predict``/``score`` and ``get_params``/``set_params``.

    Args:
        verbose: show training progress on stderr (default False: model selection trains many models).
        **params: options of ``survmom train`` (``_`` for ``-``; the names in ``PARAMETERS``), with their defaults.
    """

    def __init__(self, verbose: bool = False, **params: Any) -> None:
        _check_names(params)
        self.verbose = verbose
        self._params = params

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``verbose`` and the options given (others keep survmom's defaults)."""
        return {"verbose": self.verbose, **self._params}

    def set_params(self, **params: Any) -> SurvivalEstimator:
        """Change options (``GridSearchCV`` does); an unknown name is a ConfigError naming the known ones."""
        verbose = params.pop("verbose", self.verbose)
        _check_names(params)
        self.verbose = verbose
        self._params = {**self._params, **params}
        return self

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "verbose" or v)
        return f"SurvivalEstimator({shown})"

    # ------------------------------------------------------------------------------------------------ training

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> SurvivalEstimator:
        """Train on features ``X`` (n rows) and outcome ``y`` (n,); returns ``self``."""
        features = _frame(X)
        event_name, time_name, event, time = _outcome(y, len(features))
        taken = [name for name in (event_name, time_name, _WEIGHT if sample_weight is not None else None)
                 if name in features.columns]
        if taken:
            raise DataError(f"X: column '{taken[0]}' has the name of a field of y (or sample_weight); rename it")
        data = features.assign(**{time_name: time, event_name: event})
        if sample_weight is not None:
            data[_WEIGHT] = _weights(sample_weight, len(features))
        model = SurvivalModel(verbose=self.verbose, **self._params)
        model.fit(data, time_col=time_name, event_col=event_name,
                  weight_col=_WEIGHT if sample_weight is not None else None)
        self.model_ = model
        self.feature_names_in_ = np.asarray(features.columns, dtype=object)
        self.n_features_in_ = features.shape[1]
        self.unique_times_ = np.unique(time[event])
        return self

    # ---------------------------------------------------------------------------------------------- prediction

    def predict(self, X: Any) -> np.ndarray:
        """(n,) float64 risk scores, higher = earlier event (``survmom predict``'s ``risk`` column)."""
        return self._fitted().predict(self._features(X))["risk"].to_numpy(np.float64)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Harrell's C-index of :meth:`predict` on ``(X, y)`` (with ``sample_weight``: pair (i, j) counts
        w_i·w_j, as ``survmom evaluate`` scores a weighted model)."""
        import torch

        from survmom.core.metrics import concordance_index

        features = self._features(X)
        _, _, event, time = _outcome(y, len(features))
        weight = None if sample_weight is None else torch.as_tensor(_weights(sample_weight, len(features)))
        return concordance_index(torch.as_tensor(self.predict(features)), torch.as_tensor(event),
                                 torch.as_tensor(time), weight=weight)

    def predict_survival_function(self, X: Any, return_array: bool = False) -> np.ndarray:
        """S(t) of every row at the training event times ``unique_times_``: an (n, len(unique_times_)) array
        with ``return_array=True``, else an (n,) object array of :class:`StepSurvival` (between those times
        the value of the last one before, as scikit-survival's step functions)."""
        model = self._fitted()
        values = model.predict_survival_function(self._features(X), self.unique_times_).to_numpy(np.float64)
        if return_array:
            return values
        functions = np.empty(len(values), dtype=object)
        for i, row in enumerate(values):
            functions[i] = StepSurvival(self.unique_times_, row)
        return functions

    # --------------------------------------------------------------------------------------------- internals

    def _fitted(self) -> SurvivalModel:
        model = getattr(self, "model_", None)
        if model is None:
            raise ConfigError("this SurvivalEstimator is not fitted yet: call fit(X, y)")
        return model

    def _features(self, X: Any) -> pd.DataFrame:
        """``X`` as the frame the model reads: an array gets the training names (``x0, x1, ...``)."""
        self._fitted()
        frame = _frame(X)
        if not _named(X) and frame.shape[1] == self.n_features_in_:
            frame.columns = list(self.feature_names_in_)
        return frame


def _check_names(params: dict[str, Any]) -> None:
    unknown = [name for name in params if name not in PARAMETERS]
    if unknown:
        hint = " (given by fit: X, y and sample_weight)" if any(n in _NOT_PARAMETERS for n in unknown) else ""
        raise ConfigError(f"SurvivalEstimator has no parameter {', '.join(map(repr, unknown))}{hint}; "
                          f"parameters: verbose, {', '.join(PARAMETERS)}")


def _named(X: Any) -> bool:
    """Whether ``X`` names its columns: a DataFrame whose column names are all text (scikit-learn's rule; the
    integer names of ``pd.DataFrame(array)`` are positions, as an array's columns are)."""
    return isinstance(X, pd.DataFrame) and all(isinstance(name, str) for name in X.columns)


def _frame(X: Any) -> pd.DataFrame:
    """``X`` as a DataFrame: a DataFrame with named columns as it is (copied); a DataFrame with other column
    names, a 2-D array-like or a SciPy sparse matrix (a ``OneHotEncoder``'s output) with columns ``x0, x1, ...``
    (a DataFrame keeps its dtypes)."""
    if _named(X):
        return X.copy()
    if isinstance(X, pd.DataFrame):
        return X.set_axis([f"x{i}" for i in range(X.shape[1])], axis=1)
    array = np.asarray(X.toarray() if hasattr(X, "toarray") else X)
    if array.ndim != 2:
        raise DataError(f"X must be a DataFrame or a 2-D array (rows x features), got {array.ndim} dimension(s)")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def _outcome(y: Any, n: int) -> tuple[str, str, np.ndarray, np.ndarray]:
    """(event field, time field, event (n,) bool, time (n,) float64) of a structured array ``y`` as
    ``sksurv.util.Surv.from_arrays`` builds it: one boolean field and one number field, in either order."""
    array = np.asarray(y)
    names = array.dtype.names
    if not names or len(names) != 2 or array.ndim != 1:
        raise DataError("y must be a structured array of two fields, the event (bool) and the time, as "
                        "sksurv.util.Surv.from_arrays(event, time) builds it; got "
                        f"{'shape ' + str(array.shape) if not names else 'fields ' + ', '.join(names)}")
    kinds = {name: array.dtype[name].kind for name in names}
    events = [name for name in names if kinds[name] == "b"]
    times = [name for name in names if kinds[name] in "iuf"]
    if len(events) != 1 or len(times) != 1:
        raise DataError(f"y: fields {', '.join(f'{k} ({array.dtype[k]})' for k in names)}: need one boolean "
                        "field (the event) and one number field (the time)")
    if len(array) != n:
        raise DataError(f"y has {len(array)} rows and X {n}: they must match")
    return events[0], times[0], array[events[0]].astype(bool), array[times[0]].astype(np.float64)


def _weights(sample_weight: Any, n: int) -> np.ndarray:
    weight = np.asarray(sample_weight, dtype=np.float64)
    if weight.shape != (n,):
        raise DataError(f"sample_weight must have one value per row of X ({n}), got shape {weight.shape}")
    return weight


__all__ = ["PARAMETERS", "StepSurvival", "SurvivalEstimator"]
