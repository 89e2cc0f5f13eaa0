"""Column types (issue 17 §1): a typed file's schema decides; CSV infers numbers and warns about columns named
like codes; ``--categorical`` / ``--numeric`` force a type, which the checkpoint keeps and predict applies."""

from __future__ import annotations

import decimal
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from survmom.data import declared_types
from survmom.data.diagnostics import looks_like_code_name
from survmom.training.config import TrainConfig
from survmom.training.prepare import prepare_training_data

from cli_runner import checkpoint_tensors, run_survmom

TRAIN = ["--epochs", "2", "--hidden", "8", "--quiet"]


def cohort(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Age, a centre code (with leading zeros as text), a dose, time and event."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n),
        "age": rng.integers(30, 90, n).astype(float),
        "centre": rng.choice(["007", "012", "101", "250"], n),
        "dose": rng.choice([1.5, 2.0, 3.25], n),
        "time": rng.integers(1, 1000, n).astype(float),
        "event": np.tile([1, 0, 1], n // 3),
    })


def write_parquet(frame: pd.DataFrame, path: Path, **arrays: pa.Array) -> Path:
    """``frame`` as Parquet, text as pyarrow strings, plus ``arrays`` as columns (replacing those of the same
    name)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name, values in arrays.items():
        index = table.schema.get_field_index(name)
        table = table.append_column(name, values) if index < 0 else table.set_column(index, name, values)
    pq.write_table(table, path)
    return path


def prepared(path: Path, **options):
    return prepare_training_data(TrainConfig(val_frac=0.0, id_col="id", **options), path)



# --------------------------------------------------------------------------------------------- typed sources


def test_a_parquet_schema_states_text_and_numbers_and_leaves_the_rest_to_the_values(tmp_path):
    table = pa.table({
        "text": pa.array(["1", "2"]), "large": pa.array(["1", "2"], pa.large_string()),
        "dictionary": pa.array(["1", "2"]).dictionary_encode(), "bytes": pa.array([b"1", b"2"]),
        "int": pa.array([1, 2]), "float": pa.array([1.5, 2.0]),
        "decimal": pa.array([decimal.Decimal("1.5"), decimal.Decimal("2.0")]),
        "flag": pa.array([True, False]), "when": pa.array([1, 2], pa.timestamp("s")),
    })
    pq.write_table(table, tmp_path / "t.parquet")
    assert declared_types(tmp_path / "t.parquet") == {
        "text": "category", "large": "category", "dictionary": "category", "bytes": "category",
        "int": "numeric", "float": "numeric", "decimal": "numeric",
    }
    cohort().to_csv(tmp_path / "t.csv", index=False)
    assert declared_types(tmp_path / "t.csv") == {}


def test_string_and_dictionary_codes_in_parquet_stay_categorical(tmp_path):
    frame = cohort()
    zips = frame["centre"].map({"007": "02134", "012": "10001", "101": "60601", "250": "94105"})
    path = write_parquet(frame, tmp_path / "codes.parquet", zip=pa.array(zips).dictionary_encode())
    data = prepared(path)
    assert data.preprocessor.column_types() == {"age": "numeric", "centre": "category", "dose": "numeric",
                                                "zip": "category"}
    assert [n for n in data.preprocessor.feature_names if n.startswith(("centre", "zip"))] == [
        "centre=007", "centre=012", "centre=101", "centre=250",
        "zip=02134", "zip=10001", "zip=60601", "zip=94105"]
    assert data.warnings == []  # no "numbers stored as text": the schema said text


def test_the_same_codes_in_csv_are_read_as_numbers_with_a_warning(tmp_path):
    cohort().to_csv(tmp_path / "codes.csv", index=False)
    data = prepared(tmp_path / "codes.csv")
    assert data.preprocessor.column_types()["centre"] == "numeric"
    assert data.warnings == [
        "column 'centre' holds 4 distinct whole numbers and its name suggests codes (a centre, site or diagnosis "
        "code?); read as one numeric input, so the model sees a trend in the code values: if they are labels, "
        "pass --categorical centre"]


def test_a_typed_text_column_with_a_value_per_row_still_looks_like_an_identifier(tmp_path):
    frame = cohort().assign(record=lambda d: [f"{1000 + i}" for i in range(len(d))])
    data = prepared(write_parquet(frame, tmp_path / "ids.parquet"))
    assert data.preprocessor.column_types()["record"] == "category"
    assert data.preprocessor.warnings == ["high-cardinality categorical feature 'record' (120 categories in 120 "
                                          "rows) adds 120 inputs; an identifier? --exclude it"]


@pytest.mark.parametrize("name", ["centre", "center", "site", "zip", "ZIP", "zip5", "zipCode", "postcode",
                                  "hospital_id", "hospitalID", "id_clinic", "region", "icd9", "ICD9_CM",
                                  "batch", "inst", "study_code", "CentreCode"])
def test_code_like_names_are_matched_on_words(name):
    assert looks_like_code_name(name)


@pytest.mark.parametrize("name", ["zipper", "age", "incidence", "episode", "identity", "sites_visited_x",
                                  "decode_time", "hospitalisations", "width"])
def test_names_that_only_contain_a_code_word_are_not_matched(name):
    assert not looks_like_code_name(name)


def test_only_integer_columns_with_a_few_levels_and_a_code_name_are_flagged(tmp_path):
    n = 120
    rng = np.random.default_rng(1)
    frame = cohort(n).assign(
        zipper=rng.integers(1, 6, n),  # not a code word
        site=np.tile([1, 2], n // 2),  # two values encode the same either way
        region=rng.integers(1, 6, n) + 0.5,  # not whole numbers
        hospital_id=np.arange(n) + 500,  # one per row: the identifier warning instead
        batch=rng.integers(1, 80, n),  # 80 levels in 120 rows: too many to one-hot
    ).drop(columns="centre")
    frame.to_csv(tmp_path / "mixed.csv", index=False)
    data = prepared(tmp_path / "mixed.csv")
    assert len(data.warnings) == 1 and data.warnings[0].startswith("column 'hospital_id' looks like an identifier")


def test_icd9_codes_with_decimals_in_a_csv_are_warned_about_and_read_as_written_when_categorical(tmp_path):
    """ICD-9 codes ("250.00", "250.01", "401.9") look like decimals: a CSV column named icd... is read as numbers,
    a trend in the codes, with the code warning; --categorical keeps the text ("250.00" is not "250.0")."""
    codes = ["250.00", "250.01", "401.9", "428.0", "496"]
    frame = cohort().assign(icd9_dx=lambda d: np.resize(codes, len(d)))
    frame.to_csv(tmp_path / "icd.csv", index=False)
    data = prepared(tmp_path / "icd.csv")
    assert data.preprocessor.column_types()["icd9_dx"] == "numeric"
    assert data.warnings[-1] == (
        "column 'icd9_dx' holds 5 distinct numbers and its name suggests codes (a centre, site or diagnosis code?); "
        "read as one numeric input, so the model sees a trend in the code values: if they are labels, pass "
        "--categorical icd9_dx")
    forced = prepared(tmp_path / "icd.csv", categorical=["icd9_dx"])
    assert forced.preprocessor.columns[-1].categories == tuple(sorted(codes))
    assert not any("icd9_dx" in warning for warning in forced.warnings)


# --------------------------------------------------------------------------------------------- forced types


def test_categorical_forces_a_csv_code_column_to_categories_read_as_written(tmp_path):
    cohort().to_csv(tmp_path / "codes.csv", index=False)
    data = prepared(tmp_path / "codes.csv", categorical=["centre"])
    assert data.preprocessor.columns[1].categories == ("007", "012", "101", "250")  # text, not 7, 12, ...
    assert data.warnings == []


def test_numeric_forces_a_parquet_text_column_of_numbers_to_numbers(tmp_path):
    frame = cohort().assign(dose=lambda d: d["dose"].map("{:g}".format))
    path = write_parquet(frame, tmp_path / "dose.parquet")
    assert prepared(path).preprocessor.column_types()["dose"] == "category"
    forced = prepared(path, numeric=["dose"]).preprocessor
    reference = prepared(write_parquet(cohort(), tmp_path / "numbers.parquet")).preprocessor
    assert forced.column_types()["dose"] == "numeric" and forced.to_state() == reference.to_state()


def _error_cases(tmp_path: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (arguments after the data file, texts the one-line error must contain)."""
    (tmp_path / "config.yaml").write_text("categorical: [centre, nosuch]\n")
    return {
        "not a column": (["--categorical", "centre,nosuch"],
                         ["d.csv: --categorical names 1 column not in the file: 'nosuch'", "available: 'id'"]),
        "numeric not a column": (["--numeric", "Age"], ["--numeric names 1 column not in the file: 'Age'"]),
        "yaml not a column": (["--config", str(tmp_path / "config.yaml")],
                              ["--categorical names 1 column not in the file: 'nosuch'"]),
        "in both lists": (["--categorical", "centre,dose", "--numeric", "dose"],
                          ["--categorical and --numeric both name 'dose'"]),
        "time column": (["--categorical", "time"], ["--categorical names 'time', the time column"]),
        "event column": (["--numeric", "event"], ["--numeric names 'event', the event column"]),
        "id column": (["--id-col", "id", "--categorical", "id"], ["--categorical names 'id', the id column"]),
        "excluded column": (["--exclude", "dose", "--numeric", "dose"],
                            ["--numeric names 'dose', which is not a feature"]),
        "numeric on text": (["--numeric", "centre,note"],
                            ["column 'note' should be numeric but has 2 non-numeric values",
                             "rows 3, 7: 'n/a?', '12 mg'"]),
        "numeric on parquet text": (["--numeric", "note"],
                                    ["p.parquet: column 'note' was given as numeric but has 2 non-numeric values",
                                     "rows 3, 7: 'n/a?', '12 mg'"]),
    }


