from __future__ import annotations

import pytest

from protodiff._registry.registry import Registries, Registry, registering_as
from protodiff.contracts.conditioner import Conditioner
from protodiff.errors import RegistrationError, UnknownComponentError, UnknownKindError
from protodiff.nn.unconditional import Unconditional


class Other(Unconditional):
    pass


def test_add_and_get():
    reg = Registry("conditioner", Conditioner)
    reg.add("none", Unconditional)
    assert reg.get("none") is Unconditional
    assert "none" in reg and "nope" not in reg
    assert reg.names() == ["none"]


@pytest.mark.parametrize("bad", ["Patronus", "log_l2", "-x", "x-", "a--b", "", "9lives", "a b", "a+b", "x+++", "+"])
def test_names_are_validated(bad):
    with pytest.raises(RegistrationError, match="lower-case words joined by hyphens"):
        Registry("conditioner", Conditioner).add(bad, Unconditional)


def test_a_method_named_with_plus_signs_is_a_valid_name():
    reg = Registry("sampler", None)
    reg.add("dpm-solver++", object)
    assert reg.get("dpm-solver++") is object


def test_duplicates_name_the_first_plugin():
    reg = Registry("conditioner", Conditioner)
    with registering_as("first"):
        reg.add("dup", Unconditional)
    with registering_as("second"), pytest.raises(RegistrationError, match="already registered by plugin 'first'"):
        reg.add("dup", Other)


def test_contract_is_enforced():
    reg = Registry("conditioner", Conditioner)
    with pytest.raises(RegistrationError, match="must be a subclass of protodiff.contracts.conditioner.Conditioner"):
        reg.add("bad", object)
    with pytest.raises(RegistrationError, match="must be a subclass"):
        reg.add("function", lambda: Unconditional)


def test_unknown_names_suggest_close_matches():
    reg = Registry("sampler", None)
    for name in ("ddim", "ddpm", "exponential"):
        reg.add(name, object())
    with pytest.raises(UnknownComponentError, match=r"unknown sampler 'ddmi'; did you mean .*'ddim'"):
        reg.get("ddmi")
    with pytest.raises(UnknownComponentError, match="known: ddim, ddpm, exponential"):
        reg.get("zzzzzz")


def test_families_resolve_by_prefix_and_check_the_contract():
    reg = Registry("conditioner", Conditioner)
    made = {}

    def factory(suffix: str):
        made[suffix] = type(f"C_{suffix}", (Unconditional,), {})
        return made[suffix]

    reg.add_family("fam-", factory)
    assert reg.get("fam-resnet18") is made["resnet18"]
    assert "fam-anything" in reg and "fam-" not in reg
    assert reg.names() == ["fam-<name>"]
    reg.add_family("bad-", lambda s: object)
    with pytest.raises(RegistrationError, match="must be a subclass"):
        reg.get("bad-x")


def test_remove_plugin_rolls_back_its_entries():
    regs = Registries()
    with registering_as("core"):
        regs.add_kind("conditioner", Conditioner)
        regs.add_kind("sampler")
    with registering_as("p"):
        regs.conditioner.add("a", Unconditional)
        regs.sampler.add_family("x-", lambda s: None)
    with registering_as("q"):
        regs.conditioner.add("b", Other)
    assert regs.registered_by("p") == {"conditioner": ["a"], "sampler": ["x-<name>"]}
    regs.remove_plugin("p")
    assert regs.conditioner.names() == ["b"] and len(regs.sampler) == 0


def test_kinds_are_added_by_plugins_and_rolled_back_with_them():
    regs = Registries()
    with registering_as("core"):
        regs.add_kind("conditioner", Conditioner)
    with registering_as("p"):
        regs.add_kind("sparse_code", Conditioner)
        regs.sparse_code.add("top-k", Unconditional)
    assert regs.registered_by("p") == {"kinds": ["sparse_code"], "sparse_code": ["top-k"]}
    with registering_as("q"), pytest.raises(RegistrationError, match="already added by plugin 'p'"):
        regs.add_kind("sparse_code")
    for bad in ("Sparse", "sparse-code", "all", "_x"):
        with pytest.raises(RegistrationError, match="invalid kind"):
            regs.add_kind(bad)
    regs.remove_plugin("p")
    with pytest.raises(UnknownKindError, match="no kind of component 'sparse_code'"):
        regs.sparse_code  # noqa: B018
    assert getattr(regs, "sparse_code", None) is None and "conditioner" in regs


def test_a_plugin_may_give_presets_to_another_plugins_component():
    regs = Registries()
    with registering_as("core"):
        regs.add_kind("conditioner", Conditioner)
        regs.conditioner.add("none", Unconditional)
    with registering_as("p"):
        regs.conditioner.add_preset("none", "small", {"x": 1})
    assert regs.conditioner.presets("none") == {"small": {"x": 1}}
    assert regs.registered_by("p") == {"conditioner presets": ["none:small"]}
    with registering_as("q"), pytest.raises(RegistrationError, match="already has a preset 'small' from plugin 'p'"):
        regs.conditioner.add_preset("none", "small", {})
    regs.remove_plugin("p")
    assert regs.conditioner.presets("none") == {}
