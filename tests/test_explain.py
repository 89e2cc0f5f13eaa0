"""``survmom explain``, ``survmom plot importance`` and ``survmom plot effect``: permutation importance and
partial dependence, checked against hand-built cases, lifelines' C-index, scipy's t quantiles and the model's
own predictions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from survmom.app.cli import app
from survmom.app.explain import permutation_drops, student_t_quantile, t_interval
from survmom.app.predict import load_model

from cli_runner import run_survmom

ROWS = 800
BETA = {"strong": 1.2, "dose": 0.35, "noise": 0.0, "group=b": 0.6}


def cohort(seed: int) -> pd.DataFrame:
    """A strong numeric effect, a weak integer one (dose 0-3), a noise column with 10% missing values (so it
    has a ``noise__missing`` input) and a 3-category column; exponential times, about 30% censored."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "strong": rng.normal(0, 1, ROWS).round(3),
        "dose": rng.integers(0, 4, ROWS),
        "noise": rng.normal(50, 10, ROWS).round(2),
        "group": rng.choice(["a", "b", "c"], ROWS),
    })
    eta = BETA["strong"] * frame["strong"] + BETA["dose"] * frame["dose"] + BETA["group=b"] * (frame["group"] == "b")
    event_time = rng.exponential(100 * np.exp(-eta))
    censor = rng.exponential(250, ROWS)
    frame["time"] = np.maximum(np.minimum(event_time, censor), 0.01).round(2)
    frame["event"] = (event_time <= censor).astype(int)
    frame.loc[rng.random(ROWS) < 0.1, "noise"] = np.nan
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A linear Cox model and a small Weibull MLP trained on one cohort (2 epochs), and a held-out cohort."""
    folder = tmp_path_factory.mktemp("explain")
    paths = {"train": folder / "train.csv", "test": folder / "test.csv", "cox": folder / "cox.pt",
             "weibull": folder / "weibull.pt", "folder": folder}
    cohort(1).to_csv(paths["train"], index=False)
    cohort(2).to_csv(paths["test"], index=False)
    run_survmom("train", paths["train"], "--hidden", "", "--epochs", "2", "-q", "-o", paths["cox"], check=True)
    run_survmom("train", paths["train"], "--loss", "weibull", "--hidden", "16", "--epochs", "2", "-q",
                "-o", paths["weibull"], check=True)
    return paths


def survmom(*args: str | Path) -> tuple[int, str, str]:
    """In-process ``survmom ...`` on a wide terminal: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


def explain_json(*args: str | Path) -> dict:
    code, out, err = survmom("explain", *args, "--json")
    assert code == 0, err
    return json.loads(out)


# ------------------------------------------------------------------------------------- the importance numbers
def test_a_column_the_risk_ignores_has_zero_importance_and_the_rest_match_lifelines():
    from lifelines.utils import concordance_index as lifelines_c

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    risk = lambda m: 2.0 * m[:, 0] + 0.5 * m[:, 1]  # noqa: E731 - column 2 is ignored
    time = rng.exponential(np.exp(-risk(x)))  # the true model: the drops are large for column 0, small for 1
    event = rng.random(300) < 0.7
    baseline, drops = permutation_drops(risk, x, event, time, [slice(0, 1), slice(1, 2), slice(2, 3)], 4, seed=7)
    assert baseline == pytest.approx(lifelines_c(time, -risk(x), event), abs=1e-12)
    assert np.all(drops[2] == 0.0)
    rng_again = np.random.default_rng(7)
    perms = [rng_again.permutation(300) for _ in range(4)]
    for r, perm in enumerate(perms):
        for k in (0, 1):
            shuffled = x.copy()
            shuffled[:, k] = x[perm, k]
            assert drops[k, r] == pytest.approx(baseline - lifelines_c(time, -risk(shuffled), event), abs=1e-12)
    assert drops[0].mean() > drops[1].mean() > 0.01


