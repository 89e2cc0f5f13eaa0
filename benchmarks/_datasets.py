"""Real survival data sets shipped inside scikit-survival and lifelines, as raw frames, plus shared helpers.

Nothing is downloaded: every loader reads a file installed with its package. Each frame has the raw
feature columns (categorical as text, missing values as NaN) and the outcome columns ``time`` (> 0) and
``event`` (0/1), exactly what a user would write to a CSV file for ``survmom train``.

| name      | loader                                              | rows | events | notes                       |
|-----------|-----------------------------------------------------|------|--------|-----------------------------|
| gbsg2     | ``sksurv.datasets.load_gbsg2``                      | 686  | 44%    | German breast cancer study  |
| whas500   | ``sksurv.datasets.load_whas500``                    | 500  | 43%    | Worcester heart attack      |
| flchain   | ``sksurv.datasets.load_flchain``                    | 7874 | 28%    | ``chapter`` dropped (leak)  |
| veteran   | ``sksurv.datasets.load_veterans_lung_cancer``       | 137  | 93%    | VA lung cancer trial        |
| actg320   | ``sksurv.datasets.load_aids(endpoint="death")``     | 1151 | 2.3%   | ACTG 320, time to death     |
| aids      | ``sksurv.datasets.load_aids(endpoint="aids")``      | 1151 | 8.3%   | ACTG 320, time to AIDS/death|
| rossi     | ``lifelines.datasets.load_rossi``                   | 432  | 26%    | recidivism, time in weeks   |
| lung      | ``lifelines.datasets.load_lung``                    | 228  | 72%    | NCCTG lung; ``inst`` dropped|

scikit-survival's ``load_aids`` *is* the ACTG 320 trial (Hammer et al. 1997, as in Hosmer, Lemeshow & May,
*Applied Survival Analysis*); its two endpoints give the ``actg320`` (death) and ``aids`` (AIDS diagnosis or
death) data sets. flchain's 3 deaths at time 0 are put at 0.5 days (Weibull needs time > 0); its ``chapter``
is the ICD chapter of the cause of death, known only for those who died, so it leaks the outcome and is
dropped (as in pycox's copy). lung's ``inst`` is an institution code,
an identifier rather than a covariate, and is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

DATASETS = ("gbsg2", "whas500", "flchain", "veteran", "actg320", "aids", "rossi", "lung")


def _from_sksurv(loader: Callable, drop: tuple[str, ...] = (), **kwargs) -> pd.DataFrame:
    x, y = loader(**kwargs)
    event_field, time_field = y.dtype.names
    frame = x.drop(columns=list(drop)).copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["time"] = y[time_field].astype(float)
    frame["event"] = y[event_field].astype(int)
    return frame.reset_index(drop=True)


def _from_lifelines(loader: Callable, time: str, event: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    frame = loader().drop(columns=list(drop))
    outcome = pd.DataFrame({"time": frame.pop(time).astype(float), "event": frame.pop(event).astype(int)})
    return pd.concat([frame, outcome], axis=1).reset_index(drop=True)


def load(name: str) -> pd.DataFrame:
    """The raw frame of data set ``name`` (one of :data:`DATASETS`) with ``time`` and ``event`` columns."""
    import lifelines.datasets as ll
    import sksurv.datasets as sk

    loaders: dict[str, Callable[[], pd.DataFrame]] = {
        "gbsg2": lambda: _from_sksurv(sk.load_gbsg2),
        "whas500": lambda: _from_sksurv(sk.load_whas500),
        "flchain": lambda: _from_sksurv(sk.load_flchain, drop=("chapter",)),
        "veteran": lambda: _from_sksurv(sk.load_veterans_lung_cancer),
        "actg320": lambda: _from_sksurv(sk.load_aids, endpoint="death"),
        "aids": lambda: _from_sksurv(sk.load_aids, endpoint="aids"),
        "rossi": lambda: _from_lifelines(ll.load_rossi, "week", "arrest"),
        "lung": lambda: _from_lifelines(ll.load_lung, "time", "status", drop=("inst",)),
    }
    if name not in loaders:
        raise SystemExit(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    frame = loaders[name]()
    # flchain has 3 deaths on day 0; half a day keeps them and makes every time valid for Weibull too
    frame["time"] = frame["time"].where(frame["time"] > 0, 0.5)
    return frame


def splits(event: np.ndarray, n_splits: int, test_frac: float = 0.2, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """``n_splits`` seeded (train_rows, test_rows) pairs, stratified by event; split k uses seed ``seed + k``."""
    out = []
    for k in range(n_splits):
        rng = np.random.default_rng(seed + k)
        test = []
        for value in (0, 1):
            rows = np.flatnonzero(event == value)
            rng.shuffle(rows)
            test.append(rows[: round(test_frac * len(rows))])
        test_rows = np.sort(np.concatenate(test))
        train_rows = np.setdiff1d(np.arange(len(event)), test_rows)
        out.append((train_rows, test_rows))
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd (0 for one value) of the finite values; NaN when there are none."""
    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(finite) == 0:
        return float("nan"), float("nan")
    return float(finite.mean()), float(finite.std(ddof=1)) if len(finite) > 1 else 0.0


def cell(values: list[float], digits: int = 3) -> str:
    """``mean ± sd`` for a table cell, ``–`` when empty."""
    mean, sd = mean_sd(values)
    return "–" if not np.isfinite(mean) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def survmom_source() -> dict[str, str]:
    """Where the imported survmom lives and a SHA-256 of its .py files (the code changes while we measure)."""
    import hashlib
    from pathlib import Path

    import survmom

    folder = Path(survmom.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return {"path": str(folder), "sha256": digest.hexdigest()[:16]}
