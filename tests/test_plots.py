"""``survmom plot history / survival / km``: the numbers behind each figure against lifelines and against
``survmom predict``; the files written; bad input exits 2 with one line and no file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test
from typer.testing import CliRunner

from survmom.app.cli import app
from survmom.app.plots.history import history_data
from survmom.app.plots.km import km_data, nice_ticks
from survmom.app.plots.survival import survival_data
from survmom.app.predict import predict_file
from survmom.core.metrics import concordance_index
from survmom.data import stratified_split
from survmom.training.checkpoint import read_checkpoint, save_state

from cli_runner import run_survmom

ROOT = Path(__file__).resolve().parents[1]
COHORT = ROOT / "sample_data" / "cohort.csv"
NEW = ROOT / "sample_data" / "new_patients.csv"
TINY = ("--epochs", "3", "--hidden", "8", "--batch", "64", "--quiet", "--id-col", "id")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny Cox and Weibull models on the sample cohort (20% validation split)."""
    folder = tmp_path_factory.mktemp("plots")
    paths = {"folder": folder}
    for loss in ("cox", "weibull"):
        paths[loss] = folder / f"{loss}.pt"
        run_survmom("train", COHORT, "--loss", loss, *TINY, "--out", paths[loss], check=True)
    return paths


def predicted(model: Path, data: Path, folder: Path, times: list[float] | None = None) -> pd.DataFrame:
    """What ``survmom predict MODEL DATA --times ... -o FILE.parquet`` writes (Parquet: exact float64)."""
    out = folder / f"pred_{model.stem}_{data.stem}.parquet"
    predict_file(model, data, out, times)
    return pd.read_parquet(out)


def invoke(*args) -> tuple[int, str, str]:
    """In-process ``survmom ...``: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------------------- training risks
@pytest.mark.parametrize("loss", ["cox", "weibull"])
def test_stored_training_risks_are_predicts_risk_column_on_the_training_rows(models, loss):
    saved = read_checkpoint(models[loss])
    cohort = pd.read_csv(COHORT)
    # The training rows: those the stratified split (seed, --val-frac) did not hold out, in file order.
    train_rows, val_rows = stratified_split(cohort["event"].to_numpy(bool), saved.config.val_frac, saved.config.seed)
    assert len(val_rows) == 400 and saved.train_risk.shape == (1600,)
    risk = predicted(models[loss], COHORT, models["folder"])["risk"].to_numpy()
    # The same float32 network on the same inputs; only a matrix kernel chosen by the batch size could round
    # differently (float32: relative 1e-7).
    np.testing.assert_allclose(saved.train_risk.numpy(), risk[train_rows], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(saved.train_time.numpy(), cohort["time"].to_numpy(float)[train_rows])


# --------------------------------------------------------------------------------------------- plot km
@pytest.fixture(scope="module")
def km(models):
    """km_data of the Cox model on the cohort (3 groups), with predict's risk of every row."""
    return km_data(models["cox"], COHORT, 3), predicted(models["cox"], COHORT, models["folder"])


def test_group_cuts_are_the_training_risk_tertiles_and_rows_fall_between_them(models, km):
    data, prediction = km
    train_risk = read_checkpoint(models["cox"]).train_risk.numpy()
    np.testing.assert_array_equal(data["cuts"], np.quantile(train_risk, [1 / 3, 2 / 3]))
    risk = prediction["risk"].to_numpy()
    low, high = data["cuts"]
    expected = [risk <= low, (risk > low) & (risk <= high), risk > high]
    assert [g["rows"] for g in data["groups"]] == [int(m.sum()) for m in expected]
    assert [g["label"] for g in data["groups"]] == ["low risk", "middle", "high risk"]
    assert (data["groups"][0]["risk_above"], data["groups"][0]["risk_at_most"]) == (None, low)
    assert (data["groups"][2]["risk_above"], data["groups"][2]["risk_at_most"]) == (high, None)


def _groups(data, prediction):
    risk = prediction["risk"].to_numpy()
    return np.searchsorted(data["cuts"], risk, side="left")


