"""Neighbouring methods of LSD, one module per paper, on plain tensors and any generator / classifier."""

from .sfvq import (SFVQ, CurveQuantization, SFVQError, curve_points, growth_schedule, insert_codewords,
                   nearest_codewords, norm_quantile_means, project_onto_curve)

__all__ = [
    "SFVQ",
    "CurveQuantization",
    "SFVQError",
    "curve_points",
    "growth_schedule",
    "insert_codewords",
    "nearest_codewords",
    "norm_quantile_means",
    "project_onto_curve",
]
