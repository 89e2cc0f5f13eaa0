"""Study designs end to end: delayed entry, counting-process rows (time-varying covariates), case weights and
strata, from the command line on real data sets written to files (lifelines.datasets), checked against
lifelines and against the definitions computed here by brute force.

A linear model (``--hidden ''``) trained with ``--linear-penalty 0`` and a learning rate too small to move it
keeps the linear start, which is the maximum partial-likelihood fit: its log hazards then differ from
lifelines' linear predictor by a constant, and its S(t) equals lifelines' exactly up to the fit's tolerance.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from survmom.data import subject_codes, subject_split
from survmom.data.designs import check_intervals, fit_strata, parse_entry, parse_weight
from survmom.data.split import stratified_split
from survmom.errors import DataError

from cli_runner import run_survmom

# The linear start, kept: no hidden layer, no penalty, steps too small to move it, no validation split.
LINEAR = ["--hidden", "", "--linear-penalty", "0", "--lr", "1e-12", "--weight-decay", "0", "--epochs", "1",
          "--val-frac", "0", "--quiet"]


def survmom(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess:
    return run_survmom(*args, check=check)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def predictions(out: Path) -> pd.DataFrame:
    return pd.read_csv(out)


def concordance_brute_force(risk, event, time, entry=None, weight=None, strata=None) -> float:
    """The design's concordance by its definition: pairs (i, j) with i an event at t_i and j at risk at t_i
    (entry_j < t_i <= time_j; j != i; time_j > t_i, or time_j == t_i with j censored), in one stratum; weight
    w_i w_j; concordant when risk_i > risk_j, half for a tie."""
    n = len(risk)
    entry = np.full(n, -np.inf) if entry is None else entry
    weight = np.ones(n) if weight is None else weight
    strata = np.zeros(n, dtype=int) if strata is None else strata
    num = den = 0.0
    for i in np.flatnonzero(event):
        at_risk = (entry < time[i]) & ((time > time[i]) | ((time == time[i]) & ~event)) & (strata == strata[i])
        at_risk[i] = False
        w = weight[i] * weight[at_risk]
        num += (w * ((risk[i] > risk[at_risk]) + 0.5 * (risk[i] == risk[at_risk]))).sum()
        den += w.sum()
    return num / den


# ---------------------------------------------------------------------------------------------- data files


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Real data sets as CSV files: rossi (with integer weights, and those weights as replicated rows),
    stanford heart transplants (counting process), psychiatric patients (delayed entry: age at entry, exit)."""
    from lifelines.datasets import load_psychiatric_patients, load_rossi, load_stanford_heart_transplants

    folder = tmp_path_factory.mktemp("designs")
    rossi = load_rossi()
    rossi["w"] = np.random.default_rng(0).integers(1, 4, len(rossi))
    rossi.to_csv(folder / "rossi.csv", index=False)
    replicated = rossi.loc[rossi.index.repeat(rossi["w"])].assign(w=1)
    replicated.to_csv(folder / "rossi_replicated.csv", index=False)
    stanford = load_stanford_heart_transplants()
    stanford["w"] = np.random.default_rng(1).integers(1, 3, len(stanford))
    stanford.to_csv(folder / "stanford.csv", index=False)
    psych = load_psychiatric_patients()
    psych["exit"] = psych["Age"] + psych["T"]
    psych.drop(columns="T").to_csv(folder / "psych.csv", index=False)
    return {"folder": folder, "rossi": folder / "rossi.csv", "replicated": folder / "rossi_replicated.csv",
            "stanford": folder / "stanford.csv", "psych": folder / "psych.csv"}


ROSSI = ["--time-col", "week", "--event-col", "arrest"]
STANFORD = ["--entry-col", "start", "--time-col", "stop", "--event-col", "event", "--id-col", "id"]
PSYCH = ["--entry-col", "Age", "--time-col", "exit", "--event-col", "C"]


# ------------------------------------------------------------------------------------- data side (no CLI)


def test_entry_at_or_after_time_names_the_rows():
    values = pd.Series([0.0, 5.0, 3.0])
    with pytest.raises(DataError, match=r"d.csv: column 'start' has 2 entry time.*rows 2, 3: 5.0 >= 5.0, 3.0 >= 2.0"):
        parse_entry(values, np.array([1.0, 5.0, 2.0]), path=Path("d.csv"), column="start", time_column="stop")