def test_km_curves_bands_and_numbers_at_risk_equal_lifelines_per_group(km):
    data, prediction = km
    cohort = pd.read_csv(COHORT)
    group = _groups(data, prediction)
    for g, entry in enumerate(data["groups"]):
        rows = cohort[group == g]
        fitter = KaplanMeierFitter().fit(rows["time"], rows["event"])
        times = np.array(entry["km"]["times"])
        np.testing.assert_array_equal(times, np.unique(rows["time"]))
        np.testing.assert_allclose(entry["km"]["survival"], fitter.survival_function_at_times(times), atol=1e-12)
        band = fitter.confidence_interval_.loc[times].to_numpy()
        np.testing.assert_allclose(entry["km"]["lower"], band[:, 0], atol=1e-12)
        np.testing.assert_allclose(entry["km"]["upper"], band[:, 1], atol=1e-12)
        table = fitter.event_table
        np.testing.assert_array_equal(entry["km"]["at_risk"], table.loc[times, "at_risk"])
        assert entry["events"] == int(rows["event"].sum()) and entry["rows"] == len(rows)
        # The table under the axis: rows still at risk (time >= tick) = lifelines' removals from the tick on.
        at_ticks = [int(table.loc[table.index >= tick, "removed"].sum()) for tick in data["at_risk"]["times"]]
        assert data["at_risk"]["counts"][g] == at_ticks


def test_logrank_of_the_groups_equals_lifelines(km):
    data, prediction = km
    cohort = pd.read_csv(COHORT)
    theirs = multivariate_logrank_test(cohort["time"], _groups(data, prediction), cohort["event"])
    assert data["logrank"]["df"] == 2
    assert data["logrank"]["statistic"] == pytest.approx(theirs.test_statistic, rel=1e-8)
    assert data["logrank"]["p_value"] == pytest.approx(theirs.p_value, rel=1e-8, abs=1e-300)


