"""``prototypes``: the distribution-aligned visualisation of Patronus' prototypes (the paper's method).

ProtoPNet shows a prototype as the training patch nearest to it. That is a patch the prototype
was *placed on*, not what it *does* to a generated image; Patronus shows the second. For prototype
j: take the plausible maximum of s_j over real images (a high quantile, not the maximum, which is
one outlier), set s_j to it in the activations of several real images (the others unchanged),
regenerate each from its own DDIM-inverted x_T, re-encode the result and crop the patch where
prototype j is now most active, through the encoder's exact receptive field. A prototype with a
concept shows the same mark in every column; one without shows whatever each image happened to
have. The nearest training patch (among the reference images) is drawn beside it for contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import Tensor

from protodiff import Registries, hookimpl
from protodiff.contracts.dataset import LabeledImages
from protodiff.contracts.explainer import Explainer, Explanation, flag
from protodiff.encoding import encode_split
from protodiff.explain.dimensions import dimension_index
from protodiff.explain.edit import EditSettings
from protodiff.figures import BACKGROUND, CELL_GAP, GROUP_GAP, INK, MARGIN, MIN_CELL, font, save_image, to_pil
from protodiff.model import ConditionedDiffusion
from protodiff.validation import at_least
from protodiff_patronus.conditioner import nearest_patch_boxes
from protodiff_patronus.contracts import Box, require_prototypes

BOX_COLOUR = (255, 0, 160)


def crop(images: Tensor, boxes: list[Box], size: int) -> Tensor:
    """Each image's box, resized to ``size`` x ``size`` (nearest: the pixels the encoder saw)."""
    return torch.stack(
        [
            F.interpolate(image[None, :, b.top : b.bottom, b.left : b.right].float(), size=(size, size), mode="nearest")[0]
            for image, b in zip(images, boxes)
        ]
    )


