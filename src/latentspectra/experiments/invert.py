"""`latentspectra invert`: latents for the first ``count`` images of a dataset split by GAN inversion (gradient
descent on z, `latent.invert`, through `image_latents.latents_of_images`), and how well they reconstruct the
images, for the inversion and for the encoder alone where the networks have one.

The descent starts from the encoder's means (``start`` encoder: the hybrid) or from draws of the prior (``start``
prior: optimize); auto is the encoder where there is one. Its draws come from the run's seed (`config.SEEDS`
inversion).

Reconstruction measures per method (`reconstruction_measures`), of G(z) against the real image x, means over the
images:

- ``pixel_mse``: |G(z) - x|^2 / P, pixels in [-1, 1];
- ``feature_distance``: |F(G(z)) - F(x)|^2 / |F(x)|^2, F the classifier's penultimate layer (its logits where it
  has none: ``feature_layer`` says which);
- ``label_kept``: the share of images whose classifier label argmax C(G(z)) is the classifier's label of the
  real image, argmax C(x); ``true_label_kept``: the share whose argmax C(G(z)) is the dataset's label.

G runs as the descent runs it (float32 with batch norms folded, in the run's precision) and C in float32.
Writes ``latents.safetensors`` (the latents and per-image loss, pixel MSE, reached and finite flags) with
``latents.json`` beside it (`latent.save_latents`), and ``invert.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..compute import Compute
from ..config import SEEDS, InvertConfig, config_record, derived_seed
from ..data import ImageDataset, images_to_tensor, load_dataset
from ..io import output_directory, versions, write_json
from ..latent import feature_distance, pixel_mse, save_latents
from .common import Timer
from .image_latents import ImageLatents, InversionNetworks, inversion_networks, latents_of_images
from .networks import Networks, check_dataset_fits, load_study_networks

# `--start` as the inversion it asks for (experiments/image_latents.py)
START_INVERSIONS = {"auto": "auto", "encoder": "hybrid", "prior": "optimize"}


@torch.no_grad()
def reconstruction_measures(
    descent: InversionNetworks,
    compute: Compute,
    images: torch.Tensor,
    labels: torch.Tensor,
    latents: torch.Tensor,
    batch_size: int,
) -> dict[str, float]:
    """Pixel MSE, feature distance, label kept and true label kept (module docstring) of ``latents`` (N, M) for
    ``images`` (N, C, H, W) in [-1, 1] with dataset ``labels`` (N,), in batches of ``batch_size`` on
    ``compute``'s device."""
    assert descent.classifier is not None and descent.features is not None  # the study requires a classifier
    sums = torch.zeros(4, dtype=torch.float64)
    for z, x, y in zip(latents.split(batch_size), images.split(batch_size), labels.split(batch_size)):
        z, x = z.to(compute.device), x.to(compute.device)
        with compute.autocast():
            made = descent.generator(z)
        made = made.float()
        kept = descent.classifier(made).argmax(1).cpu()
        sums += torch.stack(
            [
                pixel_mse(made, x).double().sum().cpu(),
                feature_distance(descent.features(made), descent.features(x)).double().sum().cpu(),
                (kept == descent.classifier(x).argmax(1).cpu()).double().sum(),
                (kept == y).double().sum(),
            ]
        )
    means = (sums / len(latents)).tolist()
    return dict(zip(("pixel_mse", "feature_distance", "label_kept", "true_label_kept"), means, strict=True))


@dataclass(frozen=True)
class InvertResult:
    """What `invert_study` found: the inversion's latents and record, and the reconstruction measures per method
    ("encoder" where the networks have one, and the inversion's: "hybrid" or "optimize"); `record` is
    invert.json."""

    config: InvertConfig
    models: str
    latent_dim: int
    inverted: ImageLatents
    reconstruction: dict[str, dict[str, float]]
    feature_layer: str
    compute: dict[str, Any]
    seconds: dict[str, float]

    @property
    def images(self) -> int:
        return len(self.inverted.latents)

    def record(self, latents_file: str) -> dict[str, Any]:
        """The JSON record (invert.json), naming the ``latents_file`` written."""
        return {
            "dataset": self.config.dataset,
            "split": self.config.split,
            "images": self.images,
            "seed": self.config.seed,
            "models": self.models,
            "latent_dim": self.latent_dim,
            "inversion": self.inverted.record(),
            "reconstruction": self.reconstruction,
            "feature_layer": self.feature_layer,
            "label_kept_against": "the classifier's label of the real image (true_label_kept: the dataset's label)",
            "images_per_second": self.images / self.seconds["invert"],
            "latents": latents_file,
            "seconds": {**self.seconds, "total": sum(self.seconds.values())},
            "config": config_record(self.config),
            "compute": self.compute,
            "versions": versions(),
        }


