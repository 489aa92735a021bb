"""Training of the GAN (paper, Methods step 1): the non-saturating loss of Goodfellow et al.

Adam with betas 0.5/0.999 and InfoGAN's rates (generator 1e-3, discriminator 2e-4), one
discriminator step per generator step, forward passes in the run's precision (under bfloat16 autocast,
weights, optimizer state and batch-norm statistics stay float32), and an exponential moving average of
the generator's weights, which is the generator that is saved (see docs/networks.md for the
measurements).
"""

from __future__ import annotations

import copy
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..compute import Compute
from ..config import GANConfig, VAEConfig
from ..data import ImageDataset
from ..models import build_model
from .tensors import ShuffledEpochs


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), written with softplus for stability."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss -log D(G(z))."""
    return F.softplus(-fake_logits).mean()


def moving_average_decay(step: int, decay: float) -> float:
    """The EMA decay at optimizer step ``step`` (0-based): min(decay, (1 + step) / (10 + step)), so that
    the average follows the fast-changing early weights instead of lagging for ~1 / (1 - decay) steps."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def update_moving_average(average: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model for parameters; buffers are copied."""
    for target, source in zip(average.parameters(), model.parameters()):
        target.lerp_(source, 1 - decay)
    for target_buffer, source_buffer in zip(average.buffers(), model.buffers()):
        target_buffer.copy_(source_buffer)


def new_generator(config: GANConfig | VAEConfig, image_shape: tuple[int, int, int]) -> nn.Module:
    """A freshly initialised generator of ``config``'s latent size, width and hidden layer for images of
    ``image_shape``: the GAN's, or the VAE recipe's decoder (training/vae.py)."""
    return build_model(
        "generator",
        {
            "latent_dim": config.latent_dim,
            "width": config.generator_width,
            "hidden": config.hidden,
            "image_shape": image_shape,
        },
    )


class GANJob(ShuffledEpochs[GANConfig]):
    """A `TrainingJob` for the generator and discriminator.

    ``evaluate_samples`` (optional) maps the averaged generator to sample metrics; `train all` passes
    one that uses the trained classifier.
    """

    name = "gan"
    trained = ("generator", "discriminator")

    def __init__(
        self, dataset: ImageDataset, config: GANConfig, seed: int, evaluate_samples=None, compute: Compute | None = None
    ):
        self.images = self.start_job(dataset, config, seed, compute).train_images
        device = self.compute.device
        self.generator = new_generator(config, dataset.shape).to(device)
        self.discriminator = build_model(
            "discriminator",
            {"width": config.discriminator_width, "hidden": config.hidden, "image_shape": dataset.shape},
        ).to(device)
        self.average = copy.deepcopy(self.generator).requires_grad_(False)
        betas = cast(tuple[float, float], tuple(config.betas))  # a pair (GANConfig), perhaps a list from JSON
        self.optimizer_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_generator, betas=betas)
        self.optimizer_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_discriminator, betas=betas)
        self.modules = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "generator_average": self.average,
        }
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generator": self.optimizer_g,
            "discriminator": self.optimizer_d,
        }
        self.schedulers: dict = {}
        self._evaluate_samples = evaluate_samples

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        index, shard = self.batch(batch_index)
        real = self.images[index]
        discriminator = self.replica("discriminator")
        with self.compute.autocast():
            fake = self.replica("generator")(shard.normal(rng, self.config.latent_dim))
            loss_d = shard.scale(discriminator_loss(discriminator(real), discriminator(fake.detach())))
        self.optimizer_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.optimizer_d.step()
        # The plain discriminator: the generator's step needs its gradients through D, not D's own averaged.
        with self.compute.autocast():
            loss_g = shard.scale(generator_loss(self.discriminator(fake)))
        self.optimizer_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.optimizer_g.step()
        update_moving_average(
            self.average, self.generator, moving_average_decay(self._generator_steps() - 1, self.config.ema_decay)
        )
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

    def _generator_steps(self) -> int:
        """Optimizer steps taken so far; read from Adam's state so that it survives a resume."""
        first = next(iter(self.generator.parameters()))
        return int(self.optimizer_g.state[first]["step"])

    def finished_models(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.average, "discriminator": self.discriminator}

    def evaluate(self) -> dict[str, float]:
        return self._evaluate_samples(self.average) if self._evaluate_samples else {}
