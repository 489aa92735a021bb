"""Training of the plain convolutional autoencoder (models/autoencoder.py) of the fragmentation study.

Mean squared reconstruction error, Adam with a cosine-annealed learning rate, the whole training set held
as one tensor; no augmentation and no regularisation of the codes (a plain autoencoder).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import AutoencoderConfig
from ..data import ImageDataset
from ..evaluation import batched, psnr
from ..models import Autoencoder
from .tensors import DatasetTensors, ShuffledBatches


class AutoencoderJob:
    """A `TrainingJob` for the autoencoder; ``evaluate(model)`` adds metrics to the reconstruction ones."""

    name = "autoencoder"

    def __init__(self, dataset: ImageDataset, config: AutoencoderConfig, seed: int,
                 evaluate: Callable[[Autoencoder], dict[str, float]] | None = None):
        torch.manual_seed(seed)
        self.config = config
        self.data = DatasetTensors.from_dataset(dataset)
        self.batches = ShuffledBatches(len(self.data.train_labels), config.batch_size)
        self.model = Autoencoder(config.latent_dim, config.width, dataset.shape)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        total_steps = max(1, config.epochs * self.batches_per_epoch())
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total_steps)
        self.modules = {"autoencoder": self.model}
        self.optimizers = {"autoencoder": self.optimizer}
        self.schedulers = {"autoencoder": self.scheduler}
        self._evaluate = evaluate

    def batches_per_epoch(self) -> int:
        return len(self.batches)

    def start_epoch(self, rng: torch.Generator) -> None:
        self.batches.shuffle(rng)

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        images = self.data.train_images[self.batches[batch_index]]
        loss = F.mse_loss(self.model(images), images)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {"mse": loss.item()}

    def finished_models(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.model}

    def evaluate(self) -> dict[str, float]:
        """Test-set reconstruction error (mean squared error in [-1, 1] pixel units, PSNR in dB), plus
        whatever the ``evaluate`` callback adds."""
        images = self.data.test_images
        reconstructions = batched(self.model, images)
        metrics = {"reconstruction_mse": F.mse_loss(reconstructions, images).item(),
                   "reconstruction_psnr": psnr(reconstructions, images).mean().item()}
        if self._evaluate is not None:
            metrics.update(self._evaluate(self.model))
        return metrics
