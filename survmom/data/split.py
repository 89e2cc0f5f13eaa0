"""The train/validation split."""

from __future__ import annotations

import numpy as np

from survmom.errors import ConfigError, DataError


def stratified_split(event: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted int64 row indices; ``frac`` of rows to validation, stratified by event.

    Deterministic for a seed. ``frac == 0`` gives an empty validation set; otherwise validation gets at least
    one row, training keeps at least one row, and when there are >= 2 events both sides get at least one.
    """
    event = np.asarray(event).astype(bool).ravel()
    n = len(event)
    if not 0.0 <= frac < 1.0:
        raise ConfigError(f"validation fraction must be in [0, 1), got {frac}")
    if n == 0:
        raise DataError("no rows to split")
    everything = np.arange(n, dtype=np.int64)
    if frac == 0.0 or n == 1:
        return everything, np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    events = rng.permutation(np.flatnonzero(event))
    censored = rng.permutation(np.flatnonzero(~event))
    n_val = min(max(round(frac * n), 1), n - 1)
    val_events = round(n_val * len(events) / n)
    if len(events) >= 2:
        val_events = min(max(val_events, 1), len(events) - 1)
    val_events = max(min(val_events, len(events), n_val), n_val - len(censored))
    val = np.concatenate([events[:val_events], censored[: n_val - val_events]])
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return everything[~mask], everything[mask]


def subject_split(subjects: np.ndarray | None, event: np.ndarray, frac: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) like :func:`stratified_split`, but every row of a subject on one side.

    ``subjects`` (n,) int64: the subject of each row (rows of one subject share a code), or None when each row
    is its own subject (then exactly :func:`stratified_split`). ``frac`` is the fraction of subjects held out,
    stratified by whether the subject has an event in any of its rows (counting-process data: a subject's
    event is on its last interval).
    """
    if subjects is None:
        return stratified_split(event, frac, seed)
    _, subject = np.unique(np.asarray(subjects), return_inverse=True)
    has_event = np.zeros(subject.max(initial=-1) + 1, dtype=bool)
    np.logical_or.at(has_event, subject, np.asarray(event).astype(bool))
    _, val_subjects = stratified_split(has_event, frac, seed)
    in_val = np.isin(subject, val_subjects)
    everything = np.arange(len(subject), dtype=np.int64)
    return everything[~in_val], everything[in_val]


def stratified_folds(event: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (n,) int64 in [0, ``folds``) of each row: the rows dealt out at random, events and censored rows
    separately, so every fold holds about 1/``folds`` of each (cross-fitting, as K-fold cross-validation).

    Deterministic for a seed. DataError when there are fewer rows than folds, ConfigError for ``folds`` < 2.
    """
    event = np.asarray(event).astype(bool).ravel()
    if folds < 2:
        raise ConfigError(f"cross-fitting needs at least 2 folds, got {folds}")
    if len(event) < folds:
        raise DataError(f"{len(event)} row(s) cannot be dealt into {folds} folds")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(event)), rng.permutation(np.flatnonzero(~event))])
    fold = np.empty(len(event), dtype=np.int64)
    fold[order] = np.arange(len(event)) % folds  # dealt in turn: fold sizes differ by at most one
    return fold


def subject_folds(subjects: np.ndarray | None, event: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold (n,) int64 of each row like :func:`stratified_folds`, every row of a subject in one fold
    (``subjects`` as in :func:`subject_split`; None: each row its own subject)."""
    if subjects is None:
        return stratified_folds(event, folds, seed)
    _, subject = np.unique(np.asarray(subjects), return_inverse=True)
    has_event = np.zeros(subject.max(initial=-1) + 1, dtype=bool)
    np.logical_or.at(has_event, subject, np.asarray(event).astype(bool))
    return stratified_folds(has_event, folds, seed)[subject]
