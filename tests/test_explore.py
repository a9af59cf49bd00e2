"""``protodiff explore``: the Explorer library on a tiny Patronus run trained here, the app's answers
to bad input (Starlette's TestClient), and the page in a real headless Chromium (skipped, with the
reason, where no browser is installed)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_OVERRIDES
from PIL import Image

from protodiff.cli import main
from protodiff.config import ComponentSpec
from protodiff.errors import ProtodiffError
from protodiff.experiment import load_experiment
from protodiff.explain.edit import EditSettings
from protodiff.explore.session import Explorer
from protodiff.explore.uploads import UploadError, decode_image
from protodiff.model import ConditionedDiffusion

PATRONUS = "model.conditioner={name: patronus, preset: test}"
#: Enough steps that the denoiser reads the condition (at 6, a raised prototype barely shows).
STEPS = "train.steps=40"
#: Edits on the tiny run: a short DDIM walk keeps every test fast; the page's defaults are tested in the browser.
FAST = {"steps": 10}


def png_bytes(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """An image file of noise (of one flat grey from a million pixels on, so that it compresses)."""
    if width * height > 2**20:
        image = Image.new(mode, (width, height), 128)
    else:
        image = Image.fromarray((np.random.default_rng(0).random((height, width, 3)) * 255).astype("uint8")).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("explore") / "run"
    sets = [*TINY_OVERRIDES, PATRONUS, STEPS, "train.checkpoint_every=40"]
    result = CliRunner().invoke(main, ["train", "ddpm-shapes", *(a for s in sets for a in ("--set", s)), "--out", str(path)])
    assert result.exit_code == 0, result.output
    return str(path)


@pytest.fixture(scope="module")
def explorer(run) -> Explorer:
    return Explorer.open(run, settings=EditSettings(sampler=ComponentSpec("sampler", "ddim", raw=FAST)))


# -- the library --------------------------------------------------------------------------------
def test_a_picture_is_inverted_once_and_the_unedited_condition_gives_its_regeneration_back(explorer):
    picture = explorer.pick(1)
    assert explorer.pick(1) is picture  # cached
    k, steps = len(explorer.names), FAST["steps"]
    assert picture.vector.shape == (k,) and picture.maps is not None and picture.maps.shape[0] == k
    assert picture.baseline.x0_hat.shape == (steps, 3, 16, 16) and picture.baseline.activations.shape == (steps, k)
    assert picture.baseline.timesteps == sorted(picture.baseline.timesteps, reverse=True)
    same = explorer.edit(picture.key, picture.vector)
    assert torch.allclose(same.image, picture.baseline.x0_hat[-1], atol=1e-5)
    assert torch.allclose(same.timeline.activations, picture.baseline.activations, atol=1e-5)
    assert same.seconds > 0 and set(picture.attributes) == set(explorer.attribute_names)


def test_an_edit_by_name_changes_that_dimension_only_and_bad_edits_are_one_line_errors(explorer):
    picture = explorer.pick(2)
    name = explorer.names[3]
    result = explorer.edit(picture.key, {name: float(picture.vector[3]) + 2.0})
    changed = (result.vector != picture.vector).nonzero().flatten().tolist()
    assert changed == [3] and not torch.equal(result.image, picture.baseline.x0_hat[-1])
    with pytest.raises(ProtodiffError, match="did you mean"):
        explorer.edit(picture.key, {"proto_3": 1.0})
    with pytest.raises(ProtodiffError, match=f"this run's condition has {len(explorer.names)}"):
        explorer.edit(picture.key, [1.0, 2.0])
    with pytest.raises(ProtodiffError, match="finite"):
        explorer.edit(picture.key, [float("nan")] * len(explorer.names))
    with pytest.raises(ProtodiffError, match="not held"):
        explorer.edit("test:999", [0.0] * len(explorer.names))
    with pytest.raises(ProtodiffError, match=r"no test image 99; the test split has 16 \(0..15\)"):
        explorer.pick(99)


def test_with_a_partial_start_every_edit_of_a_picture_starts_from_the_same_noise(explorer):
    settings = EditSettings(sampler=ComponentSpec("sampler", "ddim", raw=FAST), start=300)
    partial = Explorer(explorer.model, explorer.experiment, settings=settings)
    picture = partial.pick(0)
    first, again = (partial.edit(picture.key, {explorer.names[0]: 2.0}) for _ in range(2))
    assert torch.equal(first.image, again.image) and len(first.timeline.timesteps) < FAST["steps"]


def test_a_followed_edit_reports_the_condition_it_regenerated_under(explorer):
    """Under ``follow: regression`` the other dimensions move with the set one; the result says
    where to (``followed``), which a held edit leaves equal to what was asked."""
    held = explorer.edit(explorer.pick(0).key, {explorer.names[3]: 2.0})
    assert torch.equal(held.followed, held.vector)
    settings = EditSettings(sampler=ComponentSpec("sampler", "ddim", raw=FAST), follow="regression")
    following = Explorer(explorer.model, explorer.experiment, settings=settings)
    result = following.edit(following.pick(0).key, {explorer.names[3]: 2.0})
    assert result.followed[3] == 2.0 and torch.equal(result.vector, held.vector)
    assert not torch.allclose(result.followed, result.vector) and not torch.equal(result.image, held.image)


def test_images_are_found_by_attribute(explorer):
    attribute = explorer.attribute_names[0]
    column = explorer.labels[:, 0] > 0.5
    assert explorer.matching(attribute) == column.nonzero().flatten().tolist()
    assert explorer.matching(attribute, present=False) == (~column).nonzero().flatten().tolist()
    assert explorer.matching(None, limit=3) == [0, 1, 2]
    with pytest.raises(ProtodiffError, match="no attribute 'hat'"):
        explorer.matching("hat")


def test_uploads_are_decoded_in_memory_resized_and_checked():
    for data in (png_bytes(50, 30), png_bytes(40, 40, "L"), png_bytes(40, 40, "RGBA"), png_bytes(64, 48, fmt="JPEG")):
        image = decode_image(data, size=16, channels=3)
        assert image.shape == (3, 16, 16) and image.min() >= -1 and image.max() <= 1
    assert decode_image(png_bytes(20, 20), size=8, channels=1).shape == (1, 8, 8)
    with pytest.raises(UploadError, match="not a PNG or JPEG"):
        decode_image(b"just some text\n", size=16, channels=3)
    with pytest.raises(UploadError, match="not a PNG or JPEG"):
        decode_image(png_bytes(8, 8, fmt="GIF"), size=16, channels=3)  # a real image, of a format not accepted
    with pytest.raises(UploadError, match="5000 x 5000 pixels"):
        decode_image(png_bytes(5000, 5000, "L"), size=16, channels=3)  # refused from its header
    with pytest.raises(UploadError, match="at most 1 KiB"):
        decode_image(png_bytes(64, 64), size=16, channels=3, max_bytes=1024)
    with pytest.raises(UploadError, match="damaged"):
        decode_image(png_bytes(64, 64)[:200], size=16, channels=3)
    with pytest.raises(UploadError, match="empty"):
        decode_image(b"", size=16, channels=3)


def test_saved_effect_matrices_are_read_and_a_foreign_one_is_a_note(explorer, tmp_path):
    k = len(explorer.names)
    attributes = explorer.attribute_names
    good, foreign, other = tmp_path / "effects", tmp_path / "foreign", tmp_path / "saliency"
    for folder, rows in ((good, k), (foreign, k + 1)):
        folder.mkdir()
        effect = [[0.1 * (j % 3) - 0.1] * len(attributes) for j in range(rows)]
        suggestions = [
            {"index": j, "attribute": attributes[0], "effect": 0.5 if j == 1 else 0.0, "consistency": 0.9} for j in range(rows)
        ]
        meta = {"explainer": "effects", "dimensions": [f"d{j}" for j in range(rows)], "attributes": attributes}
        (folder / "meta.json").write_text(json.dumps({**meta, "effect": effect, "suggestions": suggestions, "quantile": 1.0}))
    other.mkdir()
    (other / "meta.json").write_text(json.dumps({"explainer": "df-rise"}))
    opened = Explorer(explorer.model, explorer.experiment, explanations=[good, foreign, other])
    assert [saved.path for saved in opened.effects] == [good]
    assert len(opened.notes) == 1 and "it explains another model" in opened.notes[0]
    assert opened.suggested() == {1: attributes[0]}
    assert opened.enhanced(2, 1.0) == pytest.approx(float(opened.reference[:, 2].max()))


def test_the_gallery_is_the_prototypes_explanation_and_a_conditioner_without_prototypes_is_refused(explorer, toy_conditioner):
    from protodiff.explore import payloads

    shown = payloads.gallery(explorer.gallery(images=1))
    assert [p["index"] for p in shown["prototypes"]] == list(range(len(explorer.names)))
    assert all(len(p["regenerated"]) == 1 and p["nearest"].startswith("data:image/png") for p in shown["prototypes"])
    config = load_experiment("ddpm-shapes", [*TINY_OVERRIDES, "model.conditioner.name=channel-means"])
    plain = Explorer(ConditionedDiffusion.from_experiment(config), config)
    with pytest.raises(ProtodiffError, match="has no prototypes"):
        plain.gallery(images=1)
    from starlette.testclient import TestClient

    from protodiff.explore.app import create_app

    answer = TestClient(create_app(plain)).get("/api/gallery").json()
    assert "has no prototypes" in answer["unavailable"]


# -- the app ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(explorer):
    from starlette.testclient import TestClient

    from protodiff.explore.app import create_app

    return TestClient(create_app(explorer, gallery_images=1))


def test_the_page_and_the_run_are_served(client, explorer):
    page = client.get("/")
    assert page.status_code == 200 and "protodiff explore" in page.text
    assert client.get("/page.js").headers["content-type"].startswith("text/javascript")
    run = client.get("/api/run").json()
    assert [d["name"] for d in run["dimensions"]] == explorer.names
    assert all(d["low"] <= d["observed"][0] <= d["observed"][1] <= d["high"] for d in run["dimensions"])
    assert run["attributes"] == explorer.attribute_names and run["effects"] == []
    picked = client.post("/api/pick", json={"index": 0}).json()
    assert picked["image"].startswith("data:image/png;base64,") and len(picked["baseline"]["frames"]) == FAST["steps"]
    vector = list(picked["vector"])
    vector[0] += 1.5
    edited = client.post("/api/edit", json={"key": picked["key"], "vector": vector}).json()
    assert len(edited["after"]) == len(vector) and edited["seconds"] > 0
    assert edited["followed"] == edited["vector"]  # this explorer holds the dimensions it does not set
    thumbs = client.get("/api/images", params={"attribute": explorer.attribute_names[0], "present": "1"}).json()
    assert thumbs["indices"] == explorer.matching(explorer.attribute_names[0])


@pytest.mark.parametrize(
    ("path", "request_args", "status", "message"),
    [
        ("/api/pick", {"json": {"index": 99}}, 400, "no test image 99"),
        ("/api/pick", {"json": {"index": "three"}}, 400, "'index' must be a whole number"),
        ("/api/pick", {"content": b"{not json"}, 400, "not JSON"),
        ("/api/pick", {"json": [1, 2]}, 400, "a JSON object"),
        ("/api/edit", {"json": {"key": "test:0", "vector": ["1"]}}, 400, "list of finite numbers"),
        ("/api/edit", {"json": {"key": "upload:nothing", "vector": [0.0]}}, 400, "not held"),
        ("/api/edit", {"json": {"vector": [0.0]}}, 400, "'key' must name a picture"),
        ("/api/upload", {"content": b"hello, I am a text file\n"}, 400, "not a PNG or JPEG image"),
        ("/api/upload", {"content": png_bytes(5000, 5000, "L")}, 400, "the image is 5000 x 5000 pixels"),
        ("/api/upload", {"content": b"\0" * (8 * 2**20 + 1)}, 413, "at most 8 MiB"),
        ("/api/pick", {"content": b" " * (2**20 + 1)}, 413, "at most 1 MiB"),
    ],
    ids=["index-range", "index-type", "not-json", "not-object", "vector", "key", "no-key", "text", "huge", "bytes", "json-size"],
)
def test_bad_requests_are_a_message_and_a_log_line_not_a_crash(client, caplog, path, request_args, status, message):
    with caplog.at_level(logging.WARNING, logger="protodiff.explore"):
        response = client.post(path, **request_args)
    assert response.status_code == status and message in response.json()["error"]
    assert any(message in record.getMessage() for record in caplog.records)
    assert client.get("/api/run").status_code == 200  # still serving


def test_an_upload_is_held_like_a_test_image(client):
    picked = client.post("/api/upload", content=png_bytes(40, 30), headers={"X-Filename": "my%20cat.png"}).json()
    assert picked["key"].startswith("upload:") and picked["label"] == "upload my cat.png" and picked["attributes"] == {}


def test_a_directory_that_is_not_a_run_is_a_message_on_the_page(tmp_path, caplog):
    from starlette.testclient import TestClient

    from protodiff.explore.app import open_app

    (tmp_path / "notes.txt").write_text("not a run")
    with caplog.at_level(logging.ERROR, logger="protodiff.explore"):
        client = TestClient(open_app(str(tmp_path)))
    answer = client.get("/api/run")
    assert answer.status_code == 503 and answer.json()["error"].startswith(f"cannot explore {tmp_path}: ")
    assert any(f"cannot explore {tmp_path}" in record.getMessage() for record in caplog.records)
    assert client.get("/").status_code == 200  # the page loads and shows the message


def test_the_command_names_the_extra_when_it_is_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "starlette" else real(name, *a))
    result = CliRunner().invoke(main, ["explore", "runs/anything"])
    assert result.exit_code == 2 and "protodiff explore needs starlette: pip install -e '.[explore]'" in result.output


def test_the_command_edits_as_its_set_options_say(monkeypatch):
    """``--set`` takes ``explain edit``'s keys; a bad one is a one-line error before a run is loaded."""
    import uvicorn

    import protodiff.explore.app as app

    seen = {}
    monkeypatch.setattr(app, "open_app", lambda run, device, settings: seen.setdefault("settings", settings))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    result = CliRunner().invoke(main, ["explore", "runs/anything", "--set", "follow=regression", "--set", "guidance=1"])
    assert result.exit_code == 0, result.output
    assert (seen["settings"].follow, seen["settings"].guidance) == ("regression", 1.0)
    result = CliRunner().invoke(main, ["explore", "runs/anything", "--set", "follow=sideways"])
    assert result.exit_code == 2 and "follow: expected one of 'none', 'regression', 'mode', got 'sideways'" in result.output
    assert "Traceback" not in result.output


