"""Training of the classifier C (paper, Methods step 2).

AdamW with a one-cycle learning rate, the whole training set held as one tensor on the run's device (no
DataLoader), light affine + Gaussian-noise augmentation, the forward pass in the run's precision: about
99.4% MNIST test accuracy in four epochs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..compute import Compute
from ..config import ClassifierConfig
from ..data import ImageDataset
from ..evaluation import classifier_accuracy
from ..models import build_model
from .augment import add_noise, random_affine
from .tensors import ShuffledEpochs


class ClassifierJob(ShuffledEpochs[ClassifierConfig]):
    """A `TrainingJob` for the classifier."""

    name = "classifier"
    trained = ("classifier",)

    def __init__(self, dataset: ImageDataset, config: ClassifierConfig, seed: int, compute: Compute | None = None):
        self.data = self.start_job(dataset, config, seed, compute)
        self.model = build_model(
            "classifier", {"num_classes": len(dataset.classes), "width": config.width, "image_shape": dataset.shape}
        ).to(self.compute.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.max_lr, weight_decay=config.weight_decay)
        total_steps = max(1, config.epochs * self.batches_per_epoch())
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.max_lr, total_steps=total_steps
        )
        self.modules = {"classifier": self.model}
        self.optimizers: dict[str, torch.optim.Optimizer] = {"classifier": self.optimizer}
        self.schedulers = {"classifier": self.scheduler}

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        cfg = self.config
        index, shard = self.batch(batch_index)
        images = random_affine(
            self.data.train_images[index], rng, cfg.max_rotation, cfg.max_scale, cfg.max_shift, shard
        )
        images = add_noise(images, rng, cfg.noise_sigma, shard)
        with self.compute.autocast():
            logits = self.replica("classifier")(images)
        loss = shard.scale(F.cross_entropy(logits.float(), self.data.train_labels[index]))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler.last_epoch + 1 < self.scheduler.total_steps:
            self.scheduler.step()
        return {"loss": loss.item()}

    def finished_models(self) -> dict[str, torch.nn.Module]:
        return {"classifier": self.model}

    def evaluate(self) -> dict[str, float]:
        return {"classifier_accuracy": classifier_accuracy(self.model, self.data.test_images, self.data.test_labels)}
