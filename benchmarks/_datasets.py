"""Survival data sets as raw frames (real ones from scikit-survival and lifelines; large generated ones), helpers.

Nothing is downloaded: every real loader reads a file installed with its package. Each frame has the raw
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

No package installed here ships a large (> 20,000 rows) real survival data set on disk (pycox's
``support``, ``metabric``, ``kkbox`` ... are downloaded on first use, and nothing can be downloaded), so the
large data sets (:data:`LARGE_DATASETS`) are generated, by :func:`synthetic`, with a known truth:

| name      | rows    | events | generator                                                    |
|-----------|---------|--------|--------------------------------------------------------------|
| synth20k  | 20,000  | ~50%   | ``synthetic(20_000, seed=20)``                               |
| synth100k | 100,000 | ~50%   | ``synthetic(100_000, seed=100)``                             |

Covariates (13): ``age`` (normal 62 ± 12 years, 18-95), ``bmi`` (log-normal, median 27), ``crp`` (log-normal,
median 3.3 mg/L, long right tail), ``albumin`` (normal 40 ± 5 g/L), ``creatinine`` (log-normal, median 1 mg/dL),
``sbp`` (normal 135 ± 18 mmHg), ``hemoglobin`` (normal 13 ± 1.6 g/dL), ``nodes`` (Poisson count, mean 2),
``female`` (binary 0/1), and as text ``stage`` (I-IV), ``smoking`` (never/former/current), ``treatment`` (A/B/C)
and ``region`` (5 levels, no effect). ``crp`` and ``albumin`` each miss ~5% of cells (missing at random,
punched in after the outcome is drawn). The true log hazard (centred to mean 0 over the rows) is

    eta = 0.035 (age - 62) + 0.9 [crp > 10] + 0.06 (bmi - 26)^2 / 4 - 0.04 (albumin - 40)
          + 0.7 sin(pi (hemoglobin - 13) / 2) + {I: 0, II: 0.4, III: 0.9, IV: 1.6}[stage]
          + {never: 0, former: 0.2, current: 0.5}[smoking] - 0.2 female + 0.3 log(1 + nodes)
          + [treatment = B] (-0.4 - 0.04 (age - 62)) + [treatment = C] 0.3 [stage in III, IV]
          + 0.5 z(log creatinine) z(sbp)

with ``z(v) = (v - mean) / sd`` of the generating law (log creatinine: 0, 0.35; sbp: 135, 18): a threshold,
a U-shape, a sine, two numeric x categorical and one numeric x numeric interaction. Event times follow a
Weibull baseline in days, ``S(t | x) = exp(-(t / 1500)^1.3 exp(eta))``; censoring is the earliest of an
independent exponential drop-out (mean 4,000 days) and administrative censoring at the end of the study
(entry uniform over 5 years, study closed after 8: follow-up 3 to 8 years). Times are rounded up to whole
days, so there are ties, as in registries. :func:`true_log_hazard` gives ``eta`` per row (it is never a
column of the frame) and :func:`true_survival` the true survival of the recorded (rounded) time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pandas as pd

DATASETS = ("gbsg2", "whas500", "flchain", "veteran", "actg320", "aids", "rossi", "lung")
LARGE_DATASETS = ("synth20k", "synth100k")
SYNTHETIC = {"synth20k": (20_000, 20), "synth100k": (100_000, 100)}  # name -> (rows, seed)
WEIBULL_SHAPE = 1.3
WEIBULL_SCALE_DAYS = 1500.0
STAGES = ("I", "II", "III", "IV")
VAL_FRAC = 0.1  # validation share of a training split for the peers' early stopping


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
    """The raw frame of data set ``name`` (:data:`DATASETS`, :data:`LARGE_DATASETS`) with ``time`` and ``event``."""
    if name in SYNTHETIC:
        return _generated(*SYNTHETIC[name])[0].copy()
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
        raise SystemExit(f"unknown data set {name!r}; known: {', '.join(DATASETS + LARGE_DATASETS)}")
    frame = loaders[name]()
    # flchain has 3 deaths on day 0; half a day keeps them and makes every time valid for Weibull too
    frame["time"] = frame["time"].where(frame["time"] > 0, 0.5)
    return frame


def synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A generated cohort of ``n`` rows (raw columns + ``time`` in days + ``event``) and its true log hazard (n,).

    The law is in the module docstring; the same (n, seed) gives the same rows on every platform numpy supports.
    """
    rng = np.random.default_rng(seed)
    age = np.clip(rng.normal(62, 12, n), 18, 95).round().astype(np.int64)
    frame = pd.DataFrame({
        "age": age,
        "bmi": np.exp(rng.normal(np.log(27), 0.18, n)).round(1),
        "crp": np.exp(rng.normal(1.2, 1.0, n)).round(1),
        "albumin": rng.normal(40, 5, n).round(1),
        "creatinine": np.exp(rng.normal(0.0, 0.35, n)).round(2),
        "sbp": rng.normal(135, 18, n).round(),
        "hemoglobin": rng.normal(13, 1.6, n).round(1),
        "nodes": rng.poisson(2.0, n),
        "female": rng.integers(0, 2, n),
        "stage": rng.choice(STAGES, n, p=[0.3, 0.3, 0.25, 0.15]),
        "smoking": rng.choice(["never", "former", "current"], n, p=[0.5, 0.3, 0.2]),
        "treatment": rng.choice(["A", "B", "C"], n),
        "region": rng.choice(["north", "south", "east", "west", "centre"], n),
    })
    eta = _log_hazard(frame)
    event_time = WEIBULL_SCALE_DAYS * (rng.exponential(1.0, n) / np.exp(eta)) ** (1.0 / WEIBULL_SHAPE)
    dropout = rng.exponential(4000.0, n)
    end_of_study = 8 * 365.0 - rng.uniform(0, 5 * 365.0, n)  # entry uniform over 5 years, closed after 8
    censor = np.minimum(dropout, end_of_study)
    frame["time"] = np.ceil(np.minimum(event_time, censor)).astype(float)
    frame["event"] = (event_time <= censor).astype(int)
    for column in ("crp", "albumin"):
        frame.loc[rng.random(n) < 0.05, column] = np.nan
    return frame, eta