def invert_study(
    networks: Networks,
    dataset: ImageDataset,
    config: InvertConfig = InvertConfig(),
    progress: bool = True,
    timer: Timer | None = None,
) -> InvertResult:
    """The study on ``networks`` and ``dataset`` (module docstring); writes nothing.

    Raises:
        NetworkError: networks without a generator or a classifier, or without an encoder for ``start`` encoder.
        DataError: the dataset's images are not of the networks' shape, or its classes not the classifier's labels.
    """
    networks.require("invert", "generator", "classifier")
    if config.start == "encoder":
        networks.require("invert --start encoder", "encoder")
    check_dataset_fits(networks.image_shape, dataset, networks.source, networks.num_labels)
    timer = timer or Timer()
    split = getattr(dataset, config.split)
    count = min(config.count, len(split))
    images = images_to_tensor(split.images[:count])
    labels = torch.from_numpy(split.labels[:count])
    with timer.stage("invert"):
        inverted = latents_of_images(
            images,
            networks,
            START_INVERSIONS[config.start],
            config.inversion_settings(),
            seed=derived_seed(config.seed, SEEDS.inversion),
            progress=progress,
        )
    methods = {inverted.inversion: inverted.latents}
    if networks.encoder is not None:
        with timer.stage("encode"):
            methods = {"encoder": latents_of_images(images, networks, "encoder").latents, **methods}
    with timer.stage("measure"):
        descent = inversion_networks(networks)
        reconstruction = {
            name: reconstruction_measures(descent, networks.compute, images, labels, latents, networks.batch_size)
            for name, latents in methods.items()
        }
    assert descent.feature_layer is not None  # the study requires a classifier
    return InvertResult(
        config,
        networks.source,
        networks.latent_dim,
        inverted,
        reconstruction,
        descent.feature_layer,
        networks.compute_record(),
        dict(timer.seconds),
    )


def write_invert(out_dir: str | Path, result: InvertResult) -> dict[str, Any]:
    """Write ``result`` into ``out_dir``: latents.safetensors (+ latents.json) and invert.json. Returns the record
    written to invert.json."""
    out = Path(out_dir)
    inverted, optimisation = result.inverted, result.inverted.optimisation
    assert optimisation is not None  # the study always descends
    latents_file = save_latents(
        out / "latents.safetensors",
        inverted.latents,
        {
            **inverted.record(),
            "dataset": result.config.dataset,
            "split": result.config.split,
            "images": f"the first {result.images} of the split, in order",
            "models": result.models,
            "seed": result.config.seed,
        },
        {
            name: values.cpu()
            for name in ("loss", "pixel_mse", "feature_distance", "reached", "finite")
            if (values := getattr(optimisation, name)) is not None
        },
    )
    record = result.record(str(latents_file))
    write_json(out / "invert.json", record)
    return record


def run_invert(
    out_dir: str | Path,
    config: InvertConfig = InvertConfig(),
    progress: bool = True,
) -> dict[str, Any]:
    """Load the networks ``config`` names (`load_study_networks`; default: the shipped ones of ``config.dataset``)
    and the dataset, run the study and write it into ``out_dir``
    (`write_invert`); returns the record written to invert.json.

    Raises:
        LatentspectraError: a bad ``out_dir`` or networks, a missing dataset, or networks that cannot invert.
    """
    compute = Compute.select(config.device, config.precision)
    with output_directory(out_dir):
        timer = Timer()
        with timer.stage("load"):
            loaded = load_study_networks(config, compute)
            dataset = load_dataset(config.dataset)
        return write_invert(out_dir, invert_study(loaded, dataset, config, progress, timer))