def test_every_forced_type_error_exits_2_with_one_line_and_writes_nothing(tmp_path):
    frame = cohort().assign(note="1")
    frame.loc[[2, 6], "note"] = ["n/a?", "12 mg"]
    frame.to_csv(tmp_path / "d.csv", index=False)
    write_parquet(frame, tmp_path / "p.parquet")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    cases = _error_cases(tmp_path)
    before["config.yaml"] = hashlib.sha256((tmp_path / "config.yaml").read_bytes()).hexdigest()

    def run(item):
        name, (args, _) = item
        data = tmp_path / ("p.parquet" if "parquet" in name else "d.csv")
        return run_survmom("train", data, "-o", tmp_path / "m.pt", *TRAIN, *args)

    results = {name: run((name, case)) for name, case in cases.items()}
    for name, (_, expected) in cases.items():
        result = results[name]
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (name, result.stderr)
        for text in expected:
            assert text in lines[0], (name, text, lines[0])
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()} == before


def test_predict_applies_the_saved_types_whatever_the_new_file_holds(tmp_path):
    frame = cohort().assign(dose=lambda d: d["dose"].map("{:g}".format))
    frame.to_csv(tmp_path / "train.csv", index=False)  # centre "007" and dose "1.5" both parse as numbers here
    model = tmp_path / "m.pt"
    run_survmom("train", tmp_path / "train.csv", "--id-col", "id", "--categorical", "centre", "--numeric", "dose",
                "-o", model, *TRAIN, check=True)
    state = torch.load(model, weights_only=True)["preprocessing"]
    assert state["column_types"] == {"age": "numeric", "centre": "category", "dose": "numeric"}
    assert "centre=007" in state["feature_names"]
    typed = write_parquet(frame, tmp_path / "new.parquet")  # centre and dose as text in the schema
    outputs = []
    for data in (tmp_path / "train.csv", typed):
        result = run_survmom("predict", model, data, "--times", "100", check=True)
        assert result.stderr == ""  # no unseen category: "007" was read as "007" from CSV too
        outputs.append(pd.read_csv(io.StringIO(result.stdout)))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])


