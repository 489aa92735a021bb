"""Neighbouring methods of Latent Spectral Decomposition, one module per paper, on plain tensors and any
generator / classifier callable.

- `sfvq`: space-filling vector quantization, a curve of codewords through the latent codes.
- `reds`: Rayleigh EigenDirections (Balakrishnan, Gadde, Martinez & Perona, Caltech 2022), the Jacobians
  it needs in `reds_jacobians` and the image features of `features`.
- `files`: a fitted SFVQ curve as files.
"""

from .features import (FeatureError, all_pixels, box_mask, classifier_logits, concat_features, ink_perimeter,
                       region_pixels, stroke_thickness, total_ink)
from .files import load_sfvq, save_sfvq
from .reds import RayleighDirections, rayleigh_directions, rayleigh_path, solve_rayleigh
from .reds_jacobians import RedsError, central_difference_jacobians, feature_jacobians
from .sfvq import (SFVQ, CurveQuantization, SFVQError, curve_points, growth_schedule, insert_codewords,
                   nearest_codewords, norm_quantile_means, project_onto_curve)

__all__ = [
    "CurveQuantization",
    "FeatureError",
    "RayleighDirections",
    "RedsError",
    "SFVQ",
    "SFVQError",
    "all_pixels",
    "box_mask",
    "central_difference_jacobians",
    "classifier_logits",
    "concat_features",
    "curve_points",
    "feature_jacobians",
    "growth_schedule",
    "ink_perimeter",
    "load_sfvq",
    "insert_codewords",
    "nearest_codewords",
    "norm_quantile_means",
    "project_onto_curve",
    "rayleigh_directions",
    "rayleigh_path",
    "save_sfvq",
    "region_pixels",
    "solve_rayleigh",
    "stroke_thickness",
    "total_ink",
]
