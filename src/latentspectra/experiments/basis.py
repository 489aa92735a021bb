"""Build the quasi-eigenvector basis from trained networks: `latentspectra basis`.

Latent sets and their averages (Methods steps 4-5) from the encoder, generator and classifier, then
Gram-Schmidt (step 6), with the timing and throughput the issue asks to report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ..data import images_to_tensor, load_dataset
from ..errors import LatentspectraError
from ..latent import QuasiEigenBasis, build_latent_sets
from ..latent.sets import EncoderSample, Network
from ..training.checkpoint import load_model, versions
from .evaluate import shipped_models_dir


def _config_value(network: Any, key: str, argument: str) -> int:
    try:
        return int(network.config[key])
    except (AttributeError, KeyError, TypeError):
        raise ValueError(f"cannot read {key!r} from {type(network).__name__}.config; pass {argument}=") from None


def build_basis(generator: Network, classifier: Network, encoder_sample: EncoderSample | None,
                train_images: torch.Tensor | None, per_set: int = 5000, seed: int = 0, batch_size: int = 2000,
                progress: bool = True, *, latent_dim: int | None = None, num_labels: int | None = None,
                max_draws: int | None = None,
                provenance: dict[str, Any] | None = None) -> tuple[QuasiEigenBasis, dict[str, Any]]:
    """Latent sets (set 1 by encoding ``train_images``, the rest sampled) and their quasi-eigenvectors.

    ``latent_dim`` and ``num_labels`` default to ``generator.config["latent_dim"]`` and
    ``classifier.config["num_classes"]``. With no encoder (``encoder_sample`` or ``train_images`` None)
    every set is sampled. ``provenance`` is added to the basis' provenance record (seed, V, sources).

    Returns:
        (basis, stats) with stats holding at least seconds, samples_per_second, samples_drawn,
        orthogonality_error, per_set, sets and labels.
    """
    if latent_dim is None:
        latent_dim = _config_value(generator, "latent_dim", "latent_dim")
    if num_labels is None:
        num_labels = _config_value(classifier, "num_classes", "num_labels")
    if train_images is None:
        encoder_sample = None
    start = time.perf_counter()
    latent_sets = build_latent_sets(generator, classifier, latent_dim=latent_dim, num_labels=num_labels,
                                    per_set=per_set, encoder_sample=encoder_sample, images=train_images, seed=seed,
                                    batch_size=batch_size, max_draws=max_draws, progress=progress)
    stats: dict[str, Any] = {"seed": seed, "latent_dim": latent_dim, **latent_sets.stats()}
    basis = QuasiEigenBasis.from_etas(latent_sets.etas, latent_sets.labels, latent_sets.sets,
                                      provenance={**{key: stats[key] for key in ("seed", "per_set", "sources")},
                                                  **(provenance or {})})
    stats["orthogonality_error"] = basis.orthogonality_error()
    stats["total_seconds"] = time.perf_counter() - start
    return basis, stats


def build_basis_from_models(models_dir: str | Path | None = None, dataset: str = "mnist", per_set: int = 5000,
                            seed: int = 0, progress: bool = True,
                            batch_size: int = 2000,
                            max_draws: int | None = None) -> tuple[QuasiEigenBasis, dict[str, Any]]:
    """`build_basis` with the generator, classifier and encoder saved in ``models_dir`` (default: the
    shipped networks for ``dataset``) and the training images of ``dataset``.

    Raises:
        CheckpointError: a missing or unreadable model.
        LatentspectraError: models that do not fit together (M not a multiple of the labels) or a label
            too rare to fill its sets.
        DataError: a missing or corrupt dataset.
    """
    models_dir = Path(models_dir) if models_dir is not None else shipped_models_dir(dataset)
    generator, _ = load_model(models_dir, "generator")
    classifier, _ = load_model(models_dir, "classifier")
    encoder, _ = load_model(models_dir, "encoder")
    train_images = images_to_tensor(load_dataset(dataset).train.images)
    origin = {"models": str(models_dir), "dataset": dataset, "versions": versions()}
    try:
        basis, stats = build_basis(generator, classifier, encoder.sample, train_images, per_set=per_set,
                                   seed=seed, batch_size=batch_size, progress=progress, max_draws=max_draws,
                                   provenance=origin)
    except LatentspectraError:
        raise
    except ValueError as error:  # networks that do not fit together, e.g. M not a multiple of the labels
        raise LatentspectraError(f"models in {models_dir}: {error}") from None
    return basis, {**origin, **stats}
