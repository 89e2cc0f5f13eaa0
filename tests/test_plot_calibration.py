"""Calibration from the command line: ``survmom evaluate``'s calibration fields and ``survmom plot calibration``,
checked against SurvivalEVAL, lifelines and pandas on the predictions ``survmom predict`` writes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import KaplanMeierFitter
from SurvivalEVAL.evaluations.calibration.distributional.distribution_calibration import d_calibration as se_d_cal
from SurvivalEVAL.evaluations.calibration.single_time.integrated_calibration_index import (
    integrated_calibration_index as se_ici,
)
from typer.testing import CliRunner

from survmom.app.cli import app

from cli_runner import run_survmom

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT / "sample_data" / "cohort.csv"
TIMES = [300.0, 700.0, 1200.0]


def invoke(*args: str | Path) -> tuple[int, str, str]:
    """In-process ``survmom ...``: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A small cox and weibull model trained on the sample cohort (2 epochs)."""
    folder = tmp_path_factory.mktemp("calibration")
    paths = {}
    for loss in ("cox", "weibull"):
        paths[loss] = folder / f"{loss}.pt"
        run_survmom("train", COHORT, "--id-col", "id", "--loss", loss, "--epochs", "2", "--hidden", "16", "-q",
                    "-o", paths[loss], check=True)
    return {**paths, "folder": folder}


def predictions(model: Path, data: Path, times: list[float]) -> pd.DataFrame:
    code, stdout, stderr = invoke("predict", model, data, "--times", ",".join(f"{t:g}" for t in times), "-q")
    assert code == 0, stderr
    return pd.read_csv(io.StringIO(stdout))


def survival_at_own_times(model: Path, predicted: pd.DataFrame, time: np.ndarray) -> np.ndarray:
    """S(T_i | x_i) in numpy from the predicted columns and the checkpoint's baseline (independent of survmom)."""
    if "log_hazard" in predicted:
        baseline = torch.load(model, weights_only=True)["prediction"]
        times, cumhaz = baseline["baseline_times"].numpy(), baseline["baseline_cumhaz"].numpy()
        step = np.searchsorted(times, time, side="right") - 1
        h0 = np.where(step >= 0, cumhaz[np.maximum(step, 0)], 0.0)
        return np.exp(-h0 * np.exp(predicted["log_hazard"].to_numpy()))
    scale, shape = np.exp(predicted["log_scale"].to_numpy()), np.exp(predicted["log_shape"].to_numpy())
    return np.exp(-((time / scale) ** shape))