# -- in a real browser --------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(run):
    """The app over the tiny run with the default edit settings (as ``protodiff explore`` serves
    it), on a free port: its address and its explorer."""
    import uvicorn

    from protodiff.explore.app import create_app

    explorer = Explorer.open(run)
    server = uvicorn.Server(
        uvicorn.Config(create_app(explorer, gallery_images=1), host="127.0.0.1", port=_free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.config.port}/", explorer
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium); .ci/run installs it")
def test_in_a_real_browser_a_slider_changes_the_image_and_raises_its_dimension(served):
    from playwright.sync_api import sync_playwright

    url, explorer = served
    # The tiny model steers some dimensions better than others: move the one it raises most.
    picture = explorer.pick(0)
    _, high = explorer.slider_range()
    gains = [
        float(explorer.edit(picture.key, {str(j): float(high[j])}).after[j] - picture.vector[j])
        for j in range(len(explorer.names))
    ]
    j = int(np.argmax(gains))
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
            before = page.get_attribute("#edited", "src")
            slider = page.locator(f'.dim[data-index="{j}"] input[type=range]')
            slider.focus()
            slider.press("End")  # the keyboard's way to the slider's maximum
            page.wait_for_function(
                "document.body.dataset.edits !== '0' && document.body.dataset.state === 'ready'", timeout=60_000
            )
            own, after = page.evaluate(f"[state.picture.vector[{j}], state.edit.after[{j}]]")
            assert page.get_attribute("#edited", "src") != before, "the edited image did not change"
            assert after > own, f"dimension {j} read back {after} after the edit, {own} before"
            shown = page.text_content(f'.dim[data-index="{j}"] .after')
            assert shown == f"{after:.2f}" and "s on the server" in page.text_content("#timing")
            # A bad upload is a message on the page; the page goes on working.
            page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"}])
            page.wait_for_function("document.getElementById('message').textContent.includes('not a PNG or JPEG')")
            assert "error" in page.get_attribute("#message", "class")
            page.wait_for_function("document.querySelectorAll('#gallery .proto').length > 0", timeout=60_000)
        finally:
            browser.close()
    assert errors == []
    print(f"browser: slider {j} to its maximum: read back {own:.3f} -> {after:.3f}; image changed; bad upload shown")


def test_the_page_files_ship_with_the_package():
    import tomllib

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    shipped = project["tool"]["setuptools"]["package-data"]["protodiff.explore"]
    folder = Path(__file__).parent.parent / "protodiff" / "explore"
    assert sorted(shipped) == sorted(p.name for p in folder.glob("page.*"))
