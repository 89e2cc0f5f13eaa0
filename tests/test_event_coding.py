"""Event columns coded otherwise than 1/0: --event-value (R's 1 = censored / 2 = event, words such as "dead").

Oracle: the recoded file trains to the same model, bit for bit, as the same data coded 1/0.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import torch
from lifelines.datasets import load_lung
from rich.console import Console

from survmom.app.evaluate import evaluate_file
from survmom.app.progress import QuietReporter
from survmom.data.outcomes import parse_event
from survmom.errors import DataError
from survmom.training import workflow
from survmom.training.checkpoint import read_checkpoint
from survmom.training.config import TrainConfig

from cli_runner import run_survmom

ARGS = ("--epochs", "2", "--hidden", "8", "-q")


@pytest.fixture(scope="module")
def lung(tmp_path_factory) -> dict[str, Path]:
    """lifelines' lung (status 1/0), and the same rows with R's coding (status 2/1) and with words."""
    folder = tmp_path_factory.mktemp("lung")
    frame = load_lung().dropna().reset_index(drop=True)
    paths = {"plain": folder / "lung.csv", "r": folder / "lung_r.csv", "words": folder / "lung_words.csv"}
    frame.to_csv(paths["plain"], index=False)
    frame.assign(status=frame["status"] + 1).to_csv(paths["r"], index=False)
    frame.assign(status=np.where(frame["status"] == 1, " Dead", "alive")).to_csv(paths["words"], index=False)
    return paths


def _train(source: Path, out: Path, **options) -> None:
    """In-process training (the CLI's path below the option parsing), quietly."""
    config = TrainConfig.from_dict({"event_col": "status", "epochs": 2, "hidden": [8], "quiet": True,
                                    "out": str(out), **options})
    workflow.train_from_file(config, source, lambda config: QuietReporter(Console(file=io.StringIO())))


def test_r_coding_and_words_train_as_the_same_data_coded_1_0(lung, tmp_path):
    _train(lung["plain"], tmp_path / "plain.pt")
    _train(lung["r"], tmp_path / "r.pt", event_value="2")
    _train(lung["words"], tmp_path / "words.pt", event_value="DEAD")
    want = read_checkpoint(tmp_path / "plain.pt")
    for name in ("r", "words"):
        got = read_checkpoint(tmp_path / f"{name}.pt")
        assert torch.equal(got.train_event, want.train_event)
        assert got.best_metric == want.best_metric
        for key, value in want.target_weights.items():
            assert torch.equal(got.target_weights[key], value), (name, key)
    assert read_checkpoint(tmp_path / "r.pt").config.event_value == "2"
    # evaluate reads the file's events with the saved coding
    plain = evaluate_file(tmp_path / "plain.pt", lung["plain"])
    coded = evaluate_file(tmp_path / "r.pt", lung["r"])
    assert coded["harrell_c"] == plain["harrell_c"] and coded["events"] == plain["events"] > 0


def test_an_event_value_picks_one_state_of_several_and_compares_numbers_as_numbers():
    states = pd.Series([0, 1, 2, 1, 0, 2])  # censored, death, relapse
    np.testing.assert_array_equal(parse_event(states, path=Path("f.csv"), column="state", event_value="1.0"),
                                  [False, True, False, True, False, False])
    text = pd.Series(["2", " 1", "2.0", "x"])
    np.testing.assert_array_equal(parse_event(text, path=Path("f.csv"), column="s", event_value="2"),
                                  [True, False, True, False])


def test_event_value_errors_name_the_file_column_and_values():
    with pytest.raises(DataError, match=r"f.csv: no row of column 'status' holds the event value 'died' "
                                        r"\(--event-value\); its values are 'dead', 'alive'"):
        parse_event(pd.Series(["dead", "alive"]), path=Path("f.csv"), column="status", event_value="died")
    with pytest.raises(DataError, match=r"f.csv: column 'status' has 1 missing event value \(row 2"):
        parse_event(pd.Series(["dead", None, "alive"]), path=Path("f.csv"), column="status", event_value="dead")


def test_r_coding_without_the_option_says_how_to_read_it(lung, tmp_path):
    result = run_survmom("train", lung["r"], "--event-col", "status", *ARGS, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "lung_r.csv: column 'status' has" in result.stderr
    assert "with R's coding (1 = censored, 2 = event) pass --event-value 2" in result.stderr
    assert not (tmp_path / "m.pt").exists()
    words = run_survmom("train", lung["words"], "--event-col", "status", *ARGS, "--out", tmp_path / "m.pt")
    assert words.returncode == 2 and "--event-value (e.g. --event-value dead)" in words.stderr


def test_competing_causes_get_cause_specific_advice(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=60), "time": rng.uniform(1, 10, 60).round(1),
                          "event": np.tile([0, 1, 2], 20)})  # 0 censored, 1 death, 2 relapse
    frame.to_csv(tmp_path / "cr.csv", index=False)
    result = run_survmom("train", tmp_path / "cr.csv", *ARGS, "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert ("cr.csv: column 'event' has 20 invalid event values" in result.stderr
            and "0 = censored and codes 1, 2 for different events (competing risks)? survmom models one event: "
                "train with --event-value 1 (the other causes then count as censored: a cause-specific hazard "
                "model), one model per cause" in result.stderr)
    assert not (tmp_path / "m.pt").exists()
    # the advice is right: --event-value 1 trains, and the rows of cause 2 are censored
    cause = parse_event(frame["event"], path=tmp_path / "cr.csv", column="event", event_value="1")
    np.testing.assert_array_equal(cause, frame["event"].to_numpy() == 1)
    assert run_survmom("train", tmp_path / "cr.csv", *ARGS, "--event-value", "1", "--out", tmp_path / "m.pt"
                       ).returncode == 0
    with pytest.raises(DataError, match="recode the column to 1/0 for one cause"):
        parse_event(frame["event"], path=tmp_path / "cr.csv", column="event", trained=True)


