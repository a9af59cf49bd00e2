"""Figures a person can read: labelled image grids, the training curve, and a one-page summary.

Datasets here are small (16-64 px), so every grid shows each image at least :data:`MIN_CELL` pixels
wide, upscaled by an integer factor with nearest-neighbour (pixels stay pixels, nothing is
smoothed that the model did not draw), and says what each column is: ``real`` next to
``from condition``, for instance. Every file is written atomically.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from protodiff.io import write_file

if TYPE_CHECKING:
    from protodiff.contracts.sampler import Sampler
    from protodiff.model import ConditionedDiffusion

#: The smallest width, in pixels, an image is shown at.
MIN_CELL = 96
#: Pixels between the cells of a group, between groups, and around the figure.
CELL_GAP, GROUP_GAP, MARGIN = 2, 10, 8
BACKGROUND, INK = (255, 255, 255), (40, 40, 40)
#: Height of one line of a column label.
LABEL_LINE = 14


def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font: the same on every machine, nothing to install."""
    return ImageFont.load_default(size=size)


def text_width(text: str, size: int) -> int:
    return math.ceil(font(size).getlength(text))


def to_pil(image: Tensor, scale: int) -> Image.Image:
    """One (C, H, W) image in [-1, 1] as an RGB PIL image, ``scale`` times larger (nearest)."""
    array = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    array = array.expand(3, -1, -1) if array.shape[0] == 1 else array
    pil = Image.fromarray(array.permute(1, 2, 0).numpy(), "RGB")
    return pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)


