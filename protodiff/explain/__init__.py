"""Explainers every conditioner can use, and what all explainers share.

``dimensions``  dimension names -> indices (with suggestions), typed edits, observed ranges
``edit``        the ``edit`` and ``interpolate`` explainers (any conditioner with a vector)
"""
