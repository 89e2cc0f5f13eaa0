"""End-to-end CLI tests: real `python -m survmom` processes on real CSV and Parquet files."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from survmom.core.metrics import concordance_index
from survmom.training.checkpoint import FORMAT_VERSION, content_checksum, save_state

from cli_runner import checkpoint_tensors, run_survmom

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"


def survmom(*args: str | Path, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI (in this process: see cli_runner); raises unless it exits 0 (``check=False`` to look at a
    failure)."""
    return run_survmom(*args, cwd=cwd, check=check)


def load(path: Path) -> dict:
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A cox model from CSV and a weibull model from Parquet, 3 epochs each."""
    folder = tmp_path_factory.mktemp("trained")
    cox, weibull = folder / "cox.pt", folder / "weibull.pt"
    survmom("train", SAMPLE / "cohort.csv", "--id-col", "id", "--epochs", "3", "--out", cox, "--quiet")
    survmom("train", SAMPLE / "cohort.parquet", "--id-col", "id", "--loss", "weibull", "--batch", "32",
            "--epochs", "3", "--out", weibull, "--quiet")
    return {"cox": cox, "weibull": weibull, "folder": folder}


def test_checkpoint_is_plain_data_holding_everything_to_resume(trained):
    state = load(trained["cox"])
    for key in ("format_version", "config", "momentum", "optimizer", "rng", "progress", "best", "preprocessing",
                "prediction", "data", "history", "versions", "train_outcomes"):
        assert key in state, key
    assert state["progress"]["epoch"] == 3 and len(state["history"]) == 3
    assert any(k.startswith("online.") for k in state["momentum"])
    assert any(k.startswith("target.") for k in state["momentum"])
    assert state["momentum"]["bank._extra_state"]["count"] > 0
    assert state["momentum"]["_extra_state"]["ema"]["num_updates"] == state["progress"]["step"]
    assert state["prediction"]["baseline_cumhaz"].is_floating_point()
    assert state["data"]["fingerprint"]


def test_predict_cox_csv_to_stdout_has_expected_columns_and_rows(trained):
    result = survmom("predict", trained["cox"], SAMPLE / "new_patients.csv", "--times", "365,730")
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert list(frame.columns) == ["id", "log_hazard", "risk", "median_time", "surv_365", "surv_730"]
    assert len(frame) == len(pd.read_csv(SAMPLE / "new_patients.csv"))
    assert frame["surv_365"].between(0, 1).all() and (frame["surv_730"] <= frame["surv_365"]).all()
    # Nothing but data on stdout, no chatter without -o; the one unseen site of the sample is warned about.
    assert result.stderr.splitlines() == [
        f"warning: {SAMPLE / 'new_patients.csv'}: column 'site': 1 row holds categories not seen in training "
        "('harbour'); encoded as no category, like a missing value"]


def test_predict_weibull_parquet_to_parquet(trained):
    out = trained["folder"] / "pred.parquet"
    survmom("predict", trained["weibull"], SAMPLE / "cohort.parquet", "-o", out, "--times", "100")
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["id", "log_scale", "log_shape", "risk", "median_time", "surv_100"]
    assert len(frame) == 2000
    # median_time is in the user's time unit: S(median) = 0.5 under the model's own parameters.
    scale, shape = np.exp(frame["log_scale"]), np.exp(frame["log_shape"])
    np.testing.assert_allclose(np.exp(-((frame["median_time"] / scale) ** shape)), 0.5, rtol=1e-6)
    cohort = pd.read_csv(SAMPLE / "cohort.csv")
    assert 0.3 * cohort["time"].median() < frame["median_time"].median() < 5 * cohort["time"].median()


def test_predictions_use_the_target_network_of_the_checkpoint(trained):
    from survmom.data import Preprocessor
    from survmom.training.config import TrainConfig
    from survmom.training.trainer import backbone_from_config

    state = load(trained["cox"])
    pre = Preprocessor.from_state(state["preprocessing"])
    frame = pd.read_csv(SAMPLE / "new_patients.csv")
    net = backbone_from_config(TrainConfig.from_dict(state["config"]), len(pre.feature_names))
    net.load_state_dict(state["best"]["target"])
    net.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(pre.transform(frame, path=Path("x"))))[:, 0].double().numpy()
    result = survmom("predict", trained["cox"], SAMPLE / "new_patients.csv")
    np.testing.assert_allclose(pd.read_csv(io.StringIO(result.stdout))["log_hazard"], expected, rtol=1e-6)


def test_checkpoint_carries_the_sha256_of_its_content_and_loads_weights_only(trained):
    state = load(trained["cox"])
    assert state["format_version"] == FORMAT_VERSION == 2
    content = {key: value for key, value in state.items() if key != "checksum"}
    assert len(state["checksum"]) == 64 and state["checksum"] == content_checksum(content)


def test_the_checksum_reads_dict_items_in_key_order_and_tensors_by_dtype_shape_and_bytes():
    base = {"a": torch.arange(6, dtype=torch.int32), "b": [1, 2.0, None, "x"], "c": {0: True}}
    same = {"c": {0: True}, "b": [1, 2.0, None, "x"], "a": torch.arange(6, dtype=torch.int32)}
    assert content_checksum(base) == content_checksum(same)
    changed = [
        {**base, "a": torch.arange(6, dtype=torch.int32).reshape(2, 3)},  # same bytes, other shape
        {**base, "a": torch.arange(6, dtype=torch.int32).view(torch.float32)},  # same bytes, other dtype
        {**base, "a": torch.tensor([0, 1, 2, 3, 4, 6], dtype=torch.int32)},
        {**base, "b": (1, 2.0, None, "x")},  # a tuple is not a list
        {**base, "b": [1, 2.0, None, "y"]},
        {**base, "b": [1.0, 2.0, None, "x"]},  # 1.0 is not 1
        {**base, "c": {0: 1}},  # 1 is not True
        {**base, "c": {"0": True}},
    ]
    digests = {content_checksum(value) for value in changed}
    assert content_checksum(base) not in digests and len(digests) == len(changed)
    assert content_checksum({"x": 0.0}) != content_checksum({"x": -0.0})
    assert content_checksum({"x": float("nan")}) == content_checksum({"x": float("nan")})


def _flip_tensor_byte(path: Path, out: Path) -> None:
    """Copy ``path`` to ``out`` with one bit flipped in the middle of its largest tensor's data record."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        record = max((info for info in archive.infolist() if "/data/" in info.filename), key=lambda i: i.file_size)
    assert record.compress_type == zipfile.ZIP_STORED
    name_length, extra_length = struct.unpack("<HH", raw[record.header_offset + 26 : record.header_offset + 30])
    raw[record.header_offset + 30 + name_length + extra_length + record.file_size // 2] ^= 0x01
    out.write_bytes(raw)


@pytest.mark.parametrize("command", ["predict", "inspect", "evaluate", "resume"])
def test_a_flipped_byte_in_tensor_data_is_refused_with_one_line_and_exit_2(trained, tmp_path, command):
    damaged = tmp_path / "damaged.pt"
    _flip_tensor_byte(trained["cox"], damaged)
    original, flipped = load(trained["cox"]), load(damaged)  # torch itself reads the damaged file
    assert original.keys() == flipped.keys()
    args = {"predict": [SAMPLE / "new_patients.csv"], "inspect": [], "evaluate": [SAMPLE / "cohort.csv"],
            "resume": ["--epochs", "5"]}[command]
    result = survmom(command, damaged, *args, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"error: {damaged}: checkpoint content does not match its checksum (the file is damaged)"]


@pytest.mark.parametrize("edit", ["config", "history", "progress", "tensor", "new key"])
def test_plain_data_edits_without_a_new_checksum_are_refused(trained, tmp_path, edit):
    state = load(trained["cox"])
    if edit == "config":
        state["config"]["lr"] = 0.5
    elif edit == "history":
        state["history"][0]["loss"] += 1e-12
    elif edit == "progress":
        state["progress"]["epoch"] = 2
    elif edit == "tensor":
        state["prediction"]["baseline_cumhaz"][0] += 1e-9
    else:
        state["note"] = "added"
    torch.save(state, tmp_path / "edited.pt")
    result = survmom("inspect", tmp_path / "edited.pt", "--json", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'edited.pt'}: checkpoint content does not match its "
                                     "checksum (the file is damaged)")