@pytest.mark.parametrize(("cells", "what"), [([1.0, -2.0], "negative weight"), ([1.0, np.nan], "missing weight"),
                                             ([np.inf, 1.0], "infinite weight"), ([0.0, 0.0], "weight 0 in every")])
def test_bad_weights_are_refused(cells, what):
    with pytest.raises(DataError, match=f"d.csv: column 'w' has.*{what}"):
        parse_weight(pd.Series(cells), path=Path("d.csv"), column="w")


def test_strata_combine_columns_as_labels_and_refuse_missing_values():
    table = pd.DataFrame({"a": [1, 1.0, 2, 1], "b": ["x", "y", "x", "x"]})
    codes, levels = fit_strata(table, ["a", "b"], path=Path("d.csv"))
    assert levels == [("1", "x"), ("1", "y"), ("2", "x")]
    assert codes.tolist() == [0, 1, 2, 0]
    with pytest.raises(DataError, match=r"d.csv: column 'b' has 1 missing value \(row 2"):
        fit_strata(pd.DataFrame({"b": ["x", None]}), ["b"], path=Path("d.csv"))


def test_overlapping_intervals_of_one_subject_name_the_id_and_rows():
    ids = pd.Series(["a", "a", "b", "b"])
    entry, time = np.array([0.0, 5.0, 0.0, 3.0]), np.array([5.0, 9.0, 4.0, 8.0])
    check_intervals(ids.iloc[:2], entry[:2], time[:2], path=Path("d.csv"), column="id")  # (0, 5], (5, 9]: fine
    with pytest.raises(DataError, match=r"id 'b' in column 'id' has overlapping intervals: row 3 \(0.0, 4.0\] "
                                        r"and row 4 \(3.0, 8.0\]"):
        check_intervals(ids, entry, time, path=Path("d.csv"), column="id")


def test_split_by_subject_keeps_every_subject_on_one_side(files):
    data = pd.read_csv(files["stanford"])
    subjects = subject_codes(data["id"], path=files["stanford"], column="id")
    train, val = subject_split(subjects, data["event"].to_numpy(bool), 0.25, 3)
    assert set(data["id"][train]).isdisjoint(data["id"][val])
    assert len(train) + len(val) == len(data) and len(val) > 0
    held_out = data["id"][val].nunique() / data["id"].nunique()
    assert abs(held_out - 0.25) < 0.02


def test_training_data_is_split_by_subject_with_repeated_ids(files):
    from survmom.training.config import TrainConfig
    from survmom.training.prepare import prepare_training_data

    config = TrainConfig(entry_col="start", time_col="stop", id_col="id", exclude=["w"], val_frac=0.3)
    prepared = prepare_training_data(config, files["stanford"])
    data = pd.read_csv(files["stanford"])
    subjects = subject_codes(data["id"], path=files["stanford"], column="id")
    train, val = subject_split(subjects, data["event"].to_numpy(bool), 0.3, config.seed)
    np.testing.assert_array_equal(prepared.train.entry, data["start"].to_numpy(float)[train])
    np.testing.assert_array_equal(prepared.val.time, data["stop"].to_numpy(float)[val])
    assert set(data["id"][train]).isdisjoint(data["id"][val])
    assert not any("share" in warning for warning in prepared.warnings)


