"""DF-RISE and DF-CAM: where in x_t a denoiser's noise prediction comes from, for any model.

Both follow captum's shape: ``DFRise(model).attribute(x_t, t=..., condition=...)`` and
``DFCam(model, layer="...").attribute(...)`` return one map per image, (B, H, W), at the input's
size. ``model`` is any :class:`~protodiff.model.ConditionedDiffusion` (Patronus, a baseline, a
plain DDPM, a stranger's plugin); both read the noise estimate through ``model.eps_fn``, so a
v-prediction model is explained in the same units as an eps one.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from protodiff.contracts.conditioner import Condition
from protodiff.contracts.sampler import Sampler, StepInfo
from protodiff.errors import ProtodiffError
from protodiff.model import ConditionedDiffusion

BORDERS = ("valid", "reflect")


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    coords = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_structure(
    x: Tensor, y: Tensor, *, window: int = 15, sigma: float = 1.5, c3: float = 0.03**2 / 2, border: str = "valid"
) -> Tensor:
    """SSIM's structure term (sigma_xy + C3) / (sigma_x sigma_y + C3), averaged over pixels and
    channels: one number per image of ``x`` (N, C, H, W) against ``y`` (N or 1 images). Local
    statistics under a Gaussian window (15, sigma 1.5) and C3 = (0.03)^2 / 2, as DF-RISE scores
    its masks (the window is cut to the image where the image is smaller). ``border="valid"``
    keeps only windows inside the image, as SSIM is usually computed; ``"reflect"`` pads by half a
    window first, so that pixels near the border weigh as much as the rest (at 32 px a valid
    15-pixel window leaves the outer ~5 pixels almost unweighted)."""
    if border not in BORDERS:
        raise ProtodiffError(f"SSIM border {border!r} is not one of {', '.join(BORDERS)}")
    channels, side = x.shape[1], min(window, x.shape[-2], x.shape[-1])
    kernel = _gaussian_window(side, sigma, channels, x)
    if border == "reflect":
        x, y = (F.pad(z, (side // 2,) * 4, mode="reflect") for z in (x, y))

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = (blur(x * x) - mu_x**2).clamp_min(0)
    var_y = (blur(y * y) - mu_y**2).clamp_min(0)
    cov = blur(x * y) - mu_x * mu_y
    return ((cov + c3) / (var_x.sqrt() * var_y.sqrt() + c3)).mean(dim=(1, 2, 3))


def rise_masks(
    n: int,
    height: int,
    width: int,
    *,
    cell: int,
    probability: float,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Tensor:
    """RISE's masks (Petsiuk et al. 2018): a coarse Bernoulli(``probability``) grid of ``cell``-pixel
    cells, upsampled bilinearly and shifted by a random offset below one cell, so that mask edges
    fall anywhere: (n, 1, height, width) in [0, 1]. One uniform draw per call, a row per mask (its
    grid, then its two offsets): the CPU generator's stream is sequential, so mask i is the same
    whether it is drawn in one call of n or in many smaller ones."""
    rows, cols = math.ceil(height / cell) + 1, math.ceil(width / cell) + 1
    uniform = torch.rand(n, rows * cols + 2, generator=generator)
    grids = (uniform[:, : rows * cols] < probability).float().view(n, 1, rows, cols)
    dy, dx = (uniform[:, rows * cols :] * cell).long().clamp_max(cell - 1).unbind(1)
    smooth = F.interpolate(grids, size=(rows * cell, cols * cell), mode="bilinear", align_corners=False)
    ys = (dy[:, None] + torch.arange(height))[:, :, None]  # (n, H, 1): each mask's own crop
    xs = (dx[:, None] + torch.arange(width))[:, None, :]  # (n, 1, W)
    return smooth[torch.arange(n)[:, None, None], 0, ys, xs][:, None].to(device)


def _timesteps(t: int, batch: int, device: torch.device) -> Tensor:
    return torch.full((batch,), int(t), dtype=torch.long, device=device)


def _repeat(condition: Condition | Tensor | None, times: int) -> Tensor | None:
    if condition is None:
        return None
    vector = condition.vector if isinstance(condition, Condition) else condition
    return vector.repeat_interleave(times, dim=0)


def _row(condition: Condition | Tensor | None, row: int, times: int) -> Tensor | None:
    """Image ``row``'s condition vector, repeated ``times``."""
    if condition is None:
        return None
    vector = condition.vector if isinstance(condition, Condition) else condition
    return vector[row : row + 1].expand(times, -1)


BASELINES = ("published", "mean", "coverage")