def test_inspect_json_reports_progress_bank_and_ema(trained):
    result = survmom("inspect", trained["cox"], "--json")
    summary = json.loads(result.stdout)
    assert summary["progress"]["epochs_done"] == 3
    assert summary["bank"]["capacity"] == 2048 and 0 < summary["bank"]["fill"] <= 1
    assert summary["ema"]["num_updates"] == summary["progress"]["steps"]
    assert 0.5 < summary["validation"]["best_cindex"] <= 1
    assert summary["versions"]["torch"] == str(torch.__version__)


def test_inspect_shows_the_bar_a_start_margin_set(trained):
    out = trained["folder"] / "margin.pt"
    survmom("train", SAMPLE / "cohort.csv", "--id-col", "id", "--epochs", "2", "--start-margin", "1.5", "--out", out,
            "--quiet")
    state = load(out)
    start_c, se = state["progress"]["start_val_cindex"], state["progress"]["start_val_se"]
    validation = json.loads(survmom("inspect", out, "--json").stdout)["validation"]
    assert (validation["start_cindex"], validation["start_se"]) == (start_c, se) and 0.005 < se < 0.05
    table = " ".join(word for word in survmom("inspect", out).stderr.split() if word != "│")  # rows may wrap
    assert f"a trained epoch had to beat {start_c + 1.5 * se:.4f}" in table
    plain = json.loads(survmom("inspect", trained["cox"], "--json").stdout)["validation"]
    assert plain["start_se"] == 0.0  # not computed without a margin
    assert "had to beat" not in survmom("inspect", trained["cox"]).stderr


