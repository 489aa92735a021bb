"""A factor regressor: a small convolutional network that reads a dataset's ground-truth factors off its images,
so that the factors of images no dataset holds (a generator's G(z + t d)) can be measured. Compare's edit-based
ground-truth score (experiments/compare.py) reads generated images with it; like the Morpho-MNIST measures
(`morphometry`) it is an instrument on images, not a direction finder.

What it learns: every factor as a regression of its normalised value, one output per factor (not classification
heads: one definition for every factor, discrete or continuous, and a change along an edit is a distance in the
factor's own units). Each factor f is normalised by the mean and standard deviation of its values on the images
trained on, (y_f - mean_f) / sd_f (sd 1 for a constant factor), and the network minimises the mean squared error
of all of them at once. A factor whose value the image does not determine (the orientation of a square, which
looks the same a quarter turn on, or of an ellipse, half a turn on) is learnt as its conditional mean; its
accuracy, recorded per factor, says how well each one is read.

The network (`FactorNetwork`): three 3 x 3 convolutions of stride 2 and padding 1 (``width``, 2 ``width`` and 4
``width`` channels, each followed by batch norm and a ReLU), the maps averaged to 4 x 4 cells (adaptive average
pooling, so any image size works and where things are is kept to a quarter of the image), a linear layer to 8
``width`` units with a ReLU, and a linear layer to the F factors. At ``width`` 16 on one 32 x 32 channel: 0.16 M
parameters.

Training (`fit_factor_regressor`, `config.FactorRegressorConfig`): the first ``images`` training images and their
factors, in [-1, 1] as the networks see them (`data.images_to_tensor`); ``steps`` Adam steps of ``batch_size``
images at ``learning_rate`` annealed to 0 on a cosine; batches in an order drawn from ``seed`` anew for every pass
over the images, the initial weights from ``seed``, float32 on one CPU thread (`threads.single_thread`: on 2
shared cores one thread took 36 ms a step of 128 images, two 290 ms), so one machine trains the same network every
time; batch norm uses the batch's statistics in training and their running averages when reading. Its accuracy on
the first ``test_images`` test images (`factor_accuracy`), per factor: R^2 of the normalised values and, for a
factor with at most `MAX_CLASSES` distinct values (the grids of sprites), the share of images whose prediction is
nearest to the true value among the factor's values.

Cache (`cached_factor_regressor`): ``<cache>/factor-regressors/<key>.safetensors`` with its JSON record beside it
(`io.save_tensors_with_record`: written atomically, the weights checked against the record's digest on load),
the key the SHA-256 of the dataset's arrays (images and factors of both splits, `io.arrays_digest`), of the
settings and of `REGRESSOR_VERSION`; a damaged file is one `FactorRegressorError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import FactorRegressorConfig
from ..data import ImageDataset, images_to_tensor
from ..errors import LatentspectraError
from ..io import arrays_digest, load_tensors_with_record, save_tensors_with_record, user_cache_dir
from ..threads import single_thread
from .directions import check_number, check_whole

REGRESSOR_FORMAT = "latentspectra.FactorRegressor"
REGRESSOR_VERSION = 1  # changes whenever the network or its training changes (it is part of the cache key)
MAX_CLASSES = 64  # a factor with at most this many distinct values is also scored by its nearest value
READ_BATCH = 1024  # images per forward pass when reading factors
_CACHE_FOLDER = "factor-regressors"
_STATE = "state."  # prefix of the network's weights among the stored tensors


class FactorRegressorError(LatentspectraError, ValueError):
    """A dataset without factors, or a damaged cached regressor."""


class FactorNetwork(nn.Module):
    """Images (N, C, H, W) in [-1, 1] -> normalised factors (N, F) (module docstring)."""

    def __init__(self, channels: int, factors: int, width: int = 16) -> None:
        super().__init__()
        stages = [(channels, width), (width, 2 * width), (2 * width, 4 * width)]
        self.features = nn.Sequential(
            *(
                layer
                for inputs, outputs in stages
                for layer in (
                    nn.Conv2d(inputs, outputs, 3, stride=2, padding=1),
                    nn.BatchNorm2d(outputs),
                    nn.ReLU(),
                )
            ),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Linear(64 * width, 8 * width), nn.ReLU(), nn.Linear(8 * width, factors))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@dataclass(frozen=True, eq=False)
class FactorRegressor:
    """A trained `FactorNetwork` with the normalisation of its factors and its record (its shape and settings, the
    dataset's name and `dataset_checksum`, the training seconds and the accuracy on the test split,
    `factor_accuracy`)."""

    network: FactorNetwork
    mean: torch.Tensor  # (F,) float64: the factors' means on the images trained on
    scale: torch.Tensor  # (F,) float64: their standard deviations (1 for a constant factor)
    factor_names: tuple[str, ...]
    record: dict[str, Any]

    def read(self, images: torch.Tensor) -> torch.Tensor:
        """The normalised factors (y - mean) / sd the network reads off ``images`` (N, C, H, W) in [-1, 1] on any
        device: (N, F) float64 on the CPU, computed in float32 on the CPU in batches of `READ_BATCH`."""
        self.network.eval()
        with torch.no_grad(), single_thread():
            found = [self.network(chunk.float().cpu()) for chunk in images.split(READ_BATCH)]
        return torch.cat(found).double() if found else torch.zeros(0, len(self.factor_names), dtype=torch.float64)

    def values(self, images: torch.Tensor) -> torch.Tensor:
        """The factors read off ``images`` in the factors' own units: (N, F) float64 on the CPU."""
        return self.read(images) * self.scale + self.mean

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the cache stores: the network's weights and the normalisation."""
        state = {f"{_STATE}{key}": value.detach().clone() for key, value in self.network.state_dict().items()}
        return {**state, "mean": self.mean, "scale": self.scale}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], record: dict[str, Any]) -> FactorRegressor:
        """The regressor `tensors` and ``record`` describe (the network's shape from the record).

        Raises:
            KeyError, RuntimeError: tensors that are not those of the network the record describes.
        """
        shape = record["network"]
        network = FactorNetwork(shape["channels"], shape["factors"], shape["width"])
        network.load_state_dict(
            {key.removeprefix(_STATE): value for key, value in tensors.items() if key.startswith(_STATE)}
        )
        return cls(network.eval(), tensors["mean"], tensors["scale"], tuple(record["factor_names"]), record)


