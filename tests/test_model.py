from __future__ import annotations

import pytest
import torch

from protodiff.checkpoint import load_model, save_checkpoint
from protodiff.config import dump_yaml
from protodiff.errors import CheckpointError, ProtodiffError
from protodiff.model import ConditionedDiffusion


@pytest.fixture
def toy_model(toy_conditioner, tiny_config):
    config = tiny_config("model.conditioner={name: channel-means, aux_weight: 0.5}")
    return ConditionedDiffusion.from_experiment(config), config


def test_loss_trains_the_conditioner_end_to_end_and_adds_its_aux_loss(toy_model):
    model, _ = toy_model
    x0 = torch.rand(4, 3, 16, 16) * 2 - 1
    loss, parts = model(x0, torch.Generator().manual_seed(0))
    assert set(parts) == {"mse", "aux"}
    assert loss.item() == pytest.approx(parts["mse"].item() + parts["aux"].item(), rel=1e-5)
    loss.backward()
    assert model.conditioner.scale.grad is not None and model.conditioner.proj.weight.grad is not None


def test_conditional_sampling_needs_a_condition_of_the_right_shape(toy_model):
    model, _ = toy_model
    with pytest.raises(ProtodiffError, match="this model is conditional"):
        model.sample(2)
    with pytest.raises(ProtodiffError, match=r"condition has shape \(2, 5\), expected \(2, 3\)"):
        model.sample(condition=torch.zeros(2, 5))
    images = model.sample(condition=model.encode(torch.zeros(2, 3, 16, 16)), sampler=model.sampler("ddim", steps=3))
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_reconstruct_and_invert_shapes(toy_model):
    model, _ = toy_model
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    sampler = model.sampler("ddim", steps=4)
    assert model.invert(x0, condition=model.encode(x0), sampler=sampler).shape == x0.shape
    assert model.reconstruct(x0, sampler=sampler).shape == x0.shape


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_dpm_solver_samples_and_inverts_a_model_in_inference_mode(toy_conditioner, tiny_config, prediction):
    model = ConditionedDiffusion.from_experiment(
        tiny_config("model.conditioner.name=channel-means", f"model.diffusion.prediction={prediction}")
    )
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    condition = model.encode(x0)
    sampler = model.sampler("dpm-solver++", steps=4)
    seen = []
    x_T = model.invert(x0, condition=condition, sampler=sampler, callback=lambda info: seen.append(info.t_next))
    images = model.sample(
        condition=condition, x_T=x_T, sampler=sampler, callback=lambda info: seen.append(info.x0_hat.is_inference())
    )
    assert seen == [*sorted(sampler.timesteps()), True, True, True, True]  # callbacks run in inference mode
    assert images.shape == x0.shape and torch.isfinite(images).all()
    assert not images.is_inference() and not x_T.is_inference()  # ordinary tensors: changeable in place
    images.clamp_(-1, 1)


def test_edit_regenerates_from_the_inversion_under_the_new_condition(toy_model):
    model, _ = toy_model
    for p in model.denoiser.parameters():  # leave the zero-initialised residual branches: the condition matters
        p.data.add_(0.05 * torch.randn_like(p))
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    sampler = model.sampler("ddim", steps=4)
    unedited = model.edit(x0, model.encode(x0), sampler=sampler)
    torch.testing.assert_close(unedited, model.reconstruct(x0, sampler=sampler))
    edited = model.edit(x0, model.encode(x0).vector + 1.0, sampler=sampler)
    assert edited.shape == x0.shape and (edited - unedited).abs().mean() > 1e-3


def test_edit_guidance_amplifies_the_edits_difference_and_partial_edits_start_part_way(toy_model):
    from protodiff.errors import ProtodiffError

    model, _ = toy_model
    for p in model.denoiser.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    sampler = model.sampler("ddim", steps=4)
    own = model.encode(x0).vector
    x_T = model.invert(x0, condition=own, sampler=sampler)
    plain = model.edit(x0, own + 1.0, sampler=sampler, x_T=x_T)
    torch.testing.assert_close(plain, model.edit(x0, own + 1.0, sampler=sampler))  # x_T reused = inverted again
    torch.testing.assert_close(
        model.edit(x0, own, sampler=sampler, guidance=3.0, x_T=x_T), model.edit(x0, own, sampler=sampler, x_T=x_T)
    )  # no edit, nothing to amplify
    stronger = model.edit(x0, own + 1.0, sampler=sampler, guidance=3.0, x_T=x_T)
    unedited = model.edit(x0, own, sampler=sampler, x_T=x_T)
    assert (stronger - unedited).abs().mean() > (plain - unedited).abs().mean()
    partial = [
        model.edit(x0, own + 1.0, sampler=sampler, start=500, generator=torch.Generator().manual_seed(1)) for _ in range(2)
    ]
    torch.testing.assert_close(partial[0], partial[1])  # seeded
    with pytest.raises(ProtodiffError, match="start=5000 is not a timestep"):
        model.edit(x0, own, sampler=sampler, start=5000)


