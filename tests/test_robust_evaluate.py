"""``survmom evaluate`` on awkward input: tied and huge times, bad --times, file names that look like markup."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from survmom.app.cli import app
from survmom.app.predict import load_model
from survmom.core import metrics
from survmom.training.prepare import read_outcomes

from cli_runner import run_survmom

ROOT = Path(__file__).resolve().parents[1]
ROWS = 300
LAST_TIME = 1000.0  # the largest time: rows 0-4, all events, so the training censoring survival ends above 0
TIED_TIME = 100.1  # not representable in float32: float32(100.1) < 100.1


def survmom(*args: str | Path, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess; raises unless it exits 0 (``check=False`` to look at a failure)."""
    return run_survmom(*args, cwd=cwd, check=check)


def cohort(seed: int = 0) -> pd.DataFrame:
    """300 rows; feature names with Rich markup in them; times in [1, 1000], 1000 only for 5 events."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": np.arange(ROWS),
        "[/]": rng.normal(60, 10, ROWS).round(1),
        "weight [kg]": rng.normal(80, 12, ROWS).round(1),
        "sex": rng.choice(["M", "F"], ROWS),
        "stage": rng.choice(["I", "II", "III"], ROWS),
        "time": np.minimum(rng.exponential(300, ROWS) + 2, 990).round(1),
        "event": rng.integers(0, 2, ROWS),
    })
    frame.loc[0:4, ["time", "event"]] = [LAST_TIME, 1]
    frame.loc[5, "time"] = 1.0
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A cox checkpoint trained on ``cohort()`` (2 epochs) and variants of its data."""
    folder = tmp_path_factory.mktemp("robust_evaluate")
    base = cohort()
    paths = {name: folder / f"{name}.csv" for name in ("base", "ties", "far", "big")}
    base.to_csv(paths["base"], index=False)
    ties = base.copy()
    ties.loc[::4, ["time", "event"]] = [TIED_TIME, 1]
    ties.to_csv(paths["ties"], index=False)
    far = base.copy()
    far.loc[6:9, ["time", "event"]] = [1500.0, 0]  # follow-up beyond the training rows
    far.to_csv(paths["far"], index=False)
    big = base.copy()
    big["time"] = big["time"] * 1e300  # far beyond float32's ~3.4e38
    big.to_csv(paths["big"], index=False)
    paths["model"] = folder / "model.pt"
    survmom("train", paths["base"], "--id-col", "id", "--epochs", "2", "-q", "-o", paths["model"])
    return {**paths, "folder": folder}


def reference_brier(checkpoint: Path, data: Path, times: list[float]) -> np.ndarray:
    """Graf's IPCW Brier score in float64 numpy, from the model's own survival predictions."""
    model = load_model(checkpoint)
    outcomes = read_outcomes(data, model.config, model.preprocessor)
    surv = model.survival(model.estimates(outcomes.x), times).numpy()
    event, time = outcomes.event, np.array(outcomes.time, dtype=np.float64)
    train = torch.load(checkpoint, weights_only=True)["train_outcomes"]

    def g(at: np.ndarray) -> np.ndarray:
        at = torch.tensor(at, dtype=torch.float64)
        return metrics.censoring_survival(train["event"], train["time"].double(), at).numpy()

    scores = []
    for k, t in enumerate(times):
        case, control = event & (time <= t), time > t
        loss = (surv[case, k] ** 2 / g(time[case])).sum() + ((1 - surv[control, k]) ** 2).sum() / g(np.array([t]))[0]
        scores.append(loss / len(time))
    return np.array(scores)