def _log_hazard(frame: pd.DataFrame) -> np.ndarray:
    """(n,) true log hazard of complete covariates, centred; the formula of the module docstring."""
    age = frame["age"].to_numpy(float) - 62
    stage = frame["stage"].map(dict(zip(STAGES, (0.0, 0.4, 0.9, 1.6)))).to_numpy(float)
    smoking = frame["smoking"].map({"never": 0.0, "former": 0.2, "current": 0.5}).to_numpy(float)
    treatment = frame["treatment"].to_numpy()
    late = np.isin(frame["stage"].to_numpy(), ("III", "IV"))
    eta = (0.035 * age + 0.9 * (frame["crp"].to_numpy(float) > 10)
           + 0.06 * (frame["bmi"].to_numpy(float) - 26) ** 2 / 4 - 0.04 * (frame["albumin"].to_numpy(float) - 40)
           + 0.7 * np.sin(np.pi * (frame["hemoglobin"].to_numpy(float) - 13) / 2) + stage + smoking
           - 0.2 * frame["female"].to_numpy(float) + 0.3 * np.log1p(frame["nodes"].to_numpy(float))
           + (treatment == "B") * (-0.4 - 0.04 * age) + (treatment == "C") * 0.3 * late
           + 0.5 * (np.log(frame["creatinine"].to_numpy(float)) / 0.35) * ((frame["sbp"].to_numpy(float) - 135) / 18))
    return eta - eta.mean()


@functools.lru_cache(maxsize=2)
def _generated(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic(n, seed)


def true_log_hazard(name: str) -> np.ndarray | None:
    """(n,) true log hazard of the rows of generated data set ``name`` (as :func:`load` orders them); None if real."""
    return _generated(*SYNTHETIC[name])[1].copy() if name in SYNTHETIC else None


def true_survival(log_hazard: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(n, m) true P(recorded time > t) at ``times`` (m,) days: ceil(T) > t iff T > floor(t) (times rounded up)."""
    base = (np.floor(np.asarray(times, float)) / WEIBULL_SCALE_DAYS) ** WEIBULL_SHAPE
    return np.exp(-np.exp(log_hazard)[:, None] * base[None, :])


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


def validation_rows(event: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit_rows, val_rows): ``VAL_FRAC`` of the training split held out, stratified by event."""
    fit_rows, val_rows = splits(event, 1, VAL_FRAC, seed=10_000 + seed)[0]
    return fit_rows, val_rows


def step_function_at(index: np.ndarray, values: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Right-continuous step function through (index (k,), values (k, n)) at ``times`` (m,) → (n, m); 1 before."""
    pos = np.searchsorted(index, times, side="right") - 1
    out = np.ones((values.shape[1], len(times)))
    ok = pos >= 0
    out[:, ok] = values[pos[ok]].T
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