def test_a_blocks_inputs_move_together_and_the_other_inputs_stay(files):
    model = load_model(files["cox"])
    pre = model.preprocessor
    blocks = dict(pre.input_slices())
    names = pre.feature_names
    assert [names[blocks[c]] for c in ("strong", "noise", "group")] == [
        ["strong"], ["noise", "noise__missing"], ["group=a", "group=b", "group=c"]]
    frame = cohort(2)
    x = pre.transform(frame, path=files["test"])
    seen: list[np.ndarray] = []
    permutation_drops(lambda m: (seen.append(m.copy()), m[:, 0])[1], x, frame["event"].to_numpy(bool),
                      frame["time"].to_numpy(float), [blocks["group"], blocks["noise"]], 3, seed=0)
    rng = np.random.default_rng(0)
    perms = [rng.permutation(ROWS) for _ in range(3)]
    calls = seen[1:]  # after the unpermuted baseline
    assert len(calls) == 6
    for i, matrix in enumerate(calls):
        cols, perm = (blocks["group"], blocks["noise"])[i // 3], perms[i % 3]
        np.testing.assert_array_equal(matrix[:, cols], x[perm, cols])  # whole rows of the block, one permutation
        rest = np.ones(x.shape[1], dtype=bool)
        rest[cols] = False
        np.testing.assert_array_equal(matrix[:, rest], x[:, rest])
    one_hot = calls[0][:, blocks["group"]]
    assert set(one_hot.sum(axis=1)) == {1.0} and set(np.unique(one_hot)) == {0.0, 1.0}
    noise = calls[3][:, blocks["noise"]]
    assert np.all(noise[noise[:, 1] == 1, 0] == noise[noise[:, 1] == 1, 0][0])  # imputed median with its flag


def test_explain_ranks_the_strong_column_first_and_gives_the_noise_column_no_importance(files):
    result = explain_json(files["cox"], files["test"])
    order = [entry["column"] for entry in result["columns"]]
    drops = {entry["column"]: entry["mean_drop"] for entry in result["columns"]}
    assert order == ["strong", "dose", "group", "noise"]  # the true effects' order (see cohort)
    assert abs(drops["noise"]) < 0.01 and drops["strong"] > 0.1
    assert result["rows"] == ROWS and result["events"] == int(cohort(2)["event"].sum())
    model = load_model(files["cox"])
    frame = cohort(2)
    risk = model.outputs(model.preprocessor.transform(frame, path=files["test"]), [])["risk"]
    from lifelines.utils import concordance_index as lifelines_c

    assert result["harrell_c"] == pytest.approx(lifelines_c(frame["time"], -risk, frame["event"]), abs=1e-12)


def test_the_interval_is_the_t_interval_of_the_repeats(files):
    from scipy import stats

    result = explain_json(files["cox"], files["test"], "--repeats", "7")
    for entry in result["columns"]:
        drops = np.array(entry["drops"])
        assert len(drops) == 7 and entry["mean_drop"] == pytest.approx(drops.mean(), abs=1e-15)
        low, high = stats.t.interval(0.95, 6, loc=drops.mean(), scale=stats.sem(drops))
        assert entry["ci95"] == pytest.approx([low, high], abs=1e-12)
    assert [e["mean_drop"] for e in result["columns"]] == sorted((e["mean_drop"] for e in result["columns"]),
                                                                reverse=True)


def test_student_t_quantiles_match_scipy():
    from scipy import stats

    for df in (1, 2, 3, 4, 5, 9, 10, 29, 30, 100):
        for p in (0.6, 0.9, 0.975, 0.995):
            assert student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-12)
    assert t_interval(np.array([0.5])) == (None, None)


def test_the_same_seed_gives_the_same_numbers_and_another_seed_other_ones(files):
    first, again = (explain_json(files["cox"], files["test"], "--seed", "3") for _ in range(2))
    other = explain_json(files["cox"], files["test"], "--seed", "4")
    assert first == again
    assert first["columns"][0]["drops"] != other["columns"][0]["drops"]
    assert first["harrell_c"] == other["harrell_c"]