def test_a_yaml_number_is_the_event_value_text():
    assert TrainConfig.from_dict({"event_value": 2}).event_value == "2"


def test_an_event_value_names_a_state_of_a_boolean_column():
    flags = pd.Series([True, False, True])
    for word in ("true", "TRUE", "1", "yes"):
        np.testing.assert_array_equal(parse_event(flags, path=Path("f.parquet"), column="d", event_value=word),
                                      [True, False, True])
    np.testing.assert_array_equal(parse_event(flags, path=Path("f.parquet"), column="d", event_value="false"),
                                  [False, True, False])


@pytest.mark.slow
def test_an_event_value_word_names_a_value_label_of_a_stata_status(lung, tmp_path):
    """Stata status coded R's way (1 "alive", 2 "dead"): --event-value dead (the label) and 2 (the code) both
    train as the data coded 1/0."""
    frame = pd.read_csv(lung["plain"]).rename(columns=lambda name: name.replace(".", "_"))  # Stata's names
    plain, labelled = tmp_path / "lung.csv", tmp_path / "lung.dta"
    frame.to_csv(plain, index=False)
    pyreadstat.write_dta(frame.assign(status=frame["status"] + 1), str(labelled),
                         variable_value_labels={"status": {1: "alive", 2: "dead"}})
    _train(plain, tmp_path / "plain.pt")
    _train(labelled, tmp_path / "label.pt", event_value="dead")
    _train(labelled, tmp_path / "code.pt", event_value="2")
    want = read_checkpoint(tmp_path / "plain.pt")
    for name in ("label", "code"):
        got = read_checkpoint(tmp_path / f"{name}.pt")
        assert torch.equal(got.train_event, want.train_event) and got.best_metric == want.best_metric, name
    assert evaluate_file(tmp_path / "label.pt", labelled)["harrell_c"] == evaluate_file(
        tmp_path / "plain.pt", plain)["harrell_c"]


def test_a_saved_models_commands_do_not_advise_an_option_they_lack(lung, tmp_path):
    """evaluate reads the event column as the model was trained (it has no --event-value): its errors say so
    instead of advising --event-value, which evaluate refuses as an unknown option."""
    _train(lung["plain"], tmp_path / "plain.pt")
    _train(lung["words"], tmp_path / "words.pt", event_value="dead")
    r_coded = run_survmom("evaluate", tmp_path / "plain.pt", lung["r"])
    assert r_coded.returncode == 2 and len(r_coded.stderr.strip().splitlines()) == 1
    assert "lung_r.csv: column 'status' has" in r_coded.stderr and "pass --event-value" not in r_coded.stderr
    assert "as in its training file: recode the column (R's coding: 2 -> 1, 1 -> 0)" in r_coded.stderr
    words = run_survmom("evaluate", tmp_path / "plain.pt", lung["words"])
    assert words.returncode == 2 and "e.g. --event-value dead" not in words.stderr
    assert "this model reads 1/0, true/false or yes/no (1 = event, 0 = censored)" in words.stderr
    plain = run_survmom("evaluate", tmp_path / "words.pt", lung["plain"])
    assert plain.returncode == 2 and len(plain.stderr.strip().splitlines()) == 1
    assert ("lung.csv: no row of column 'status' holds the event value 'dead' the model was trained with "
            "(train's --event-value); its values are 1, 0") in plain.stderr


def test_a_column_of_many_numbers_is_not_taken_for_competing_causes(tmp_path):
    """lifelines' diabetes (interval-censored: left, right) with --event-col left: 0 ... 44 are not 40 causes of
    death; the advice says the column holds many numbers (counted with pandas) instead of listing them as causes."""
    from lifelines.datasets import load_diabetes

    frame = load_diabetes()
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    result = run_survmom("train", tmp_path / "diabetes.csv", "--time-col", "right", "--event-col", "left",
                         "--out", tmp_path / "m.pt")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "competing risks" not in result.stderr
    distinct = frame["left"].nunique()
    assert (f"; it holds {distinct} different numbers ({frame['left'].min():g} to "
            f"{frame['left'].max():g}): a time or a count, not an event flag?") in result.stderr, result.stderr
    assert "--event-col names the column of 1/0" in result.stderr


def test_a_trained_model_reading_many_numbers_as_events_names_no_train_option():
    """evaluate and the plots have no --event-col: for a file whose event column holds times (kidney transplant's
    time and death swapped) the advice names the model's column and the swap instead."""
    from lifelines.datasets import load_kidney_transplant

    frame = load_kidney_transplant()
    with pytest.raises(DataError) as error:
        parse_event(frame["time"], path=Path("k.csv"), column="death", trained=True)
    message = str(error.value)
    assert f"it holds {frame['time'].nunique()} different numbers (1 to {frame['time'].max()})" in message
    assert "--event-col" not in message and "--time-col" not in message
    assert ("this model reads its event column 'death' as 1/0, true/false or yes/no: are the time and event "
            "columns swapped?") in message