def check_regressor_config(config: FactorRegressorConfig) -> None:
    """Raise `MethodError` naming the first setting of ``config`` out of range."""
    for name in ("images", "steps", "batch_size", "width", "test_images", "seed"):
        check_whole("factor regressor", name, getattr(config, name), 0 if name == "seed" else 1)
    check_number("factor regressor", "learning_rate", config.learning_rate, 0, strict=True)


def _factors(dataset: ImageDataset) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The training and test factors and their names, or `FactorRegressorError` for a dataset without them."""
    train, test, names = dataset.train.factors, dataset.test.factors, dataset.factor_names
    if train is None or test is None or names is None:
        raise FactorRegressorError(f"dataset {dataset.name!r}: has no factors to learn (expected factor arrays)")
    return train, test, names


def dataset_checksum(dataset: ImageDataset) -> str:
    """The SHA-256 of ``dataset``'s images and factors, both splits (`io.arrays_digest`; 0.1 s for sprites)."""
    train, test, _ = _factors(dataset)
    return arrays_digest(
        {
            "train_images": dataset.train.images,
            "train_factors": train,
            "test_images": dataset.test.images,
            "test_factors": test,
        }
    )


def regressor_key(dataset: ImageDataset, config: FactorRegressorConfig) -> str:
    """The cache key: SHA-256 of the dataset's `dataset_checksum`, its factor names, ``config`` and
    `REGRESSOR_VERSION`."""
    _, _, names = _factors(dataset)
    settings = {
        "data": dataset_checksum(dataset),
        "names": names,
        "config": asdict(config),
        "version": REGRESSOR_VERSION,
    }
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()


def factor_accuracy(regressor: FactorRegressor, images: np.ndarray, factors: np.ndarray, known: np.ndarray) -> dict:
    """How well ``regressor`` reads ``factors`` (N, F) off the uint8 ``images``, per factor (by name): ``r2``, one
    minus the mean squared error of the normalised values over their variance, and ``accuracy``, the share of
    images whose read value is nearest to the true one among the factor's distinct values in ``known`` (the
    factors trained on), for a factor with at most `MAX_CLASSES` of them (None otherwise); ``images``: how many."""
    read = regressor.values(images_to_tensor(images)).numpy()
    per_factor = {}
    for index, name in enumerate(regressor.factor_names):
        truth, found = factors[:, index], read[:, index]
        spread = float(np.var(truth))
        r2 = 1.0 - float(np.mean((found - truth) ** 2)) / spread if spread > 0 else None
        values = np.unique(known[:, index])
        accuracy = None
        if len(values) <= MAX_CLASSES:
            nearest = values[np.abs(found[:, None] - values[None]).argmin(1)]
            accuracy = float(np.mean(np.isclose(nearest, truth)))
        per_factor[name] = {"r2": r2, "accuracy": accuracy}
    return {"images": len(images), "factors": per_factor}


