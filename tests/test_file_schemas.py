"""Every file protodiff writes and reads back is checked against its schema on the way in: a
damaged one is a single line naming the file and the key, never a KeyError traceback. The
property test at the end damages each kind of file at random (a key dropped, a value replaced, the
text cut short, bytes overwritten) and finds nothing but one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import TINY_OVERRIDES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protodiff import checkpoint as ckpt
from protodiff.bench.judge import ACCURACY_SCHEMA
from protodiff.bench.results import load_record, load_run
from protodiff.cli import main
from protodiff.cli.names import read_suggestions
from protodiff.errors import ProtodiffError
from protodiff.experiment import load_experiment
from protodiff.metrics.attribute_classifier import META_FILE, AttributeClassifier
from protodiff.schema import OptionalKey, SchemaError, ValuesOf, check, read_json
from protodiff.training import Trainer

RUN_JSON = {
    "preset": "quick",
    "seed": 0,
    "matrix": ["patronus-shapes"],
    "shard": [0, 1],
    "command": "protodiff bench",
    "notes": "",
    "left_out": {},
    "environment": {"versions": {"torch": "2"}, "machine": "m"},
    "started": "now",
}
CELL_JSON = {
    "cell": "patronus-shapes", "method": "patronus", "dataset": "shapes", "preset": "patronus-shapes", "overrides": [],
    "seed": 0, "checkpoint": "run/checkpoints/step_0000004", "steps": 4, "trained_now": 4, "train_s": 1.0,
    "eval_s": 1.0, "wall_s": 2.0, "images_per_s": 10.0, "peak_rss_mib": 100.0, "peak_cuda_mib": None, "device": "cpu",
    "machine": "m", "judge": None, "prior": None,
    "results": {"TAD": {"metric": "tad", "split": "test", "mean": 0.5, "std": 0.1, "per_fold": [0.4, 0.6]}},
    "figures": {"reconstructions": "reconstructions.png"}, "explainers": {"df-cam": {"skipped": "no"}}, "left_out": {},
}  # fmt: skip
META_JSON = {
    "explainer": "effects",
    "suggestions": [{"index": i, "attribute": "red", "effect": 0.5, "consistency": 0.9} for i in range(3)],
}
ACCURACY_JSON = {"split": "train", "steps": 2, "test_accuracy": {"red": 0.9}}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("protodiff: error: "), result.output
    return result.output


def test_a_schema_names_the_key_and_what_it_expected(tmp_path):
    schema = {"a": int, "b": [{"c": str}], "d": OptionalKey(float), "e": ValuesOf(float)}
    assert check({"a": 1, "b": [{"c": "x"}], "e": {}}, schema, "f.json")
    with pytest.raises(SchemaError, match=r"^f.json: b\[1\].c: required key is missing$"):
        check({"a": 1, "b": [{"c": "x"}, {}], "e": {}}, schema, "f.json")
    with pytest.raises(SchemaError, match=r"^f.json: a: expected an integer, got true$"):
        check({"a": True, "b": [], "e": {}}, schema, "f.json")
    with pytest.raises(SchemaError, match=r"^f.json: e.x: expected a number, got \"1\"$"):
        check({"a": 1, "b": [], "e": {"x": "1"}}, schema, "f.json")
    (tmp_path / "g.json").write_text('{"a": 1,')
    with pytest.raises(SchemaError, match=r"g.json: damaged, not JSON \(.*\); do this$"):
        read_json(tmp_path / "g.json", schema, fix="do this")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained run (seconds)."""
    path = tmp_path_factory.mktemp("schemas") / "run"
    Trainer(load_experiment("ddpm-shapes", TINY_OVERRIDES + ["train.steps=2"]), path, device="cpu", progress=False).fit()
    return path


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    path = tmp_path_factory.mktemp("judge") / "judge"
    AttributeClassifier(["red_square", "blue_circle"], 3, 16).save(path)
    return path


def test_an_empty_classifier_json_stops_explain_shortcuts_in_one_line(run, judge, tmp_path):
    damaged = tmp_path / "judge"
    shutil.copytree(judge, damaged)
    (damaged / META_FILE).write_text("{}")
    output = invoke("explain", "shortcuts", str(run), "--classifier", str(damaged), "--n", "2", "--out", str(tmp_path / "x"))
    assert f"{damaged / META_FILE}: attribute_names: required key is missing" in output


def test_a_classifier_json_that_does_not_match_its_weights_is_one_line(judge, tmp_path):
    damaged = tmp_path / "judge"
    shutil.copytree(judge, damaged)
    meta = json.loads((damaged / META_FILE).read_text())
    (damaged / META_FILE).write_text(json.dumps({**meta, "in_channels": 10**12}))
    with pytest.raises(
        SchemaError, match=r"classifier.json: does not match model.safetensors \(first difference: 'body.0.0.weight'\)"
    ):
        AttributeClassifier.load(damaged)


