"""TrainConfig: defaults, validation, YAML loading and derived values."""

import dataclasses
from pathlib import Path

import pytest
import torch

from survmom.errors import ConfigError
from survmom.training.config import DEFAULT_BANK_SIZE, TrainConfig, auto_batch, load_yaml


@pytest.mark.parametrize(("rows", "batch"), [(10, 32), (2_000, 32), (3_200, 32), (3_201, 33), (5_039, 51),
                                             (12_800, 128), (40_000, 128), (64_000, 128), (64_001, 129),
                                             (160_000, 320), (800_000, 1600)])
def test_auto_batch_is_32_on_small_data_then_epochs_of_100_steps_then_500(rows, batch):
    assert auto_batch(rows) == batch


def test_bank_capacity_prefers_size_then_steps_then_default():
    assert TrainConfig().bank_capacity() == DEFAULT_BANK_SIZE
    assert TrainConfig(bank_steps=10, batch=16).bank_capacity() == 160
    assert TrainConfig(bank_size=100).bank_capacity() == 100
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig.from_dict({"bank_size": 100, "bank_steps": 3})


@pytest.mark.parametrize(("values", "fragment"), [
    ({"batch": 0}, "--batch"), ({"lr": -1.0}, "--lr"), ({"rate": 1.5}, "--rate"), ({"loss": "poisson"}, "--loss"),
    ({"hidden": "64,x"}, "--hidden"), ({"epochs": 2.5}, "--epochs"), ({"batchnorm": "yes"}, "--batchnorm"),
    ({"time_col": "t", "event_col": "t"}, "both"), ({"val_frac": 1.0}, "--val-frac"), ({"batchsize": 8}, "unknown"),
    ({"seed": -1}, "--seed"), ({"seed": 2**64}, "--seed"), ({"id_col": ["a", "b"]}, "--id-col must be text"),
    ({"time_col": True}, "--time-col must be text"), ({"hidden": [32, 16.7]}, "--hidden"),
    ({"hidden": [32, True]}, "--hidden"), ({"id_col": "time"}, "--id-col 'time' is also"),
    ({"weight_decay": float("inf")}, "--weight-decay must be a finite number"), ({"weight_decay": -0.1}, "--weight"),
    ({"hidden": "64,,64"}, "--hidden has an empty layer size in '64,,64'"), ({"hidden": "64,"}, "empty layer"),
    ({"epochs": None}, "--epochs needs a value"), ({"lr": None}, "--lr needs a value"),
    ({"time_col": None}, "--time-col needs a value"), ({"batchnorm": None}, "--batchnorm needs a value"),
])
def test_invalid_values_name_the_option(values, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig.from_dict(values)


def test_null_is_the_default_only_where_an_option_may_be_left_unset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: null\n")
    with pytest.raises(ConfigError, match=f"^{path}: --epochs needs a value, got none"):
        TrainConfig.from_dict(load_yaml(path), source=str(path))
    path.write_text("batch: null\nid_col: null\nhidden: null\n")
    config = TrainConfig.from_dict(load_yaml(path), source=str(path))
    assert (config.batch, config.id_col, config.hidden) == (None, None, [])


def test_round_trip_through_plain_dict():
    config = TrainConfig.from_dict({"hidden": "32,16", "features": "a, b", "linear_skip": True})
    assert config.hidden == [32, 16] and config.features == ["a", "b"]
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_yaml_keys_may_use_dashes_and_bad_yaml_is_a_config_error(tmp_path):
    good = tmp_path / "c.yaml"
    good.write_text("rate-warmup: false\nhidden: [8, 8]\n")
    assert load_yaml(good) == {"rate_warmup": False, "hidden": [8, 8]}
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(listing)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")


def test_yaml_column_names_read_as_numbers_or_dates_are_the_header_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("time_col: 5\nevent_col: 2020-01-01\nid_col: 1.5\nseed: 4294967295\n")
    config = TrainConfig.from_dict(load_yaml(path))
    assert (config.time_col, config.event_col, config.id_col, config.seed) == ("5", "2020-01-01", "1.5", 2**32 - 1)


def test_an_option_spelled_twice_in_yaml_is_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rate-warmup: false\nrate_warmup: true\nhidden: [32, 16.0]\n")
    with pytest.raises(ConfigError, match="rate-warmup is given twice"):
        load_yaml(path)
    path.write_text("epochs: 1\nlr: 0.01\nepochs: 3\n")
    with pytest.raises(ConfigError, match=f"^{path}: option epochs is given twice .*line 3"):
        load_yaml(path)
    path.write_text("hidden: [32, 16.0]\n")
    assert TrainConfig.from_dict(load_yaml(path)).hidden == [32, 16]


def test_every_config_field_is_a_train_option_and_grad_clip_inf_turns_clipping_off(tmp_path):
    """`survmom train --help` lists every option: each TrainConfig field is a CLI parameter of train."""
    import inspect

    from survmom.app import cli

    from cli_runner import run_survmom

    assert set(TrainConfig.__dataclass_fields__) <= set(inspect.signature(cli.train).parameters)
    data = Path(__file__).resolve().parents[1] / "sample_data" / "cohort.csv"
    result = run_survmom("train", data, "--id-col", "id", "--epochs", "1", "--grad-clip", "inf", "-q",
                         "-o", tmp_path / "m.pt")
    assert result.returncode == 0, result.stderr
    assert torch.load(tmp_path / "m.pt", weights_only=True)["config"]["grad_clip"] == float("inf")
    refused = run_survmom("train", data, "--grad-clip", "0", "-q", "-o", tmp_path / "n.pt")
    assert refused.returncode == 2 and "--grad-clip must be positive" in refused.stderr


def _captured_train(monkeypatch, *args: str) -> TrainConfig:
    """The TrainConfig that ``survmom train data.csv *args`` hands to the workflow (nothing is trained)."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from survmom.app import cli

    seen = []

    def train_from_file(config, data, make_reporter):
        seen.append(config)
        return SimpleNamespace(best_metric=None, interrupted=False, stopped_early=False, epochs_done=0,
                               checkpoint="m.pt", ensemble=1, members=[])

    monkeypatch.setattr(cli, "_workflow", lambda: SimpleNamespace(train_from_file=train_from_file))
    result = CliRunner().invoke(cli.app, ["train", "data.csv", *args])
    assert result.exit_code == 0, result.output
    return seen[0]


def test_train_without_options_runs_with_the_config_defaults(monkeypatch):
    assert _captured_train(monkeypatch) == TrainConfig()


def test_train_options_are_generated_from_the_config_fields_with_their_names_and_short_flags(monkeypatch):
    config = _captured_train(monkeypatch, "--categorical", "a,b", "--numeric", "c", "--hidden", "8", "-o", "x.pt",
                             "-q", "--no-linear-skip", "--val", "v.csv", "--patience", "3", "--ties", "breslow")
    assert (config.categorical, config.numeric, config.hidden, config.out, config.quiet) == (["a", "b"], ["c"], [8],
                                                                                            "x.pt", True)
    assert (config.linear_skip, config.val, config.patience, config.ties) == (False, "v.csv", 3, "breslow")


def test_train_help_shows_each_field_with_its_help_and_default():
    import typer.main

    from survmom.app import cli

    command = typer.main.get_command(cli.app).commands["train"]
    options = {param.name: param for param in command.params}
    for field in dataclasses.fields(TrainConfig):
        assert field.metadata["help"] and options[field.name].help == field.metadata["help"], field.name
    assert options["hidden"].default == "64,64" and options["epochs"].default == 40
    assert set(options["out"].opts) == {"--out", "-o"} and set(options["quiet"].opts) == {"--quiet", "-q"}
    assert options["batchnorm"].secondary_opts == ["--no-batchnorm"]


def test_resume_overrides_reuse_the_train_options_definitions(monkeypatch):
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from survmom.app import cli

    seen = []

    def resume_from_checkpoint(checkpoint, epochs, data, out, make_reporter, overrides):
        seen.append((epochs, out, overrides))
        return SimpleNamespace(best_metric=None, interrupted=False, stopped_early=False, epochs_done=0,
                               checkpoint="m.pt", ensemble=1, members=[])

    monkeypatch.setattr(cli, "_workflow", lambda: SimpleNamespace(resume_from_checkpoint=resume_from_checkpoint))
    runner = CliRunner()
    overridden = runner.invoke(cli.app, ["resume", "m.pt", "--epochs", "5", "-o", "n.pt", "--device", "cpu", "-q"])
    assert overridden.exit_code == 0, overridden.output
    assert runner.invoke(cli.app, ["resume", "m.pt"]).exit_code == 0
    assert seen == [(5, Path("n.pt"), {"out": "n.pt", "device": "cpu", "quiet": True}), (None, None, {"quiet": False})]


def test_the_choice_lists_live_in_one_module_used_by_config_and_core():
    from survmom import choices
    from survmom.core import ema, losses, model, momentum
    from survmom.training import config

    assert config.LOSSES is choices.LOSSES is momentum.BUILTIN_LOSSES
    assert config.TIES is choices.TIES is losses._TIES
    assert config.RATE_SCHEDULES is choices.RATE_SCHEDULES is ema.SCHEDULES
    assert list(model.ACTIVATIONS) == list(choices.ACTIVATIONS) and config.ACTIVATIONS is choices.ACTIVATIONS
    assert model.ACTIVATIONS["silu"] is torch.nn.SiLU
    with pytest.raises(ConfigError, match="--activation must be one of relu, selu, gelu, silu, tanh, elu"):
        TrainConfig.from_dict({"activation": "swish"})
