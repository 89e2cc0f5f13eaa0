"""The train/validation split."""

from __future__ import annotations

import numpy as np

from survmom.errors import ConfigError, DataError


def stratified_split(event: np.ndarray, frac: float, seed: int, strata: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), sorted int64 row indices; ``frac`` of rows to validation, stratified by event.

    Deterministic for a seed. ``frac == 0`` gives an empty validation set; otherwise validation gets at least
    one row, training keeps at least one row, and when there are >= 2 events both sides get at least one.
    ``strata`` (n,) int64 codes (--strata): stratified by (stratum, event) instead
    (:func:`_split_by_strata`), so that each stratum keeps training events.
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
    if strata is not None:
        return _split_by_strata(event, np.asarray(strata, dtype=np.int64).ravel(), frac, rng)
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


def _split_by_strata(event: np.ndarray, strata: np.ndarray, frac: float, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The split of :func:`stratified_split` within each (stratum, event) cell, the same number of rows held out.

    A cell of m rows, in random order, gives its row of rank i the key (i + 1/2) / m, and the rows of lowest
    key are held out (Webster's apportionment: each cell about ``frac`` of its rows). The events of a stratum
    with >= 2 of them hold out their first (key -1) and keep their last (key 2); a lone event stays in
    training: each stratum with events keeps one for its baseline hazard, one on each side from 2 events.
    """
    n = len(event)
    n_val = min(max(round(frac * n), 1), n - 1)
    cell = strata * 2 + event
    order = rng.permutation(n)  # rows in random order: ranks within cells, ties between cells
    rows = order[np.argsort(cell[order], kind="stable")]  # by cell, random within
    counts = np.bincount(cell, minlength=2)
    sorted_cells = cell[rows]
    rank = np.arange(n) - (np.cumsum(counts) - counts)[sorted_cells]
    size = counts[sorted_cells]
    key = (rank + 0.5) / size
    events = event[rows]
    key[events & (rank == size - 1)] = 2.0
    key[events & (rank == 0) & (size >= 2)] = -1.0
    tie = np.empty(n, dtype=np.int64)
    tie[order] = np.arange(n)
    val = rows[np.lexsort((tie[rows], key))[:n_val]]
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    everything = np.arange(n, dtype=np.int64)
    return everything[~mask], everything[mask]


def subject_split(subjects: np.ndarray | None, event: np.ndarray, frac: float, seed: int,
                  strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx) like :func:`stratified_split`, but every row of a subject on one side.

    ``subjects`` (n,) int64: the subject of each row (rows of one subject share a code), or None when each row
    is its own subject (then exactly :func:`stratified_split`). ``frac`` is the fraction of subjects held out,
    stratified by whether the subject has an event in any of its rows (counting-process data: a subject's
    event is on its last interval). ``strata`` (n,) int64 codes: stratified also by each subject's rarest
    stratum (fewest events in the file) among its event rows (else among its rows); a stratum whose events
    all fell among the validation subjects then gets one of them back (its first by subject code).
    """
    event = np.asarray(event).astype(bool).ravel()
    if subjects is None:
        return stratified_split(event, frac, seed, strata)
    _, subject = np.unique(np.asarray(subjects), return_inverse=True)
    has_event = np.zeros(subject.max(initial=-1) + 1, dtype=bool)
    np.logical_or.at(has_event, subject, event)
    if strata is None:
        _, val_subjects = stratified_split(has_event, frac, seed)
        in_val = np.isin(subject, val_subjects)
    else:
        strata = np.asarray(strata, dtype=np.int64).ravel()
        _, val_subjects = stratified_split(has_event, frac, seed, _subject_strata(subject, event, strata))
        in_val = np.isin(subject, val_subjects)
        for stratum in np.unique(strata[event]):
            mine = event & (strata == stratum)
            if not (mine & ~in_val).any():  # every event of the stratum held out: its first subject back
                in_val[subject == subject[mine].min()] = False
    everything = np.arange(len(subject), dtype=np.int64)
    return everything[~in_val], everything[in_val]


def _subject_strata(subject: np.ndarray, event: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Each subject's rarest stratum (fewest events in the file, then lowest code) among its event rows, or
    among its rows when it has no event."""
    file_events = np.bincount(strata[event], minlength=strata.max(initial=0) + 1)
    by_rarity = np.lexsort((np.arange(len(file_events)), file_events))  # rarity rank -> stratum
    rarity = np.empty_like(by_rarity)
    rarity[by_rarity] = np.arange(len(by_rarity))
    rank = rarity[strata] + np.where(event, 0, len(file_events))  # an event row before any censored one
    best = np.full(subject.max(initial=-1) + 1, 2 * len(file_events), dtype=np.int64)
    np.minimum.at(best, subject, rank)
    return by_rarity[best % len(file_events)]


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
