"""Neighbouring methods of Latent Spectral Decomposition, one module per paper, on plain tensors and any
generator / classifier callable.

- `reds`: Rayleigh EigenDirections (Balakrishnan, Gadde, Martinez & Perona, Caltech 2022), with the
  image features of `features`.
"""

from .features import (FeatureError, all_pixels, box_mask, classifier_logits, concat_features, ink_perimeter,
                       region_pixels, stroke_thickness, total_ink)
from .reds import (RayleighDirections, RedsError, central_difference_jacobians, feature_jacobians,
                   rayleigh_directions, rayleigh_path, solve_rayleigh)

__all__ = [
    "FeatureError",
    "RayleighDirections",
    "RedsError",
    "all_pixels",
    "box_mask",
    "central_difference_jacobians",
    "classifier_logits",
    "concat_features",
    "feature_jacobians",
    "ink_perimeter",
    "rayleigh_directions",
    "rayleigh_path",
    "region_pixels",
    "solve_rayleigh",
    "stroke_thickness",
    "total_ink",
]