class DFRise:
    """DF-RISE: random masks over x_t, each scored by how much of the structure of the denoiser's
    noise prediction survives it (SSIM's structure term against the prediction from the whole x_t);
    the saliency of a pixel is the score-weighted sum of the masks that keep it, divided by N p.

    ``baseline`` says what is taken out of the scores before they weight the masks:

    - ``"published"``: nothing, sum_n s_n M_n / (N p) as published. It carries the pattern of how
      often this mask set happened to keep each pixel, times the mean score: the same on every image.
    - ``"mean"``: the mean score (the map becomes sum_n (s_n - mean s) M_n / (N p) + mean s, the
      published map less that pattern; same expectation).
    - ``"coverage"`` (default): each score's linear dependence on its mask's mean. A smooth mask
      rescales x_t locally and the structure term ignores scale, so a score says mostly how much
      of x_t the mask kept, not which part; the residuals of the score regressed on mask mean
      keep only the *which part*. The map is sum_n r_n M_n / (N p) + mean s.

    The forward passes are ``batch_size`` masked copies of one image at a time, the masks for a
    batch drawn in one call from one seeded generator and shared by every image: memory grows with
    ``batch_size``, never with ``num_masks`` or the number of images, and the maps are the same
    whatever ``batch_size`` is (the regression is kept as running sums).

    ``border`` is the structure term's (:func:`ssim_structure`): ``"reflect"`` (default) so that
    the image's outer pixels count in the scores, ``"valid"`` as published (on 32 px images the
    valid window leaves them out and the maps share one central blob).

    Why the defaults (``benchmarks/saliency.py``, shapes, t = 50, N = 500, 8 images): with
    ``coverage`` and ``reflect`` the maps of different images correlate 0.22-0.33 (0.98-0.99 with
    ``mean`` and ``valid``) and their insertion AUC beats deletion by 0.08-0.10 on a Patronus model
    and a plain DDPM, where random, smooth random and centre-prior maps score 0.00 +- 0.02.
    ``baseline="published", border="valid"`` is the published estimator."""

    def __init__(
        self,
        model: ConditionedDiffusion,
        *,
        num_masks: int = 500,
        probability: float = 0.5,
        cell: int = 4,
        batch_size: int = 50,
        seed: int = 0,
        baseline: str = "coverage",
        border: str = "reflect",
    ) -> None:
        if num_masks < 1 or batch_size < 1 or cell < 1 or not 0 < probability < 1:
            raise ProtodiffError("DF-RISE needs num_masks, batch_size and cell >= 1 and 0 < probability < 1")
        if baseline not in BASELINES:
            raise ProtodiffError(f"DF-RISE baseline {baseline!r} is not one of {', '.join(BASELINES)}")
        if border not in BORDERS:
            raise ProtodiffError(f"DF-RISE border {border!r} is not one of {', '.join(BORDERS)}")
        self.model, self.num_masks, self.probability = model, num_masks, probability
        self.cell, self.batch_size, self.seed, self.baseline = cell, batch_size, seed, baseline
        self.border = border

    @torch.inference_mode()
    def attribute(
        self,
        x_t: Tensor,
        *,
        t: int,
        condition: Condition | Tensor | None = None,
        generator: torch.Generator | None = None,
        score: Callable[[Tensor, int], Tensor] | None = None,
    ) -> Tensor:
        """Saliency maps (B, H, W) of the images ``x_t`` at timestep ``t`` under ``condition``.

        ``score(eps, row)`` scores a mask by something other than the whole prediction: given the
        noise predictions (n, C, H, W) of image ``row``'s n masked copies, it returns their (n,)
        scores (say, how strongly one attribute survives in the x0 they imply); None scores each by
        SSIM's structure term against the prediction from the whole x_t, as published."""
        model, (batch, _, height, width) = self.model, x_t.shape
        x_t = x_t.to(model.device)
        generator = generator or torch.Generator().manual_seed(self.seed)
        reference = model.eps_fn(condition, batch)(x_t, _timesteps(t, batch, model.device))
        # Running sums, per image b and mask n with score s and mask mean m:
        # sum s M, sum M, sum m M (maps) and sum s, sum s m (per image), sum m, sum m^2 (per mask set).
        weighted = torch.zeros(batch, height, width, device=model.device)
        coverage = torch.zeros(height, width, device=model.device)
        covered_by_mean = torch.zeros(height, width, device=model.device)
        score_sum = torch.zeros(batch, device=model.device)
        score_by_mean = torch.zeros(batch, device=model.device)
        mean_sum = mean_squares = 0.0
        for start in range(0, self.num_masks, self.batch_size):
            n = min(self.batch_size, self.num_masks - start)
            masks = rise_masks(
                n, height, width, cell=self.cell, probability=self.probability, generator=generator, device=model.device
            )
            predictions = (
                (row, model.eps_fn(_row(condition, row, n), n)(x_t[row : row + 1] * masks, _timesteps(t, n, model.device)))
                for row in range(batch)
            )
            scores = torch.stack(
                [
                    ssim_structure(eps, reference[row : row + 1], border=self.border) if score is None else score(eps, row)
                    for row, eps in predictions
                ]
            )  # (B, n)
            means = masks.mean(dim=(1, 2, 3))
            weighted += torch.einsum("bn,nhw->bhw", scores, masks[:, 0])
            coverage += masks[:, 0].sum(0)
            covered_by_mean += torch.einsum("n,nhw->hw", means, masks[:, 0])
            score_sum += scores.sum(1)
            score_by_mean += scores @ means
            mean_sum, mean_squares = mean_sum + means.sum().item(), mean_squares + (means**2).sum().item()
        count = self.num_masks
        mean_score = (score_sum / count)[:, None, None]
        if self.baseline == "published":
            return weighted / (count * self.probability)
        slope = torch.zeros(batch, 1, 1, device=model.device)
        if self.baseline == "coverage":  # least squares s = a + slope * m, per image
            spread = mean_squares - mean_sum**2 / count
            slope = ((score_by_mean - score_sum * mean_sum / count) / max(spread, 1e-12))[:, None, None]
        # sum_n (s_n - a - slope m_n) M_n with a = mean s - slope mean m; mean s added back.
        intercept = mean_score - slope * (mean_sum / count)
        residual = weighted - intercept * coverage - slope * covered_by_mean
        return residual / (count * self.probability) + mean_score