@torch.no_grad()
def _reencode(model: ConditionedDiffusion, images: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    parts = [model.encode(part) for part in images.split(chunk)]
    return torch.cat([p.vector for p in parts]).float(), torch.cat([p.maps for p in parts]).float()


class PrototypesExplainer(Explainer):
    """Each prototype turned up to its plausible maximum in real images, regenerated, its patch cropped (Patronus)."""

    @dataclass
    class Config(EditSettings):
        """Which prototypes, raised how far; the edit itself (sampler, guidance, start) as
        :class:`EditSettings` and ``protodiff explain edit`` make it."""

        prototypes: list[str] = flag("Show only these prototypes (names or indices; repeatable; default: all).")
        #: The plausible maximum of s_j: this quantile of s_j over the reference images.
        quantile: float = 0.99
        #: Reference images: the first this many of the training split (the quantile and the nearest patches).
        reference: int = 512
        #: Images generated or encoded per forward pass.
        batch_size: int = 64

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0 < self.quantile <= 1:
                raise ValueError("quantile must be in (0, 1]")
            at_least(1, reference=self.reference, batch_size=self.batch_size)

    def explain(
        self, model: ConditionedDiffusion, batch: Tensor, *, train: LabeledImages, generator: torch.Generator | None = None
    ) -> Explanation:
        c = self.config
        conditioner = require_prototypes(model, "explain prototypes")
        names = conditioner.names
        chosen = [dimension_index(name, names) for name in c.prototypes] or list(range(conditioner.dim))
        reference = encode_split(model, train, limit=c.reference, batch_size=c.batch_size, keep_maps=True)
        targets = torch.quantile(reference.vectors, c.quantile, dim=0)

        sampler = c.sampler.build(schedule=model.schedule)
        vectors = model.encode(batch.to(model.device)).vector.detach()
        x_T = c.starting_noise(model, batch, vectors, sampler, generator)
        p, n = len(chosen), len(batch)
        which = torch.tensor(chosen).repeat_interleave(n)  # prototype-major: item k is prototype which[k], image k % n
        rows = torch.arange(p * n)
        edited = vectors.repeat(p, 1)
        edited[rows, which] = targets[which].to(edited)
        coupling = c.coupling(reference.vectors, names)
        generated = c.edit_many(
            model, batch, edited, x_T, sampler=sampler, chunk=c.batch_size, coupling=coupling, generator=generator
        )
        after, maps = _reencode(model, generated, c.batch_size)
        boxes = [b[0] for b in nearest_patch_boxes(conditioner.encoder, maps[rows, which][:, None])]

        # ProtoPNet's view: the training patch nearest each prototype (smallest distance anywhere).
        ref_maps = reference.maps[:, chosen].flatten(2).amin(dim=2)  # (R, p)
        nearest = ref_maps.argmin(dim=0)
        ref_images = torch.stack([train[int(i)][0] for i in nearest])
        ref_boxes = [
            nearest_patch_boxes(conditioner.encoder, reference.maps[int(i), j][None, None])[0][0] for i, j in zip(nearest, chosen)
        ]

        size = batch.shape[-1]
        crops = crop(generated.cpu(), boxes, size)
        tensors = {
            "images": batch,
            "targets": targets,
            "regenerated": generated.reshape(p, n, *batch.shape[1:]),
            "crops": crops.reshape(p, n, *batch.shape[1:]),
            "before": vectors[:, chosen].T.contiguous(),
            "after": after[rows, which].reshape(p, n),
            "boxes": torch.tensor([[b.top, b.left, b.bottom, b.right] for b in boxes]).reshape(p, n, 4),
            "nearest_images": ref_images,
            "nearest_crops": crop(ref_images, ref_boxes, size),
        }
        meta = {
            "names": names,
            "quantile": c.quantile,
            "reference_images": len(reference.vectors),
            "prototypes": [
                {
                    "prototype": names[j],
                    "index": j,
                    "target": float(targets[j]),
                    "before": tensors["before"][k].tolist(),
                    "after": tensors["after"][k].tolist(),
                    "boxes": tensors["boxes"][k].tolist(),
                    "nearest": {
                        "reference_index": int(nearest[k]),
                        "distance": float(ref_maps[nearest[k], k]),
                        "box": [ref_boxes[k].top, ref_boxes[k].left, ref_boxes[k].bottom, ref_boxes[k].right],
                    },
                }
                for k, j in enumerate(chosen)
            ],
        }
        labels = [f"{names[j]} -> {float(targets[j]):.2f}" for j in chosen]
        return Explanation(
            "prototypes", tensors, meta, {"gallery.png": lambda path: _gallery(path, tensors, labels, boxes, ref_boxes)}
        )


def _boxed(image: Tensor, box: Box, scale: int) -> Image.Image:
    pil = to_pil(image, scale)
    ImageDraw.Draw(pil).rectangle(
        (box.left * scale, box.top * scale, box.right * scale - 1, box.bottom * scale - 1), outline=BOX_COLOUR, width=2
    )
    return pil


def _gallery(path: Path, tensors: dict[str, Tensor], labels: list[str], boxes: list[Box], ref_boxes: list[Box]) -> None:
    """Rows = prototypes; first the nearest training patch (ProtoPNet), then per image the
    regenerated image with the patch boxed beside its crop. The top row shows the real images."""
    images, regenerated, crops = tensors["images"].cpu(), tensors["regenerated"], tensors["crops"]
    p, n = regenerated.shape[:2]
    side = images.shape[-1]
    scale = max(1, -(-MIN_CELL // side))
    cell = side * scale
    pair = 2 * cell + CELL_GAP
    label_w, head_h = 150, 20
    width = 2 * MARGIN + label_w + (n + 1) * (pair + GROUP_GAP)
    height = 2 * MARGIN + head_h + (p + 1) * (cell + CELL_GAP)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x0, y0 = MARGIN + label_w, MARGIN + head_h

    def at(column: int, row: int, sub: int) -> tuple[int, int]:
        return x0 + column * (pair + GROUP_GAP) + sub * (cell + CELL_GAP), y0 + row * (cell + CELL_GAP)

    draw.text((x0 + pair // 2, MARGIN + head_h // 2), "nearest training patch", fill=INK, font=font(12), anchor="mm")
    for i in range(n):
        x, _ = at(i + 1, 0, 0)
        draw.text((x + pair // 2, MARGIN + head_h // 2), f"image {i}: regenerated | patch", fill=INK, font=font(12), anchor="mm")
        canvas.paste(to_pil(images[i], scale), at(i + 1, 0, 0))
    draw.text((MARGIN, y0 + cell // 2), "real images", fill=INK, font=font(13), anchor="lm")
    for k in range(p):
        draw.text((MARGIN, y0 + (k + 1) * (cell + CELL_GAP) + cell // 2), labels[k], fill=INK, font=font(13), anchor="lm")
        canvas.paste(_boxed(tensors["nearest_images"][k], ref_boxes[k], scale), at(0, k + 1, 0))
        canvas.paste(to_pil(tensors["nearest_crops"][k], scale), at(0, k + 1, 1))
        for i in range(n):
            canvas.paste(_boxed(regenerated[k, i], boxes[k * n + i], scale), at(i + 1, k + 1, 0))
            canvas.paste(to_pil(crops[k, i], scale), at(i + 1, k + 1, 1))
    save_image(canvas, path)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("prototypes", PrototypesExplainer)
