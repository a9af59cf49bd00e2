"""``protodiff bench``: the matrix comes from the registries, preflight fails in seconds with one
line, cells are reused, shards merge into the unsharded report, and the report is self-contained."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from protodiff._registry.manager import registries
from protodiff._registry.registry import registering_as
from protodiff.bench.matrix import build_matrix, shard
from protodiff.bench.spec import BenchSpec, load_bench
from protodiff.cli import main
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.experiment import load_experiment

TINY = ["data.image_size=16", "data.num_train=48", "data.num_test=16", "model.denoiser.base_channels=16",
        "model.denoiser.channel_mult=[1,2]", "train.steps=4", "train.batch_size=8", "train.warmup_steps=0",
        "train.log_every=2", "train.checkpoint_every=2", "sample.sampler.steps=2", "sample.num_images=4"]  # fmt: skip


class Brightness(Explainer):
    """Mean brightness of each image (a throw-away explainer)."""

    def explain(self, model, batch):
        return Explanation("brightness", {"mean": batch.mean(dim=(1, 2, 3))}, {"count": len(batch)})


class JudgedAttributes(Explainer):
    """The attributes of the classifier it is handed (a throw-away explainer that requires one)."""

    def explain(self, model, batch, *, classifier):
        return Explanation("judged", {}, {"attributes": list(classifier.attribute_names)})


@pytest.fixture
def plugin(toy_conditioner, tmp_path):
    """A throw-away plugin: the toy conditioner with a shapes preset, and an explainer."""
    raw = yaml.safe_load(Path(load_experiment.__globals__["resolve_config_path"]("ddpm-shapes")).read_text())
    raw["model"]["conditioner"] = {"name": "channel-means"}
    preset = tmp_path / "channel-means-shapes.yaml"
    preset.write_text(yaml.safe_dump(raw))
    with registering_as("tests-bench"):
        registries().preset.add("channel-means-shapes", preset)
        registries().explainer.add("brightness-bench", Brightness)
        registries().explainer.add("judged-bench", JudgedAttributes)
    yield
    registries().remove_plugin("tests-bench")


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


def tiny_bench(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "datasets": ["shapes"], "methods": ["channel-means", "patronus"], "set": TINY,
        "metrics": ["tad", "latent-auroc", "dimension-auroc"], "metric_options": {"tad": {"num_latents": 40}, "latent-auroc": {"num_latents": 40}, "dimension-auroc": {"num_latents": 40}},
        "explainers": {"brightness-bench": {}, "judged-bench": {}, "df-cam": {}}, "judge": {"steps": 2, "batch_size": 8}, "explain_images": 2, "grid_images": 2, "prior": True,
    }))  # fmt: skip
    return path


def test_a_plugins_method_joins_the_matrix_with_no_change(plugin):
    cells = build_matrix(BenchSpec(datasets=["shapes"], methods=["all"]))
    assert {"channel-means-shapes", "patronus-shapes", "diffae-shapes", "infodiff-shapes"} <= {c.preset for c in cells}
    assert sorted(shard(cells, 0, 2) + shard(cells, 1, 2), key=cells.index) == cells


def test_published_presets_resolve_for_the_paper_bench():
    _, spec = load_bench("paper")
    cells = build_matrix(spec)
    assert {c.dataset for c in cells} == {"celeba", "ffhq", "cifar10", "fmnist", "chexpert"}
    for cell in cells:
        load_experiment(cell.preset, [*cell.overrides, "data.root=/nowhere"])


def test_typos_and_a_missing_data_root_fail_in_one_line(tmp_path):
    out = invoke("bench", "--datasets", "shapse", "--out", str(tmp_path / "a"), code=2)
    assert out.count("\n") == 1 and "did you mean shapes" in out
    assert "did you mean quick" in invoke("bench", "--preset", "quik", code=2)
    out = invoke("bench", "--preset", "paper", "--out", str(tmp_path / "b"), code=2)
    assert out.count("\n") == 1 and "--data-root" in out
    out = invoke("bench", "--preset", "paper", "--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "c"), code=2)
    assert out.count("\n") == 1 and "celeba" in out
    assert not (tmp_path / "c" / "cells").exists()  # nothing trained


def _numbers(directory: Path) -> list[dict]:
    return json.loads((directory / "results.json").read_text())["rows"]


def test_shards_merge_into_the_unsharded_report_and_cells_are_reused(plugin, tmp_path):
    bench = str(tiny_bench(tmp_path))
    invoke("bench", "--preset", bench, "--out", str(tmp_path / "all"), "--seed", "1")
    for i in range(2):
        invoke("bench", "--preset", bench, "--out", str(tmp_path / f"s{i}"), "--shard", f"{i}/2", "--seed", "1")
    invoke("bench", "report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "merged"))
    whole = _numbers(tmp_path / "all")
    assert {r["metric"] for r in whole} == {"tad", "latent-auroc", "dimension-auroc"} and len(whole) == 6
    assert _numbers(tmp_path / "merged") == whole
    assert (tmp_path / "merged" / "results.csv").read_text().count("\n") == 7

    record = json.loads((tmp_path / "all" / "cells" / "patronus-shapes" / "cell.json").read_text())
    assert record["explainers"]["brightness-bench"]["meta"] == {"count": 2}
    # one judge per dataset, trained on the train split and handed to every explainer that asks
    assert record["judge"]["split"] == "train" and record["judge"]["steps"] == 2
    assert record["explainers"]["judged-bench"]["meta"]["attributes"] == list(record["judge"]["test_accuracy"])
    assert "skipped" in record["explainers"]["df-cam"] or record["explainers"]["df-cam"]["figures"]
    # Patronus' declared prior is fitted and sampled; the toy conditioner declares none
    assert record["prior"]["name"] == "latent-ddpm" and record["prior"]["vectors"] == 48
    assert "samples" in record["figures"]
    toy = json.loads((tmp_path / "all" / "cells" / "channel-means-shapes" / "cell.json").read_text())
    assert "declares no latent prior" in toy["prior"]["skipped"] and "samples" not in toy["figures"]
    invoke("bench", "--preset", bench, "--out", str(tmp_path / "all"), "--seed", "1")
    assert json.loads((tmp_path / "all" / "cells" / "patronus-shapes" / "cell.json").read_text()) == record

    html = (tmp_path / "merged" / "report.html").read_text()
    sources = re.findall(r'src="([^"]*)"', html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "latent AUROC" in html and "channel-means" in (tmp_path / "merged" / "REPORT.md").read_text()


def test_a_dimension_that_falls_with_an_attribute_counts_as_separating_it():
    from protodiff.bench.heatmap import attribute_aurocs
    from protodiff.bench.results import scalar

    result = {
        "metric": "dimension-auroc",
        "per_attribute": {"a": {"best_dim": "d0", "auroc": 0.1}, "b": {"best_dim": "d1", "auroc": 0.7}},
    }
    assert scalar(result) == (0.8, None)  # (0.9 + 0.7) / 2, not (0.1 + 0.7) / 2
    methods, attributes, matrix = attribute_aurocs([{"method": "m", "results": {"dimension AUROC": result}}], "dimension AUROC")
    assert methods == ["m"] and attributes == ["a", "b"] and matrix.tolist() == [[0.9, 0.7]]


def _agreement(values: dict[str, float], n: int) -> dict:
    return {
        "metric": "reconstruction-agreement",
        "num_images": n,
        "per_attribute": {a: {"agreement": v, "chance": 0.5, "judge_accuracy": 1.0} for a, v in values.items()},
    }


def test_a_lead_is_called_only_beyond_the_noise_of_both_methods():
    from protodiff.bench import leads

    records = [
        {"method": "patronus", "results": {"reconstruction agreement": _agreement({"mark": 0.95, "tone": 0.90}, 400)}},
        {"method": "diffae", "results": {"reconstruction agreement": _agreement({"mark": 0.70, "tone": 0.89}, 400)}},
    ]
    standing = {s.attribute: s for s in leads.standings(records, "reconstruction agreement")}
    assert standing["mark"].lead and standing["mark"].leaders == ["patronus"]
    assert not standing["tone"].lead and standing["tone"].leaders == ["patronus", "diffae"]
    assert leads.summary(list(standing.values())) == ["patronus leads on mark", "within the noise of each other on tone"]
    few = [{**r, "results": {"reconstruction agreement": _agreement({"mark": v}, 8)}} for r, v in zip(records, (0.95, 0.7))]
    assert not leads.standings(few, "reconstruction agreement")[0].lead  # 8 images cannot tell 0.95 from 0.70
    header, rows = leads.table(list(standing.values()))
    assert header == ["attribute", "patronus", "diffae", "leads"] and rows[0][-1] == "patronus"


def test_a_cell_run_under_other_settings_is_named_not_reused(plugin, tmp_path):
    bench, out = str(tiny_bench(tmp_path)), str(tmp_path / "b")
    common = ["bench", "--preset", bench, "--out", out, "--methods", "channel-means"]
    invoke(*common)
    record = json.loads((tmp_path / "b" / "cells" / "channel-means-shapes" / "cell.json").read_text())
    assert len(record["settings_hash"]) == 16 and (tmp_path / "b" / "cells" / "channel-means-shapes" / "settings.json").is_file()
    message = invoke(*common, "--set", "train.steps=2", code=2)
    assert message.count("\n") == 1 and "experiment.train.steps 4 -> 2" in message and "--retrain" in message
    invoke(*common, "--set", "train.steps=2", "--retrain")
    again = json.loads((tmp_path / "b" / "cells" / "channel-means-shapes" / "cell.json").read_text())
    assert again["steps"] == 2 and again["settings_hash"] != record["settings_hash"]
    assert "this run:" in (tmp_path / "b" / "REPORT.md").read_text()


def test_a_cell_from_before_an_option_existed_is_reused_when_the_option_is_at_its_default(plugin, tmp_path):
    bench, out = str(tiny_bench(tmp_path)), str(tmp_path / "b")
    common = ["bench", "--preset", bench, "--out", out, "--methods", "channel-means"]
    invoke(*common)
    settings = tmp_path / "b" / "cells" / "channel-means-shapes" / "settings.json"
    recorded = json.loads(settings.read_text())
    del recorded["experiment"]["model"]["condition_dropout"]  # as written by a version without it
    settings.write_text(json.dumps(recorded))
    invoke(*common)  # reused, not refused
    message = invoke(*common, "--set", "model.condition_dropout=0.1", code=2)
    assert "experiment.model.condition_dropout 0.0 -> 0.1" in message


def test_a_dataset_without_labels_is_planned_without_what_needs_them(plugin, tmp_path):
    """FFHQ has no attribute labels: its cells run without the judge, the latent metrics and the
    explainers that read attributes, and say so; what needs no labels (FID) still runs."""
    from test_data_ffhq import write_ffhq

    write_ffhq(tmp_path / "data" / "ffhq", size=16)
    raw = yaml.safe_load(Path(load_experiment.__globals__["resolve_config_path"]("ddpm-shapes")).read_text())
    raw["model"]["conditioner"] = {"name": "channel-means"}
    raw["data"] = {"name": "ffhq", "image_size": 16}
    preset = tmp_path / "channel-means-ffhq.yaml"
    preset.write_text(yaml.safe_dump(raw))
    with registering_as("tests-bench-ffhq"):
        registries().preset.add("channel-means-ffhq", preset)
    bench = tmp_path / "unlabelled.yaml"
    bench.write_text(yaml.safe_dump({
        "datasets": ["ffhq"], "methods": ["channel-means"], "needs_data_root": True,
        "set": ["model.denoiser.base_channels=16", "model.denoiser.channel_mult=[1,2]", "train.steps=2",
                "train.batch_size=2", "train.checkpoint_every=2", "sample.sampler.steps=2"],
        "metrics": ["tad", "fid"], "metric_options": {"fid": {"extractor": "identity", "num_samples": 2}},
        "explainers": {"brightness-bench": {}, "judged-bench": {}}, "explain_images": 2, "grid_images": 2,
    }))  # fmt: skip
    try:
        invoke("bench", "--preset", str(bench), "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "out"))
    finally:
        registries().remove_plugin("tests-bench-ffhq")
    record = json.loads((tmp_path / "out" / "cells" / "channel-means-ffhq" / "cell.json").read_text())
    assert set(record["left_out"]) == {"judge", "tad", "judged-bench"} and "no attribute labels" in record["left_out"]["tad"]
    assert record["judge"] is None and list(record["results"]) == ["FD_identity"]
    assert record["explainers"]["brightness-bench"]["meta"] == {"count": 2}
    assert "tad: left out (the dataset has no attribute labels" in (tmp_path / "out" / "REPORT.md").read_text()


def test_a_train_split_smaller_than_a_batch_is_refused_before_training(plugin, tmp_path):
    bench = str(tiny_bench(tmp_path))
    out = invoke("bench", "--preset", bench, "--out", str(tmp_path / "b"), "--set", "train.batch_size=64", code=2)
    assert out.count("\n") == 1 and "has 48 images, fewer than train.batch_size=64" in out
    assert not (tmp_path / "b" / "cells").exists()


@pytest.mark.slow
def test_cells_run_side_by_side_in_their_own_processes(tmp_path):
    """jobs: 2 trains two cells at once (spawned workers, so only installed plugins: Patronus and
    InfoDiffusion here), each on cores // 2 threads, and writes the same report a serial bench does."""
    from protodiff.bench.pool import cpu_cores, effective_jobs

    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump({
        "datasets": ["shapes"], "methods": ["patronus", "infodiff"], "set": TINY, "jobs": 2,
        "metrics": ["dimension-auroc"], "metric_options": {"dimension-auroc": {"num_latents": 16}},
        "explain_images": 1, "grid_images": 1,
    }))  # fmt: skip
    invoke("bench", "--preset", str(path), "--out", str(tmp_path / "b"))
    jobs = effective_jobs(2, "cpu", 2)
    for method in ("patronus", "infodiff"):
        record = json.loads((tmp_path / "b" / "cells" / f"{method}-shapes" / "cell.json").read_text())
        assert record["threads"] == max(1, cpu_cores() // jobs) and "dimension AUROC" in record["results"]
    assert "patronus" in (tmp_path / "b" / "REPORT.md").read_text()