def wrap_label(label: str, width: int, size: int = 13) -> list[str]:
    """``label`` broken into lines no wider than ``width`` pixels at font ``size``, at spaces (a
    single word wider than that keeps its own line: the grid widens its cells for it)."""
    lines: list[str] = []
    for word in label.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def image_grid(columns: Sequence[tuple[str, Tensor]], *, per_row: int | None = None, title: str | None = None) -> Image.Image:
    """A grid of labelled image columns.

    ``columns`` are (label, (N, C, H, W) images in [-1, 1]) with the same N: item ``i`` of every
    column is shown side by side as one group (``real`` | ``from condition``), each cell under its
    column's label, wrapped onto as many lines as it needs so that no two labels touch;
    ``per_row`` groups make a row (default: about square). A single unlabelled column is a plain
    grid. ``title`` is written above everything.
    """
    if not columns or any(len(images) != len(columns[0][1]) or images.dim() != 4 for _, images in columns):
        raise ValueError("expected one or more (label, (N, C, H, W) images) columns of the same length")
    count, (height, width) = len(columns[0][1]), columns[0][1].shape[-2:]
    if count == 0:
        raise ValueError("nothing to show: the columns are empty")
    scale = max(1, math.ceil(MIN_CELL / min(height, width)))
    image_w, cell_h = width * scale, height * scale
    labels = [wrap_label(label, image_w) for label, _ in columns]
    longest_word = max((text_width(line, 13) for lines in labels for line in lines), default=0)
    cell_w = max(image_w, longest_word + 4)  # a word wider than an image widens every cell
    per_row = per_row or max(1, round(math.sqrt(count)))
    rows = math.ceil(count / per_row)
    group_w = len(columns) * cell_w + (len(columns) - 1) * CELL_GAP
    label_h = LABEL_LINE * max(len(lines) for lines in labels) + 4 if any(labels) else 0
    title_h = 24 if title else 0
    width = max(per_row * group_w + (per_row - 1) * GROUP_GAP, text_width(title or "", 16))
    height = title_h + rows * (label_h + cell_h) + (rows - 1) * GROUP_GAP
    canvas = Image.new("RGB", (2 * MARGIN + width, 2 * MARGIN + height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((MARGIN, MARGIN), title, fill=INK, font=font(16))
    for i in range(count):
        x0 = MARGIN + (i % per_row) * (group_w + GROUP_GAP)
        y0 = MARGIN + title_h + (i // per_row) * (label_h + cell_h + GROUP_GAP)
        for j, (_, images) in enumerate(columns):
            x = x0 + j * (cell_w + CELL_GAP)
            for k, line in enumerate(labels[j]):
                draw.text(
                    (x + cell_w // 2, y0 + 2 + k * LABEL_LINE + LABEL_LINE // 2), line, fill=INK, font=font(13), anchor="mm"
                )
            canvas.paste(to_pil(images[i], scale), (x + (cell_w - image_w) // 2, y0 + label_h))
    return canvas


def save_image(image: Image.Image, path: str | Path) -> Path:
    return write_file(path, lambda p: image.save(p, format="png"))


def save_image_grid(
    path: str | Path, columns: Sequence[tuple[str, Tensor]], *, per_row: int | None = None, title: str | None = None
) -> Path:
    """:func:`image_grid` written as a PNG."""
    return save_image(image_grid(columns, per_row=per_row, title=title), path)


def regenerations(
    model: ConditionedDiffusion,
    images: Tensor,
    *,
    sampler: Sampler,
    seed: int,
    noises: int = 1,
    invert: bool = False,
    progress: bool = False,
) -> list[tuple[str, Tensor]]:
    """Labelled columns for :func:`image_grid`: the ``real`` images, their regeneration from their
    condition alone under ``noises`` fresh noises (``from condition``; noise ``k`` drawn from
    ``seed + k``), and with ``invert`` from their inversion (``from inversion``: a near-exact round
    trip, stochastic samplers drawing from ``seed``)."""
    columns = [("real", images.cpu())]
    for k in range(noises):
        label = "from condition" if noises == 1 else f"from condition, noise {k}"
        generator = torch.Generator().manual_seed(seed + k)
        again = model.reconstruct(images, sampler=sampler, invert=False, generator=generator, progress=progress)
        columns.append((label, again.cpu()))
    if invert:
        generator = torch.Generator().manual_seed(seed)
        again = model.reconstruct(images, sampler=sampler, invert=True, generator=generator, progress=progress)
        columns.append(("from inversion", again.cpu()))
    return columns


def regeneration_grid(
    model: ConditionedDiffusion,
    images: Tensor,
    *,
    sampler: Sampler,
    seed: int,
    noises: int = 1,
    invert: bool = False,
    per_row: int | None = None,
    title: str | None = None,
    progress: bool = False,
) -> Image.Image:
    """Real images beside their regenerations (:func:`regenerations`), each column labelled: the one
    figure ``protodiff sample --condition-on``, ``protodiff summary`` and a bench cell draw."""
    columns = regenerations(model, images, sampler=sampler, seed=seed, noises=noises, invert=invert, progress=progress)
    return image_grid(columns, per_row=per_row, title=title)


def read_log(path: str | Path) -> list[dict]:
    """The records of a run's ``log.jsonl``. A line that is not a JSON record is skipped: the log
    is appended to as training goes, so a run killed mid-write leaves a torn line (and a resumed
    run appends after it), and a figure must not fail over one lost record."""
    lines = Path(path).read_text(errors="replace").splitlines() if Path(path).exists() else []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def training_curve(log_path: str | Path, key: str = "loss") -> Image.Image | None:
    """``key`` against ``step`` from a run's ``log.jsonl``, log scale (None if nothing was logged)."""
    records = [r for r in read_log(log_path) if key in r]
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    try:
        ax.plot([r["step"] for r in records], [r[key] for r in records], lw=1.2)
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def plot_training_curve(log_path: str | Path, out_path: str | Path, key: str = "loss") -> Path | None:
    """Write :func:`training_curve` as a PNG (None if nothing was logged)."""
    curve = training_curve(log_path, key)
    return None if curve is None else save_image(curve, out_path)


def summary_figure(title: str, panels: Sequence[tuple[str, Image.Image]]) -> Image.Image:
    """Panels side by side, each under its caption, below a title line: one page to open first."""
    caption_h, title_h, gap = 26, 34, 24
    width = max(sum(max(p.width, text_width(c, 15)) for c, p in panels) + gap * (len(panels) - 1), text_width(title, 18))
    height = title_h + caption_h + max(p.height for _, p in panels)
    canvas = Image.new("RGB", (2 * MARGIN + width, 2 * MARGIN + height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN), title, fill=INK, font=font(18))
    x = MARGIN
    for caption, panel in panels:
        draw.text((x, MARGIN + title_h), caption, fill=INK, font=font(15))
        canvas.paste(panel, (x, MARGIN + title_h + caption_h))
        x += max(panel.width, text_width(caption, 15)) + gap
    return canvas


def heat_over(images: Tensor, maps: Tensor) -> Tensor:
    """``maps`` (N, H, W), each scaled to its own [min, max], as a colour map over grey ``images``
    in [-1, 1]: where in each image its explanation lies."""
    from matplotlib import colormaps

    low = maps.flatten(1).min(1).values[:, None, None]
    high = maps.flatten(1).max(1).values[:, None, None]
    scaled = ((maps - low) / (high - low).clamp_min(1e-12)).cpu()
    heat = torch.from_numpy(colormaps["inferno"](scaled.numpy())[..., :3]).permute(0, 3, 1, 2).float() * 2 - 1
    grey = images.detach().cpu().float().mean(dim=1, keepdim=True).expand_as(heat)
    return 0.4 * grey + 0.6 * heat