def test_inspect_table_goes_to_stderr(trained):
    result = survmom("inspect", trained["weibull"])
    assert result.stdout == "" and "best validation C-index" in result.stderr



@pytest.mark.parametrize("args", [
    ("predict", "{cox}", SAMPLE / "new_patients.csv", "--times", "365"),  # data on stdout, a warning on stderr
    ("inspect", "{weibull}"),  # a rich table on stderr
    ("evaluate", "{cox}", SAMPLE / "new_patients.csv"),  # exit 2, one error line
    ("predict", "{cox}"),  # a usage error: Typer's exit 2 and its box
    ("predict", "{cox}", SAMPLE / "nosuch.csv", "--debug"),  # a traceback
], ids=["predict", "inspect", "error", "usage", "traceback"])
def test_the_in_process_runner_gives_what_the_process_gives(trained, args):
    """The tests run the CLI in their own process (cli_runner); it must see what ``python -m survmom`` shows."""
    args = [str(a).format(**trained) for a in args]
    inside, process = run_survmom(*args), run_survmom(*args, isolated=True)
    assert inside.returncode == process.returncode
    assert inside.stdout == process.stdout
    if "--debug" in args:  # the last line of the traceback: the error itself
        assert inside.stderr.strip().splitlines()[-1] == process.stderr.strip().splitlines()[-1]
        assert "Traceback" in inside.stderr
    else:
        assert inside.stderr == process.stderr


@pytest.mark.parametrize("loss", ["cox", "weibull"])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, loss):
    common = ["--loss", loss, "--batch", "64", "--seed", "3", "--quiet", "--id-col", "id", "--patience", "20"]
    survmom("train", SAMPLE / "cohort.csv", "--epochs", "4", "--out", tmp_path / "full.pt", *common)
    survmom("train", SAMPLE / "cohort.csv", "--epochs", "2", "--out", tmp_path / "half.pt", *common)
    survmom("resume", tmp_path / "half.pt", "--epochs", "4", "--quiet")
    full, resumed = load(tmp_path / "full.pt"), load(tmp_path / "half.pt")
    full_tensors, resumed_tensors = dict(checkpoint_tensors(full)), dict(checkpoint_tensors(resumed))
    assert full_tensors.keys() == resumed_tensors.keys()
    for key, tensor in full_tensors.items():
        assert torch.equal(tensor, resumed_tensors[key]), key
    assert full["progress"] == resumed["progress"] | {"epoch_seconds": full["progress"]["epoch_seconds"]}
    assert [h["loss"] for h in full["history"]] == [h["loss"] for h in resumed["history"]]


