"""Latent Spectral Decomposition (Toledo-Marin & Glazier, PLOS ONE 18(6): e0287736, 2023).

Latent sets and their averages (Methods steps 4-5, Eq. 3), quasi-eigenvectors by Gram-Schmidt
(step 6, Eqs. 4-8), the decomposition of a latent vector (Eqs. 9-10) and the operators built on the
quasi-eigenvectors (Eqs. 11-12, Algorithm 1). Plain tensors and any generator / encoder / classifier.
"""

from .basis import BasisError, QuasiEigenBasis, gram_schmidt
from .operators import literal_rotation, plane_rotation, projection_operator, rotation_path
from .sets import (
    LabelMeans,
    LatentSetError,
    LatentSets,
    build_latent_sets,
    collect_label_means,
    default_sources,
    encode_latents,
    sample_latents,
)

__all__ = [
    "BasisError",
    "LabelMeans",
    "LatentSetError",
    "LatentSets",
    "QuasiEigenBasis",
    "build_latent_sets",
    "collect_label_means",
    "default_sources",
    "encode_latents",
    "gram_schmidt",
    "literal_rotation",
    "plane_rotation",
    "projection_operator",
    "rotation_path",
    "sample_latents",
]