def run_evaluate(*args: str | Path) -> tuple[int, str, str]:
    """In-process ``survmom evaluate``: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, ["evaluate", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------------------------------- 1. float64 times
def test_brier_counts_deaths_tied_exactly_at_an_evaluation_time(files):
    times = [TIED_TIME, 200.3]
    result = json.loads(survmom("evaluate", files["model"], files["ties"], "--times", "100.1,200.3", "--json").stdout)
    assert (pd.read_csv(files["ties"])["time"] == TIED_TIME).sum() == ROWS // 4
    assert result["times"] == times
    np.testing.assert_allclose(result["brier"], reference_brier(files["model"], files["ties"], times), rtol=1e-12)
    # float32 times (100.0999985) counted the deaths at exactly 100.1 as still alive: a clearly different score
    rounded = float(np.float32(TIED_TIME))
    assert rounded < TIED_TIME
    assert abs(reference_brier(files["model"], files["ties"], [rounded, 200.3])[0] - result["brier"][0]) > 0.05


def test_times_beyond_float32_range_evaluate(files):
    big_model = files["folder"] / "big.pt"
    survmom("train", files["big"], "--id-col", "id", "--epochs", "1", "-q", "-o", big_model)
    stored = torch.load(big_model, weights_only=True)["event_time_quantiles"]
    result = json.loads(survmom("evaluate", big_model, files["big"], "--json").stdout)
    assert result["times"] == sorted(stored) and min(stored) > 1e300
    np.testing.assert_allclose(result["brier"], reference_brier(big_model, files["big"], stored), rtol=1e-12)
    assert all(np.isfinite(result["auc"])) and np.isfinite(result["integrated_brier"])


# ------------------------------------------------------------------------------------ 2. no torch warning
def test_successful_evaluate_writes_no_warning(files):
    table = survmom("evaluate", files["model"], files["base"])
    assert table.stdout == "" and "Brier(t)" in table.stderr
    assert "Warning" not in table.stderr and "not writable" not in table.stderr
    as_json = survmom("evaluate", files["model"], files["base"], "--times", "100,200", "--json")
    assert as_json.stderr == "" and json.loads(as_json.stdout)["times"] == [100.0, 200.0]


# ------------------------------------------------------------------------------------ 3. --times errors
@pytest.mark.parametrize(("times", "message"), [
    ("nan", "--times: times must be finite numbers, got nan"),
    ("100,inf", "--times: times must be finite numbers, got inf"),
    ("-inf,100", "--times: times must be finite numbers, got -inf"),
    ("1e400", "--times: times must be finite numbers, got inf"),
    ("-5,100,-2.5", "--times: times must be >= 0, got -5, -2.5"),
    ("", "--times: no evaluation times given; pass comma-separated numbers, e.g. --times 100,200"),
    (",", "--times: no evaluation times given; pass comma-separated numbers, e.g. --times 100,200"),
    ("100,200,100", "--times: times must be distinct, got 100"),
    ("abc", "--times expects a comma-separated list of float, got 'abc'"),
])
def test_bad_times_values_name_the_option(files, times, message):
    code, stdout, stderr = run_evaluate(files["model"], files["base"], "--times", times)
    assert (code, stdout, stderr) == (2, "", f"error: {message}\n")


def test_times_outside_the_data_follow_up_name_the_option_and_the_file(files):
    code, _, stderr = run_evaluate(files["model"], files["base"], "--times", "0.5,100,1000,5000")
    assert code == 2
    assert stderr == (f"error: --times: 0.5, 1000, 5000 outside the follow-up of {files['base']} (times 1 to 1000); "
                      "evaluation times must be >= 1 and < 1000\n")


def test_times_beyond_the_training_follow_up_name_the_option_and_the_checkpoint(files):
    assert float(torch.load(files["model"], weights_only=True)["train_outcomes"]["time"].max()) == LAST_TIME
    code, _, stderr = run_evaluate(files["model"], files["far"], "--times", "100,1200")
    assert code == 2
    assert stderr == (f"error: --times: 1200 beyond the training rows stored in {files['model']}: their censoring "
                      "survival G(t), used for the IPCW weights, is 0 or unknown there (last training follow-up "
                      "time 1000); evaluation times must be <= 1000\n")
    code, stdout, _ = run_evaluate(files["model"], files["far"], "--times", "100,1000", "--json")
    assert code == 0 and json.loads(stdout)["times"] == [100.0, LAST_TIME]


def test_unusable_default_times_blame_the_checkpoint_and_suggest_times(files):
    code, _, stderr = run_evaluate(files["model"], files["big"])
    assert code == 2 and len(stderr.splitlines()) == 1
    assert stderr.startswith(f"error: {files['model']}: default evaluation times: ")
    assert f"outside the follow-up of {files['big']} (times 1e+300 to 1e+303)" in stderr
    assert stderr.endswith("; pass --times\n")


# ------------------------------------------------------------------------------- 4. literal user text in Rich
def test_file_names_with_markup_are_shown_literally(files):
    folder = files["folder"] / "["  # the path "[/] weight [kg] :smile:.csv" is this folder + "] weight ..."
    folder.mkdir(exist_ok=True)
    name = "[/] weight [kg] :smile:.csv"
    pd.read_csv(files["base"]).to_csv(files["folder"] / name, index=False)
    events = int(pd.read_csv(files["base"])["event"].sum())
    result = survmom("evaluate", files["model"], name, cwd=files["folder"])
    assert result.stdout == ""
    assert f"{name}: {ROWS} rows, {events} events" in result.stderr
    error = survmom("evaluate", files["model"], name, "--times", "5000", cwd=files["folder"], check=False)
    assert error.returncode == 2 and f"outside the follow-up of {name} (times 1 to 1000)" in error.stderr


# ------------------------------------------------------------------------------- 4. values training never saw
def test_scoring_a_file_coded_otherwise_warns_as_predict_does(files):
    """A later file whose sex is spelled "male"/"female" (training: "M"/"F") encodes every row as no category:
    predict warns; evaluate, explain and the km and calibration plots score the same rows, and warn the same."""
    recoded = files["folder"] / "recoded.csv"
    pd.read_csv(files["base"]).assign(sex=lambda d: d["sex"].map({"M": "male", "F": "female"})).to_csv(
        recoded, index=False)
    predicted = survmom("predict", files["model"], recoded, "-o", files["folder"] / "p.csv")
    warning = [line for line in predicted.stderr.splitlines() if "'sex'" in line]
    assert len(warning) == 1 and "categories not seen in training" in warning[0]
    folder = files["folder"]
    for command in (["evaluate", files["model"], recoded], ["explain", files["model"], recoded, "--repeats", "1"],
                    ["plot", "km", files["model"], recoded, "-o", folder / "km.png"],
                    ["plot", "calibration", files["model"], recoded, "--time", "200", "-o", folder / "cal.png"]):
        result = survmom(*command)
        assert [line for line in result.stderr.splitlines() if "'sex'" in line] == warning, command[:2]


def test_a_validation_file_coded_otherwise_warns_in_training(files):
    """--val FILE is scored each epoch for early stopping: its unseen categories get predict's warning too."""
    recoded = files["folder"] / "val_recoded.csv"
    pd.read_csv(files["base"]).assign(stage=lambda d: d["stage"].map({"I": "1", "II": "2", "III": "3"})).to_csv(
        recoded, index=False)
    result = survmom("train", files["base"], "--val", recoded, "--id-col", "id", "--epochs", "1",
                     "-o", files["folder"] / "val.pt")
    warned = [line for line in result.stderr.splitlines() if "'stage'" in line]
    assert len(warned) == 1 and warned[0].startswith(
        f"warning: {recoded}: column 'stage': {ROWS} rows hold categories not seen in training (")
    assert warned[0].endswith("); encoded as no category, like a missing value; no row matches a training category "
                              "('I', 'II', 'III'): is the column coded as in training?")
