"""Cross-fitted ensembles (``--ensemble K``): folds, training, every command, resume, errors.

Oracles: the members' survival curves and medians are recomputed here from each member's own network and
baseline with the core functions, and the ensemble's median by brute force over the whole time grid (Cox) or by
scipy's root finder (Weibull); resume is compared tensor for tensor with an uninterrupted run.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rich.console import Console
from scipy.optimize import brentq

from survmom.app.predict import load_model
from survmom.app.progress import QuietReporter
from survmom.core.losses import cox_survival, weibull_survival
from survmom.core.metrics import concordance_index
from survmom.core.mixture import median_by_bisection, median_on_grid
from survmom.data import stratified_folds, subject_folds
from survmom.training import workflow
from survmom.training.checkpoint import read_checkpoint
from survmom.training.config import TrainConfig
from survmom.training.trainer import user_weibull_params

from cli_runner import SignalAtStep, checkpoint_tensors, first_rows, run_survmom

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def quiet() -> QuietReporter:
    return QuietReporter(Console(file=io.StringIO()))


def _config(out: Path, **changes) -> TrainConfig:
    values = {"id_col": "id", "hidden": [16], "epochs": 3, "batch": 16, "seed": 7, "device": "cpu",
              "quiet": True, "out": str(out), "ensemble": 3, "patience": 20}
    return TrainConfig.from_dict({**values, **changes})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The first 300 rows of the sample cohort."""
    return first_rows(SAMPLE / "cohort.csv", tmp_path_factory.mktemp("data") / "cohort300.csv", 300)


