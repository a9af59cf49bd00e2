"""Explainers every conditioner can use, and what all explainers share.

``dimensions``  dimension names -> indices (with suggestions), typed edits, observed ranges
``edit``        the ``edit`` and ``interpolate`` explainers (any conditioner with a vector)
``effects``     the dimension x attribute effect matrix (and the names it suggests)
``shortcuts``   dimensions that move two attributes, ranked, with the training labels' correlation
``emergence``   when, during denoising, an enhanced dimension and the attribute it moves appear
"""