def test_yaml_config_is_overridden_by_flags_and_saved_resolved(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("epochs: 3\nbatch: 16\nhidden: [8]\nrate-warmup: false\nid_col: id\n")
    out = tmp_path / "m.pt"
    survmom("train", SAMPLE / "cohort.csv", "--config", config, "--epochs", "1", "--out", out, "--quiet")
    saved = load(out)["config"]
    assert saved["epochs"] == 1  # flag wins
    assert saved["batch"] == 16 and saved["hidden"] == [8] and saved["rate_warmup"] is False  # from YAML
    assert saved["lr"] == 1e-3  # default
    assert load(out)["progress"]["step"] == int(np.ceil(1600 / 16))


def test_unknown_yaml_key_is_a_clear_error(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("epochs: 3\nbatchsize: 16\n")
    result = survmom("train", SAMPLE / "cohort.csv", "--config", config, "--out", tmp_path / "m.pt", check=False)
    assert result.returncode == 2 and "batchsize" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "m.pt").exists()


def _sample_generator():
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_default_training_reaches_95_percent_of_the_true_risk_cindex_on_a_test_split(tmp_path):
    gen = _sample_generator()
    frame, true_eta = gen.cohort(np.random.default_rng(gen.SEED))
    order = np.random.default_rng(123).permutation(len(frame))
    train_rows, test_rows = order[:1600], order[1600:]
    frame.iloc[train_rows].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[test_rows].to_csv(tmp_path / "test.csv", index=False)
    survmom("train", tmp_path / "train.csv", "--id-col", "id", "--out", tmp_path / "m.pt", "--quiet")
    result = survmom("predict", tmp_path / "m.pt", tmp_path / "test.csv")
    risk = pd.read_csv(io.StringIO(result.stdout))["risk"].to_numpy()
    test = frame.iloc[test_rows]
    event, time = torch.tensor(test["event"].to_numpy().astype(bool)), torch.tensor(test["time"].to_numpy(float))
    model_c = concordance_index(torch.tensor(risk), event, time)
    true_c = concordance_index(torch.tensor(true_eta[test_rows]), event, time)
    assert model_c >= 0.95 * true_c, (model_c, true_c)


def test_help_documents_every_option_and_its_default():
    top = survmom("--help").stdout
    for command in ("train", "predict", "resume", "inspect"):
        assert command in top
    train_help = survmom("train", "--help").stdout
    for option in ("--time-col", "--event-col", "--id-col", "--features", "--exclude", "--loss", "--ties",
                   "--batch", "--epochs", "--lr", "--weight-decay", "--hidden", "--dropout", "--activation",
                   "--batchnorm", "--bank-steps", "--bank-size", "--rate", "--rate-schedule", "--rate-warmup",
                   "--val-frac", "--val", "--patience", "--seed", "--device", "--out", "--config", "--quiet"):
        assert option in train_help, option
    assert "default: 32" in train_help and "0.999" in train_help
    for command in ("predict", "resume", "inspect"):
        assert "--debug" in survmom(command, "--help").stdout


def test_resume_help_says_nproc_defaults_to_the_saved_number_of_processes():
    """resume relaunches as many processes as training had (README, Scaling out); its help must say so."""
    flat = " ".join(survmom("resume", "--help").stdout.replace("\u2502", " ").split())
    assert "--nproc <int> Continue with this many processes on this machine (default: as saved" in flat
    assert "(default: 1; see train --nproc)" not in flat


def test_help_does_not_import_torch_pandas_or_pyarrow():
    code = ("import sys; from survmom.app.cli import app; import typer.testing as t; "
            "t.CliRunner().invoke(app, ['--help']); "
            "print(sorted(m for m in ('torch', 'pandas', 'pyarrow') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_evaluate_json_matches_scikit_survival_on_the_predictions(trained):
    from sksurv.metrics import brier_score, concordance_index_censored, cumulative_dynamic_auc

    data = SAMPLE / "cohort.csv"
    result = json.loads(survmom("evaluate", trained["cox"], data, "--times", "200,600,1000", "--json").stdout)
    predictions = pd.read_csv(io.StringIO(survmom("predict", trained["cox"], data, "--times", "200,600,1000").stdout))
    cohort = pd.read_csv(data)
    event, time = cohort["event"].to_numpy(bool), cohort["time"].to_numpy(float)
    state = load(trained["cox"])
    train_y = np.array(list(zip(state["train_outcomes"]["event"].numpy(), state["train_outcomes"]["time"].numpy())),
                       dtype=[("event", bool), ("time", float)])
    test_y = np.array(list(zip(event, time)), dtype=train_y.dtype)
    risk = predictions["risk"].to_numpy()
    assert result["harrell_c"] == pytest.approx(concordance_index_censored(event, time, risk)[0], abs=1e-9)
    assert result["harrell_c_ci95"][0] < result["harrell_c"] < result["harrell_c_ci95"][1]
    surv = predictions[["surv_200", "surv_600", "surv_1000"]].to_numpy()
    _, expected_brier = brier_score(train_y, test_y, surv, [200, 600, 1000])
    np.testing.assert_allclose(result["brier"], expected_brier, atol=1e-6)
    expected_auc, _ = cumulative_dynamic_auc(train_y, test_y, risk, [200, 600, 1000])
    np.testing.assert_allclose(result["auc"], expected_auc, atol=1e-6)
    assert 0 < result["integrated_brier"] < 0.25


def test_evaluate_table_goes_to_stderr_with_default_times(trained):
    result = survmom("evaluate", trained["weibull"], SAMPLE / "cohort.parquet")
    assert result.stdout == ""
    for text in ("Harrell's C", "Uno's C", "AUC(t)", "Brier(t)", "integrated Brier score"):
        assert text in result.stderr
    state = load(trained["weibull"])
    assert len(state["event_time_quantiles"]) == 3
    assert f"{state['event_time_quantiles'][1]:g}" in result.stderr


def test_evaluate_needs_time_and_event_columns(trained):
    result = survmom("evaluate", trained["cox"], SAMPLE / "new_patients.csv", check=False)
    assert result.returncode == 2 and "new_patients.csv" in result.stderr and "time" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_progress_reports_the_linear_start_as_epoch_zero(tmp_path):
    result = survmom("train", SAMPLE / "cohort.csv", "--id-col", "id", "--epochs", "1", "--out", tmp_path / "m.pt")
    lines = result.stderr.splitlines()
    assert lines[0].startswith("epoch 0 (linear start)  val C-index 0.") and lines[1].startswith("epoch 1/1")
    plain = survmom("train", SAMPLE / "cohort.csv", "--id-col", "id", "--epochs", "1", "--no-linear-init",
                    "--out", tmp_path / "p.pt")
    assert "linear start" not in plain.stderr


def test_commands_import_with_the_collector_paused_then_freeze_and_reenable_it(trained):
    """The heavy imports run with the cyclic collector off; it is on again for the work (a long training
    must still collect cycles), with the objects alive after the imports frozen."""
    code = f"""
import gc, sys
import survmom.app.cli as cli
states = []
original = cli._collector_paused
def watched():
    states.append(("before", gc.isenabled()))
    with original():
        states.append(("inside", gc.isenabled()))
        yield
    states.append(("after", gc.isenabled(), gc.get_freeze_count() > 0))
import contextlib
cli._collector_paused = contextlib.contextmanager(watched)
sys.argv = ["survmom", "predict", {str(trained["cox"])!r}, {str(SAMPLE / "new_patients.csv")!r}]
try:
    cli.main()
except SystemExit as done:
    print(states, gc.isenabled(), gc.get_freeze_count() > 0, done.code, file=sys.stderr)
    raise
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('"id","log_hazard"')  # the predictions themselves
    assert result.stderr.strip().splitlines()[-1] == (
        "[('before', True), ('inside', False), ('after', True, True)] True True 0")


def test_the_collector_pause_restores_its_state_on_errors():
    import gc

    from survmom.app.cli import _collector_paused

    assert gc.isenabled()
    with pytest.raises(ImportError), _collector_paused():
        import survmom_no_such_module  # noqa: F401
    assert gc.isenabled()
    gc.disable()
    try:
        with _collector_paused():
            pass
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_column_names_and_values_with_rich_markup_are_shown_literally(tmp_path):
    frame = pd.read_csv(SAMPLE / "cohort.csv").head(300)
    frame["dose [mg]"] = 1.0  # constant: warned about by name
    frame["x[/i]"] = frame["age"] if "age" in frame else np.arange(len(frame))  # "[/i]" closes no tag
    frame.to_csv(tmp_path / "units.csv", index=False)
    model = tmp_path / "units.pt"
    trained_run = survmom("train", tmp_path / "units.csv", "--epochs", "1", "--out", model)
    assert "'dose [mg]'" in trained_run.stderr
    shown = survmom("inspect", model)
    assert "dose [mg]" in shown.stderr and "x[/i]" in shown.stderr


def test_evaluate_json_is_strict_json_with_null_for_undefined_metrics(trained, tmp_path):
    censored = pd.read_csv(SAMPLE / "cohort.csv").head(200).assign(event=0)  # no events: C-index undefined
    censored.to_csv(tmp_path / "censored.csv", index=False)
    text = survmom("evaluate", trained["cox"], tmp_path / "censored.csv", "--json").stdout

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    result = json.loads(text, parse_constant=refuse)
    assert result["harrell_c"] is None and all(value is None for value in result["auc"])


def test_a_diverging_run_leaves_an_existing_checkpoint_as_it_was(trained, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(trained["cox"].read_bytes())
    before = model.read_bytes()
    result = survmom("train", SAMPLE / "cohort.csv", "--id-col", "id", "--epochs", "3", "--lr", "3e4",
                     "--no-linear-frozen", "--out", model, check=False)
    assert result.returncode == 2 and "loss became" in result.stderr
    assert f"{model} is left as it was before this run" in result.stderr
    assert model.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_without_validation_the_summary_says_the_last_epoch_is_kept(tmp_path):
    result = survmom("train", SAMPLE / "cohort.csv", "--id-col", "id", "--epochs", "2", "--val-frac", "0",
                     "--out", tmp_path / "m.pt", "--quiet")
    assert "the last epoch's target network is kept" in result.stderr and "best epoch" not in result.stderr
    state = load(tmp_path / "m.pt")
    assert state["best"]["metric"] is None and state["best"]["target"] is None


def test_a_bank_too_large_for_memory_is_a_clear_error(tmp_path):
    result = survmom("train", SAMPLE / "cohort.csv", "--bank-size", "100000000000", "--out", tmp_path / "m.pt",
                     check=False)
    assert result.returncode == 2 and "out of memory" in result.stderr and "--bank-size" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "m.pt").exists()


def test_resume_refuses_a_validation_file_that_changed_or_is_gone(tmp_path):
    cohort = pd.read_csv(SAMPLE / "cohort.csv")
    cohort.iloc[:1200].to_csv(tmp_path / "train.csv", index=False)
    cohort.iloc[1200:].to_csv(tmp_path / "val.csv", index=False)
    model = tmp_path / "m.pt"
    survmom("train", tmp_path / "train.csv", "--val", tmp_path / "val.csv", "--id-col", "id", "--epochs", "1",
            "--out", model, "--quiet")
    cohort.iloc[1300:].to_csv(tmp_path / "val.csv", index=False)
    changed = survmom("resume", model, "--epochs", "2", check=False)
    assert changed.returncode == 2 and "val.csv" in changed.stderr and "changed" in changed.stderr
    (tmp_path / "val.csv").unlink()
    gone = survmom("resume", model, "--epochs", "2", check=False)
    assert gone.returncode == 2 and "val.csv" in gone.stderr and "not found" in gone.stderr
    assert load(model)["progress"]["epoch"] == 1


def test_a_cox_checkpoint_without_its_baseline_is_a_clear_error(trained, tmp_path):
    state = load(trained["cox"])
    del state["prediction"]["baseline_cumhaz"]
    save_state(state, tmp_path / "edited.pt")
    result = survmom("predict", tmp_path / "edited.pt", SAMPLE / "new_patients.csv", check=False)
    assert result.returncode == 2 and "no Cox baseline" in result.stderr and "edited.pt" in result.stderr
    assert result.stdout == ""


def test_resume_with_nothing_left_to_train_says_so(trained):
    before = trained["cox"].read_bytes()
    result = survmom("resume", trained["cox"], check=False)
    assert result.returncode == 2 and "nothing to resume (3 of 3 epochs done)" in result.stderr
    fewer = survmom("resume", trained["cox"], "--epochs", "2", check=False)
    assert fewer.returncode == 2 and "pass --epochs N with N > 3" in fewer.stderr
    assert trained["cox"].read_bytes() == before


def test_resume_of_an_early_stopped_run_says_why_it_stops_and_takes_a_fresh_patience(tmp_path):
    """A run stopped by --patience 2 has spent its patience: resume --epochs 60 alone stops at the next epoch that
    does not improve, and says so; --patience 5 gives 5 more epochs without improvement from the resume point.
    Oracle: the validation C-index history in the checkpoint, walked by hand. The resumed epochs continue the
    saved state exactly either way (only the stopping rule differs)."""
    common = ["--id-col", "id", "--seed", "3", "--quiet"]
    stopped = tmp_path / "stopped.pt"
    survmom("train", SAMPLE / "cohort.csv", "--patience", "2", "--epochs", "40", "--out", stopped, *common)
    saved = load(stopped)
    end, best_epoch = saved["progress"]["epoch"], saved["best"]["epoch"]
    assert saved["progress"]["stopped_early"] and saved["progress"]["epochs_without_improvement"] == 2 and end < 40
    again = survmom("resume", stopped, "--epochs", "60", "--out", tmp_path / "again.pt", "--quiet")
    assert [line for line in again.stderr.splitlines() if line.startswith("warning:")] == [
        f"warning: {stopped}: training stopped early at epoch {end} (--patience 2: 2 epochs without a better "
        f"validation C-index than epoch {best_epoch}'s); it stops again at the next epoch that is not better: "
        "pass --patience N to allow N more epochs without improvement"]
    fresh = survmom("resume", stopped, "--epochs", "60", "--patience", "5", "--out", tmp_path / "fresh.pt", "--quiet")
    assert "warning:" not in fresh.stderr
    resumed = load(tmp_path / "fresh.pt")
    best, waited, stop = saved["best"]["metric"], 0, 60
    for record in resumed["history"][end:]:  # the resumed epochs, by hand
        if record["val_cindex"] > best:
            best, waited = record["val_cindex"], 0
        else:
            waited += 1
        if waited == 5:
            stop = record["epoch"]
            break
    assert resumed["progress"]["epoch"] == stop >= end + 5 and resumed["config"]["patience"] == 5
    assert resumed["progress"]["stopped_early"] == (stop < 60) and resumed["best"]["metric"] == best
    assert [h["loss"] for h in resumed["history"][:end]] == [h["loss"] for h in saved["history"]]
    first, fresh_first = load(tmp_path / "again.pt")["history"][end], resumed["history"][end]
    assert (first["loss"], first["val_cindex"]) == (fresh_first["loss"], fresh_first["val_cindex"])
    done = survmom("resume", stopped, check=False)
    assert done.returncode == 2 and f"nothing to resume (early stopping ended it at epoch {end})" in done.stderr
    assert "--patience N" in done.stderr


def test_validating_on_the_training_file_is_warned_about(tmp_path):
    result = survmom("train", SAMPLE / "cohort.csv", "--val", SAMPLE / "cohort.csv", "--id-col", "id",
                     "--epochs", "1", "--out", tmp_path / "m.pt", "--quiet")
    assert "holds the training rows themselves" in result.stderr


def test_predict_says_when_the_id_column_is_missing(trained, tmp_path):
    pd.read_csv(SAMPLE / "new_patients.csv").drop(columns="id").to_csv(tmp_path / "noid.csv", index=False)
    result = survmom("predict", trained["cox"], tmp_path / "noid.csv", "-o", tmp_path / "p.csv")
    assert "no id column 'id'" in result.stderr
    assert "id" not in pd.read_csv(tmp_path / "p.csv").columns


def test_predict_into_a_pipe_that_closes_early_stops_quietly(trained, tmp_path):
    rows = pd.concat([pd.read_csv(SAMPLE / "new_patients.csv")] * 3000)  # 150,000 rows: several chunks
    rows.to_csv(tmp_path / "many.csv", index=False)
    command = (f"{sys.executable} -m survmom predict {trained['cox']} {tmp_path / 'many.csv'} | head -c 100 > "
               f"/dev/null; echo ${{PIPESTATUS[0]}}")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.stdout.strip() == "141" and "error" not in result.stderr and "Traceback" not in result.stderr


def test_a_parquet_output_failing_in_a_later_chunk_leaves_no_traceback_and_no_file(trained, tmp_path):
    rows = pd.concat([pd.read_csv(SAMPLE / "new_patients.csv")] * 3000).astype({"age": object})
    rows.iloc[-1, rows.columns.get_loc("age")] = "abc"  # in the last chunk
    rows.to_csv(tmp_path / "late_error.csv", index=False)
    result = survmom("predict", trained["cox"], tmp_path / "late_error.csv", "-o", tmp_path / "p.parquet",
                     check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'late_error.csv'}: column 'age' should be numeric but has 1 non-numeric value "
        "(row 150000: 'abc')"]
    assert not (tmp_path / "p.parquet").exists()


def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(trained, tmp_path, monkeypatch):
    from survmom import atomic
    from survmom.app import predict
    from survmom.errors import ConfigError
    from survmom.training import workflow

    def refuse(folder, name):  # as a read-only folder does (root ignores chmod, so it is simulated)
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(atomic, "_probe_folder", refuse)
    with pytest.raises(ConfigError, match=r"^--out .*m\.pt: cannot write in its folder \(Permission denied\)$"):
        workflow.check_output_path(tmp_path / "m.pt", [SAMPLE / "cohort.csv"])
    with pytest.raises(ConfigError, match=r"^-o .*p\.csv: cannot write in its folder"):
        predict.predict_file(trained["cox"], SAMPLE / "new_patients.csv", tmp_path / "p.csv")


def test_train_refuses_a_checkpoint_named_like_a_data_file(tmp_path):
    result = survmom("train", SAMPLE / "cohort.csv", "--out", tmp_path / "model.parquet", check=False)
    assert result.returncode == 2 and "names a data file" in result.stderr and "model.pt" in result.stderr
    assert not (tmp_path / "model.parquet").exists()


def test_predict_quiet_prints_no_warnings(trained, tmp_path):
    result = survmom("predict", trained["cox"], SAMPLE / "new_patients.csv", "-o", tmp_path / "p.csv", "-q")
    assert result.stderr == "" and len(pd.read_csv(tmp_path / "p.csv")) == 50


def test_default_evaluation_times_are_observed_event_times(trained):
    state = load(trained["cox"])
    outcomes = state["train_outcomes"]
    observed = set(outcomes["time"][outcomes["event"]].tolist())
    assert state["event_time_quantiles"] and set(state["event_time_quantiles"]) <= observed


def test_inspect_says_a_checkpoint_was_interrupted_mid_epoch(trained, tmp_path):
    state = load(trained["cox"])
    state["progress"]["batch_index"] = 7
    save_state(state, tmp_path / "mid.pt")
    assert "interrupted in epoch 4 after 7 step(s)" in survmom("inspect", tmp_path / "mid.pt").stderr


def test_evaluate_on_rows_with_a_single_time_says_so(trained, tmp_path):
    pd.read_csv(SAMPLE / "cohort.csv").head(1).to_csv(tmp_path / "one.csv", index=False)
    result = survmom("evaluate", trained["cox"], tmp_path / "one.csv", check=False)
    assert result.returncode == 2 and "one.csv: every row has the time" in result.stderr