@pytest.fixture(scope="module")
def cox_ensemble(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cox") / "ensemble.pt"
    workflow.train_from_file(_config(out), data, lambda config: quiet())
    return out


# ------------------------------------------------------------------------------------------------ folds


def test_folds_deal_events_and_censored_rows_evenly_and_are_seeded():
    event = np.r_[np.ones(37, bool), np.zeros(64, bool)]
    fold = stratified_folds(event, 5, seed=3)
    assert np.array_equal(fold, stratified_folds(event, 5, seed=3))
    assert not np.array_equal(fold, stratified_folds(event, 5, seed=4))
    sizes = np.bincount(fold, minlength=5)
    assert sizes.max() - sizes.min() <= 1 and sizes.sum() == 101
    events = np.bincount(fold[event], minlength=5)
    assert events.max() - events.min() <= 1


def test_subject_folds_keep_every_row_of_a_subject_in_one_fold():
    subjects = np.repeat(np.arange(40), 3)
    event = np.zeros(120, bool)
    event[2::3][:15] = True  # 15 subjects with an event on their last row
    fold = subject_folds(subjects, event, 4, seed=0)
    assert all(len(set(fold[subjects == s])) == 1 for s in range(40))
    subject_fold = fold[::3]
    assert np.bincount(subject_fold, minlength=4).tolist() == [10, 10, 10, 10]
    assert np.bincount(subject_fold[:15], minlength=4).max() <= 4


def test_too_few_rows_for_the_folds_is_a_data_error():
    from survmom.errors import DataError

    with pytest.raises(DataError, match="3 row"):
        stratified_folds(np.array([True, False, True]), 4, seed=0)


# --------------------------------------------------------------------------------------- the mixture median


def test_median_on_grid_is_the_first_grid_time_where_the_mean_curve_reaches_one_half():
    generator = torch.Generator().manual_seed(0)
    grid = torch.sort(torch.rand(200, generator=generator, dtype=torch.float64) * 100).values
    hazards = torch.rand(3, 50, generator=generator, dtype=torch.float64) * 0.05  # 3 exponential members

    def mean_at(t: torch.Tensor) -> torch.Tensor:  # (n, m) or paired (n,)
        return torch.exp(-hazards[..., None] * t).mean(0) if t.dim() == 2 else torch.exp(-hazards * t).mean(0)

    got = median_on_grid(mean_at, grid, 50)
    curves = mean_at(grid.expand(50, -1))  # brute force: the whole (n, m) matrix
    reached = curves <= 0.5
    want = torch.where(reached.any(1), grid[reached.int().argmax(1)], torch.tensor(torch.inf, dtype=torch.float64))
    assert torch.equal(got, want)
    assert torch.isinf(got).any() and torch.isfinite(got).any()  # some rows never reach 0.5 by t = 100


def test_median_by_bisection_matches_a_root_finder():
    scales = torch.tensor([[10.0, 40.0, 2.0], [5.0, 5.0, 5.0], [1e3, 2.0, 50.0]], dtype=torch.float64)
    shapes = torch.tensor([[1.5, 0.7, 3.0], [1.0, 2.0, 0.5], [1.2, 1.2, 1.2]], dtype=torch.float64)

    def mean_at(t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((t[:, None] / scales) ** shapes)).mean(1)

    medians = scales * np.log(2) ** (1 / shapes)
    got = median_by_bisection(mean_at, medians.min(1).values, medians.max(1).values)
    for i in range(3):
        want = brentq(lambda t, i=i: float(torch.exp(-((t / scales[i]) ** shapes[i])).mean()) - 0.5, 1e-9, 1e6,
                      xtol=1e-14, rtol=1e-15)
        assert got[i].item() == pytest.approx(want, rel=1e-12)


# ---------------------------------------------------------------------------------------------- training


def test_each_member_validates_on_its_own_fold_with_its_own_seed(cox_ensemble, data):
    saved = read_checkpoint(cox_ensemble)
    assert saved.ensemble_size == 3 and len(saved.members) == 3
    assert saved.config.seed == 7 and [m.config.seed for m in saved.members] == [7, 8, 9]
    frame = pd.read_csv(data)
    assert len(saved.train_time) == len(frame)  # the ensemble's outcomes: every row, in file order
    np.testing.assert_array_equal(saved.train_time.numpy(), frame["time"].to_numpy(float))
    fold = subject_folds(None, frame["event"].to_numpy(bool), 3, seed=7)
    for k, member in enumerate(saved.members):
        assert member.progress["epoch"] == 3
        # the member's own training rows are the other folds: its Breslow baseline jumps at their event times
        own = np.unique(frame["time"].to_numpy(float)[(fold != k) & frame["event"].to_numpy(bool)])
        np.testing.assert_array_equal(member.baseline_times.numpy(), own)
    assert len({tuple(m.target_weights["mlp.0.weight"].flatten()[:5].tolist()) for m in saved.members}) == 3


def test_predictions_average_the_members_survival_curves(cox_ensemble, data, tmp_path):
    times = [200.0, 500.0, 1000.0]
    out = tmp_path / "pred.csv"
    run_survmom("predict", cox_ensemble, data, "-o", out, "--times", "200,500,1000", check=True)
    pred = pd.read_csv(out)
    model = load_model(cox_ensemble)
    x = model.preprocessor.transform(pd.read_csv(data), path=data)
    saved = read_checkpoint(cox_ensemble)
    curves, log_hz = [], []
    for member, loaded in zip(saved.members, model.members, strict=True):
        with torch.no_grad():
            eta = loaded.network(torch.from_numpy(x))[:, 0].double()
        log_hz.append(eta)
        curves.append(cox_survival(eta, member.baseline_times, member.baseline_cumhaz,
                                   torch.tensor(times, dtype=torch.float64)))
    mean = torch.stack(curves).mean(0).numpy()
    np.testing.assert_allclose(pred[["surv_200", "surv_500", "surv_1000"]].to_numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(pred["risk"], torch.stack(log_hz).mean(0).numpy(), rtol=1e-12, atol=1e-15)
    # the median: brute force over every member's baseline time
    grid = torch.unique(torch.cat([m.baseline_times for m in saved.members]))
    every = torch.stack([cox_survival(eta, m.baseline_times, m.baseline_cumhaz, grid)
                         for eta, m in zip(log_hz, saved.members, strict=True)]).mean(0)
    reached = every <= 0.5
    want = torch.where(reached.any(1), grid[reached.int().argmax(1)], torch.tensor(torch.inf, dtype=torch.float64))
    np.testing.assert_array_equal(pred["median_time"].to_numpy(), want.numpy())


def test_evaluate_scores_the_ensemble_risk(cox_ensemble, data):
    result = run_survmom("evaluate", cox_ensemble, data, "--json", check=True)
    scores = json.loads(result.stdout)
    pred = run_survmom("predict", cox_ensemble, data, check=True)
    risk = pd.read_csv(io.StringIO(pred.stdout))["risk"].to_numpy()
    frame = pd.read_csv(data)
    want = concordance_index(torch.from_numpy(risk), torch.from_numpy(frame["event"].to_numpy(bool)),
                             torch.from_numpy(frame["time"].to_numpy(float)))
    assert scores["harrell_c"] == pytest.approx(float(want), abs=1e-12)


def test_inspect_and_the_history_plot_show_the_members(cox_ensemble, tmp_path):
    summary = json.loads(run_survmom("inspect", cox_ensemble, "--json", check=True).stdout)
    assert summary["ensemble"]["size"] == 3
    assert [m["member"] for m in summary["ensemble"]["trained"]] == [1, 2, 3]
    saved = read_checkpoint(cox_ensemble)
    assert [m["best_cindex"] for m in summary["ensemble"]["trained"]] == [m.best_metric for m in saved.members]
    text = run_survmom("inspect", cox_ensemble, check=True).stderr
    assert "3 cross-fitted members, 3 trained" in text
    history = json.loads(run_survmom("plot", "history", cox_ensemble, "--member", "2", "--json", check=True).stdout)
    assert (history["member"], history["members"]) == (2, 3)
    assert [r["loss"] for r in history["epochs"]] == [r["loss"] for r in saved.members[1].history]
    bad = run_survmom("plot", "history", cox_ensemble, "--member", "4", "-o", tmp_path / "h.png")
    assert bad.returncode == 2 and "--member must be from 1 to 3" in bad.stderr
    assert not (tmp_path / "h.png").exists()


def test_a_weibull_ensemble_median_is_where_the_mean_curve_crosses_one_half(data, tmp_path):
    out = tmp_path / "weibull.pt"
    workflow.train_from_file(_config(out, loss="weibull", ensemble=2, epochs=2), data, lambda config: quiet())
    model = load_model(out)
    x = model.preprocessor.transform(pd.read_csv(data).head(8), path=data)
    columns = model.outputs(x, [300.0])
    params = [user_weibull_params(m.network(torch.from_numpy(x)).detach(), m.time_scale) for m in model.members]
    for i in range(8):
        def mean_at(t: float, i: int = i) -> float:
            return float(np.mean([weibull_survival(p[i : i + 1], torch.tensor([t], dtype=torch.float64)).item()
                                  for p in params]))

        assert columns["median_time"][i] == pytest.approx(brentq(lambda t: mean_at(t) - 0.5, 1e-6, 1e7, xtol=1e-12),
                                                          rel=1e-9)
        assert columns["surv_300"][i] == pytest.approx(mean_at(300.0), rel=1e-12)


# ------------------------------------------------------------------------------------------------ resume


@pytest.mark.slow
def test_an_ensemble_interrupted_in_its_second_member_resumes_bit_identically(cox_ensemble, data, tmp_path):
    stopped = tmp_path / "stopped.pt"
    first = read_checkpoint(cox_ensemble).members[0].progress["step"]  # 3 epochs of ceil(200 / 16) = 13 steps
    assert first == 39
    reporter = SignalAtStep(first + 20)  # 20 steps into member 2 (its epoch 2)
    result = workflow.train_from_file(_config(stopped), data, lambda config: reporter)
    assert result.interrupted and len(result.members) == 1
    saved = read_checkpoint(stopped)
    assert len(saved.members) == 1 and saved.state["ensemble"]["current"] == 1
    assert saved.progress["step"] == 20
    early = run_survmom("predict", stopped, data, check=True)
    assert "an unfinished ensemble (1 of 3 members trained): its 1 trained member(s) predict" in early.stderr
    assert len(pd.read_csv(io.StringIO(early.stdout))) == 300
    resumed = workflow.resume_from_checkpoint(stopped, None, None, None, lambda config: quiet(), {})
    assert len(resumed.members) == 3
    got, want = torch.load(stopped, weights_only=True), torch.load(cox_ensemble, weights_only=True)
    got_tensors, want_tensors = dict(checkpoint_tensors(got)), dict(checkpoint_tensors(want))
    assert got_tensors.keys() == want_tensors.keys()
    for key, tensor in want_tensors.items():
        assert torch.equal(got_tensors[key], tensor), f"{key} differs from the uninterrupted run"
    finished = run_survmom("resume", stopped)
    assert finished.returncode == 2 and ("all 3 members of the ensemble are trained; a finished ensemble is not "
                                         "trained further: train a new one with a larger --epochs") in finished.stderr


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("flags", "message"), [
    (["--ensemble", "0"], "--ensemble must be an integer from 1 to 50, got 0"),
    (["--ensemble", "3", "--val", "{data}"], "--ensemble needs the random split"),
    (["--ensemble", "2", "--nproc", "2"], "--ensemble trains its members one after another"),
    (["--ensemble", "50", "--time-col", "time"], "too few for --ensemble 50"),
])
def test_bad_ensemble_options_exit_2_with_one_line_and_write_nothing(flags, message, tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("".join((SAMPLE / "cohort.csv").read_text().splitlines(keepends=True)[:41]))
    out = tmp_path / "model.pt"
    result = run_survmom("train", small, "--out", out, "--epochs", "1",
                         *[flag.format(data=small) for flag in flags])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_cli_ensemble_on_parquet_end_to_end(tmp_path):
    frame = pd.read_csv(SAMPLE / "cohort.csv").head(400)
    source = tmp_path / "cohort.parquet"
    frame.to_parquet(source)
    out = tmp_path / "model.pt"
    train = run_survmom("train", source, "--id-col", "id", "--ensemble", "2", "--epochs", "2", "--hidden", "8",
                        "--out", out, check=True)
    assert "ensemble member 2 of 2" in train.stderr and "done: ensemble of 2 members" in train.stderr
    assert "--val-frac" not in train.stderr
    again = run_survmom("train", source, "--id-col", "id", "--ensemble", "2", "--epochs", "1", "--hidden", "8",
                        "--val-frac", "0.1", "--out", tmp_path / "again.pt", check=True)
    assert "warning: --val-frac 0.1 is not used by --ensemble 2: member k validates on fold k" in again.stderr
    pred = run_survmom("predict", out, source, "--times", "365", "-o", tmp_path / "pred.parquet", check=True)
    assert pred.stdout == ""
    got = pd.read_parquet(tmp_path / "pred.parquet")
    assert list(got.columns) == ["id", "log_hazard", "risk", "median_time", "surv_365"] and len(got) == 400
    assert got["surv_365"].between(0, 1).all()
    run_survmom("plot", "km", out, source, "-o", tmp_path / "km.png", check=True)
    assert (tmp_path / "km.png").stat().st_size > 0


def test_a_stratum_whose_only_event_is_in_one_fold_is_refused_before_any_member_is_saved(data, tmp_path):
    """A site with 4 patients and 1 event: the member whose fold holds that event has a stratum without
    events. Refused before member 1 trains (it used to be saved, half an ensemble that resume cannot finish)."""
    frame = pd.read_csv(data)
    frame.loc[:3, "site"], frame.loc[:3, "event"] = "rare", [1, 0, 0, 0]
    path = tmp_path / "sites.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "model.pt"
    result = run_survmom("train", path, "--id-col", "id", "--strata", "site", "--ensemble", "3", "--epochs", "1",
                         "--hidden", "8", "-q", "--out", out)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(r"sites.csv: 1 stratum has no event among the training rows of ensemble member \d "
                     r"\(its fold held out\) in column\(s\) 'site': site='rare' \(\d training rows\); .*"
                     r"or use fewer --ensemble members\)", result.stderr), result.stderr
    assert not out.exists()


def test_a_member_whose_training_rows_have_no_event_is_named(data, tmp_path):
    """One event among 12 rows, 3 members: the member whose fold holds it would train on no events (the message
    said 'no events in the event column', wrong for a file with one)."""
    frame = pd.read_csv(data).head(12).assign(event=0)
    frame.loc[5, "event"] = 1
    path, out = tmp_path / "one.csv", tmp_path / "model.pt"
    frame.to_csv(path, index=False)
    result = run_survmom("train", path, "--id-col", "id", "--ensemble", "3", "--epochs", "1", "-q", "--out", out)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.search(r"one.csv: the training rows of ensemble member \d \(its fold held out\) have no events "
                     r"\(1 event in the file\); use fewer --ensemble members", result.stderr), result.stderr
    assert not out.exists()
