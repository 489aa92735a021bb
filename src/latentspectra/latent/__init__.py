"""Latent Spectral Decomposition (Toledo-Marin & Glazier, PLOS ONE 18(6): e0287736, 2023).

Latent sets and their averages (Methods steps 4-5, Eq. 3), quasi-eigenvectors by Gram-Schmidt
(step 6, Eqs. 4-8) or by a symmetric orthogonalisation within each set, the decomposition of a latent
vector (Eqs. 9-10) and the operators built on the quasi-eigenvectors (Eqs. 11-12, Algorithm 1).
Plain tensors and any generator / encoder / classifier.

Latents for real images by gradient descent on z (`invert`: GAN inversion by optimisation, started from an
encoder's means where one is given), and latents as files (`save_latents`, `load_latents`).

Beside it, for any encoder's codes: their statistics (`statistics`: component fits, correlations, box
shells, slices, the Mahalanobis bulk) and samplers fitted to them (`samplers`), used by the
fragmentation study.
"""

from ..config import InversionSettings
from .basis import UNLABELLED, UNLABELLED_SET, BasisError, QuasiEigenBasis, gram_schmidt, symmetric_orthogonalisation
from .checks import LatentError, check_latents
from .files import load_basis, load_latents, save_basis, save_latents
from .inversion import Inversion, InversionError, feature_distance, invert, pixel_mse
from .operators import literal_rotation, plane_rotation, projection_operator
from .paths import rotation_path
from .samplers import (
    BoxSampler,
    FullGaussianSampler,
    GaussianMixtureSampler,
    IndependentGaussianSampler,
    LatentSampler,
    StandardNormalSampler,
)
from .sets import (
    LabelMeans,
    LatentBlocks,
    LatentSetError,
    LatentSets,
    block_generator,
    build_latent_sets,
    collect_label_means,
    default_sources,
    encode_blocks,
    sample_blocks,
)
from .statistics import (
    CodeBulk,
    CodeStatisticsError,
    box_shell,
    component_fits,
    correlation_matrix,
    dominant_components,
    mahalanobis_distances,
    slice_mask,
    strongest_pairs,
)

__all__ = [
    "UNLABELLED",
    "UNLABELLED_SET",
    "BasisError",
    "BoxSampler",
    "CodeBulk",
    "CodeStatisticsError",
    "FullGaussianSampler",
    "GaussianMixtureSampler",
    "IndependentGaussianSampler",
    "Inversion",
    "InversionError",
    "InversionSettings",
    "LabelMeans",
    "LatentBlocks",
    "LatentError",
    "LatentSampler",
    "LatentSetError",
    "LatentSets",
    "QuasiEigenBasis",
    "StandardNormalSampler",
    "block_generator",
    "box_shell",
    "build_latent_sets",
    "check_latents",
    "collect_label_means",
    "component_fits",
    "correlation_matrix",
    "default_sources",
    "dominant_components",
    "encode_blocks",
    "feature_distance",
    "gram_schmidt",
    "invert",
    "literal_rotation",
    "load_basis",
    "load_latents",
    "mahalanobis_distances",
    "pixel_mse",
    "plane_rotation",
    "projection_operator",
    "rotation_path",
    "sample_blocks",
    "save_basis",
    "save_latents",
    "slice_mask",
    "strongest_pairs",
    "symmetric_orthogonalisation",
]