def fit_factor_regressor(
    dataset: ImageDataset, config: FactorRegressorConfig = FactorRegressorConfig()
) -> FactorRegressor:
    """A `FactorRegressor` trained on ``dataset``'s first training images as ``config`` says, with its accuracy on
    the first test images (module docstring); writes nothing. Leaves torch's global generator as it was.

    Raises:
        FactorRegressorError: a dataset without factors.
        MethodError: settings out of range.
    """
    check_regressor_config(config)
    train_factors, test_factors, names = _factors(dataset)
    checksum = dataset_checksum(dataset)
    began = time.perf_counter()
    factors = train_factors[: config.images]
    mean, scale = factors.mean(0), factors.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    images = images_to_tensor(dataset.train.images[: config.images])
    targets = torch.from_numpy((factors - mean) / scale).float()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = FactorNetwork(images.shape[1], len(names), config.width)
    train_network(network, images, targets, config)
    record = {
        "format": REGRESSOR_FORMAT,
        "version": REGRESSOR_VERSION,
        "dataset": dataset.name,
        "dataset_sha256": checksum,
        "factor_names": list(names),
        "network": {"channels": int(images.shape[1]), "factors": len(names), "width": config.width},
        "parameters": sum(parameter.numel() for parameter in network.parameters()),
        "target": "each factor's value normalised by its mean and standard deviation, one regression output each",
        "settings": asdict(config),
        "train_images": len(images),
        "fit_seconds": time.perf_counter() - began,
    }
    regressor = FactorRegressor(network.eval(), torch.from_numpy(mean), torch.from_numpy(scale), tuple(names), record)
    tested = config.test_images
    record["test_accuracy"] = factor_accuracy(regressor, dataset.test.images[:tested], test_factors[:tested], factors)
    return regressor


def train_network(
    network: FactorNetwork, images: torch.Tensor, targets: torch.Tensor, config: FactorRegressorConfig
) -> None:
    """``config.steps`` Adam steps on the mean squared error of ``network``'s outputs against ``targets``, batches
    of ``config.batch_size`` rows drawn without replacement from ``config.seed`` (a new order every pass), the rate
    annealed from ``config.learning_rate`` to 0 on a cosine."""
    optimizer = torch.optim.Adam(network.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps)
    rng = torch.Generator().manual_seed(config.seed)
    batch = min(config.batch_size, len(images))
    order, position = torch.randperm(len(images), generator=rng), 0
    network.train()
    with torch.enable_grad(), single_thread():
        for _ in range(config.steps):
            if position + batch > len(order):
                order, position = torch.randperm(len(images), generator=rng), 0
            rows = order[position : position + batch]
            position += batch
            loss = F.mse_loss(network(images[rows]), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    network.eval()


def regressor_path(dataset: ImageDataset, config: FactorRegressorConfig, directory: str | Path | None = None) -> Path:
    """Where `cached_factor_regressor` keeps the regressor of ``dataset`` and ``config``."""
    folder = Path(directory) if directory is not None else user_cache_dir() / _CACHE_FOLDER
    return folder / f"{regressor_key(dataset, config)}.safetensors"


def cached_factor_regressor(
    dataset: ImageDataset, config: FactorRegressorConfig = FactorRegressorConfig(), directory: str | Path | None = None
) -> FactorRegressor:
    """The regressor of ``dataset`` and ``config`` from the cache (``directory``, default the user's cache
    directory), trained and written there first where it is not (`fit_factor_regressor`).

    Raises:
        FactorRegressorError: a dataset without factors, or a damaged cached file.
        MethodError: settings out of range.
        OutputError: the cache cannot be written.
    """
    check_regressor_config(config)
    path = regressor_path(dataset, config, directory)
    if not path.exists():
        regressor = fit_factor_regressor(dataset, config)
        save_tensors_with_record(path, regressor.tensors(), regressor.record, FactorRegressorError)
        return regressor
    tensors, record = load_tensors_with_record(path, FactorRegressorError, "factor regressor", REGRESSOR_FORMAT)
    try:
        return FactorRegressor.from_tensors(tensors, record)
    except (KeyError, TypeError, RuntimeError) as failure:
        raise FactorRegressorError(
            f"{path}: not the factor regressor its record describes ({' '.join(str(failure).split())[:200]}); "
            "delete it to train the regressor again"
        ) from None


__all__ = [
    "MAX_CLASSES",
    "REGRESSOR_FORMAT",
    "FactorNetwork",
    "FactorRegressor",
    "FactorRegressorError",
    "cached_factor_regressor",
    "factor_accuracy",
    "fit_factor_regressor",
]