def test_a_damaged_effects_meta_json_stops_names_suggest_in_one_line(run, tmp_path):
    (tmp_path / "fx").mkdir()
    meta = {**META_JSON, "suggestions": [{"index": 0, "attribute": "red", "effect": "big", "consistency": 1.0}]}
    (tmp_path / "fx" / "meta.json").write_text(json.dumps(meta))
    output = invoke("names", str(run), "--suggest", str(tmp_path / "fx"))
    assert "meta.json: suggestions[0].effect: expected a number" in output
    with pytest.raises(SchemaError, match=r"suggestions\[0\].index: 7 is not a dimension of this model"):
        (tmp_path / "fx" / "meta.json").write_text(
            json.dumps({"suggestions": [{**s, "index": 7} for s in META_JSON["suggestions"]]})
        )
        read_suggestions(str(tmp_path / "fx"), 3)


def test_damaged_run_and_cell_json_stop_bench_report_in_one_line(tmp_path):
    out = tmp_path / "bench"
    (out / "cells" / "patronus-shapes").mkdir(parents=True)
    (out / "run.json").write_text(json.dumps({**RUN_JSON, "matrix": "patronus-shapes"}))
    assert "run.json: matrix: expected a list" in invoke("bench", "report", str(out))
    (out / "run.json").write_text(json.dumps(RUN_JSON))
    (out / "cells" / "patronus-shapes" / "cell.json").write_text(json.dumps({**CELL_JSON, "results": {"TAD": {"mean": 1}}}))
    output = invoke("bench", "report", str(out))
    assert "cell.json: results.TAD.metric: required key is missing; delete" in output


def test_the_valid_examples_pass(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps(RUN_JSON))
    (tmp_path / "cell.json").write_text(json.dumps(CELL_JSON))
    assert load_run(tmp_path) == RUN_JSON and load_record(tmp_path / "cell.json") == CELL_JSON


def test_a_torn_line_in_a_log_is_skipped(tmp_path):
    from protodiff.figures import read_log

    (tmp_path / "log.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo{"step": 3, "loss": 0.5}\n[]\n')
    assert read_log(tmp_path / "log.jsonl") == [{"step": 1, "loss": 1.0}]


# -- property: damaged files of every kind give one-line errors -------------------------------------
def _paths(value, prefix=()):
    """Every key path into a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def damaged_text(draw, original: dict, dump=json.dumps) -> bytes:
    """``original`` damaged one way: a key dropped, a value replaced, the text cut, bytes overwritten."""
    how = draw(st.sampled_from(["drop", "replace", "truncate", "bytes"]))
    text = dump(original).encode()
    if how in ("drop", "replace"):
        data = json.loads(json.dumps(original))
        path = draw(st.sampled_from([p for p in _paths(data) if p]))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if how == "drop":
            parent.pop(path[-1])  # a dict's key or a list's index
        else:
            parent[path[-1]] = draw(json_values)
        return dump(data).encode()
    if how == "truncate":
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    at = draw(st.integers(0, len(text) - 1))
    return text[:at] + draw(st.binary(min_size=1, max_size=8)) + text[at + 8 :]


def _one_line_or_nothing(load) -> None:
    try:
        load()
    except ProtodiffError as exc:
        assert "\n" not in str(exc), str(exc)


def _fresh(source: Path) -> Path:
    target = Path(tempfile.mkdtemp()) / source.name
    shutil.copytree(source, target)
    return target


#: Derandomized under CI (the same examples every run, so CI does not flake on a new find).
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(["run.json", "cell.json", "meta.json", "accuracy.json"]))
def test_damaged_bench_and_explanation_files_give_one_line_errors(data, kind):
    original = {"run.json": RUN_JSON, "cell.json": CELL_JSON, "meta.json": META_JSON, "accuracy.json": ACCURACY_JSON}[kind]
    directory = Path(tempfile.mkdtemp())
    try:
        (directory / kind).write_bytes(data.draw(damaged_text(original)))
        load = {
            "run.json": lambda: load_run(directory),
            "cell.json": lambda: load_record(directory / kind),
            "meta.json": lambda: read_suggestions(str(directory), 3),
            "accuracy.json": lambda: read_json(directory / kind, ACCURACY_SCHEMA, fix="x"),
        }[kind]
        _one_line_or_nothing(load)
    finally:
        shutil.rmtree(directory)


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(["classifier.json", "config.yaml", "model.safetensors", "train_state.pt"]))
def test_damaged_classifiers_and_checkpoints_give_one_line_errors(run, judge, data, kind):
    if kind == "classifier.json":
        directory = _fresh(judge)
        original = json.loads((directory / META_FILE).read_text())
        (directory / META_FILE).write_bytes(data.draw(damaged_text(original)))
        load = lambda: AttributeClassifier.load(directory)
    else:
        directory = _fresh(ckpt.list_checkpoints(run)[-1])
        path = directory / kind
        if kind == "config.yaml":
            damaged = data.draw(damaged_text(yaml.safe_load(path.read_text()), dump=yaml.safe_dump))
        else:
            raw = path.read_bytes()
            at = data.draw(st.integers(0, len(raw) - 1)) if kind == "train_state.pt" else data.draw(st.integers(0, 200))
            cut = data.draw(st.booleans())
            damaged = raw[:at] if cut else raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at + 8 :]
        path.write_bytes(damaged)
        load = (lambda: ckpt.load_train_state(directory)) if kind == "train_state.pt" else (lambda: ckpt.load_model(directory))
    try:
        _one_line_or_nothing(load)
    finally:
        shutil.rmtree(directory.parent)