# --------------------------------------------------------------------------------------------------- evaluate
@pytest.mark.parametrize("loss", ["cox", "weibull"])
def test_evaluate_calibration_equals_survivaleval_and_lifelines(models, loss):
    code, stdout, stderr = invoke("evaluate", models[loss], COHORT, "--times", "300,700,1200", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    cohort = pd.read_csv(COHORT)
    event, time = cohort["event"].to_numpy(bool), cohort["time"].to_numpy(float)
    predicted = predictions(models[loss], COHORT, TIMES)
    km = KaplanMeierFitter().fit(time, event)
    for k, t in enumerate(TIMES):
        surv = predicted[f"surv_{t:g}"].to_numpy()
        oracle = se_ici(1 - surv, time, event.astype(int), t)
        assert result["calibration_note"][k] is None
        assert [result["ici"][k], result["e50"][k], result["e90"][k]] == pytest.approx(
            [float(oracle[key]) for key in ("ICI", "E50", "E90")], abs=1e-6)
        assert result["mean_predicted_survival"][k] == pytest.approx(surv.mean(), abs=1e-12)
        assert result["km_survival"][k] == pytest.approx(km.survival_function_at_times(t).iloc[0], abs=1e-12)
        band = km.confidence_interval_.loc[:t].iloc[-1].to_numpy()
        assert result["km_survival_ci95"][k] == pytest.approx(list(band), abs=1e-12)
    statistic, p_value, histogram = se_d_cal(survival_at_own_times(models[loss], predicted, time), event.astype(int))
    d_cal = result["d_calibration"]
    assert (d_cal["bins"], d_cal["df"]) == (10, 9)
    np.testing.assert_allclose(d_cal["counts"], histogram, rtol=1e-9)
    assert d_cal["chi2"] == pytest.approx(statistic, rel=1e-9)
    assert d_cal["p_value"] == pytest.approx(p_value, rel=1e-6)


def test_evaluate_table_shows_calibration(models):
    code, stdout, stderr = invoke("evaluate", models["cox"], COHORT, "--times", "300,700")
    assert code == 0 and stdout == ""
    for text in ("ICI", "E50", "E90", "D-calibration chi2 (df 9)", "calibration in the large", "mean predicted S(t)",
                 "Kaplan–Meier S(t) (95% CI)"):
        assert text in stderr, text


def test_evaluate_says_why_the_smoothed_curve_is_missing(models):
    # every row gets the features of one of two patients: two distinct predictions, fewer than the 3 knots
    cohort = pd.read_csv(COHORT)
    features = [c for c in cohort.columns if c not in ("id", "time", "event")]
    cohort[features] = cohort[features].iloc[np.arange(len(cohort)) % 2].to_numpy()
    path = models["folder"] / "two_patients.csv"
    cohort.to_csv(path, index=False)
    code, stdout, stderr = invoke("evaluate", models["cox"], path, "--times", "300,700", "--json")
    assert code == 0, stderr
    result = json.loads(stdout)
    assert result["ici"] == result["e50"] == result["e90"] == [None, None]
    assert result["calibration_note"] == ["the smoothed curve needs at least 3 distinct predictions, got 2"] * 2
    assert result["d_calibration"]["p_value"] is not None and result["km_survival"][0] is not None
    code, _, table = invoke("evaluate", models["cox"], path, "--times", "300")
    assert code == 0 and "ICI, E50, E90 at time 300: n/a, the smoothed curve needs at least 3" in table


# ---------------------------------------------------------------------------------------- plot calibration
def test_plot_numbers_equal_qcut_lifelines_and_survivaleval(models):
    code, stdout, stderr = invoke("plot", "calibration", models["weibull"], COHORT, "--time", "700", "--json")
    assert code == 0, stderr
    numbers = json.loads(stdout)
    cohort = pd.read_csv(COHORT)
    event, time = cohort["event"].to_numpy(bool), cohort["time"].to_numpy(float)
    surv = predictions(models["weibull"], COHORT, [700.0])["surv_700"].to_numpy()
    assert (numbers["rows"], numbers["events"], numbers["time"]) == (len(cohort), event.sum(), 700.0)
    codes = pd.qcut(surv, 10, labels=False, duplicates="drop")
    assert len(numbers["groups"]) == 10
    for code_, group in zip(range(10), numbers["groups"]):
        rows = codes == code_
        km = KaplanMeierFitter().fit(time[rows], event[rows])
        assert (group["rows"], group["events"]) == (rows.sum(), (event[rows] & (time[rows] <= 700)).sum())
        assert group["mean_predicted"] == pytest.approx(surv[rows].mean(), abs=1e-12)
        assert group["km"] == pytest.approx(km.survival_function_at_times(700.0).iloc[0], abs=1e-12)
        assert group["km_ci95"] == pytest.approx(list(km.confidence_interval_.loc[:700].iloc[-1]), abs=1e-12)
    oracle = se_ici(1 - surv, time, event.astype(int), 700.0)
    assert [numbers["ici"], numbers["e50"], numbers["e90"]] == pytest.approx(
        [float(oracle[key]) for key in ("ICI", "E50", "E90")], abs=1e-6)
    np.testing.assert_allclose(1 - np.array(numbers["smoothed"]["observed"][::-1]), oracle["curve"]["cal_pred"],
                               atol=1e-6)
    assert sum(numbers["histogram"]["counts"]) == len(cohort)
    assert f"ICI {numbers['ici']:.4f}, E50 {numbers['e50']:.4f}, E90 {numbers['e90']:.4f} at time 700" in stderr


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plot_writes_the_figure(models, suffix):
    out = models["folder"] / f"calibration{suffix}"
    code, stdout, stderr = invoke("plot", "calibration", models["cox"], COHORT, "--time", "700", "-o", out)
    assert code == 0 and stdout == "", stderr
    assert stderr.splitlines()[-1] == f"wrote the calibration plot to {out}"
    assert stderr.splitlines()[0].startswith("ICI ")
    start = out.read_bytes()[:8]
    assert {".png": start.startswith(b"\x89PNG"), ".svg": b"<?xml" in start, ".pdf": start.startswith(b"%PDF")}[suffix]


def _bad_files(folder: Path) -> dict[str, Path]:
    cohort = pd.read_csv(COHORT)
    files = {"censored": folder / "censored.csv", "short": folder / "short.csv"}
    cohort.assign(event=0).to_csv(files["censored"], index=False)
    cohort[cohort["time"] < 500].to_csv(files["short"], index=False)
    return files


@pytest.mark.parametrize(("args", "message"), [
    (["--time", "700"], "error: give -o FILE.png (.svg, .pdf) or --json"),
    (["--json"], "error: --time: give one time t at which to compare predicted and observed S(t), e.g. --time 365"),
    (["--time", "300,700", "--json"], "error: --time: give one time t at which"),
    (["--time", "abc", "--json"], "error: --time expects a comma-separated list of float, got 'abc'"),
    (["--time", "nan", "--json"], "error: --time: times must be finite numbers, got nan"),
    (["--time", "700", "--bins", "1", "--json"], "error: --bins: the number of groups must be an integer >= 2, got 1"),
    (["--time", "700", "-o", "{folder}/figure.jpg"], "error: -o {folder}/figure.jpg: unknown figure type"),
    (["--time", "1e6", "-o", "{folder}/out.png"], "error: --time: 1e+06 is beyond the training follow-up of {model}"),
    (["--time", "700", "-o", "{folder}/out.png", "--data", "short"], "error: --time: 700 outside the follow-up of"),
    (["--time", "700", "-o", "{folder}/out.png", "--data", "censored"],
     "error: {folder}/censored.csv: no events in column 'event' (2000 rows, all censored)"),
    (["--time", "700", "-o", "{folder}/out.png", "--data", "new_patients"], "error: "),
])
def test_plot_bad_input_exits_2_with_one_line_and_writes_nothing(models, args, message):
    folder, model = models["folder"], models["cox"]
    files = {**_bad_files(folder), "new_patients": ROOT / "sample_data" / "new_patients.csv"}
    data = COHORT
    if "--data" in args:
        at = args.index("--data")
        data, args = files[args[at + 1]], args[:at] + args[at + 2:]
    args = [a.format(folder=folder) for a in args]
    before = sorted(p.name for p in folder.iterdir())
    code, stdout, stderr = invoke("plot", "calibration", model, data, *args)
    assert (code, stdout) == (2, "")
    assert len(stderr.splitlines()) == 1 and stderr.startswith(message.format(folder=folder, model=model)), stderr
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written
    if data.name == "new_patients.csv":
        assert "new_patients.csv" in stderr and "time" in stderr


def test_plot_calibration_help_does_not_import_torch():
    code = ("import sys; from survmom.app.cli import app; import typer.testing as t; "
            "r = t.CliRunner().invoke(app, ['plot', 'calibration', '--help']); assert '--time' in r.stdout, r.stdout; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"
