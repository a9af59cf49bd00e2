"""The terms that pull InfoDiffusion's latents towards the prior N(0, I).

Both follow isjakewong/InfoDiffusion (``utils.py`` ``compute_kernel``/``compute_mmd``, ``models.py``
``InfoDiff.loss_fn``), with one deliberate change to the KL term, noted there.
"""

from __future__ import annotations

from torch import Tensor


def gaussian_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x_i, y_j) = exp(-|x_i - y_j|^2 / D^2) for all pairs (N, M): InfoVAE's kernel as InfoDiffusion
    writes it, exp(-mean_d (x - y)^2 / D), i.e. a bandwidth that grows with the dimension D."""
    dim = x.shape[1]
    return (-(x[:, None, :] - y[None, :, :]).square().mean(2) / dim).exp()


def mmd(x: Tensor, y: Tensor) -> Tensor:
    """The (biased, all-pairs) squared maximum mean discrepancy between samples ``x`` and ``y``:
    mean k(x, x') + mean k(y, y') - 2 mean k(x, y); 0 for identical samples."""
    return gaussian_kernel(x, x).mean() + gaussian_kernel(y, y).mean() - 2 * gaussian_kernel(x, y).mean()


def gaussian_kl(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over dimensions and averaged over the batch.

    The published code sums over the batch as well, so its weight scales with the batch size (and
    would change with the number of DDP ranks); averaging keeps a weight meaningful on its own.
    A published weight w corresponds to w x batch size here.
    """
    return (-0.5 * (1 + log_var - mean.square() - log_var.exp()).sum(1)).mean()