def test_split_without_repeated_ids_is_the_row_split():
    event = np.random.default_rng(0).random(101) < 0.4
    ids = pd.Series([f"P{i}" for i in range(101)])
    assert subject_codes(ids, path=Path("d.csv"), column="id") is None
    for got, expected in zip(subject_split(None, event, 0.2, 7), stratified_split(event, 0.2, 7)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("entry", [False, True])
def test_concordance_within_strata_equals_the_brute_force_definition(entry):
    from survmom.core.metrics import concordance_index

    rng = np.random.default_rng(5)
    n = 300
    time = rng.integers(1, 40, n).astype(float)  # many ties
    start = np.floor(time * rng.random(n)) if entry else None
    event, strata, risk = rng.random(n) < 0.5, rng.integers(0, 3, n), np.round(rng.normal(size=n), 1)
    weight = rng.integers(0, 3, n).astype(float)
    design = {"strata": torch.from_numpy(strata), "weight": torch.from_numpy(weight)}
    if entry:
        design["entry"] = torch.from_numpy(start)
    got = concordance_index(torch.from_numpy(risk), torch.from_numpy(event), torch.from_numpy(time), **design)
    assert got == pytest.approx(concordance_brute_force(risk, event, time, start, weight, strata), abs=1e-12)


# ------------------------------------------------------------------------------------------ CLI, end to end


@pytest.fixture(scope="module")
def models(files) -> dict[str, Path]:
    """Linear models kept at their linear start, one per design, and a small MLP with every design at once."""
    folder = files["folder"]
    runs = {
        "strata": [files["rossi"], *ROSSI, "--strata", "wexp", "--exclude", "w"],
        "weights": [files["rossi"], *ROSSI, "--weight-col", "w"],
        "counting": [files["stanford"], *STANFORD, "--exclude", "w"],
        "entry": [files["psych"], *PSYCH],
    }
    out = {}
    for name, args in runs.items():
        out[name] = folder / f"{name}.pt"
        result = survmom("train", *args, *LINEAR, "-o", out[name])
        out[f"{name}_stderr"] = result.stderr
    out["all"] = folder / "all.pt"
    survmom("train", files["stanford"], *STANFORD, "--weight-col", "w", "--strata", "surgery", "--hidden", "8",
            "--epochs", "3", "--val-frac", "0.3", "--quiet", "-o", out["all"])
    return out


@pytest.mark.slow
def test_stratified_survival_equals_lifelines_strata(files, models, tmp_path):
    from lifelines import CoxPHFitter

    data = pd.read_csv(files["rossi"]).drop(columns="w")
    fitter = CoxPHFitter(baseline_estimation_method="breslow").fit(data, "week", "arrest", strata=["wexp"])
    times = [10.0, 30.0, 52.0]
    out = tmp_path / "p.csv"
    survmom("predict", models["strata"], files["rossi"], "--times", "10,30,52", "-o", out)
    ours = predictions(out)[[f"surv_{t:g}" for t in times]].to_numpy()
    # lifelines gives a stratified model's rows grouped by stratum, labelled by the frame's index
    theirs = fitter.predict_survival_function(data, times=times).T.loc[data.index].to_numpy()
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


@pytest.mark.slow
def test_weighted_survival_equals_lifelines_weights(files, models, tmp_path):
    from lifelines import CoxPHFitter

    data = pd.read_csv(files["rossi"])
    fitter = CoxPHFitter(baseline_estimation_method="breslow").fit(data, "week", "arrest", weights_col="w")
    out = tmp_path / "p.csv"
    survmom("predict", models["weights"], files["rossi"], "--times", "20,40", "-o", out)
    ours = predictions(out)
    theirs = fitter.predict_survival_function(data.drop(columns="w"), times=[20.0, 40.0]).to_numpy().T
    np.testing.assert_allclose(ours[["surv_20", "surv_40"]].to_numpy(), theirs, atol=2e-5)


def _assert_linear_log_hazards(fitter, data: pd.DataFrame, model: Path, file: Path, tmp_path: Path) -> None:
    """survmom predict's log hazards of a linear model equal lifelines' x @ beta, up to a constant (Cox)."""
    out = tmp_path / "p.csv"
    survmom("predict", model, file, "-o", out)
    ours = predictions(out)["log_hazard"].to_numpy()
    theirs = data[fitter.params_.index].to_numpy() @ fitter.params_.to_numpy()
    np.testing.assert_allclose(ours - ours[0], theirs - theirs[0], atol=1e-4)


@pytest.mark.slow
def test_counting_process_log_hazards_match_the_time_varying_fit(files, models, tmp_path):
    from lifelines import CoxTimeVaryingFitter

    assert "rows share" not in models["counting_stderr"]  # repeated ids are the design, not a mistake
    data = pd.read_csv(files["stanford"]).drop(columns="w")
    fitter = CoxTimeVaryingFitter().fit(data, id_col="id", event_col="event", start_col="start", stop_col="stop")
    _assert_linear_log_hazards(fitter, data, models["counting"], files["stanford"], tmp_path)


@pytest.mark.slow
def test_delayed_entry_log_hazards_match_lifelines_entry_col(files, models, tmp_path):
    from lifelines import CoxPHFitter

    data = pd.read_csv(files["psych"])
    fitter = CoxPHFitter().fit(data, "exit", "C", entry_col="Age")
    _assert_linear_log_hazards(fitter, data, models["entry"], files["psych"], tmp_path)


@pytest.mark.slow
def test_weibull_with_delayed_entry_equals_lifelines_weibull_aft_entry_col(files, tmp_path):
    from lifelines import WeibullAFTFitter

    data = pd.read_csv(files["psych"])
    fitter = WeibullAFTFitter().fit(data, "exit", "C", entry_col="Age")
    model, out = tmp_path / "w.pt", tmp_path / "p.csv"
    survmom("train", files["psych"], *PSYCH, "--loss", "weibull", *LINEAR, "-o", model)
    survmom("predict", model, files["psych"], "-o", out)
    ours = predictions(out)
    scale = fitter.params_["lambda_"]
    np.testing.assert_allclose(ours["log_scale"], scale["Intercept"] + scale["sex"] * data["sex"], atol=1e-4)
    np.testing.assert_allclose(ours["log_shape"], fitter.params_["rho_"]["Intercept"], atol=1e-4)
    np.testing.assert_allclose(ours["median_time"], fitter.predict_median(data), rtol=1e-5)


@pytest.mark.slow
def test_weighted_concordance_equals_the_replicated_rows(files, models):
    weighted = json.loads(survmom("evaluate", models["weights"], files["rossi"], "--json").stdout)
    replicated = json.loads(survmom("evaluate", models["weights"], files["replicated"], "--json").stdout)
    assert weighted["harrell_c"] == pytest.approx(replicated["harrell_c"], abs=1e-12)
    assert weighted["brier"] == pytest.approx(replicated["brier"], abs=1e-10)
    assert weighted["ici"] == [None] * len(weighted["times"])
    assert "case weights" in weighted["calibration_note"][0]


@pytest.mark.slow
def test_evaluate_scores_counting_process_rows_by_the_time_dependent_concordance(files, models, tmp_path):
    result = json.loads(survmom("evaluate", models["all"], files["stanford"], "--json").stdout)
    out = tmp_path / "p.csv"
    survmom("predict", models["all"], files["stanford"], "-o", out)
    data = pd.read_csv(files["stanford"])
    expected = concordance_brute_force(predictions(out)["risk"].to_numpy(), data["event"].to_numpy(bool),
                                       data["stop"].to_numpy(float), data["start"].to_numpy(float),
                                       data["w"].to_numpy(float), data["surgery"].to_numpy())
    assert result["harrell_c"] == pytest.approx(expected, abs=1e-12)
    assert result["design"]["strata"] == ["surgery"] and "interval" in result["design"]["concordance"]
    assert result["brier"] == [None] * len(result["times"]) and result["uno_c"] is None
    assert result["d_calibration"] is None


@pytest.mark.slow
def test_stratified_model_predicts_from_its_own_stratum_baseline(files, models, tmp_path):
    """S(t) = exp(-H0_s(t) exp(log_hazard)) with H0_s the Breslow estimate of stratum s computed here."""
    out = tmp_path / "p.csv"
    survmom("predict", models["strata"], files["rossi"], "--times", "25", "-o", out)
    pred, data = predictions(out), pd.read_csv(files["rossi"])
    for s in (0, 1):
        rows = data["wexp"].to_numpy() == s
        lp, time, event = pred["log_hazard"][rows].to_numpy(), data["week"][rows].to_numpy(), data["arrest"][rows]
        h0 = sum(((time == t) & event).sum() / np.exp(lp[time >= t]).sum()
                 for t in np.unique(time[event.to_numpy(bool)]) if t <= 25)
        np.testing.assert_allclose(pred["surv_25"][rows], np.exp(-h0 * np.exp(lp)), rtol=1e-10)


@pytest.mark.slow
def test_inspect_plot_survival_and_explain_take_a_stratified_model(files, models, tmp_path):
    summary = json.loads(survmom("inspect", models["all"], "--json").stdout)
    assert summary["config"]["strata"] == ["surgery"] and summary["config"]["entry_col"] == "start"
    assert [level["values"] for level in summary["design"]["strata_levels"]] == [{"surgery": "0"},
                                                                                 {"surgery": "1"}]
    curves = json.loads(survmom("plot", "survival", models["strata"], files["rossi"], "--rows", "3",
                                "--json").stdout)
    assert len(curves["rows"]) == 3
    effect = json.loads(survmom("plot", "effect", models["strata"], files["rossi"], "--feature", "age", "--time",
                                "30", "--json").stdout)
    assert len(effect["grid"]) > 2
    explained = json.loads(survmom("explain", models["strata"], files["rossi"], "--repeats", "2", "--json").stdout)
    assert {c["column"] for c in explained["columns"]} == {"fin", "age", "race", "mar", "paro", "prio"}


def test_inspect_lists_the_strata_with_their_training_rows_and_events(tmp_path):
    """12 strata (centre c00 ... c11, 20 + k rows and k + 1 events each): the table lists the first 10 with the
    rows and events that pandas counts (and --json holds), then the 2 more."""
    rng = np.random.default_rng(0)
    frames = [pd.DataFrame({"centre": f"c{k:02d}", "x": rng.normal(size=20 + k), "time": rng.uniform(1, 9, 20 + k),
                            "event": np.arange(20 + k) <= k}) for k in range(12)]
    frame = pd.concat(frames, ignore_index=True).astype({"event": int})
    frame.to_csv(tmp_path / "centres.csv", index=False)
    survmom("train", tmp_path / "centres.csv", "--strata", "centre", *LINEAR, "-o", tmp_path / "m.pt")
    counted = frame.groupby("centre").agg(rows=("event", "size"), events=("event", "sum"))
    levels = json.loads(survmom("inspect", tmp_path / "m.pt", "--json").stdout)["design"]["strata_levels"]
    assert [(level["train_rows"], level["train_events"]) for level in levels] == list(counted.itertuples(index=False))
    err = survmom("inspect", tmp_path / "m.pt").stderr
    shown = re.findall(r"│ centre='(c\d\d)'\s*│\s*(\d+)\s*│\s*(\d+)\s*│", err)
    assert shown == [(name, str(row.rows), str(row.events)) for name, row in counted.iloc[:10].iterrows()], err
    assert "... and 2 more" in err and "c10" not in err


@pytest.mark.slow
def test_resume_with_every_design_is_bit_identical(files, tmp_path):
    args = [files["stanford"], *STANFORD, "--weight-col", "w", "--strata", "surgery", "--hidden", "8",
            "--batch", "16", "--val-frac", "0.3", "--patience", "100", "--quiet"]
    survmom("train", *args, "--epochs", "2", "-o", tmp_path / "straight.pt")
    survmom("train", *args, "--epochs", "1", "-o", tmp_path / "halves.pt")
    survmom("resume", tmp_path / "halves.pt", "--epochs", "2", "--quiet")
    straight, halves = (torch.load(tmp_path / name, weights_only=True) for name in ("straight.pt", "halves.pt"))
    for key, value in straight["momentum"].items():
        assert torch.equal(value, halves["momentum"][key]) if isinstance(value, torch.Tensor) else True, key
    for a, b in zip(straight["prediction"]["strata_baselines"], halves["prediction"]["strata_baselines"]):
        assert torch.equal(a["cumhaz"], b["cumhaz"])


@pytest.mark.slow
def test_plot_km_and_calibration_refuse_weighted_models(files, models, tmp_path):
    for command in (["km"], ["calibration", "--time", "20"]):
        result = survmom("plot", *command[:1], models["weights"], files["rossi"], *command[1:], "--json",
                         check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "--weight-col" in result.stderr


@pytest.mark.slow
def test_python_api_takes_the_design_as_fit_keywords(files, models, tmp_path):
    from survmom import SurvivalModel

    data = pd.read_csv(files["rossi"]).drop(columns="w")
    model = SurvivalModel(verbose=False, hidden=[], linear_penalty=0.0, lr=1e-12, weight_decay=0.0, epochs=1,
                          val_frac=0.0)
    model.fit(data, time_col="week", event_col="arrest", strata=["wexp"])
    assert model.config.strata == ["wexp"]
    out = tmp_path / "p.csv"
    survmom("predict", models["strata"], files["rossi"], "--times", "30", "-o", out)
    np.testing.assert_allclose(model.predict_survival_function(data, [30.0])[30.0], predictions(out)["surv_30"],
                               atol=1e-6)


# ------------------------------------------------------------------------------------------------ bad input


def _bad_files(files: dict[str, Path], folder: Path) -> dict[str, tuple[list, list[str]]]:
    rossi, stanford = pd.read_csv(files["rossi"]), pd.read_csv(files["stanford"])
    rossi.assign(w=rossi["w"].where(rossi.index != 4, -1.5)).to_csv(folder / "neg.csv", index=False)
    rossi.assign(w=rossi["w"].where(rossi.index != 6, np.nan)).to_csv(folder / "nan.csv", index=False)
    late = stanford.copy()
    late.loc[2, "start"] = late.loc[2, "stop"]
    late.to_csv(folder / "late.csv", index=False)
    rossi.assign(wexp=np.where(rossi["arrest"] == 1, rossi["wexp"], 2)).to_csv(folder / "noevents.csv", index=False)
    overlap = stanford.copy()
    second = overlap.index[overlap["id"].duplicated()][0]  # the second interval of the first such subject
    overlap.loc[second, "start"] -= 1
    overlap.to_csv(folder / "overlap.csv", index=False)
    rossi.assign(wexp=rossi["wexp"].where(rossi.index != 2, 7)).to_csv(folder / "unseen.csv", index=False)
    rossi.drop(columns="wexp").to_csv(folder / "nostrata.csv", index=False)
    subject = stanford.loc[second, "id"]
    return {
        "negative weight": (["train", folder / "neg.csv", *ROSSI, "--weight-col", "w"],
                            ["neg.csv", "column 'w'", "negative weight", "row 5: -1.5"]),
        "missing weight": (["train", folder / "nan.csv", *ROSSI, "--weight-col", "w"],
                           ["nan.csv", "column 'w'", "missing weight", "row 7"]),
        "entry after time": (["train", folder / "late.csv", *STANFORD],
                             ["late.csv", "column 'start'", "entry time", "row 3"]),
        "stratum without events": (["train", folder / "noevents.csv", *ROSSI, "--strata", "wexp", "--exclude", "w"],
                                   ["noevents.csv", "no event", "wexp='2'"]),
        "overlapping intervals": (["train", folder / "overlap.csv", *STANFORD],
                                  ["overlap.csv", f"id {subject}", "column 'id'", "overlapping intervals"]),
        "unseen stratum": (["predict", "{strata}", folder / "unseen.csv", "-o", folder / "p.csv"],
                           ["unseen.csv", "'wexp'", "wexp='7'", "row"]),
        "missing stratum column": (["predict", "{strata}", folder / "nostrata.csv", "-o", folder / "p.csv"],
                                   ["nostrata.csv", "missing stratum column", "'wexp'"]),
    }


BAD = ["negative weight", "missing weight", "entry after time", "stratum without events", "overlapping intervals",
       "unseen stratum", "missing stratum column"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BAD)
def test_bad_design_input_exits_2_with_one_line_and_writes_nothing(name, files, models, tmp_path):
    args, expect = _bad_files(files, tmp_path)[name]
    args = [models["strata"] if a == "{strata}" else a for a in args]
    if args[0] == "train":
        args += ["--epochs", "1", "--quiet", "-o", tmp_path / "m.pt"]
    before = snapshot(tmp_path)
    result = survmom(*args, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in expect:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    assert snapshot(tmp_path) == before


def test_counting_process_rows_without_id_col_name_the_subject_column(files, tmp_path):
    """--entry-col without --id-col on counting-process rows: the subject id would be a feature and one subject's
    intervals would fall on both sides of the validation split; a warning names the column whose equal values
    join intervals end to end (the whole-number 'id', a text id too), and not a covariate that changes."""
    stanford = pd.read_csv(files["stanford"])
    no_id = [a for a in STANFORD if a not in ("--id-col", "id")]
    warning = "look like the intervals of subjects in column 'id'"
    linear = [a for a in LINEAR if a != "--quiet"]  # --quiet would hide the warning
    for frame in (stanford, stanford.assign(id="P" + stanford["id"].astype(str))):
        frame.to_csv(tmp_path / "s.csv", index=False)
        result = survmom("train", tmp_path / "s.csv", *no_id, *linear, "-o", tmp_path / "m.pt")
        assert warning in result.stderr and "--id-col id" in result.stderr, result.stderr
    assert "look like the intervals" not in survmom("train", files["stanford"], *STANFORD, *linear, "-o",
                                                     tmp_path / "m.pt").stderr
    assert "look like the intervals" not in survmom("train", files["psych"], *PSYCH, *linear, "-o",
                                                     tmp_path / "m.pt").stderr  # one row per patient


def test_a_stratum_without_training_events_is_named_with_its_training_rows(files, tmp_path):
    """A one-row, censored stratum (a site with one patient): refused in one line naming it and its rows."""
    rossi = pd.read_csv(files["rossi"]).assign(site=lambda d: np.where(d.index % 2 == 0, "Zürich, CH", "Bern"))
    rossi.loc[5, ["site", "arrest"]] = ["only one", 0]
    path = tmp_path / "sites.csv"
    rossi.to_csv(path, index=False)
    result = survmom("train", path, *ROSSI, "--strata", "site", *LINEAR, "-o", tmp_path / "m.pt", check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert (f"{path}: 1 stratum has no event among the training rows in column(s) 'site': site='only one' "
            "(1 training row); each stratum's baseline hazard needs events") in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_an_event_flag_on_every_interval_of_its_subjects_is_warned_about(files, tmp_path):
    """A subject-level status copied onto each (start, stop] row is the classic counting-process mistake: every
    earlier interval then ends in an event. On stanford it turns lifelines' transplant coefficient from -0.01
    into -0.98; survmom warns, naming the id column and the subjects (counted here with pandas), and stays quiet
    on the correct file and on recurrent events (lifelines' recur: events on several rows, not on all)."""
    from lifelines import CoxTimeVaryingFitter
    from lifelines.datasets import load_recur

    stanford = pd.read_csv(files["stanford"]).drop(columns="w")
    copied = stanford.assign(event=stanford.groupby("id")["event"].transform("max"))
    fits = [CoxTimeVaryingFitter().fit(frame, id_col="id", start_col="start", stop_col="stop", event_col="event")
            for frame in (stanford, copied)]
    assert fits[0].params_["transplant"] == pytest.approx(-0.0103, abs=1e-3)
    assert fits[1].params_["transplant"] < -0.9
    rows = copied.groupby("id")["event"].agg(["sum", "count"])
    flagged = rows[(rows["count"] > 1) & (rows["sum"] == rows["count"])]
    assert len(flagged) == 45
    path = tmp_path / "copied.csv"
    copied.to_csv(path, index=False)
    linear = [a for a in LINEAR if a != "--quiet"]
    stderr = survmom("train", path, *STANFORD, *linear, "-o", tmp_path / "m.pt").stderr
    assert (f"{path}: all 45 subjects in column 'id' with several rows and an event have the event on every one "
            f"of their rows (id {flagged.index[0]}: rows ") in stderr, stderr
    assert "--event-col marks the interval that ends in the event" in stderr
    assert "event on every one" not in survmom("train", files["stanford"], *STANFORD, "--exclude", "w", *linear,
                                               "-o", tmp_path / "m.pt").stderr
    recur = load_recur()
    recur.to_csv(tmp_path / "recur.csv", index=False)
    stderr = survmom("train", tmp_path / "recur.csv", "--entry-col", "TIME0", "--time-col", "TIME1", "--event-col",
                     "CENSOR", "--id-col", "ID", "--features", "AGE,TREAT", *linear, "-o", tmp_path / "m.pt").stderr
    assert "event on every one" not in stderr, stderr


def test_counting_process_rows_without_an_id_are_warned_about(files, tmp_path):
    """--entry-col with --id-col: a row whose id is missing cannot be joined to its subject's other intervals
    (their overlap is not checked, the split may part them); a warning counts and names such rows."""
    from survmom.training.config import TrainConfig
    from survmom.training.prepare import prepare_training_data

    stanford = pd.read_csv(files["stanford"])
    stanford.loc[[4, 9], "id"] = np.nan
    path = tmp_path / "noid.csv"
    stanford.to_csv(path, index=False)
    config = TrainConfig(entry_col="start", time_col="stop", id_col="id", exclude=["w"], val_frac=0.3)
    warnings = prepare_training_data(config, path).warnings
    assert (f"{path}: 2 rows have no id in column 'id' (rows 5, 10): each is taken as a subject of its own, "
            "its interval not joined to others") in " ".join(warnings), warnings
    assert not any("no id" in w for w in prepare_training_data(config, files["stanford"]).warnings)


def test_plot_km_refusal_points_to_what_evaluate_scores_for_the_design(files, models):
    """The refusal's advice names what `evaluate` does give for the design: with entry times the C-index only
    (its Brier scores are null), with weights the C-index and the Brier scores."""
    for name, data, promised in (("entry", files["psych"], "its C-index takes the entry times"),
                                 ("weights", files["rossi"], "its C-index and Brier score take the weights")):
        result = survmom("plot", "km", models[name], data, "--json", check=False)
        assert result.returncode == 2 and promised in result.stderr, result.stderr
        scores = json.loads(survmom("evaluate", models[name], data, "--json").stdout)
        assert scores["harrell_c"] is not None
        assert all(b is None for b in scores["brier"]) == (name == "entry")


def test_the_validation_split_keeps_a_stratum_of_one_subject_in_training(tmp_path):
    """lifelines' holly_molly_polly (recurrent events stratified by event number, PWP): stratum 3 is one row of
    subject P, whom the split by subject alone held out (no event left to stratum 3's baseline hazard); split
    by (stratum, event) P stays among the training subjects for every seed, and --val-frac 0.2 trains."""
    from lifelines.datasets import load_holly_molly_polly

    from survmom.training.config import TrainConfig
    from survmom.training.prepare import prepare_training_data

    frame = load_holly_molly_polly()
    path = tmp_path / "hmp.csv"
    frame.to_csv(path, index=False)
    assert frame.loc[frame["Stratum"] == 3, "Status"].sum() == 1
    for seed in range(5):
        config = TrainConfig(entry_col="Start(days)", time_col="Stop(days)", event_col="Status", id_col="ID",
                             strata=["Stratum"], features=["tx"], seed=seed)
        prepared = prepare_training_data(config, path)
        events = np.bincount(prepared.train.strata[prepared.train.event], minlength=3)
        assert events.min() > 0 and len(prepared.train) + len(prepared.val) == len(frame)
        assert np.bincount(prepared.val.strata[prepared.val.event], minlength=3)[2] == 0  # 3's lone event kept
    args = ["--entry-col", "Start(days)", "--time-col", "Stop(days)", "--event-col", "Status", "--id-col", "ID",
            "--strata", "Stratum", "--features", "tx", *LINEAR[:-3], "--quiet"]  # LINEAR but its --val-frac 0
    survmom("train", path, *args, "-o", tmp_path / "m.pt")
    assert (tmp_path / "m.pt").exists()


def test_negative_times_with_entry_times_say_how_to_shift_the_time_scale(files, tmp_path):
    """psych on the time scale 'age - 55' (some exits negative) is refused with the advice to shift time and entry
    alike; shifted so that only entries are negative ('age - 30'), the linear fit is lifelines' (0.390): a Cox fit
    with entry times does not change when the time scale is shifted."""
    from lifelines import CoxPHFitter

    psych = pd.read_csv(files["psych"])
    for shift in (55, 30):
        psych.assign(Age=psych["Age"] - shift, exit=psych["exit"] - shift).to_csv(tmp_path / f"p{shift}.csv",
                                                                                   index=False)
    result = survmom("train", tmp_path / "p55.csv", *PSYCH, *LINEAR, "-o", tmp_path / "m.pt", check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert ("column 'exit' has 4 negative values" in result.stderr and "time counts from the origin (0), so it is "
            ">= 0: add one constant to the time and the entry column ('Age') to start the time scale at 0 or later "
            "(a Cox fit with entry times does not change)" in result.stderr), result.stderr
    survmom("train", tmp_path / "p30.csv", *PSYCH, *LINEAR, "-o", tmp_path / "m.pt")
    survmom("predict", tmp_path / "m.pt", tmp_path / "p30.csv", "-o", tmp_path / "p.csv")
    ours = predictions(tmp_path / "p.csv")["log_hazard"].to_numpy()
    coefficient = CoxPHFitter().fit(psych, "exit", "C", entry_col="Age").params_["sex"]
    assert coefficient == pytest.approx(0.390, abs=1e-3)
    np.testing.assert_allclose(np.polyfit(psych["sex"], ours, 1)[0], coefficient, atol=1e-4)
