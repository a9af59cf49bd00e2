"""How the dimensions of a condition vector move together over real images, and edits that respect it.

Raising one prototype and holding every other fixed asks the denoiser for a vector no real image
has when the concept is carried by several dimensions at once: a dark background lowers one
"light background" prototype a lot and four others a little, and with those four still saying
"light" the denoiser keeps the background light. :class:`Coupling` fits the mean and covariance
of the vectors of real images and moves the dimensions an edit did *not* set to their conditional
mean given the ones it did (a Gaussian model of s):

    s'_R = s_R + C_RJ C_JJ^-1 (s'_J - s_J)

J the edited dimensions, R the rest. Prototypes that fire together move together, those that
exclude the edited one move away, and a dimension unrelated to it stays where it was. It needs no
labels: only the vectors of images of the training distribution. The edit's *guidance*
(:meth:`ConditionedDiffusion.edit_net_fn <protodiff.model.ConditionedDiffusion.edit_net_fn>`) is
then applied to the edited dimensions alone: it amplifies the difference between the followed
vector and the same vector with the edited dimensions at their old values, so the followers are
context and are not amplified themselves (docs/steering.md measures both).

A coupling may also be *given* dimensions: the regression is then on the edited dimensions and
those together, with the given ones held at their values. A follower that moves with the edited
prototype only because, in the data, it comes with another concept (a warm cast is mostly seen on
a light background, so a plain regression lightens the background with it) stays where it is
when that concept's prototype is given; those that move with the edited one whatever the other
concept does still follow.

How far to raise the edited dimension can be read the same way (:func:`local_quantile`): its
plausible maximum over all real images is where the images that have the most of its concept put it
(a warm prototype's is a warm image with a light background), and on an image unlike those
(a dark one) that value asks for the other concept too. Its maximum over the real images nearest
the image in the given dimensions (those that read like it on the other concepts) asks for less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from protodiff.errors import ProtodiffError

#: What the dimensions an edit does not set do: ``none`` holds them, ``regression`` follows (:class:`Coupling`).
Follow = Literal["none", "regression"]
FOLLOW: tuple[Follow, ...] = ("none", "regression")

#: Added to the diagonal of C_JJ (relative to its mean variance) so a solve over near-duplicate
#: dimensions stays finite.
RIDGE = 1e-4


@dataclass(frozen=True)
class Coupling:
    """The covariance (K, K) of a condition's dimensions over real images, and the dimensions the
    followers are regressed on besides the edited ones, held (see the module)."""

    covariance: Tensor
    given: tuple[int, ...] = ()

    @classmethod
    def fit(cls, reference: Tensor, given: tuple[int, ...] = ()) -> Coupling:
        """From the condition vectors (N, K) of N >= 2 real images."""
        if reference.dim() != 2 or len(reference) < 2:
            raise ProtodiffError(
                f"a coupling needs the condition vectors of at least 2 real images as (N, K), got shape {tuple(reference.shape)}"
            )
        k = reference.shape[1]
        if any(not 0 <= g < k for g in given):
            raise ProtodiffError(f"given dimensions {list(given)} are not all among the condition's {k}")
        return cls(torch.cov(reference.detach().float().T).reshape(k, k), tuple(sorted(set(given))))

    def follow(self, vectors: Tensor, edited: Tensor) -> tuple[Tensor, Tensor]:
        """``edited`` (B, K) with the dimensions each row did not change (against ``vectors``) moved
        to their conditional mean, and the *context* of each row: the followed vector with the
        changed dimensions back at their values in ``vectors`` (what guidance amplifies away from).
        Rows that change nothing come back unchanged; the given dimensions an edit does not set
        keep their values."""
        if vectors.shape != edited.shape or vectors.shape[-1] != len(self.covariance):
            raise ProtodiffError(
                f"follow: vectors {tuple(vectors.shape)} and edits {tuple(edited.shape)} must both be (B, {len(self.covariance)})"
            )
        covariance = self.covariance.to(vectors.device)
        changed = edited != vectors
        followed, context = edited.clone(), vectors.clone()
        for pattern in torch.unique(changed, dim=0):
            if not pattern.any():
                continue
            rows = (changed == pattern).all(dim=1)
            j = pattern.nonzero().flatten()
            held = torch.tensor([g for g in self.given if not pattern[g]], dtype=torch.long, device=j.device)
            on = torch.cat([j, held])  # the regressors: the edited dimensions, then the given ones
            c_on = covariance[on][:, on]
            c_on = c_on + RIDGE * c_on.diagonal().mean().clamp_min(1e-12) * torch.eye(len(on), device=c_on.device)
            slopes = torch.linalg.solve(c_on, covariance[on]).T[:, : len(j)]  # (K, |J|): each dimension on the edited ones
            delta = edited[rows][:, j] - vectors[rows][:, j]
            moved = vectors[rows] + delta @ slopes.T
            moved[:, held] = vectors[rows][:, held]
            moved[:, j] = edited[rows][:, j]
            followed[rows] = moved
            context[rows] = moved.clone()
            context[rows.nonzero().flatten()[:, None], j[None]] = vectors[rows][:, j]
        return followed, context


def check_follow(follow: str) -> None:
    """A one-line error unless ``follow`` is one of :data:`FOLLOW` (every edit's config checks it)."""
    if follow not in FOLLOW:
        raise ValueError(f"follow must be {' or '.join(repr(f) for f in FOLLOW)}, got {follow!r}")


def follow_or_hold(coupling: Coupling | None, vectors: Tensor, edited: Tensor) -> tuple[Tensor, Tensor]:
    """``edited`` as :meth:`Coupling.follow` moves it, with its context; without a coupling (the
    dimensions held) ``edited`` itself, its context ``vectors``, the unedited condition."""
    return (edited, vectors) if coupling is None else coupling.follow(vectors, edited)


def coupling_for(follow: str, reference: Tensor, given: tuple[int, ...] = ()) -> Coupling | None:
    """What an edit with this ``follow`` setting moves the other dimensions by: a coupling fitted on
    the ``reference`` vectors for ``regression`` (regressed on the ``given`` dimensions too), None
    (they are held) for ``none``."""
    check_follow(follow)
    return Coupling.fit(reference, given) if follow == "regression" else None


def check_neighbours(neighbours: int | None, given: Sequence[str]) -> None:
    """A one-line error unless ``neighbours`` (a config's local maximum) is unset, or at least 2 with
    ``given`` dimensions to find the neighbours by."""
    if neighbours is None:
        return
    if neighbours < 2:
        raise ValueError(f"neighbours must be at least 2, got {neighbours}")
    if not given:
        raise ValueError(
            "neighbours takes a dimension's maximum among the images nearest in the given dimensions; "
            "name them with --set given=[...] (protodiff names RUN --detect JUDGE prints them per attribute)"
        )


def local_quantile(
    reference: Tensor, vectors: Tensor, dimension: int, given: Sequence[int], neighbours: int, quantile: float = 1.0
) -> Tensor:
    """(N,) for each of ``vectors`` (N, K), the ``quantile`` of ``dimension`` over the ``neighbours``
    ``reference`` vectors (real images) nearest it in the ``given`` dimensions other than
    ``dimension`` (Euclidean, each standardised over the reference): how far the dimension goes
    among images that read like this one on the other concepts (see the module)."""
    on = [g for g in given if g != dimension]
    if not on:
        raise ProtodiffError(
            "a local maximum is taken among the images nearest in the given dimensions; "
            f"give at least one besides {dimension} (--set given=[...])"
        )
    if not 2 <= neighbours <= len(reference):
        raise ProtodiffError(f"neighbours must be between 2 and the {len(reference)} reference images, got {neighbours}")
    reference = reference.detach().float().to(vectors.device)
    known = reference[:, on]
    centre, spread = known.mean(dim=0), known.std(dim=0).clamp_min(1e-6)
    distances = torch.cdist((vectors[:, on].float() - centre) / spread, (known - centre) / spread)
    nearest = reference[:, dimension][distances.topk(neighbours, dim=1, largest=False).indices]  # (N, neighbours)
    return torch.quantile(nearest, quantile, dim=1)
