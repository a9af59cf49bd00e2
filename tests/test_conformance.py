"""Every registered component, from the core or any installed plugin, against its contract."""

from __future__ import annotations

import pytest

from protodiff.testing import ConformanceSkipped, check_component, registered_components


@pytest.mark.parametrize(("kind", "name"), registered_components(), ids=lambda v: str(v))
def test_component_conforms(kind, name):
    try:
        check_component(kind, name)
    except ConformanceSkipped as exc:
        pytest.skip(str(exc))