def test_the_table_on_stderr_shows_the_json_numbers(files):
    code, out, err = survmom("explain", files["cox"], files["test"], "--json")
    assert code == 0, err
    result = json.loads(out)
    rows = re.findall(r"│\s*(\d+)\s*│\s*(\S+)\s*│\s*([+-]\d\.\d{4})\s*│\s*([+-]\d\.\d{4}) to ([+-]\d\.\d{4})", err)
    assert len(rows) == len(result["columns"]) == 4
    for (rank, column, mean, low, high), entry in zip(rows, result["columns"]):
        assert column == entry["column"] and int(rank) == result["columns"].index(entry) + 1
        assert float(mean) == pytest.approx(entry["mean_drop"], abs=5e-5)
        assert [float(low), float(high)] == pytest.approx(entry["ci95"], abs=5e-5)
    assert f"Harrell's C {result['harrell_c']:.4f}" in err and "is the file the model was trained on" not in err


def test_a_model_with_strata_names_the_design_concordance_it_measures(files, monkeypatch):
    """Stratified by group, the C of explain (its table, its JSON and plot importance's axis) is the design's
    concordance that evaluate reports, and is named as evaluate names it, not Harrell's C; a model without a
    design keeps the name Harrell's C."""
    import survmom.app.plots.importance as importance

    stratified = files["folder"] / "strata.pt"
    run_survmom("train", files["train"], "--strata", "group", "--hidden", "", "--epochs", "1", "-q",
                "-o", stratified, check=True)
    code, out, err = survmom("explain", stratified, files["test"], "--repeats", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    code, evaluated, _ = survmom("evaluate", stratified, files["test"], "--json")
    assert result["harrell_c"] == pytest.approx(json.loads(evaluated)["harrell_c"], abs=1e-12)
    assert result["design"]["strata"] == ["group"]
    assert result["design"]["concordance"] == "only rows of one stratum are compared"
    err = " ".join(err.split())  # the caption wraps
    assert (f"C-index (with the design) {result['harrell_c']:.4f} unpermuted; only rows of one stratum are "
            "compared") in err and "Harrell" not in err
    labels = []
    monkeypatch.setattr(importance, "write_figure", lambda fig, out: labels.append(fig.axes[0].get_xlabel()))
    for model in (stratified, files["cox"]):
        code, _, err = survmom("plot", "importance", model, files["test"], "--repeats", "2", "-o",
                               files["folder"] / "importance.png")
        assert code == 0, err
    assert labels[0].startswith("drop in C-index (with the design) when the column is permuted (C = ")
    assert labels[1].startswith("drop in Harrell's C when the column is permuted (C = ")
    assert "design" not in explain_json(files["cox"], files["test"], "--repeats", "2")


def test_explaining_on_the_training_file_is_warned_about(files):
    code, _, err = survmom("explain", files["cox"], files["train"])
    assert code == 0 and f"warning: {files['train']} is the file the model was trained on" in err


# --------------------------------------------------------------------------------------- partial dependence
def effect_json(*args: str | Path) -> dict:
    code, out, err = survmom("plot", "effect", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def hand_partial_dependence(checkpoint: Path, data: Path, feature: str, values: list, time: float
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Mean risk and mean S(time) with ``feature`` set to each value in every row, through predict's outputs."""
    model = load_model(checkpoint)
    frame = pd.read_csv(data)
    risks, survs = [], []
    for value in values:
        changed = frame.copy()
        changed[feature] = value
        columns = model.outputs(model.preprocessor.transform(changed, path=data), [time])
        risks.append(columns["risk"].mean())
        survs.append(columns[next(name for name in columns if name.startswith("surv_"))].mean())
    return np.array(risks), np.array(survs)


@pytest.mark.parametrize("loss, feature", [("cox", "strong"), ("cox", "group"), ("weibull", "noise"),
                                           ("weibull", "group")])
def test_partial_dependence_is_the_mean_prediction_with_the_column_set(files, loss, feature):
    result = effect_json(files[loss], files["test"], "--feature", feature, "--time", "80", "--grid", "9")
    risk, surv = hand_partial_dependence(files[loss], files["test"], feature, result["grid"], 80.0)
    np.testing.assert_allclose(result["partial_dependence"]["risk"], risk, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result["partial_dependence"]["survival"], surv, rtol=1e-6, atol=1e-7)
    ice = np.array(result["ice"]["risk"])
    assert ice.shape == (50, len(result["grid"]))
    np.testing.assert_allclose(ice.mean(axis=0), risk, atol=1.0)  # a sample of the rows averaged


def test_the_grid_spans_the_5th_to_95th_percentile_or_takes_the_categories_or_the_few_values(files):
    values = cohort(2)["strong"]
    result = effect_json(files["cox"], files["test"], "--feature", "strong")
    assert len(result["grid"]) == 30
    assert result["grid"][0] == pytest.approx(values.quantile(0.05)) and result["grid"][-1] == pytest.approx(
        values.quantile(0.95))
    assert np.allclose(np.diff(result["grid"]), np.diff(result["grid"])[0])
    assert result["distribution"]["deciles"] == pytest.approx(values.quantile(np.arange(1, 10) / 10).tolist())
    assert effect_json(files["cox"], files["test"], "--feature", "dose")["grid"] == [0.0, 1.0, 2.0, 3.0]
    group = effect_json(files["cox"], files["test"], "--feature", "group")
    assert group["grid"] == ["a", "b", "c"]
    assert group["distribution"]["counts"] == cohort(2)["group"].value_counts().sort_index().to_dict()
    noise = effect_json(files["cox"], files["test"], "--feature", "noise")
    assert noise["distribution"]["missing"] == int(cohort(2)["noise"].isna().sum())


def test_a_few_valued_column_keeps_its_values_between_the_5th_and_95th_percentile():
    from survmom.app.plots.effect import _numeric_grid

    counts = pd.Series(np.repeat(np.arange(41), np.r_[np.full(20, 50), np.full(21, 1)]))  # 0-19 common, 20-40 rare
    assert _numeric_grid(counts, 50, Path("f.csv"), "nodes") == list(range(1, 20))  # 5th, 95th: 1, 19
    rare = pd.Series([0.0] * 97 + [1.0] * 3)  # the 95th percentile is 0: both values kept
    assert _numeric_grid(rare, 30, Path("f.csv"), "flag") == [0.0, 1.0]


def test_a_linear_cox_model_has_a_straight_partial_dependence_with_its_coefficient_as_slope(files):
    result = effect_json(files["cox"], files["test"], "--feature", "strong", "--sample", "20", "--seed", "5")
    model = load_model(files["cox"])
    layers = [m for m in model.members[0].network.modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 1
    spec = model.preprocessor.columns[model.preprocessor.input_columns.index("strong")]
    slope = float(layers[0].weight.detach()[0, model.preprocessor.feature_names.index("strong")]) / spec.scale
    grid, pd_risk = np.array(result["grid"]), np.array(result["partial_dependence"]["risk"])
    np.testing.assert_allclose(np.diff(pd_risk) / np.diff(grid), slope, rtol=1e-4)
    ice = np.array(result["ice"]["risk"])
    np.testing.assert_allclose(ice - ice[:, :1], np.broadcast_to(pd_risk - pd_risk[0], ice.shape), atol=1e-5)
    rows = np.sort(np.random.default_rng(5).choice(ROWS, size=20, replace=False)) + 1
    assert result["ice"]["rows"] == rows.tolist()
    assert slope > 0 and "survival" not in result["partial_dependence"] and result["time"] is None


# ------------------------------------------------------------------------------------------------ figures
def test_plot_commands_write_their_figures(files):
    importance, effect = files["folder"] / "importance.png", files["folder"] / "effect.svg"
    code, out, err = survmom("plot", "importance", files["cox"], files["test"], "-o", importance)
    assert code == 0 and out == "" and f"to {importance}" in err, err
    assert importance.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, err = survmom("plot", "effect", files["weibull"], files["test"], "--feature", "group", "--time",
                             "50", "-o", effect)
    assert code == 0 and out == "", err
    text = effect.read_text()
    assert "Partial dependence on" in text and "test.csv" in text


def test_explain_with_o_draws_the_same_figure_as_plot_importance(files):
    first, second = files["folder"] / "a.png", files["folder"] / "b.png"
    assert survmom("explain", files["cox"], files["test"], "-o", first)[0] == 0
    assert survmom("plot", "importance", files["cox"], files["test"], "-o", second)[0] == 0
    assert first.read_bytes() == second.read_bytes()


def test_help_of_the_new_commands_imports_neither_torch_nor_matplotlib():
    code = ("import sys; from survmom.app.cli import app; import typer.testing as t; "
            "[t.CliRunner().invoke(app, a) for a in (['explain', '--help'], ['plot', 'effect', '--help'], "
            "['plot', 'importance', '--help'])]; "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------- bad input
def bad_files(files: dict[str, Path]) -> dict[str, Path]:
    folder = files["folder"]
    frame = cohort(2)
    paths = {"no_events": folder / "no_events.csv", "no_group": folder / "no_group.csv",
             "no_noise_values": folder / "no_noise_values.csv"}
    frame.assign(event=0).to_csv(paths["no_events"], index=False)
    frame.drop(columns="group").to_csv(paths["no_group"], index=False)
    frame.assign(noise=np.nan).to_csv(paths["no_noise_values"], index=False)
    return paths


@pytest.mark.parametrize("case, args, says", [
    ("no events", ["explain", "{cox}", "{no_events}"], ["no_events.csv", "no events", "'event'"]),
    ("missing column", ["explain", "{cox}", "{no_group}"], ["no_group.csv", "'group'"]),
    ("missing column", ["plot", "effect", "{cox}", "{no_group}", "--feature", "strong"], ["no_group.csv", "'group'"]),
    ("not a column", ["plot", "effect", "{cox}", "{test}", "--feature", "age"],
     ["--feature 'age'", "'strong', 'dose', 'noise', 'group'"]),
    ("time too late", ["plot", "effect", "{cox}", "{test}", "--feature", "dose", "--time", "1e6"],
     ["--time 1e+06", "beyond the training follow-up", "cox.pt"]),
    ("no value", ["plot", "effect", "{cox}", "{no_noise_values}", "--feature", "noise"],
     ["no_noise_values.csv", "'noise'", "no value"]),
    ("no output", ["plot", "importance", "{cox}", "{test}"], ["give -o FILE.png (.svg, .pdf) or --json"]),
    ("bad suffix", ["plot", "effect", "{cox}", "{test}", "--feature", "dose", "-o", "{folder}/effect.jpg"],
     ["effect.jpg", ".png"]),
    ("repeats", ["explain", "{cox}", "{test}", "--repeats", "0"], ["--repeats"]),
    ("grid", ["plot", "effect", "{cox}", "{test}", "--feature", "dose", "--grid", "1"], ["--grid"]),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(files, case, args, says):
    paths = {**{k: str(v) for k, v in files.items()}, **{k: str(v) for k, v in bad_files(files).items()}}
    figure = files["folder"] / f"bad_{case.replace(' ', '_')}.png"
    args = [a.format(**paths) for a in args]
    if "-o" not in args and "--repeats" not in args:
        args += ["-o", str(figure)] if case != "no output" else []
    code, out, err = survmom(*args)
    assert code == 2, (case, err)
    assert out == "" and len(err.strip().splitlines()) == 1, err
    for text in says:
        assert text in err, (case, text, err)
    assert not figure.exists() and not (files["folder"] / "effect.jpg").exists()
