"""latentspectra: make the latent space of a generative model readable and operable.

Latent Spectral Decomposition (Toledo-Marin & Glazier, PLOS ONE 18(6): e0287736, 2023) and the
methods a user compares it with (methods/: SFVQ, REDs), on plain tensors and any generator / encoder /
classifier callable; latents for real images by GAN inversion (`invert`).
"""

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, DataError, LatentspectraError

# The public names of latent/ and methods/ (`__all__` below) are imported on first use, so that `import
# latentspectra` (and the command line's --help, `data info` and argument errors) does not import torch.
_LAZY_PACKAGES = ("latent", "methods")


def __getattr__(name: str) -> Any:
    if name in __all__:
        from importlib import import_module

        for package in _LAZY_PACKAGES:
            module = import_module(f".{package}", __name__)
            if hasattr(module, name):
                return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .latent import (
        BasisError,
        BoxSampler,
        CodeBulk,
        CodeStatisticsError,
        FullGaussianSampler,
        GaussianMixtureSampler,
        IndependentGaussianSampler,
        Inversion,
        InversionError,
        InversionSettings,
        LatentError,
        LatentSetError,
        LatentSets,
        QuasiEigenBasis,
        StandardNormalSampler,
        build_latent_sets,
        collect_label_means,
        gram_schmidt,
        invert,
        load_latents,
        rotation_path,
        save_latents,
        symmetric_orthogonalisation,
    )
    from .methods import (
        SFVQ,
        CurveQuantization,
        RayleighDirections,
        RedsError,
        SFVQError,
        rayleigh_directions,
        rayleigh_path,
    )

__all__ = [
    "SFVQ",
    "BasisError",
    "BoxSampler",
    "CheckpointError",
    "CodeBulk",
    "CodeStatisticsError",
    "CurveQuantization",
    "DataError",
    "FullGaussianSampler",
    "GaussianMixtureSampler",
    "IndependentGaussianSampler",
    "Inversion",
    "InversionError",
    "InversionSettings",
    "LatentError",
    "LatentSetError",
    "LatentSets",
    "LatentspectraError",
    "QuasiEigenBasis",
    "RayleighDirections",
    "RedsError",
    "SFVQError",
    "StandardNormalSampler",
    "__version__",
    "build_latent_sets",
    "collect_label_means",
    "gram_schmidt",
    "invert",
    "load_latents",
    "rayleigh_directions",
    "rayleigh_path",
    "rotation_path",
    "save_latents",
    "symmetric_orthogonalisation",
]