def layer_names(model: ConditionedDiffusion) -> dict[str, tuple[int, int, int]]:
    """Every block of the denoiser that outputs a feature map, with its (C, H, W) for one image
    of the model's size: the names :class:`DFCam` takes (found by one forward pass)."""
    shapes: dict[str, tuple[int, int, int]] = {}
    handles = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: (
                shapes.__setitem__(name, tuple(out.shape[1:])) if isinstance(out, Tensor) and out.dim() == 4 else None
            )
        )
        for name, module in model.denoiser.named_modules()
        if name
    ]
    try:
        x = torch.zeros(1, model.in_channels, model.image_size, model.image_size, device=model.device)
        vector = torch.zeros(1, model.conditioner.dim, device=model.device) if model.is_conditional else None
        with torch.inference_mode():
            model.net_fn(vector, 1)(x, _timesteps(0, 1, model.device))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def default_layer(model: ConditionedDiffusion) -> str:
    """The last block (in forward order) working at half the image's size: late enough in the
    network to carry what the prediction is made of, fine enough to place it."""
    half = [name for name, shape in layer_names(model).items() if shape[1] == model.image_size // 2]
    if not half:
        raise ProtodiffError("the denoiser has no block at half the image size: choose one with layer=...")
    return half[-1]


class DFCam:
    """DF-CAM: Grad-CAM (Selvaraju et al. 2017) on a named block of the denoiser. The target is the
    sum of the predicted noise, or of its part inside ``region`` (a (B, 1, H, W) or (H, W) weight):
    the block's channels are weighted by their mean gradient, summed, rectified and upsampled to
    the input's size. The hooks are removed after every call, also when it fails."""

    def __init__(self, model: ConditionedDiffusion, *, layer: str) -> None:
        modules = dict(model.denoiser.named_modules())
        if not layer or layer not in modules or layer not in layer_names(model):  # a container has no map of its own
            close = difflib.get_close_matches(layer, list(layer_names(model)), n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ProtodiffError(
                f"the denoiser has no block {layer!r} that outputs a feature map{hint} "
                "(protodiff_dfx.layer_names(model) lists them)"
            )
        self.model, self.layer, self.module = model, layer, modules[layer]

    def attribute(
        self,
        x_t: Tensor,
        *,
        t: int,
        condition: Condition | Tensor | None = None,
        region: Tensor | None = None,
        objective: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Class-activation maps (B, H, W), non-negative, of the images ``x_t`` at timestep ``t``.

        ``objective(eps)`` replaces the target: given the noise prediction (B, C, H, W) it returns
        one differentiable number per image (say, one attribute's score on the x0 it implies),
        whose gradient weighs the block's channels; ``region`` is ignored then."""
        model, (batch, _, height, width) = self.model, x_t.shape
        if condition is not None:  # explain the denoiser only: no gradient into the encoder
            condition = (condition.vector if isinstance(condition, Condition) else condition).detach()
        captured: dict[str, Tensor] = {}

        def keep(_module, _inputs, output: Tensor) -> None:
            output.retain_grad()
            captured["features"] = output

        handle = self.module.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                x = x_t.to(model.device).detach().requires_grad_(True)
                eps = model.eps_fn(condition, batch)(x, _timesteps(t, batch, model.device))
                if objective is not None:
                    target = objective(eps)
                else:
                    target = eps if region is None else eps * region.to(eps.device).expand_as(eps)
                target.sum().backward()
            features = captured["features"]
            weights = features.grad.mean(dim=(2, 3), keepdim=True)
            cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach()
        finally:
            handle.remove()
            model.zero_grad(set_to_none=True)
        return F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)[:, 0]


@torch.inference_mode()
def insertion_deletion(
    model: ConditionedDiffusion,
    x_t: Tensor,
    maps: Tensor,
    *,
    t: int,
    condition: Condition | Tensor | None = None,
    steps: int = 16,
) -> dict[str, Tensor]:
    """How faithful saliency ``maps`` (B, H, W) are to the denoiser, per image (RISE's protocol on
    the noise prediction): *deletion* zeroes the pixels of x_t from the most salient down and
    *insertion* restores them onto a zero x_t, in ``steps`` equal shares; at each share the
    prediction is compared with the one from the whole x_t by cosine similarity, and the area
    under that curve is returned. A faithful map has a low deletion and a high insertion AUC.
    (Not by SSIM's structure term: a prediction that goes flat where pixels were deleted has no
    variance there, and the term scores a flat window as a perfect match.)"""
    model_device = model.device
    batch, _, height, width = x_t.shape
    x_t, maps = x_t.to(model_device), maps.to(model_device)
    reference = model.eps_fn(condition, batch)(x_t, _timesteps(t, batch, model_device))
    rank = maps.flatten(1).argsort(dim=1, descending=True).argsort(dim=1).view(batch, 1, height, width)
    shares = torch.linspace(0, 1, steps + 1, device=model_device)
    curves = {}
    for name, keep_top in (("deletion", False), ("insertion", True)):
        top = rank[:, None] < (shares * height * width).round()[None, :, None, None, None]  # (B, S, 1, H, W)
        keep = top if keep_top else ~top
        inputs = (x_t[:, None] * keep).flatten(0, 1)
        eps = model.eps_fn(_repeat(condition, steps + 1), batch * (steps + 1))(inputs, _timesteps(t, len(inputs), model_device))
        references = reference.repeat_interleave(steps + 1, dim=0)
        scores = F.cosine_similarity(eps.flatten(1), references.flatten(1), dim=1).view(batch, steps + 1)
        curves[name] = torch.trapezoid(scores, shares, dim=1)
    return curves


@dataclass
class TrajectoryExplanation:
    """One explanation per chosen step of a sampling walk: its timestep, x_t, x0_hat and map."""

    timesteps: list[int]
    x_t: Tensor  # (S, B, C, H, W)
    x0_hat: Tensor  # (S, B, C, H, W)
    maps: Tensor  # (S, B, H, W)


def along_trajectory(
    tool: DFRise | DFCam,
    model: ConditionedDiffusion,
    *,
    x_T: Tensor,
    condition: Condition | Tensor | None = None,
    sampler: Sampler | None = None,
    points: int = 5,
) -> TrajectoryExplanation:
    """Explain one sampling walk at ``points`` of its steps, evenly spread from the first to the
    last: the walk is run once, the sampler's callback keeps x_t and x0_hat at those steps (no
    copied sampling loop), and ``tool`` explains each kept x_t at its own timestep."""
    sampler = sampler or model.sampler()
    steps = sampler.timesteps()
    chosen = sorted({round(i * (len(steps) - 1) / max(points - 1, 1)) for i in range(points)})
    kept: dict[int, tuple[int, Tensor, Tensor]] = {}

    def keep(info: StepInfo) -> None:
        if info.index in chosen:
            kept[info.index] = (info.t, info.x_t.clone(), info.x0_hat.clone())

    model.sample(condition=condition, x_T=x_T, sampler=sampler, callback=keep)
    timesteps = [kept[i][0] for i in chosen]
    x_t = torch.stack([kept[i][1] for i in chosen])  # stacked outside inference mode: ordinary tensors
    maps = torch.stack([tool.attribute(x, t=t, condition=condition) for t, x in zip(timesteps, x_t)])
    return TrajectoryExplanation(timesteps, x_t, torch.stack([kept[i][2] for i in chosen]), maps)
