"""ConditionedDiffusion: a conditioner, a denoiser and a noise schedule, used as one model.

This is the object research code holds: ``loss`` for training, ``encode`` to read an image's
condition, ``sample`` / ``invert`` / ``reconstruct`` to generate, and ``net_fn`` / ``eps_fn`` to
hand the denoiser (with a condition bound in) to samplers and analysis tools.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from protodiff.config import ComponentSpec
from protodiff.contracts.conditioner import Condition, Conditioner
from protodiff.contracts.denoiser import Denoiser
from protodiff.contracts.latent_prior import LatentPrior
from protodiff.contracts.sampler import Callback, EpsFn, NetFn, Sampler, randn
from protodiff.diffusion.objective import denoising_loss
from protodiff.diffusion.schedule import NoiseSchedule
from protodiff.errors import ProtodiffError
from protodiff.experiment import ExperimentConfig, ModelConfig, chosen_cond_mode

#: How much an edit's difference is amplified by default (:meth:`ConditionedDiffusion.edit`, and every
#: explainer and the explorer through ``EditSettings``): net(s') + (g - 1)(net(s') - net(s)). Measured
#: on the patronus-shapes recipe, 3 seeds (docs/steering.md): raising one prototype to its plausible
#: maximum adds its attribute to most images that lack it at 2 with little leakage to the others; at
#: 1 (the edited condition alone) fine marks are often washed out before the last step, at 3 the
#: other attributes start to flip.
EDIT_GUIDANCE = 2.0


class ConditionedDiffusion(nn.Module):
    """A diffusion model whose denoiser is conditioned on a readable vector of the clean image."""

    def __init__(self, config: ModelConfig, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.in_channels = in_channels
        self.image_size = image_size
        self.schedule = NoiseSchedule(config.diffusion)
        self.conditioner: Conditioner = config.conditioner.build(in_channels=in_channels, image_size=image_size)
        self.denoiser: Denoiser = config.denoiser.build(
            in_channels=in_channels, cond_dim=self.conditioner.embed_dim, cond_mode=chosen_cond_mode(config)
        )
        #: A latent prior over condition vectors (attached after training), for sampling from nothing.
        self.prior: LatentPrior | None = None

    @classmethod
    def from_experiment(cls, config: ExperimentConfig) -> ConditionedDiffusion:
        """Build the model an experiment describes (image shape taken from its dataset)."""
        source = config.data.build()
        return cls(config.model, in_channels=source.channels, image_size=source.config.image_size)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def is_conditional(self) -> bool:
        return self.conditioner.dim > 0

    # -- training -------------------------------------------------------------------------------
    def forward(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss on clean images ``x0``: denoising MSE plus the conditioner's aux loss.

        Returns ``(loss, parts)`` where ``parts`` holds detached components for logging. The
        condition is read from the clean image and gradients flow into the conditioner, so it is
        trained end to end by the denoising objective (as Patronus, DiffAE and InfoDiffusion do).
        """
        condition = self.conditioner.encode(x0)
        embedding = self.conditioner.embed(self._perturbed(condition.vector, generator))
        mse = denoising_loss(lambda x_t, t: self.denoiser(x_t, t, embedding), self.schedule, x0, generator)
        parts = {"mse": mse.detach()}
        loss = mse
        if condition.aux_loss is not None:
            loss = loss + condition.aux_loss
            parts["aux"] = condition.aux_loss.detach()
        return loss, parts

    def _perturbed(self, vector: Tensor, generator: torch.Generator | None) -> Tensor:
        """``vector`` as the denoiser is trained on it: with the config's condition noise added
        (each dimension's batch standard deviation times ``condition_noise``, detached) and its
        condition dropout applied (dropped entries, whole rows with ``condition_dropout`` and single
        entries with ``dimension_dropout``, take their batch mean, detached). Nothing is drawn when
        all three are 0, so runs without them keep their random stream."""
        whole, single, noise = self.config.condition_dropout, self.config.dimension_dropout, self.config.condition_noise
        if not (whole or single or noise) or vector.shape[1] == 0:
            return vector
        device = generator.device if generator is not None else vector.device
        if noise:
            scale = noise * vector.std(dim=0, correction=0, keepdim=True).detach()
            vector = vector + scale * torch.randn(vector.shape, generator=generator, device=device).to(vector)
        keep = torch.ones(vector.shape, dtype=torch.bool, device=device)
        if whole:
            keep &= torch.rand(len(vector), 1, generator=generator, device=device) >= whole
        if single:
            keep &= torch.rand(vector.shape, generator=generator, device=device) >= single
        return torch.where(keep.to(vector.device), vector, vector.mean(dim=0, keepdim=True).detach())

    # -- conditions -----------------------------------------------------------------------------
    def encode(self, x0: Tensor) -> Condition:
        """The condition of clean images in [-1, 1]."""
        return self.conditioner.encode(x0.to(self.device))

    def _as_vector(self, condition: Condition | Tensor | None, batch: int) -> Tensor | None:
        if not self.is_conditional:
            return None
        if condition is None:
            raise ProtodiffError(
                "this model is conditional: pass a condition (encode real images) or fit a latent prior (protodiff fit-prior)"
            )
        vector = condition.vector if isinstance(condition, Condition) else condition
        if vector.shape != (batch, self.conditioner.dim):
            raise ProtodiffError(f"condition has shape {tuple(vector.shape)}, expected ({batch}, {self.conditioner.dim})")
        return vector.to(self.device)

    def net_fn(self, condition: Condition | Tensor | None, batch: int) -> NetFn:
        """The denoiser with ``condition`` bound in: ``net_fn(x_t, t)`` is its raw prediction for a
        batch of ``batch``, eps or v as ``schedule.config.prediction`` says (what samplers take,
        with that ``prediction``, so that x0_hat is read from v directly)."""
        vector = self._as_vector(condition, batch)
        embedding = self.conditioner.embed(vector) if vector is not None else None
        return lambda x_t, t: self.denoiser(x_t, t, embedding)

    def eps_fn(self, condition: Condition | Tensor | None, batch: int) -> EpsFn:
        """The denoiser with ``condition`` bound in, as ``eps_fn(x_t, t) -> eps_hat`` (a v-prediction
        converted): for tools that work with the noise estimate, whatever the parameterisation."""
        net_fn = self.net_fn(condition, batch)
        return lambda x_t, t: self.schedule.eps_from_prediction(x_t, t, net_fn(x_t, t))

    # -- generation -----------------------------------------------------------------------------
    def sampler(self, spec: ComponentSpec | str = "ddim", **options: object) -> Sampler:
        """A sampler for this model's schedule: ``model.sampler("ddim", steps=50)``."""
        if isinstance(spec, str):
            spec = ComponentSpec("sampler", spec, raw=options)
        return spec.build(schedule=self.schedule)

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """x_T for ``n`` images, drawn from ``generator`` (CPU generators give device-independent draws)."""
        like = torch.empty(0, device=self.device)
        return randn((n, self.in_channels, self.image_size, self.image_size), generator, like)

    @torch.inference_mode()
    def sample(
        self,
        n: int | None = None,
        *,
        condition: Condition | Tensor | None = None,
        x_T: Tensor | None = None,
        sampler: Sampler | None = None,
        timesteps: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Generate images in [-1, 1] from ``x_T`` (default: fresh noise for ``n`` images).

        A conditional model given no condition draws one from its latent prior, if it has one.
        Runs under ``torch.inference_mode`` (the tensors a ``callback`` sees are inference
        tensors: clone one to use it with autograd); the images returned are ordinary tensors.
        """
        if x_T is None:
            if n is None:
                n = len(condition) if condition is not None else 1
            x_T = self.noise(n, generator)
        if condition is None and self.is_conditional and self.prior is not None:
            condition = self.prior.sample(x_T.shape[0], generator=generator)
        x_T = x_T.to(self.device)
        sampler = sampler or self.sampler()
        net_fn = self.net_fn(condition, x_T.shape[0])
        x0 = sampler.sample(
            net_fn,
            x_T,
            prediction=self.schedule.config.prediction,
            timesteps=timesteps,
            callback=callback,
            generator=generator,
            progress=progress,
        )
        return _ordinary(x0)

    @torch.inference_mode()
    def invert(
        self,
        x0: Tensor,
        *,
        condition: Condition | Tensor | None = None,
        sampler: Sampler | None = None,
        timesteps: Sequence[int] | None = None,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Invert clean images to the x_T from which ``sampler`` regenerates them (under ``condition``):
        DDIM inversion, or the sampler's own (``dpm-solver++`` inverts with its multistep solver)."""
        x0 = x0.to(self.device)
        sampler = sampler or self.sampler()
        x_T = sampler.invert(
            self.net_fn(condition, x0.shape[0]),
            x0,
            prediction=self.schedule.config.prediction,
            timesteps=timesteps,
            callback=callback,
            progress=progress,
        )
        return _ordinary(x_T)

    def edit_net_fn(self, original: Condition | Tensor, edited: Condition | Tensor, batch: int, guidance: float = 1.0) -> NetFn:
        """The denoiser under the ``edited`` condition, its difference from the ``original``
        amplified ``guidance`` times: net(s') + (guidance - 1)(net(s') - net(s)), classifier-free
        guidance applied only to what the edit changes (1: the edited condition alone)."""
        if guidance == 1.0:
            return self.net_fn(edited, batch)
        # Both conditions in one denoiser call of twice the batch: on a CPU one call of 2B images
        # costs less than two of B (an explorer edit is a batch of one).
        vectors = torch.cat([self._as_vector(edited, batch), self._as_vector(original, batch)])
        embedding = self.conditioner.embed(vectors)

        def guided(x_t: Tensor, t: Tensor) -> Tensor:
            high, low = self.denoiser(torch.cat([x_t, x_t]), torch.cat([t, t]) if t.dim() else t, embedding).chunk(2)
            return high + (guidance - 1.0) * (high - low)

        return guided

    @torch.inference_mode()
    def edit(
        self,
        x0: Tensor,
        condition: Condition | Tensor,
        *,
        sampler: Sampler | None = None,
        guidance: float = EDIT_GUIDANCE,
        start: int | None = None,
        x_T: Tensor | None = None,
        context: Condition | Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Regenerate real images ``x0`` under an edited ``condition``, everything else kept.

        By default the stochastic part is the inversion of ``x0`` under its *own* condition (pass
        ``x_T`` to reuse one), so the unedited condition gives ``x0`` back (up to the round-trip
        error that the ``inversion-error`` metric measures) and any other difference is the edit's.
        With ``start`` = t the edit starts part-way instead: ``x0`` is noised to step t with noise
        from ``generator`` and denoised under the edited condition (SDEdit), which leaves the
        model free to redraw what the edit changes below that noise level (``x_T``, if given, is
        then that noise, so that several edits of one image can share it). ``guidance`` > 1
        amplifies the edit's difference (see :meth:`edit_net_fn`) from ``context``, by default
        ``x0``'s own condition; an edit whose other dimensions follow the edited ones
        (:class:`~protodiff.explain.coupling.Coupling`) passes the followed vector with the edited
        dimensions at their old values, so that only they are amplified. Methods differ only in how they
        change the condition: Patronus turns a prototype up, DiffAE moves its semantic code along
        an attribute classifier's normal.
        """
        x0 = x0.to(self.device)
        sampler = sampler or self.sampler()
        own = self.encode(x0).vector
        timesteps = None
        if start is not None:
            if not 0 <= start < self.schedule.num_timesteps:
                raise ProtodiffError(
                    f"start={start} is not a timestep of this model's schedule (0..{self.schedule.num_timesteps - 1})"
                )
            timesteps = [t for t in sampler.timesteps() if t <= start] or [start]
            noise = x_T.to(self.device) if x_T is not None else randn(tuple(x0.shape), generator, x0)
            x_T = self.schedule.q_sample(x0, torch.full((len(x0),), timesteps[0], device=self.device), noise)
        elif x_T is None:
            x_T = self.invert(x0, condition=own, sampler=sampler, progress=progress)
        net_fn = self.edit_net_fn(own if context is None else context, condition, len(x0), guidance)
        out = sampler.sample(
            net_fn,
            x_T.to(self.device),
            prediction=self.schedule.config.prediction,
            timesteps=timesteps,
            callback=callback,
            generator=generator,
            progress=progress,
        )
        return _ordinary(out)

    @torch.inference_mode()
    def reconstruct(
        self,
        x0: Tensor,
        *,
        sampler: Sampler | None = None,
        invert: bool = True,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Encode ``x0``, then regenerate it from its condition.

        With ``invert`` the stochastic part comes from inverting ``x0`` (a near-exact round trip);
        without it, from fresh noise, so the result shows only what the condition carries.
        """
        condition = self.encode(x0)
        sampler = sampler or self.sampler()
        if invert:
            x_T = self.invert(x0, condition=condition, sampler=sampler, progress=progress)
        else:
            x_T = self.noise(x0.shape[0], generator)
        return self.sample(condition=condition, x_T=x_T, sampler=sampler, generator=generator, progress=progress)


def _ordinary(x: Tensor) -> Tensor:
    """An inference-mode result as an ordinary tensor (one copy), so that the caller may change
    it in place or feed it to autograd."""
    with torch.inference_mode(False):
        return x.clone()
