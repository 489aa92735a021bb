"""Neighbouring methods of Latent Spectral Decomposition, one module per paper, on plain tensors and any
generator / classifier callable.

- `sfvq`: space-filling vector quantization, a curve of codewords through the latent codes.
- `reds`: Rayleigh EigenDirections (Balakrishnan, Gadde, Martinez & Perona, Caltech 2022), the Jacobians
  it needs in `reds_jacobians` and the image features of `features`.
- `files`: a fitted SFVQ curve as files.
- Instruments on images: `morphometry` (Morpho-MNIST measures) and `factor_regressor` (a small network that reads a
  dataset's ground-truth factors off images; compare's edit-based ground-truth score).
- The direction finders users compare with, behind one contract and registry (`directions`: fit, edit,
  transform, save/load, `get("sefa")`): `sefa` (Shen & Zhou 2021), `ganspace` (Härkönen et al. 2020),
  `interfacegan` (Shen et al. 2020), `learned` (Voynov & Babenko 2020), the `baselines` (random orthonormal
  directions, coordinate axes), and in `ours` LSD, SFVQ and REDs as thin adapters of the code above.
"""

from .baselines import CoordinateAxes, RandomDirections
from .directions import DirectionMethod, MethodError, available, get, load_method, register, save_method
from .features import (
    FeatureError,
    all_pixels,
    box_mask,
    classifier_logits,
    concat_features,
    ink_perimeter,
    region_pixels,
    stroke_thickness,
    total_ink,
)
from .files import load_sfvq, save_sfvq
from .ganspace import GANSpace
from .interfacegan import InterFaceGAN
from .learned import LearnedDirections
from .ours import LSDDirections, REDsDirections, SFVQDirections
from .reds import RayleighDirections, rayleigh_directions, rayleigh_path, solve_rayleigh
from .reds_jacobians import RedsError, central_difference_jacobians, feature_jacobians
from .sefa import SeFa
from .sfvq import (
    SFVQ,
    CurveQuantization,
    SFVQError,
    curve_points,
    growth_schedule,
    insert_codewords,
    nearest_codewords,
    norm_quantile_means,
    project_onto_curve,
)

__all__ = [
    "SFVQ",
    "CoordinateAxes",
    "CurveQuantization",
    "DirectionMethod",
    "FeatureError",
    "GANSpace",
    "InterFaceGAN",
    "LSDDirections",
    "LearnedDirections",
    "MethodError",
    "REDsDirections",
    "RandomDirections",
    "RayleighDirections",
    "RedsError",
    "SFVQDirections",
    "SFVQError",
    "SeFa",
    "all_pixels",
    "available",
    "box_mask",
    "central_difference_jacobians",
    "classifier_logits",
    "concat_features",
    "curve_points",
    "feature_jacobians",
    "get",
    "growth_schedule",
    "ink_perimeter",
    "insert_codewords",
    "load_method",
    "load_sfvq",
    "nearest_codewords",
    "norm_quantile_means",
    "project_onto_curve",
    "rayleigh_directions",
    "rayleigh_path",
    "region_pixels",
    "register",
    "save_method",
    "save_sfvq",
    "solve_rayleigh",
    "stroke_thickness",
    "total_ink",
]
