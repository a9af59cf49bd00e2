"""Explanation as a library call, and the explainers every conditioner can use.

``protodiff.explain(run_or_model, name, images=..., options={...})`` runs any registered explainer
and returns its :class:`~protodiff.contracts.explainer.Explanation` (this package is that callable:
:func:`protodiff.explain.context.explain`); ``protodiff explain NAME RUN`` and the bench make the
same call. The modules:

``context``     :func:`explain` and the :class:`ExplainContext` an explainer's inputs are drawn from
``dimensions``  dimension names -> indices (with suggestions), typed edits, observed ranges
``coupling``    how dimensions co-vary over real images; the others following an edit (``follow``)
``edit``        the ``edit`` and ``interpolate`` explainers (any conditioner with a vector)
``effects``     the dimension x attribute effect matrix (and the names it suggests)
``shortcuts``   dimensions that move two attributes, ranked, with the training labels' correlation
``emergence``   when, during denoising, an enhanced dimension and the attribute it moves appear
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protodiff.contracts.explainer import Explanation


class _CallablePackage(types.ModuleType):
    """``protodiff.explain`` is both this package and the call that runs an explainer: Python
    binds a package to its parent's attribute, so the front door's ``explain`` is the package,
    made callable (its modules, ``protodiff.explain.edit`` and the rest, keep their paths)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Explanation:
        from protodiff.explain.context import explain

        return explain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