# --------------------------------------------------------------------------------------------- real data


def _actg320() -> tuple[pd.DataFrame, list[str]]:
    """ACTG 320 (scikit-survival's ``load_aids``): its coded columns (race/ethnicity, IV drug use, treatment
    group, Karnofsky score, ...) come as pandas categories of digit strings, e.g. raceth '1'..'5'."""
    sksurv = pytest.importorskip("sksurv.datasets")
    x, y = sksurv.load_aids(endpoint="death")
    frame = x.copy()
    coded = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    frame[coded] = frame[coded].astype(str)
    event_field, time_field = y.dtype.names
    frame["time"], frame["event"] = y[time_field].astype(float), y[event_field].astype(int)
    return frame.reset_index(drop=True), coded


def test_real_coded_columns_train_as_categories_from_parquet_exactly_as_forced_in_csv(tmp_path):
    frame, coded = _actg320()
    assert {"raceth", "ivdrug", "txgrp", "karnof"} <= set(coded)
    write_parquet(frame, tmp_path / "actg320.parquet")
    frame.to_csv(tmp_path / "actg320.csv", index=False)
    models = {name: tmp_path / f"{name}.pt" for name in ("parquet", "csv", "csv_forced")}
    runs = [("parquet", tmp_path / "actg320.parquet", []), ("csv", tmp_path / "actg320.csv", []),
            ("csv_forced", tmp_path / "actg320.csv", ["--categorical", ",".join(coded)])]
    for name, data, flags in runs:
        run_survmom("train", data, "-o", models[name], *TRAIN, *flags, check=True)
    states = {name: torch.load(path, weights_only=True) for name, path in models.items()}
    types = states["parquet"]["preprocessing"]["column_types"]
    assert all(types[c] == "category" for c in coded) and types["age"] == types["cd4"] == "numeric"
    assert [n for n in states["parquet"]["preprocessing"]["feature_names"] if n.startswith("raceth=")] == [
        f"raceth={k}" for k in "12345"]
    assert states["csv"]["preprocessing"]["column_types"]["raceth"] == "numeric"  # CSV has no types
    assert states["csv_forced"]["preprocessing"] == states["parquet"]["preprocessing"]
    parquet, forced = dict(checkpoint_tensors(states["parquet"])), dict(checkpoint_tensors(states["csv_forced"]))
    assert parquet.keys() == forced.keys()
    for key, tensor in parquet.items():
        assert torch.equal(tensor, forced[key]), key


def test_a_real_institution_code_in_csv_gets_the_code_warning(tmp_path):
    lifelines = pytest.importorskip("lifelines.datasets")
    lung = lifelines.load_lung().rename(columns={"status": "event"})
    lung.to_csv(tmp_path / "lung.csv", index=False)
    data = prepare_training_data(TrainConfig(val_frac=0.0), tmp_path / "lung.csv")
    warned = [w for w in data.warnings if "'inst'" in w]
    assert len(warned) == 1 and "--categorical inst" in warned[0]
    forced = prepare_training_data(TrainConfig(val_frac=0.0, categorical=["inst"]), tmp_path / "lung.csv")
    assert forced.preprocessor.column_types()["inst"] == "category"
    assert not [w for w in forced.warnings if "'inst'" in w]