def test_predicted_mean_curve_is_the_mean_of_predicts_survival_columns(models, km):
    data, prediction = km
    grid = data["groups"][0]["predicted"]["times"]
    picks = [grid[10], grid[len(grid) // 2], grid[-1]]
    surv = predicted(models["cox"], COHORT, models["folder"], picks)
    group = _groups(data, prediction)
    for g, entry in enumerate(data["groups"]):
        ours = dict(zip(entry["predicted"]["times"], entry["predicted"]["survival"]))
        for column, t in zip([c for c in surv.columns if c.startswith("surv_")], picks):
            assert ours[t] == pytest.approx(surv[column][group == g].mean(), rel=1e-12)


def test_ticks_are_round_numbers_within_the_follow_up():
    assert nice_ticks(7451.0) == [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000]
    assert nice_ticks(2659.0) == [0, 500, 1000, 1500, 2000, 2500]
    assert nice_ticks(1.0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0.0) == [0.0]


def test_weibull_groups_and_more_groups(models):
    data = km_data(models["weibull"], COHORT, 5)
    train_risk = read_checkpoint(models["weibull"]).train_risk.numpy()
    np.testing.assert_array_equal(data["cuts"], np.quantile(train_risk, [0.2, 0.4, 0.6, 0.8]))
    labels = [g["label"] for g in data["groups"]]
    assert labels == ["group 1 (lowest risk)", "group 2", "group 3", "group 4", "group 5 (highest risk)"]
    assert sum(g["rows"] for g in data["groups"]) == 2000 and data["logrank"]["df"] == 4
    # Higher predicted risk, fewer predicted survivors: the mean curves are ordered at the end of follow-up.
    ends = [g["predicted"]["survival"][-1] for g in data["groups"]]
    assert ends == sorted(ends, reverse=True)


# --------------------------------------------------------------------------------------- plot survival
def test_survival_curves_and_medians_equal_predict_for_the_ids_asked(models):
    data = survival_data(models["cox"], COHORT, ids=["P0007", "P0002"])
    assert [row["id"] for row in data["rows"]] == ["P0007", "P0002"]
    assert [row["row"] for row in data["rows"]] == [7, 2]
    saved = read_checkpoint(models["cox"])
    assert data["times"][0] == 0.0 and data["times"][-1] == data["follow_up"] == float(saved.train_time.max())
    assert data["steps"] is True  # Cox: the Breslow step function, drawn at its jumps
    picks = [data["times"][5], data["times"][len(data["times"]) // 2]]
    prediction = predicted(models["cox"], COHORT, models["folder"], picks).set_index("id")
    for row in data["rows"]:
        expected = prediction.loc[row["id"]]
        # float32 network outputs: a 2-row batch may round differently from predict's 2,000-row one.
        assert row["risk"] == pytest.approx(expected["risk"], rel=1e-6, abs=1e-6)
        assert row["median_time"] == expected["median_time"]
        for t, column in zip(picks, [c for c in prediction.columns if c.startswith("surv_")]):
            assert row["survival"][data["times"].index(t)] == pytest.approx(expected[column], rel=1e-6)


def test_first_rows_of_an_unlabelled_file_with_the_weibull_model(models):
    data = survival_data(models["weibull"], NEW, rows=3)
    prediction = predicted(models["weibull"], NEW, models["folder"])
    assert [row["id"] for row in data["rows"]] == prediction["id"][:3].tolist()
    np.testing.assert_allclose([row["median_time"] for row in data["rows"]], prediction["median_time"][:3],
                               rtol=1e-6)
    for row in data["rows"]:  # S(median) = 0.5 on the Weibull curve
        assert np.interp(row["median_time"], data["times"], row["survival"]) == pytest.approx(0.5, abs=2e-3)
    assert len(survival_data(models["weibull"], NEW)["rows"]) == 5  # the default


# ---------------------------------------------------------------------------------------- plot history
def test_history_is_the_checkpoints_records_with_the_linear_start_as_epoch_0(models):
    saved = read_checkpoint(models["cox"])
    data = history_data(models["cox"])
    assert [r["epoch"] for r in data["epochs"]] == [1, 2, 3]
    assert [r["loss"] for r in data["epochs"]] == [r["loss"] for r in saved.history]
    assert data["best_epoch"] == saved.best_epoch and data["best_val_cindex"] == saved.best_metric
    best = max([(data["start_val_cindex"], 0)] + [(r["val_cindex"], r["epoch"]) for r in data["epochs"]],
               key=lambda pair: pair[0])
    assert best[1] == data["best_epoch"]


def test_linear_start_validation_c_is_harrells_c_of_the_untrained_network(models):
    """Epoch 0: the network as the run built it, before any step (the same seed fits the same linear start),
    scored by scikit-survival's Harrell C on the validation rows."""
    from sksurv.metrics import concordance_index_censored

    from survmom.training.prepare import prepare_training_data
    from survmom.training.trainer import Tensors, Trainer, risk_from_estimates

    saved = read_checkpoint(models["cox"])
    prepared = prepare_training_data(saved.config, COHORT)
    tensors = [Tensors(torch.from_numpy(s.x), torch.from_numpy(s.event), torch.from_numpy(s.time))
               for s in (prepared.train, prepared.val)]
    trainer = Trainer(saved.config, prepared.train.x.shape[1], *tensors, torch.device("cpu"))
    with torch.no_grad():
        risk = risk_from_estimates(trainer.momentum.target.eval()(tensors[1].x), "cox")
    theirs = concordance_index_censored(prepared.val.event, prepared.val.time, risk.double().numpy())[0]
    assert history_data(models["cox"])["start_val_cindex"] == pytest.approx(theirs, abs=1e-12)
    assert theirs == pytest.approx(concordance_index(risk.double(), tensors[1].event, tensors[1].time), abs=1e-12)


def test_history_legend_covers_no_validation_point(models):
    """A validation C that falls to its minimum at the last epoch (whas500, 10 epochs) ends in the lower right
    corner: the legend goes where no point is."""
    from survmom.app.plots.history import draw_history

    data = history_data(models["cox"])
    falling = [0.7556, 0.7556, 0.7556, 0.7549, 0.7542, 0.7535, 0.7542, 0.7528, 0.7528, 0.7514]
    data["epochs"] = [{**data["epochs"][0], "epoch": k + 1, "val_cindex": c} for k, c in enumerate(falling)]
    data.update(start_val_cindex=0.7549, best_epoch=1, best_val_cindex=0.7556)
    figure = draw_history(data)
    figure.canvas.draw()
    ax_c = figure.axes[1]
    box = ax_c.get_legend().get_window_extent()
    points = ax_c.transData.transform([(k + 1, c) for k, c in enumerate(falling)] + [(0, 0.7549)])
    inside = [tuple(p) for p in points if box.x0 <= p[0] <= box.x1 and box.y0 <= p[1] <= box.y1]
    assert inside == []


@pytest.mark.slow
def test_history_without_validation_has_no_c_index(tmp_path):
    out = tmp_path / "noval.pt"
    run_survmom("train", COHORT, "--epochs", "2", "--hidden", "8", "--val-frac", "0", "-q", "--out", out, check=True)
    data = history_data(out)
    assert data["best_epoch"] is None and data["start_val_cindex"] is None
    assert all(r["val_cindex"] is None for r in data["epochs"])
    code, _, stderr = invoke("plot", "history", out, "-o", tmp_path / "h.png")
    assert code == 0 and stderr == f"wrote the training history to {tmp_path / 'h.png'}\n"
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------- the commands
MAGIC = {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}


@pytest.mark.parametrize("suffix", list(MAGIC))
@pytest.mark.parametrize("command", [("history",), ("survival", COHORT), ("km", COHORT)])
def test_each_plot_writes_each_format(models, tmp_path, command, suffix):
    out = tmp_path / f"figure{suffix}"
    code, stdout, stderr = invoke("plot", command[0], models["cox"], *command[1:], "-o", out)
    assert code == 0 and stdout == ""
    assert stderr.startswith("wrote ") and stderr.strip().endswith(str(out))
    assert out.read_bytes().startswith(MAGIC[suffix])
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary file left


def test_json_on_stdout_is_the_numbers_behind_the_figure(models, km):
    code, stdout, _ = invoke("plot", "km", models["cox"], COHORT, "--json")
    assert code == 0
    parsed = json.loads(stdout)
    data, _ = km
    assert parsed["cuts"] == data["cuts"] and parsed["logrank"] == data["logrank"]
    assert parsed["groups"][1]["km"] == data["groups"][1]["km"] and parsed["at_risk"] == data["at_risk"]
    code, stdout, _ = invoke("plot", "survival", models["cox"], COHORT, "--ids", "P0003", "--json")
    assert code == 0 and json.loads(stdout)["rows"][0]["id"] == "P0003"
    code, stdout, _ = invoke("plot", "history", models["cox"], "--json")
    assert code == 0 and len(json.loads(stdout)["epochs"]) == 3


def _without_training_risks(folder: Path, model: Path) -> Path:
    state = torch.load(model, weights_only=True)
    del state["prediction"]["train_risk"]
    save_state(state, folder / "old.pt")
    return folder / "old.pt"


def _cohort_file(folder: Path, name: str, edit) -> Path:
    path = folder / name
    edit(pd.read_csv(COHORT)).to_csv(path, index=False)
    return path


def _lowest_risk_rows(folder: Path, models) -> Path:
    risk = predicted(models["cox"], COHORT, models["folder"])["risk"].to_numpy()
    return _cohort_file(folder, "lowest.csv", lambda df: df.iloc[np.argsort(risk)[:20]])


# case: (arguments after "plot" from (models, inputs folder, outputs folder), text the one error line holds)
BAD = {
    "km: no -o and no --json": (lambda m, i, o: ("km", m["cox"], COHORT), "give -o FILE.png (.svg, .pdf) or --json"),
    "km: not a figure type": (lambda m, i, o: ("km", m["cox"], COHORT, "-o", o / "x.jpg"), "-o " + "{o}/x.jpg"),
    "km: missing time column": (
        lambda m, i, o: ("km", m["cox"], _cohort_file(i, "t.csv", lambda df: df.drop(columns="time")), "-o",
                         o / "x.png"), "t.csv: missing column(s) 'time'"),
    "km: no events": (
        lambda m, i, o: ("km", m["cox"], _cohort_file(i, "e.csv", lambda df: df.head(50).assign(event=0)), "-o",
                         o / "x.png"), "e.csv: no events in column 'event' (all 50 rows censored)"),
    "km: a group with no rows": (
        lambda m, i, o: ("km", m["cox"], _lowest_risk_rows(i, m), "-o", o / "x.png"),
        "lowest.csv: risk groups 'middle' ("),
    "km: too many groups": (lambda m, i, o: ("km", m["cox"], COHORT, "--groups", "8", "--json"),
                            "--groups must be 2 to 7, got 8"),
    "km: a checkpoint without training risks": (
        lambda m, i, o: ("km", _without_training_risks(i, m["cox"]), COHORT, "-o", o / "x.png"),
        "old.pt: checkpoint has no training risks"),
    "survival: an unknown id": (
        lambda m, i, o: ("survival", m["cox"], COHORT, "--ids", "P0001,nobody", "-o", o / "x.png"),
        "'nobody' not in the id column 'id' (its first ids: 'P0001', 'P0002'"),
    "survival: --ids and --rows": (
        lambda m, i, o: ("survival", m["cox"], COHORT, "--ids", "P0001", "--rows", "2", "--json"), "not both"),
    "survival: a missing feature column": (
        lambda m, i, o: ("survival", m["cox"], _cohort_file(i, "a.csv", lambda df: df.drop(columns="age")),
                         "-o", o / "x.png"), "a.csv: missing 1 column the model was trained on: 'age'"),
    "history: not a checkpoint": (lambda m, i, o: ("history", COHORT, "-o", o / "x.png"),
                                  "cohort.csv: not a readable survmom checkpoint"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(models, tmp_path, case):
    make, needle = BAD[case]
    inputs, outputs = tmp_path / "inputs", tmp_path / "outputs"
    inputs.mkdir()
    outputs.mkdir()
    code, stdout, stderr = invoke("plot", *make(models, inputs, outputs))
    assert code == 2, stderr
    assert stdout == "" and len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ")
    assert needle.format(o=outputs) in stderr
    assert list(outputs.iterdir()) == []


def test_help_imports_neither_torch_nor_matplotlib():
    code = ("import sys; from survmom.app.cli import app; import typer.testing as t; "
            "[t.CliRunner().invoke(app, ['plot', c, '--help']) for c in ('history', 'survival', 'km')]; "
            "print(sorted(m for m in ('torch', 'pandas', 'pyarrow', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
