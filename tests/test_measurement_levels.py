"""SPSS measurement levels: a numeric column marked "nominal" (and without value labels) holds categories.

A region or centre coded 1 ... 7 in an SPSS file is a category, as its measurement level says; survmom reads it
as if ``--categorical`` named it. Oracles: pyreadstat's ``variable_measure``, and the same data written without
levels, trained with ``--categorical region``, which must give the same model bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import torch

from survmom.training.checkpoint import read_checkpoint

from cli_runner import run_survmom

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
# event nominal (0/1) and time nominal: outcome columns are not features and keep their meaning
LEVELS = {"region": "nominal", "grade": "ordinal", "age": "scale", "event": "nominal", "time": "nominal"}
TRAIN = ("--id-col", "id", "--epochs", "2", "--hidden", "8")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("levels")
    frame = pd.read_csv(SAMPLE / "cohort.csv").head(300)[["id", "age", "bmi", "time", "event"]]
    frame["region"] = np.arange(len(frame)) * 5 % 7 + 1  # codes 1 ... 7
    frame["grade"] = np.arange(len(frame)) % 4 + 1
    paths = {"levels": folder / "levels.sav", "plain": folder / "plain.sav"}
    pyreadstat.write_sav(frame, str(paths["levels"]), variable_measure=LEVELS)
    pyreadstat.write_sav(frame, str(paths["plain"]))
    return paths


def test_a_nominal_spss_number_trains_as_if_categorical_named_it(files, tmp_path):
    _, meta = pyreadstat.read_sav(str(files["levels"]), metadataonly=True)
    assert {name: meta.variable_measure[name] for name in LEVELS} == LEVELS  # the oracle's reading of the file
    got = run_survmom("train", files["levels"], *TRAIN, "--out", tmp_path / "levels.pt", check=True)
    want = run_survmom("train", files["plain"], *TRAIN, "--categorical", "region", "--out", tmp_path / "plain.pt",
                       check=True)
    nominal = [line for line in got.stderr.splitlines() if "measurement level" in line]
    assert nominal == [f"warning: {files['levels']}: column 'region' is nominal (its SPSS measurement level): "
                       "treated as categorical, one input per value; --numeric region reads it as a number"]
    assert "measurement level" not in want.stderr
    saved, oracle = read_checkpoint(tmp_path / "levels.pt"), read_checkpoint(tmp_path / "plain.pt")
    assert saved.preprocessor.column_types() == oracle.preprocessor.column_types() == {
        "age": "numeric", "bmi": "numeric", "region": "category", "grade": "numeric"}
    region = next(spec for spec in saved.preprocessor.columns if spec.name == "region")
    values, _ = pyreadstat.read_sav(str(files["levels"]), usecols=["region"])
    assert sorted(map(float, region.categories)) == sorted(values["region"].unique())
    assert torch.equal(saved.train_event, oracle.train_event) and int(saved.train_event.sum()) > 0
    assert torch.equal(saved.train_time, oracle.train_time)
    for key, value in oracle.target_weights.items():
        assert torch.equal(saved.target_weights[key], value), key
    # predict and evaluate read the file with the saved types: the same rows as the --categorical model's
    rows = run_survmom("predict", tmp_path / "levels.pt", files["levels"], check=True).stdout
    assert rows == run_survmom("predict", tmp_path / "plain.pt", files["plain"], check=True).stdout
    assert len(rows.splitlines()) == 301
    scores = run_survmom("evaluate", tmp_path / "levels.pt", files["levels"], "--json", check=True)
    oracle_scores = run_survmom("evaluate", tmp_path / "plain.pt", files["plain"], "--json", check=True)
    got_scores, want_scores = json.loads(scores.stdout), json.loads(oracle_scores.stdout)
    assert got_scores["harrell_c"] == want_scores["harrell_c"] > 0.5


def test_numeric_overrides_a_nominal_level(files, tmp_path):
    result = run_survmom("train", files["levels"], *TRAIN, "--numeric", "region", "--out", tmp_path / "n.pt",
                         check=True)
    assert "measurement level" not in result.stderr
    assert read_checkpoint(tmp_path / "n.pt").preprocessor.column_types()["region"] == "numeric"
    excluded = run_survmom("train", files["levels"], *TRAIN, "--exclude", "region", "--out", tmp_path / "x.pt",
                           check=True)
    assert "measurement level" not in excluded.stderr
