"""`latentspectra evaluate`: the networks' metrics on a dataset (`evaluation.sample_metrics` and
`evaluation.encoder_metrics`, which the training records use too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..compute import Compute
from ..config import EvaluateConfig
from ..data import ImageDataset, images_to_tensor, load_dataset
from ..distributed import SINGLE, World
from ..evaluation import classifier_accuracy, encoder_metrics, sample_metrics
from ..io import versions
from .networks import Networks, check_dataset_fits, load_study_networks


@dataclass(frozen=True)
class Evaluation:
    """The networks' metrics on a dataset (evaluation.py says what each is); `record` is what
    `latentspectra evaluate --json` prints."""

    models: str
    dataset: str
    seed: int
    classifier_accuracy: float
    samples: dict[str, Any]  # `sample_metrics`: confidence, label entropy and counts, classifier-feature FID
    encodings: dict[str, Any]  # `encoder_metrics`: encode -> decode -> classify accuracy over the draws
    compute: dict[str, Any]
    world_size: int = 1  # the ranks that computed it (the numbers do not depend on it)

    def record(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "dataset": self.dataset,
            "seed": self.seed,
            "classifier_accuracy": self.classifier_accuracy,
            **self.samples,
            **self.encodings,
            "compute": self.compute,
            "world_size": self.world_size,
            "versions": versions(),
        }


def evaluate_study(
    networks: Networks, dataset: ImageDataset, config: EvaluateConfig = EvaluateConfig(), world: World = SINGLE
) -> Evaluation:
    """Every metric of the foundation issue for ``networks`` (loaded with `load_networks`: G and C on latents
    in their precision, C on the test images and the encoder in float32) on ``dataset`` (named
    ``config.dataset`` in the record), its random streams from ``config.seed``; as one rank of a sharded
    ``world``, every metric's rows dealt over the ranks and merged (evaluation.py), the same numbers.

    Raises:
        NetworkError: networks without a generator, classifier or encoder.
        DataError: the dataset's images are not of the networks' shape, or its classes not the classifier's labels.
    """
    networks.require("evaluate", "generator", "classifier", "encoder")
    # `require` raised unless all three are there; the exact classifier is loaded with the classifier
    assert networks.generator is not None and networks.classifier is not None and networks.encoder is not None
    assert networks.exact_classifier is not None
    check_dataset_fits(networks.image_shape, dataset, networks.source, networks.num_labels)
    device = networks.compute.device
    test_images = images_to_tensor(dataset.test.images).to(device)
    test_labels = torch.from_numpy(dataset.test.labels).to(device)
    accuracy = classifier_accuracy(networks.exact_classifier, test_images, test_labels, world)
    seed = config.seed
    samples = sample_metrics(
        networks.generator,
        networks.classifier,
        dataset,
        seed,
        device=device,
        latent_dim=networks.latent_dim,
        world=world,
    )
    encodings = encoder_metrics(
        networks.encoder, networks.generator, networks.classifier, dataset, seed, device=device, world=world
    )
    return Evaluation(
        networks.source,
        config.dataset,
        seed,
        accuracy,
        samples,
        encodings,
        networks.compute.record(),
        world.size,
    )


def run_evaluate(
    config: EvaluateConfig = EvaluateConfig(),
    *,
    world: World = SINGLE,
) -> dict[str, Any]:
    """`evaluate_study` on the networks ``config`` names (`load_study_networks`; default the shipped ones of
    ``config.dataset``) on ``config.device`` in ``config.precision``, as one rank of ``world``; returns the record
    (`latentspectra evaluate` prints it, and writes nothing)."""
    compute = Compute.select(config.device, config.precision)
    loaded = load_study_networks(config, compute)
    return evaluate_study(loaded, load_dataset(config.dataset), config, world).record()
