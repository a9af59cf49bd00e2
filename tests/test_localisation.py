"""The ``localisation`` metric: its scores on hand-made maps, the regions of ``shapes`` and
``folder``, the map sources (the core's controls, Patronus' prototype maps, DF-CAM and DF-RISE
published and aimed) on a tiny untrained Patronus model, and its one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import protodiff
from protodiff._registry.manager import registries
from protodiff.data.folder import Folder
from protodiff.data.shapes import GLOBAL_ATTRIBUTES, LOCAL_ATTRIBUTES, Shapes
from protodiff.errors import DataError, OptionError, UnsupportedData, UnsupportedModel
from protodiff.experiment import load_experiment
from protodiff.metrics.localisation import mass_inside, pixel_auroc, pointing
from protodiff.model import ConditionedDiffusion

TINY_PATRONUS = [
    "data.image_size=16",
    "data.num_train=32",
    "data.num_test=16",
    "model.denoiser.base_channels=16",
    "model.denoiser.channel_mult=[1,2]",
    "model.conditioner.prototype_layer.num_prototypes=6",
]


def box(size: int = 16, rows: slice = slice(2, 6), cols: slice = slice(9, 13)) -> torch.Tensor:
    inside = torch.zeros(1, size, size, dtype=torch.bool)
    inside[:, rows, cols] = True
    return inside


# -- the scores ---------------------------------------------------------------------------------
def test_a_map_peaked_inside_the_region_points_and_ranks_perfectly():
    inside = box()
    peaked = inside.float() * 2 + 0.1
    peaked[0, 3, 10] = 5.0
    assert pointing(peaked, inside).item() == 1.0
    assert pixel_auroc(peaked, inside).item() == 1.0
    assert mass_inside(peaked, inside).item() == pytest.approx(1.0)
    outside = (~inside).float()
    assert pointing(outside, inside).item() == 0.0 and pixel_auroc(outside, inside).item() == 0.0


def test_a_uniform_map_scores_chance_everywhere():
    inside = box()
    flat = torch.full((1, 16, 16), 3.0)
    area = inside.float().mean().item()
    assert mass_inside(flat, inside).item() == pytest.approx(area)  # mass / area = 1
    assert pointing(flat, inside).item() == pytest.approx(area)  # ties broken at random, on average
    assert pixel_auroc(flat, inside).item() == 0.5


def test_random_maps_average_half_an_auroc():
    inside = box().expand(200, -1, -1)
    noise = torch.rand(200, 16, 16, generator=torch.Generator().manual_seed(0))
    assert abs(pixel_auroc(noise, inside).mean().item() - 0.5) < 0.02
    assert abs(mass_inside(noise, inside).mean().item() / inside.float().mean().item() - 1) < 0.05


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), top=st.integers(0, 12), left=st.integers(0, 12), side=st.integers(1, 4))
def test_scores_lie_in_their_ranges_and_auroc_ignores_increasing_transforms(seed, top, left, side):
    inside = box(rows=slice(top, top + side), cols=slice(left, left + side))
    maps = torch.randn(1, 16, 16, generator=torch.Generator().manual_seed(seed))
    for score in (pointing, mass_inside, pixel_auroc):
        assert 0.0 <= score(maps, inside).item() <= 1.0
    assert pixel_auroc(maps.exp() * 3, inside).item() == pytest.approx(pixel_auroc(maps, inside).item())
    assert pointing(maps.exp(), inside).item() == pointing(maps, inside).item()


# -- the regions --------------------------------------------------------------------------------
def test_shapes_regions_are_the_boxes_of_the_rendered_marks_and_global_attributes_have_none():
    data = Shapes(Shapes.Config(image_size=32, num_test=12, layout="random")).open("test")
    assert data.region_names() == list(LOCAL_ATTRIBUTES)
    for i in range(len(data)):
        _image, attrs = data[i]
        regions = data.regions(i)
        present = {n for n, on in zip(data.attribute_names, attrs) if on}
        assert set(regions) == present & set(LOCAL_ATTRIBUTES) and not set(regions) & set(GLOBAL_ATTRIBUTES)
        for mark in data.mark_boxes(i):
            mask = regions[mark.name]
            assert mask.dtype == torch.bool and mask.shape == (32, 32)
            assert mask.sum() == (mark.bottom - mark.top) * (mark.right - mark.left)
            assert mask[mark.top : mark.bottom, mark.left : mark.right].all()
    limited = Shapes(Shapes.Config(image_size=32, num_test=12, limit=5)).open("test")  # a subset keeps them
    assert limited.region_names() == list(LOCAL_ATTRIBUTES)
    assert all(
        torch.equal(limited.regions(j)[k], data.regions(i)[k]) for j, i in enumerate(limited.indices) for k in limited.regions(j)
    )


def write_folder(root, masks: bool = True):
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        rows = ["filename,ear"]
        for k in range(3):
            Image.fromarray(np.full((20, 20, 3), 40 * k, dtype=np.uint8)).save(root / split / f"im{k}.png")
            rows.append(f"im{k}.png,{int(k < 2)}")
        (root / split / "attributes.csv").write_text("\n".join(rows) + "\n")
        if masks:
            (root / split / "masks" / "ear").mkdir(parents=True)
            for k in range(2):
                mask = np.zeros((20, 20), dtype=np.uint8)
                mask[:10, 10 * k : 10 * k + 10] = 255
                Image.fromarray(mask).save(root / split / "masks" / "ear" / f"im{k}.png")
    return root


def test_folder_reads_masks_beside_the_images_resized_like_them(tmp_path):
    data = Folder(Folder.Config(root=str(write_folder(tmp_path)), image_size=8)).open("test")
    assert data.region_names() == ["ear"]
    first, second, third = (data.regions(i) for i in range(3))
    assert third == {}  # no mask file: no region in that image
    assert first["ear"].shape == (8, 8) and first["ear"][:4, :4].all() and not first["ear"][4:].any()
    assert second["ear"][:4, 4:].all() and not second["ear"][:, :4].any()


def test_folder_without_masks_has_no_regions_and_stray_masks_are_one_line_errors(tmp_path):
    plain = Folder(Folder.Config(root=str(write_folder(tmp_path / "plain", masks=False)), image_size=8)).open("test")
    assert plain.region_names() == [] and plain.regions(0) == {}
    root = write_folder(tmp_path / "stray")
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(root / "test" / "masks" / "ear" / "nobody.png")
    with pytest.raises(DataError, match=r"nobody\.png: no image nobody\.\*") as caught:
        Folder(Folder.Config(root=str(root), image_size=8)).open("test")
    assert "\n" not in str(caught.value)
    (root / "train" / "masks" / "tail").mkdir()
    with pytest.raises(DataError, match="'tail' is not an attribute"):
        Folder(Folder.Config(root=str(root), image_size=8)).open("train")


# -- the sources, on a tiny Patronus model -------------------------------------------------------
@pytest.fixture(scope="module")
def patronus():
    config = load_experiment("patronus-shapes", TINY_PATRONUS)
    torch.manual_seed(0)
    return ConditionedDiffusion.from_experiment(config).eval(), config


def localise(patronus, source: dict, **options):
    model, config = patronus
    options = {"map": source, "num_images": 4, "batch_size": 3, "selection_images": 16, **options}
    return protodiff.evaluate(model, ["localisation"], experiment=config, seed=0, options={"localisation": options})


SOURCES = [
    {"name": "prototypes"},
    {"name": "df-cam"},
    {"name": "df-cam", "target": "condition"},
    {"name": "df-rise", "num_masks": 20, "batch_size": 10},
    {"name": "df-rise", "num_masks": 20, "batch_size": 10, "target": "condition"},
    {"name": "random"},
    {"name": "centre"},
]


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_every_source_runs_and_is_scored_per_mark(patronus, source):
    result = localise(patronus, source)["localisation"]
    assert result["map"] == source["name"] and result["num_images"] == 4
    assert result["no_region"] == list(GLOBAL_ATTRIBUTES)
    scored = {name: v for name, v in result["per_attribute"].items() if v is not None}
    assert scored and set(scored) <= set(LOCAL_ATTRIBUTES)
    for values in scored.values():
        assert 0 <= values["pointing"] <= 1 and 0 <= values["mass_inside"] <= 1 and values["images"] >= 1
        assert (values.get("dimension") is not None) == result["targeted"]
    again = localise(patronus, source)["localisation"]
    assert again["per_attribute"] == result["per_attribute"]  # seeded


def test_prototype_activation_maps_peak_where_the_activation_comes_from(patronus):
    from protodiff_patronus.conditioner import activation_maps

    model, config = patronus
    conditioner = model.conditioner
    x0 = torch.stack([config.data.build().open("test")[i][0] for i in range(3)])
    with torch.no_grad():
        condition = model.encode(x0)
        grid = conditioner.prototype_layer.patch_activations(condition.maps)
        pixels = conditioner.activation_maps(x0)
    assert torch.allclose(grid.flatten(2).max(2).values, condition.vector, atol=1e-5)  # max over patches is s
    assert pixels.shape == (3, conditioner.dim, 16, 16)
    assert torch.equal(pixels, activation_maps(conditioner.encoder, conditioner.prototype_layer, x0))
    field = conditioner.encoder.receptive_field(1, 1)  # a patch's value sits at its receptive field's centre
    y, x = (field.top + field.bottom - 1) / 2, (field.left + field.right - 1) / 2
    if y == int(y) and x == int(x):
        assert torch.allclose(pixels[..., int(y), int(x)], grid[..., 1, 1], atol=1e-5)
    assert pixels.max() <= grid.max() + 1e-5  # bilinear between centres: never beyond the patches


# -- refusals -----------------------------------------------------------------------------------
def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


def test_refusals_are_one_line(patronus, tmp_path):
    assert "localisation" in registries().metric
    assert {"prototypes", "df-cam", "df-rise", "random", "centre"} <= set(registries().saliency.names())
    with pytest.raises(OptionError) as caught:
        localise(patronus, None)
    assert "--set localisation.map=" in one_line(caught)
    plain_config = load_experiment("ddpm-shapes", ["model.denoiser.preset=test", "data.image_size=16", "data.num_test=8"])
    plain = ConditionedDiffusion.from_experiment(plain_config).eval()
    for source, kind in (({"name": "prototypes"}, "prototype"), ({"name": "df-cam", "target": "condition"}, "condition")):
        with pytest.raises(UnsupportedModel) as caught:
            protodiff.evaluate(plain, ["localisation"], experiment=plain_config, options={"localisation": {"map": source}})
        assert kind in one_line(caught)
    no_regions = load_experiment(
        "ddpm-shapes",
        [
            "model.denoiser.preset=test",
            "data.image_size=8",
            "data.name=folder",
            f"data.root={write_folder(tmp_path, masks=False)}",
        ],
    )
    model = ConditionedDiffusion.from_experiment(no_regions).eval()
    with pytest.raises(UnsupportedData) as caught:
        protodiff.evaluate(model, ["localisation"], experiment=no_regions, options={"localisation": {"map": "centre"}})
    assert "masks/<attribute>/<image stem>.png" in one_line(caught)


def test_the_bench_report_tabulates_localisation_per_method_and_source():
    from protodiff.bench.tables import localisation_tables, markdown

    entry = {"pointing": 1.0, "mass_over_area": 2.5, "auroc": 0.97}
    records = [
        {
            "dataset": "shapes",
            "method": "patronus",
            "results": {
                "localisation (prototypes)": {"metric": "localisation-prototypes", "map": "prototypes", "num_images": 8,
                                              "per_attribute": {"red_square": entry, "blue_disc": None}},
                "TAD": {"metric": "tad", "mean": 0.5},
            },
        },
        {"dataset": "shapes", "method": "diffae", "results": {"TAD": {"metric": "tad", "mean": 0.4}}},
    ]  # fmt: skip
    (table,) = localisation_tables(records)
    assert table.header == ["method", "map", "images", "red_square", "blue_disc"]
    assert table.rows == [["patronus", "prototypes", "8", "1.00 / 2.50 / 0.97", "–"]]
    assert "1.00 / 2.50 / 0.97" in markdown(table)


def test_the_family_names_a_source_and_labels_by_it(patronus):
    model, config = patronus
    assert registries().metric.get("localisation-centre").Config().map.name == "centre"
    results = protodiff.evaluate(model, ["localisation-centre", "localisation-random"], experiment=config,
                                 options={"localisation-centre": {"num_images": 2}, "localisation-random": {"num_images": 2}})  # fmt: skip
    assert set(results.results) == {"localisation (centre)", "localisation (random)"}
    with pytest.raises(Exception, match="unknown saliency 'centr'; did you mean 'centre'"):
        registries().metric.get("localisation-centr")


def test_df_rise_aimed_at_a_score_finds_the_pixels_that_score_reads():
    from test_dfx_saliency import looking_at

    from protodiff_dfx.saliency import DFRise

    model, _region, x_t = looking_at(slice(2, 8), slice(2, 14))  # the denoiser sees a wide band

    def corner(eps: torch.Tensor, row: int) -> torch.Tensor:  # a score that reads only its left end
        return eps[:, :, 2:8, 2:5].abs().mean(dim=(1, 2, 3))

    aimed = DFRise(model, num_masks=300, batch_size=60).attribute(x_t, t=500, score=corner)
    published = DFRise(model, num_masks=300, batch_size=60).attribute(x_t, t=500)
    left, right = aimed[:, 2:8, 2:5].mean(), aimed[:, 2:8, 11:14].mean()
    assert left > right + 3 * aimed[:, 10:, :].std()  # the aimed map keeps to what the score reads
    assert published[:, 2:8, 11:14].mean() > published[:, 10:, :].mean()  # the published one spans the band