def test_save_and_load_round_trip_keeps_weights_and_condition_names(toy_model, tmp_path):
    model, config = toy_model
    model.conditioner.names = ["red", "green", "blue"]
    save_checkpoint(tmp_path / "ckpt", model=model, config=config)
    loaded, loaded_config = load_model(tmp_path / "ckpt")
    assert loaded.conditioner.names == ["red", "green", "blue"]
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert loaded_config.model.conditioner.name == "channel-means"


def test_loading_weights_of_another_model_is_a_one_line_error(toy_model, tmp_path, tiny_config):
    model, config = toy_model
    save_checkpoint(tmp_path / "ckpt", model=model, config=config)
    other = tiny_config("model.denoiser.base_channels=32")
    (tmp_path / "ckpt" / "config.yaml").write_text(dump_yaml(other))
    with pytest.raises(CheckpointError, match="weights do not match the model its config.yaml builds") as info:
        load_model(tmp_path / "ckpt")
    assert "\n" not in str(info.value)


def test_train_state_is_loaded_without_executing_code(tmp_path, toy_model):
    import pickle

    from protodiff.checkpoint import load_train_state

    model, config = toy_model
    save_checkpoint(tmp_path / "ckpt", model=model, config=config, train_state={"step": 1})

    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('code ran')",))

    with open(tmp_path / "ckpt" / "train_state.pt", "wb") as handle:
        pickle.dump({"step": Evil()}, handle, protocol=2)
    with pytest.raises(
        CheckpointError, match="refused: it is not made only of tensors and plain data .*GLOBAL exec.*could run code"
    ) as info:
        load_train_state(tmp_path / "ckpt")
    message = str(info.value)  # what was refused and why, and never torch's advice to load it anyway
    assert "\n" not in message and "weights_only" not in message and "safe_globals" not in message


def test_condition_dropout_replaces_whole_vectors_or_single_dimensions_by_the_batch_mean(toy_conditioner, tiny_config):
    model = ConditionedDiffusion.from_experiment(
        tiny_config("model.conditioner.name=channel-means", "model.condition_dropout=0.5", "model.dimension_dropout=0.3")
    )
    vector = torch.arange(64 * 3, dtype=torch.float32).view(64, 3)
    dropped = model._perturbed(vector, torch.Generator().manual_seed(0))
    replaced = dropped == vector.mean(dim=0)
    whole = replaced.all(dim=1)
    assert 0.3 < whole.float().mean() < 0.8  # whole rows at ~0.5 (+ the 0.3^3 of single drops that cover a row)
    single = replaced[~whole]
    assert single.any() and not single.all()  # some dimensions alone
    assert torch.equal(dropped[~replaced], vector[~replaced])
    assert torch.equal(dropped, model._perturbed(vector, torch.Generator().manual_seed(0)))  # seeded


def test_condition_noise_moves_every_dimension_by_its_batch_spread(toy_conditioner, tiny_config):
    model = ConditionedDiffusion.from_experiment(tiny_config("model.conditioner.name=channel-means", "model.condition_noise=0.5"))
    vector = torch.randn(4096, 3) * torch.tensor([1.0, 10.0, 0.1])
    moved = model._perturbed(vector, torch.Generator().manual_seed(0)) - vector
    spread = moved.std(dim=0) / vector.std(dim=0)
    assert torch.allclose(spread, torch.full((3,), 0.5), atol=0.03)  # half of each dimension's own spread
    assert torch.equal(moved, model._perturbed(vector, torch.Generator().manual_seed(0)) - vector)  # seeded


def test_without_condition_dropout_training_draws_nothing_more(toy_conditioner, tiny_config):
    """A run without dropout keeps its random stream, so its weights stay what they were."""
    model = ConditionedDiffusion.from_experiment(tiny_config("model.conditioner.name=channel-means"))
    vector, generator = torch.rand(4, 3), torch.Generator().manual_seed(0)
    assert model._perturbed(vector, generator) is vector
    assert torch.equal(torch.rand(1, generator=generator), torch.rand(1, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("option", ["model.condition_dropout=1.0", "model.dimension_dropout=-0.1", "model.condition_noise=-0.1"])
def test_condition_dropout_or_noise_outside_its_range_is_refused(toy_conditioner, tiny_config, option):
    with pytest.raises(Exception, match="dropout|noise"):
        tiny_config("model.conditioner.name=channel-means", option)
