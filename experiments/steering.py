"""Steering: does raising one condition dimension add its attribute? Levers measured side by side.

For each run and lever, on the test split:

- the dimension chosen for each attribute three ways: the *detector* (the dimension whose value
  best separates images with the attribute from those without, AUROC on 1000 test images), the
  *editor* (the dimension whose raise adds the attribute most often on ``--calibrate`` images) and
  the *clean editor* (on those images, the least leaky of the dimensions that meet the target,
  success >= 0.8 with leakage <= 0.1; else the best success minus leakage);
- ``success``: of the ``--images`` evaluation images that lack the attribute (by the judge, on
  their unedited regeneration), the share that have it after the edit;
- ``leakage``: over those images, the mean share of the other attributes that flip;
- the strongest positive cell of the effect matrix (every dimension raised, the calibration
  images): what the best edit does on average.

A lever changes only how the edit is made, on the same trained model:

``plain``         regenerate from the inverted x_T with the dimension set to its plausible maximum
                  (the 1.0 quantile of its values over 256 test images), as ``protodiff explain edit``;
``guide<w>``      the same, with the edit's effect amplified: net(s') + (w - 1) (net(s') - net(s)),
                  classifier-free guidance applied only to the difference the edit makes;
``extrap<k>``     the dimension set k times as far above its median as its maximum is;
``partial<t>``    q-sample the image to step t with fresh noise, then denoise under s' (SDEdit); the
                  unedited reference is denoised from the same x_t under s;
``group``         raise every dimension whose activations correlate (> 0.5 over the test images)
                  with the chosen one, each to its own maximum: the concept group;
``cfg<w>``        classifier-free guidance against the null condition instead of the unedited one:
                  net(s') + (w - 1) (net(s') - net(null)), null the mean vector over 256 test images
                  (what a model trained with condition dropout saw in place of a dropped condition);
``regress``       the other dimensions follow the edited one by their linear regression on it over
                  the test images: s'_k = s_k + beta_kj (s'_j - s_j), beta_kj = cov(k, j) / var(j);
                  prototypes that fire together move together, those that exclude it move away
                  (the conditional mean of s given the new s_j; a weighted concept group);
``focus``         with ``regress``, guidance amplifies only the edited dimension's own difference:
                  net(s') + (w - 1) (net(s') - net(s_f)), s_f the followed vector with the edited
                  dimension back at its original value (the followers are context, not amplified);
``scale``         with ``regress``, each other dimension keeps its place *within its spread* as well as
                  following the mean: s'_k = m_k(s'_j) + (d_k(s'_j) / d_k(s_j)) (s_k - m_k(s_j)), m_k the
                  regression line and d_k the mean absolute residual, itself regressed on s_j (a
                  location-scale model fitted on all test images): a mark detector whose "present"
                  and "absent" values draw together on dark images is compressed with them, not
                  only shifted;
``sparse<r>``     with ``regress``, only the dimensions whose activations correlate with the edited
                  one by more than r in absolute value follow it; the rest are held;
``transport<k>``  the other dimensions keep their *quantile*: each is moved to the value that has the
                  same rank among the test images nearest the edited dimension's new value as it had
                  among those nearest its old value; a detector whose scale depends on the
                  background keeps saying "present" or "absent" (conditional quantile matching;
                  k neighbours on each side, 100 by default); a dimension whose distribution is the
                  same in both neighbourhoods (Kolmogorov-Smirnov at 1%) is held;
``match<k>``      the other dimensions move by a *matched* difference: among the test images whose
                  edited dimension is nearest its new value, the k that read most like the image
                  elsewhere, and likewise among those nearest its old value; each other dimension
                  moves by the difference of the two groups' means. "Elsewhere" is each other
                  dimension's residual after its regression on the edited one (standardised
                  Euclidean distance): what the edit moves is not matched on, what it leaves (the
                  marks) is. The followers move as they do between images that read alike
                  elsewhere, not by ``regress``'s average slope (a nearest-neighbour matching
                  estimate; 100 test images on each side, k = 5 by default);
``correct<n>``    n closed-loop corrections: encode the edited image, add to the condition what the
                  encoder reads short of the edit's target vector (every dimension), regenerate;
``until<t>``      the edit only while the sampler is at timestep t or above; below it the image's own
                  condition (the edit off): if a background were decided at high noise and small
                  marks drawn late, the marks would be drawn from the image's own reading;
``hold<t>``       as ``until``, but below t the edited dimension keeps its new value and only the
                  followers go back to their own values (with ``regress``);
``from<t>``       the reverse of ``until``: the image's own condition while the sampler is above
                  timestep t, the edit from t down (what is laid out early is the image's own);
``split<s>``      the edit's low frequencies, the image's own high ones: the denoiser's output is
                  blur(net(s')) + net(s) - blur(net(s)), a Gaussian blur of s pixels; a change of
                  every pixel (a background) comes from the edit, the edges of small marks from
                  the image's own condition;
``inject<t>``     structure from the image's own regeneration (plug-and-play feature injection): the
                  unedited regeneration and the edit are sampled side by side, and while the
                  timestep is t or above the edit's features after the first decoder block at half
                  resolution are replaced by the unedited one's; the condition can then change
                  what the later blocks draw (a colour, a background) but not where things are;
``keepmarks``     with ``regress``, the dimensions that detect a mark (AUROC >= 0.9 for one of the five
                  marks on the test images, by their labels) are held and the rest follow: an
                  oracle for diagnosis (it reads labels), asking whether the leak of a followed edit
                  is the mark detectors it moves;
``given``         with ``regress``, the followers move by their regression on the edited dimension
                  *with the other attributes' detectors held* (``--set given=[...]`` of an edit,
                  these detectors given): the partial slopes of a multiple
                  regression on the edited dimension and, for every attribute but the one it detects
                  best (the highest AUROC), the dimension other than it that separates that attribute
                  best either way round (|AUROC - 0.5|, by the labels); a follower that moves
                  with the edited one only through another attribute (a warm cast that comes with a
                  light background in the data) stays, and those detectors are held;
``local<k>``      with ``given``, the edited dimension is raised to its maximum over the k test images
                  (100 by default) nearest the image in the given dimensions, not over all of them:
                  to where the prototype goes on images that read like this one on the other
                  attributes (a warm prototype's maximum over all images is a warm *light* image's;
                  on a dark one the cast reads lower);
``detgroup``      the edited dimension with its *detection group*: the dimensions that, with it,
                  detect the attribute it separates best (the library's ``detection_group``, on the
                  labels; what ``names --detect`` edits), each raised to its own maximum (two
                  triangle prototypes, each on different triangles, raised together);
``amount``        each dimension raised by each of ``AMOUNTS`` (as ``extrap``) on the calibration
                  images, and the editors chosen among (dimension, amount) pairs: how far to raise
                  is chosen with the dimension, on the same images (a prototype whose maximum is
                  reached only with another attribute present, a warm cast on a light background,
                  adds both there);
``mode``          the image's whole condition moved by the difference between the test images in the
                  dimension's extreme *mode* and the rest: a Gaussian mixture fitted to the
                  dimension's values over the test images (1-5 components, chosen by BIC), its
                  component with the highest mean (lowest with ``lower``) taken as "the concept is
                  there", and every image moved by the mean vector of those images minus the mean
                  vector of the others (a difference in means whose split is read off one
                  prototype, not off labels; the edited dimension is not set to a value);
``lower``         set the dimension to its plausible *minimum* instead (the 0.0 quantile): the edit
                  for an attribute that is the absence of what a prototype detects (a dark
                  background is "no light patch anywhere");
levers combine with ``+`` (``partial600+guide3``).

Reproduces: the tables of docs/steering.md. It measured the levers that ``model.edit`` and
``protodiff explain edit`` now offer (``--set guidance=W``, ``--set start=T``). Runs on the
``shapes`` attributes; prints each lever's success/leakage and appends one JSON object per run and
lever to ``OUT/results.jsonl``::

    python experiments/steering.py RUN [RUN ...] --classifier JUDGE --levers plain,guide3 [--out runs/steer]
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from protodiff.explain.coupling import Coupling, ModeShift, local_quantile
from protodiff.provenance import code_version

#: The amounts (``extrap`` values) among which the ``amount`` lever's calibration chooses.
AMOUNTS = (0.5, 0.7, 1.0, 1.5)
#: Test images on each side of a ``transport`` edit (the old value's neighbours and the new one's).
NEIGHBOURS = 100
#: Test images over which the ``local`` lever takes an edited dimension's maximum (those nearest the
#: image in the given dimensions): a tenth of the 1000.
LOCAL = 100
#: Images averaged on each side of a ``match`` edit (those nearest the edited image elsewhere).
MATCHED = 5
#: Where ``inject`` copies the unedited regeneration's features: (decoder level, block), the first
#: block at half resolution, 16 of 32 pixels (plug-and-play injects at 16 of 64; a quarter here, 8
#: pixels, would be coarser than a mark).
INJECT_AT = (1, 0)
#: The two-sample Kolmogorov-Smirnov statistic's critical value at 1%, times sqrt(2 / count).
KS_1PC = 1.63

ATTRS_SHORT = {
    "red_square": "red",
    "blue_disc": "blue",
    "green_triangle": "grn",
    "yellow_cross": "yel",
    "checker_patch": "chk",
    "dark_bg": "dark",
    "warm_cast": "warm",
    "gradient": "grad",
}


#: Levers that switch a mode on: the name, and the field of :class:`Lever` it sets.
FLAGS = {
    "group": "group",
    "lower": "lower",
    "regress": "regress",
    "focus": "focus",
    "scale": "scale",
    "keepmarks": "keep_marks",
    "mode": "mode",
    "given": "given",
    "amount": "amount",
    "detgroup": "detection_group",
}
#: Levers that take a number (``guide2``): the name, and the field it sets, the number's type and
#: the value a bare name takes (None: the number is required).
NUMBERS: dict[str, tuple[str, type, int | None]] = {
    "guide": ("guide", float, None),
    "extrap": ("extrap", float, None),
    "sparse": ("sparse", float, None),
    "cfg": ("null_guide", float, None),
    "split": ("split", float, None),
    "partial": ("partial", int, None),
    "correct": ("correct", int, None),
    "until": ("until", int, None),
    "from": ("from_", int, None),
    "inject": ("inject", int, None),
    "transport": ("transport", int, NEIGHBOURS),
    "match": ("match", int, MATCHED),
    "local": ("local", int, LOCAL),
}


@dataclass
class Lever:
    guide: float = 1.0
    extrap: float = 1.0
    partial: int | None = None
    group: bool = False
    lower: bool = False
    regress: bool = False
    focus: bool = False
    sparse: float | None = None
    transport: int | None = None
    match: int | None = None
    null_guide: float | None = None
    correct: int = 0
    until: int | None = None
    scale: bool = False
    keep_marks: bool = False
    hold: bool = False
    from_: int | None = None  # the ``from`` lever (a keyword)
    split: float | None = None
    inject: int | None = None
    mode: bool = False
    given: bool = False
    amount: bool = False
    local: int | None = None
    detection_group: bool = False

    @classmethod
    def parse(cls, text: str) -> Lever:
        lever = cls()
        for part in text.split("+"):
            if part == "plain":
                continue
            if part in FLAGS:
                setattr(lever, FLAGS[part], True)
                continue
            if m := re.fullmatch(r"hold(\d+)", part):  # ``until`` with the edited dimensions kept below it
                lever.until, lever.hold = int(m.group(1)), True
                continue
            for name, (field, number, default) in NUMBERS.items():
                digits = r"\d" if number is int else r"[\d.]"
                if m := re.fullmatch(f"{name}({digits}{'+' if default is None else '*'})", part):
                    setattr(lever, field, number(m.group(1)) if m.group(1) else default)
                    break
            else:
                raise SystemExit(f"unknown lever {part!r}")
        return lever


class Steering:
    """One model, its judge and its test images, and the edits to make on them."""

    def __init__(self, run: Path, classifier: Path, calibrate: int, images: int, seed: int, sampler: dict | None = None) -> None:
        import protodiff
        from protodiff.config import override_component
        from protodiff.encoding import encode_split
        from protodiff.metrics.attribute_classifier import AttributeClassifier

        self.model, self.config = protodiff.load_model(run)
        self.model.eval()
        self.judge = AttributeClassifier.load(classifier)
        spec = self.config.sample.sampler
        if sampler:  # --sampler / --steps: another inversion and regeneration than the run's
            spec = override_component(spec, sampler.get("name"), {k: v for k, v in sampler.items() if k != "name"})
        self.sampler = spec.build(schedule=self.model.schedule)
        test = self.config.data.build().open("test")
        encoded = encode_split(self.model, test)
        self.vectors, self.labels = encoded.vectors.float(), torch.stack([test[i][1] for i in range(len(test))])
        self.names = list(test.attribute_names)
        self.high = torch.quantile(self.vectors[:256], 1.0, dim=0)
        self.median = torch.quantile(self.vectors[:256], 0.5, dim=0)
        self.low = torch.quantile(self.vectors[:256], 0.0, dim=0)
        #: The null condition of the ``cfg`` lever: the mean vector (what condition dropout trains on).
        self.null = self.vectors[:256].mean(dim=0, keepdim=True)
        self.correlation = torch.corrcoef(self.vectors.T).nan_to_num()
        covariance = torch.cov(self.vectors.T)
        self.slopes = covariance / covariance.diagonal().clamp_min(1e-12)[None, :]  # [k, j] = beta_kj
        self.seed = seed
        count = calibrate + images
        self.x0 = torch.stack([test[i][0] for i in range(count)])
        self.calibration = slice(0, calibrate)
        self.evaluation = slice(calibrate, count)
        with torch.inference_mode():
            self.x_T = self.model.invert(self.x0, condition=self.vectors[:count], sampler=self.sampler)

    @cached_property
    def mark_detectors(self) -> Tensor:
        """(K,) whether each dimension detects one of the five marks with AUROC >= 0.9 on the test
        images, by their labels (the ``keepmarks`` oracle)."""
        marks = [self.names.index(name) for name in list(ATTRS_SHORT)[:5]]
        return (self.auroc[:, marks] >= 0.9).any(dim=1)

    @cached_property
    def auroc(self) -> Tensor:
        """(K, A) how well each dimension's value separates the test images with each attribute from
        those without, by their labels (the AUROC: what ``names --detect`` reads)."""
        from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

        return torch.tensor(
            [
                [roc_auc_score(self.labels[:, a].numpy(), self.vectors[:, j].numpy()) for a in range(len(self.names))]
                for j in range(self.vectors.shape[1])
            ]
        )

    def detectors(self) -> list[int]:
        """Per attribute, the dimension that detects it best (the highest AUROC)."""
        return self.auroc.argmax(dim=0).tolist()

    def given_for(self, j: int) -> tuple[int, ...]:
        """The dimensions the ``given`` lever regresses j's followers on besides j: the library's
        rule (``names --detect`` prints it), for the attribute j detects best, on the labels."""
        from protodiff.explain.naming import given_for

        return tuple(given_for(self.auroc, j, int(self.auroc[j].argmax())))

    def target(self, vectors: Tensor, dims: list[int], lever: Lever) -> Tensor:
        if lever.given:
            return self.followed_given(vectors, dims, lever)
        edited = vectors.clone()
        for j in dims:
            if lever.mode:
                edited += self.mode_shift(j, lever.lower)
                continue
            value = self.edited_value(j, lever)
            if lever.transport is not None:
                edited = self.transported(vectors, j, value, lever.transport)
            elif lever.match is not None:
                edited = self.matched(vectors, j, value, lever.match)
            elif lever.regress and lever.scale:
                edited = self.rescaled(vectors, j, value)
            elif lever.regress:
                slopes = self.slopes[:, j]
                if lever.sparse is not None:  # only the dimensions correlated with j follow
                    slopes = torch.where(self.correlation[:, j].abs() > lever.sparse, slopes, 0.0)
                if lever.keep_marks:  # the oracle: mark detectors held
                    slopes = torch.where(self.mark_detectors, 0.0, slopes)
                edited += (value - vectors[:, j : j + 1]) * slopes[None]
            edited[:, j] = value
        return edited

    def edited_value(self, j: int, lever: Lever, end: Tensor | None = None) -> Tensor:
        """What an edit sets dimension j to: ``end``, by default its plausible maximum (minimum with
        ``lower``), or ``extrap`` times as far from its median."""
        if end is None:
            end = self.low[j] if lever.lower else self.high[j]
        return self.median[j] + lever.extrap * (end - self.median[j])

    def followed_given(self, vectors: Tensor, dims: list[int], lever: Lever) -> Tensor:
        """``vectors`` with ``dims`` raised (lowered) as ``extrap`` says and the rest followed as an
        edit with ``follow: regression`` and ``given`` these dimensions' ``given_for`` does."""
        edited = vectors.clone()
        given = tuple(sorted({g for j in dims for g in self.given_for(j)} - set(dims)))
        for j in dims:
            edited[:, j] = (
                self.edited_value(j, lever) if lever.local is None else self.local_end(vectors, j, given, lever.local, lever)
            )
        return Coupling.fit(self.vectors, given).follow(vectors, edited)[0]

    def local_end(self, vectors: Tensor, j: int, given: tuple[int, ...], neighbours: int, lever: Lever) -> Tensor:
        """(N,) the ``local`` lever's value of dimension j for each of ``vectors``: its maximum
        (minimum with ``lower``) over the ``neighbours`` test images nearest the image in the
        ``given`` dimensions (the library's ``local_quantile``, as ``--to NAME=max`` with
        ``neighbours``), ``extrap`` times as far from its median."""
        return self.edited_value(
            j, lever, local_quantile(self.vectors, vectors, j, given, neighbours, 0.0 if lever.lower else 1.0)
        )

    def mode_shift(self, j: int, lower: bool) -> Tensor:
        """(K,) the ``mode`` lever's shift for dimension j: the mean test vector of the images in j's
        extreme mixture component minus the mean of the rest (the library's ``ModeShift.shift``).
        Every image moves by it; ``follow: mode`` moves an image by it times how far the image is
        from that mode, which leaves an image already in the mode as it is and, on the images
        lacking the dark background, gives the same figures on seeds 0-2 (measured; on seed 4's
        dimension 18, 0.72 success against 0.75)."""
        return ModeShift.fit(self.vectors).shift(j, lower)

    def rescaled(self, vectors: Tensor, j: int, value: Tensor) -> Tensor:
        """``vectors`` with dimension j set to ``value`` and every other dimension moved by a
        location-scale model in dimension j: along its regression line, and its residual scaled by
        how the residuals' spread (their mean absolute value, regressed on dimension j) changes."""
        reference, slopes = self.vectors, self.slopes[:, j]
        x = reference[:, j]
        intercept = reference.mean(dim=0) - slopes * x.mean()
        spread = (reference - intercept - x[:, None] * slopes).abs()  # (N, K) absolute residuals
        centred = x - x.mean()
        spread_slope = (centred[:, None] * (spread - spread.mean(dim=0))).sum(dim=0) / centred.square().sum()
        spread_intercept = spread.mean(dim=0) - spread_slope * x.mean()
        floor = 0.1 * spread.mean(dim=0)  # a spread extrapolated below zero is held at a tenth of its mean

        def spread_at(v: Tensor) -> Tensor:
            return (spread_intercept + spread_slope * v).clamp_min(floor)

        old = vectors[:, j : j + 1]
        moved = intercept + value * slopes + spread_at(value) / spread_at(old) * (vectors - intercept - old * slopes)
        moved[:, j] = value
        return moved

    def transported(self, vectors: Tensor, j: int, value: Tensor, neighbours: int) -> Tensor:
        """``vectors`` with dimension j set to ``value`` and every other dimension moved to the same
        quantile among the test images whose dimension j is nearest the new value as it had among
        those nearest its old value (``neighbours`` of them each time)."""
        reference = self.vectors
        old, new = self.neighbourhoods(vectors, j, value, neighbours)
        count = len(new)
        before = reference[old]  # (n, count, K): each image's neighbours at its old value
        below = (before < vectors[:, None]).float().mean(dim=1) + 0.5 * (before == vectors[:, None]).float().mean(dim=1)
        position = (below * count - 0.5).clamp(0, count - 1)  # (n, K) Hazen plotting position
        after = reference[new].sort(dim=0).values  # (count, K) the neighbours at the new value, sorted
        low = position.floor().long()
        high = (low + 1).clamp_max(count - 1)
        weight = position - low
        moved = after.gather(0, low) * (1 - weight) + after.gather(0, high) * weight
        # Only a dimension whose distribution differs between the two neighbourhoods moves (a
        # two-sample Kolmogorov-Smirnov test at 1%); the rest would move by sampling noise alone.
        grid = torch.cat([before, after[None].expand_as(before)], dim=1)  # (n, 2 count, K)
        cdf_before = (before[:, :, None] <= grid[:, None]).float().mean(dim=1)
        cdf_after = (after[None, :, None] <= grid[:, None]).float().mean(dim=1)
        differs = (cdf_before - cdf_after).abs().amax(dim=1) > KS_1PC * (2 / count) ** 0.5
        moved = torch.where(differs, moved, vectors)
        moved[:, j] = value
        return moved

    def neighbourhoods(self, vectors: Tensor, j: int, value: Tensor, neighbours: int) -> tuple[Tensor, Tensor]:
        """The indices of the ``neighbours`` test images whose dimension j is nearest each row's
        old value (n, count) and nearest ``value`` (count,): the two sides of a ``transport`` or
        ``match`` edit."""
        count = min(neighbours, len(self.vectors))
        old = (self.vectors[None, :, j] - vectors[:, j : j + 1]).abs().topk(count, dim=1, largest=False).indices
        new = (self.vectors[:, j] - value).abs().topk(count, largest=False).indices
        return old, new

    def matched(self, vectors: Tensor, j: int, value: Tensor, k: int) -> Tensor:
        """``vectors`` with dimension j set to ``value`` and every other dimension moved by the
        difference between two matched groups of test images: the ``k`` nearest each image on the
        other dimensions' residuals after their regression on j (standardised) among the images
        whose dimension j is nearest ``value``, minus the same among those nearest its old value
        (``NEIGHBOURS`` of them each time)."""
        reference = self.vectors
        old, new = self.neighbourhoods(vectors, j, value, NEIGHBOURS)
        count = len(new)
        others = torch.ones(reference.shape[1], dtype=torch.bool)
        others[j] = False
        mean = reference.mean(dim=0)

        def residual(v: Tensor) -> Tensor:  # what dimension j does not explain (standardised below)
            centred = v - mean
            return (centred - centred[:, j : j + 1] * self.slopes[:, j][None])[:, others]

        ref = residual(reference)
        scale = ref.std(dim=0).clamp_min(1e-6)
        ref, own = ref / scale, residual(vectors) / scale

        def nearest_mean(pool: Tensor) -> Tensor:  # pool (n, count) indices: mean of the k nearest each image
            distance = (ref[pool] - own[:, None]).square().sum(dim=-1)  # (n, count)
            chosen = pool.gather(1, distance.topk(min(k, count), dim=1, largest=False).indices)
            return reference[chosen].mean(dim=1)  # (n, K)

        moved = vectors + nearest_mean(new.expand(len(vectors), count)) - nearest_mean(old)
        moved[:, j] = value
        return moved

    def group_of(self, j: int) -> list[int]:
        return sorted({j, *torch.nonzero(self.correlation[j] > 0.5).flatten().tolist()})

    def detection_group_of(self, j: int) -> list[int]:
        """j with the other members of the detection group (``names --detect``'s rule, on the labels)
        of the attribute it separates best either way round; j alone when it is not a member."""
        from protodiff.explain.naming import detection_group

        attribute = int((self.auroc[j] - 0.5).abs().argmax())
        members = detection_group(self.vectors, self.labels.bool(), self.auroc, attribute).members
        return members if j in members else [j]

    @torch.inference_mode()
    def regenerate(self, part: slice, dims_per_edit: list[list[int]], lever: Lever) -> tuple[Tensor, Tensor]:
        """Judge probabilities (E, N, A) of the edits and (N, A) of the unedited regenerations."""
        vectors, x_T, x0 = self.vectors[part], self.x_T[part], self.x0[part]
        n = len(vectors)
        timesteps = None
        if lever.partial is not None:
            timesteps = [t for t in self.sampler.timesteps() if t <= lever.partial]
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(self.seed))
            x_T = self.model.schedule.q_sample(x0, torch.full((n,), timesteps[0]), noise)
        prediction = self.model.schedule.config.prediction
        if lever.null_guide is not None:  # the reference is guided from the null condition too
            unedited = self.model.edit_net_fn(self.null.expand_as(vectors), vectors, n, lever.null_guide)
            base = self.sampler.sample(unedited, x_T, prediction=prediction, timesteps=timesteps)
        else:
            base = self.model.sample(condition=vectors, x_T=x_T, sampler=self.sampler, timesteps=timesteps)
        if lever.correct:  # what the unedited round trip itself reads short of its own vectors
            shortfall = vectors - self.model.encode(base).vector.float()
        edits = []
        for dims in dims_per_edit:
            dims = sorted({k for j in dims for k in (self.group_of(j) if lever.group else [j])})
            if lever.detection_group:
                dims = sorted({k for j in dims for k in self.detection_group_of(j)})
            edited = self.target(vectors, dims, lever)
            condition = edited
            if lever.inject is not None:
                edits.append(self.injected(vectors, edited, x_T, lever.inject, timesteps))
                continue
            out = self.sampler.sample(self.net(vectors, condition, dims, lever), x_T, prediction=prediction, timesteps=timesteps)
            for _ in range(lever.correct):
                # What the encoder reads on the edit, against what the edit asked for: the next pass
                # asks for the shortfall beyond the unedited round trip's, on every dimension.
                condition = condition + (edited - self.model.encode(out).vector.float()) - shortfall
                out = self.sampler.sample(
                    self.net(vectors, condition, dims, lever), x_T, prediction=prediction, timesteps=timesteps
                )
            edits.append(out)
        judge = self.judge
        return (torch.stack([judge.predict_proba(e) for e in edits]), judge.predict_proba(base))

    def net(self, vectors: Tensor, edited: Tensor, dims: list[int], lever: Lever) -> Callable[..., Tensor]:
        """The denoiser an edit of ``vectors`` to ``edited`` (on ``dims``) samples with."""
        edit = self.edit_net(vectors, edited, dims, lever)
        if lever.split is None and lever.from_ is None and lever.until is None:
            return edit
        own = self.model.net_fn(vectors, len(vectors))  # the image's own condition, where it takes part
        if lever.split is not None:
            edit = self.split_frequencies(own, edit, lever.split)
        if lever.from_ is not None:
            return self.windowed(own, edit, lever.from_)
        if lever.until is not None:
            below = own
            if lever.hold:  # below the window the edited dimensions alone keep their new values
                held = vectors.clone()
                held[:, dims] = edited[:, dims]
                below = self.model.net_fn(held, len(vectors))
            return self.windowed(edit, below, lever.until)
        return edit

    @staticmethod
    def windowed(above: Callable[..., Tensor], below: Callable[..., Tensor], stop: int) -> Callable[..., Tensor]:
        """A denoiser that is ``above`` at timestep ``stop`` and up, ``below`` under it."""

        def switch(x_t: Tensor, t: Tensor) -> Tensor:
            return (above if int(t.flatten()[0]) >= stop else below)(x_t, t)

        return switch

    def injected(self, vectors: Tensor, edited: Tensor, x_T: Tensor, until: int, timesteps: list[int] | None) -> Tensor:
        """``x_T`` regenerated under ``edited`` beside its regeneration under ``vectors``, the first's
        features after ``INJECT_AT`` replaced by the second's while the timestep is ``until`` or above."""
        n = len(vectors)
        both = self.model.net_fn(torch.cat([vectors, edited]), 2 * n)
        active = [False]

        def copy_structure(module: torch.nn.Module, inputs: object, output: Tensor) -> Tensor | None:
            if not active[0]:
                return None
            output = output.clone()
            output[n:] = output[:n]
            return output

        def net(x_t: Tensor, t: Tensor) -> Tensor:
            active[0] = int(t.flatten()[0]) >= until
            return both(x_t, t)

        level, block = INJECT_AT
        up: Any = self.model.denoiser.up  # the UNet's decoder levels (an nn.ModuleList)
        handle = up[level].blocks[block].register_forward_hook(copy_structure)
        try:
            prediction = self.model.schedule.config.prediction
            out = self.sampler.sample(net, torch.cat([x_T, x_T]), prediction=prediction, timesteps=timesteps)
        finally:
            handle.remove()
        return out[n:]

    @staticmethod
    def split_frequencies(own: Callable[..., Tensor], edit: Callable[..., Tensor], sigma: float) -> Callable[..., Tensor]:
        """A denoiser whose output is the low frequencies of ``edit``'s and the high ones of ``own``'s
        (a Gaussian blur of ``sigma`` pixels splits them)."""
        from torchvision.transforms.functional import gaussian_blur  # type: ignore[import-untyped]

        size = 2 * round(3 * sigma) + 1

        def blur(x: Tensor) -> Tensor:
            return gaussian_blur(x, [size, size], [sigma, sigma])

        def split(x_t: Tensor, t: Tensor) -> Tensor:
            mine = own(x_t, t)
            return blur(edit(x_t, t)) + mine - blur(mine)

        return split

    def edit_net(self, vectors: Tensor, edited: Tensor, dims: list[int], lever: Lever) -> Callable[..., Tensor]:
        """The denoiser of an edit at every step (``net`` restricts it to a window)."""
        n = len(vectors)
        if lever.null_guide is not None:  # the cfg lever: guidance away from the null condition
            return self.model.edit_net_fn(self.null.expand_as(vectors), edited, n, lever.null_guide)
        if lever.focus:  # guidance on the edited dimensions alone, the followers as context
            context = edited.clone()
            context[:, dims] = vectors[:, dims]
            return self.model.edit_net_fn(context, edited, n, lever.guide)
        return self.model.edit_net_fn(vectors, edited, n, lever.guide)  # the guide lever

    def success_leakage(self, after: Tensor, before: Tensor, a: int) -> tuple[float, float, int]:
        lacking, added, flips = self.changes(after, before, a)
        if lacking == 0:
            return float("nan"), float("nan"), 0
        return added.float().mean().item(), flips.float().mean().item(), lacking

    def standard_errors(self, after: Tensor, before: Tensor, a: int) -> tuple[float, float]:
        """The standard errors of success and leakage over the images lacking ``a`` (leakage is a
        mean of per-image shares, and an image's flips are not independent of each other, so the
        image is the unit): how far a figure near the target may be from the one more images give."""
        lacking, added, flips = self.changes(after, before, a)
        if lacking < 2:
            return float("nan"), float("nan")
        per_image = flips.float().mean(dim=1)
        return added.float().std().item() / lacking**0.5, per_image.std().item() / lacking**0.5

    def flipped(self, after: Tensor, before: Tensor, a: int) -> dict[str, float]:
        """Per other attribute, the share of the images lacking ``a`` on which it flips: what the
        leakage is made of."""
        lacking, _, flips = self.changes(after, before, a)
        if lacking == 0:
            return {}
        others = [name for b, name in enumerate(self.names) if b != a]
        return dict(zip(others, (round(float(r), 3) for r in flips.float().mean(dim=0)), strict=True))

    def changes(self, after: Tensor, before: Tensor, a: int) -> tuple[int, Tensor, Tensor]:
        """On the images lacking ``a`` before the edit: how many, whether each has ``a`` after it,
        and whether each other attribute flipped (images x others)."""
        has_before, has_after = before > 0.5, after > 0.5
        lacking = ~has_before[:, a]
        others = [b for b in range(len(self.names)) if b != a]
        flips = has_after[lacking][:, others] != has_before[lacking][:, others]
        return int(lacking.sum()), has_after[lacking, a], flips

    def measure(self, lever: Lever) -> dict:
        k, names = self.vectors.shape[1], self.names
        started = time.perf_counter()
        amounts = AMOUNTS if lever.amount else (lever.extrap,)
        # Edit e raises dimension e % k by amounts[e // k]: one edit per dimension and amount.
        levers = [replace(lever, extrap=amount) for amount in amounts]
        runs = [self.regenerate(self.calibration, [[j] for j in range(k)], each) for each in levers]
        after, before = torch.cat([edits for edits, _ in runs]), runs[0][1]
        change = (after - before[None]).mean(dim=1)  # (E, A) effect on the calibration images
        calib = torch.tensor(
            [[self.success_leakage(after[e], before, a)[:2] for a in range(len(names))] for e in range(len(after))]
        )  # (E, A, 2): success, leakage of every edit on the calibration images
        editors = calib[..., 0].nan_to_num(-1).argmax(dim=0).tolist()
        clean = clean_editors(calib)
        detectors = []  # each attribute's detector, at the amount its calibration chooses for it
        for a, d in enumerate(self.detectors()):
            at = [m * k + d for m in range(len(amounts))]
            detectors.append(at[clean_editors(calib[at])[a]])
        chosen = sorted(set(editors) | set(clean) | set(detectors))
        after_e: dict[int, Tensor] = {}
        for m, each in enumerate(levers):
            edits = [e for e in chosen if e // k == m]
            if edits:
                out_m, before_e = self.regenerate(self.evaluation, [[e % k] for e in edits], each)
                after_e.update(zip(edits, out_m, strict=True))
        out = {}
        for a, name in enumerate(names):
            row = {}
            for kind, e in (("editor", editors[a]), ("clean_editor", clean[a]), ("detector", detectors[a])):
                edit = after_e[e]
                s, leak, n = self.success_leakage(edit, before_e, a)
                s_se, leak_se = self.standard_errors(edit, before_e, a)
                row[kind] = {"dim": e % k, "amount": amounts[e // k], "success": round(s, 3), "leakage": round(leak, 3)}
                row[kind] |= {"lacking": n, "success_se": round(s_se, 3), "leakage_se": round(leak_se, 3)}
                row[kind]["flipped"] = self.flipped(edit, before_e, a)
            row["strongest_cell"] = {"dim": int(change[:, a].argmax()) % k, "effect": round(float(change[:, a].max()), 3)}
            out[name] = row
        calibration = {name: calib[:, a].round(decimals=3).tolist() for a, name in enumerate(names)}
        return {"per_attribute": out, "calibration": calibration, "seconds": round(time.perf_counter() - started, 1)}


def clean_editors(calib: Tensor, success: float = 0.8, leakage: float = 0.1) -> list[int]:
    """Per attribute, the dimension an edit would be chosen by with the target in mind: among those
    whose calibration success is >= ``success`` with leakage <= ``leakage``, the one with the least
    leakage (ties: the higher success); when none qualifies, the one with the largest success minus
    leakage. ``calib`` is (K, A, 2): success and leakage of every dimension on the calibration images."""
    succ, leak = calib[..., 0].nan_to_num(-1), calib[..., 1].nan_to_num(1)
    out = []
    for a in range(calib.shape[1]):
        ok = (succ[:, a] >= success) & (leak[:, a] <= leakage)
        if ok.any():
            score = torch.where(ok, -leak[:, a] + 1e-3 * succ[:, a], torch.tensor(-float("inf")))
        else:
            score = succ[:, a] - leak[:, a]
        out.append(int(score.argmax()))
    return out


def line(result: dict) -> str:
    per = result["per_attribute"]

    def fmt(kind: str) -> str:
        return " ".join(f"{per[a][kind]['success']:.2f}/{per[a][kind]['leakage']:.2f}" for a in ATTRS_SHORT)

    strongest = " ".join(f"{per[a]['strongest_cell']['effect']:+.2f}" for a in ATTRS_SHORT)
    return (
        f"{result['run']:<22} {result['lever']:<18} editor {fmt('editor')}\n{'':<41} clean    {fmt('clean_editor')}\n"
        f"{'':<41} detector {fmt('detector')}\n"
        f"{'':<41} strongest {strongest}"
    )


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' quoted commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--classifier", required=True, type=Path)
    parser.add_argument("--levers", default="plain")
    parser.add_argument("--calibrate", type=int, default=32)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampler", help="Invert and regenerate with this sampler instead of the run's.")
    parser.add_argument("--steps", type=int, help="Sampler steps for inversion and regeneration (default: the run's).")
    parser.add_argument("--out", type=Path, default=Path("runs/steer"), help="Appends to results.jsonl here.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    print("attributes:", " ".join(ATTRS_SHORT.values()), "(success/leakage)")
    sampler = {k: v for k, v in (("name", args.sampler), ("steps", args.steps)) if v is not None}
    for run in args.runs:
        steering = Steering(run, args.classifier, args.calibrate, args.images, args.seed, sampler)
        for text in args.levers.split(","):
            result = {"run": run.name, "lever": text, **({"sampler": sampler} if sampler else {})}
            result.update(steering.measure(Lever.parse(text)), code=code_version())
            with open(args.out / "results.jsonl", "a") as handle:
                handle.write(json.dumps(result) + "\n")
            print(line(result), flush=True)


if __name__ == "__main__":
    main()
