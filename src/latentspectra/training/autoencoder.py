"""Training of the plain convolutional autoencoder (models/autoencoder.py) of the fragmentation study.

Mean squared reconstruction error, Adam with a cosine-annealed learning rate, the whole training set held
as one tensor; no augmentation and no regularisation of the codes (a plain autoencoder).

With ``interpolation_weight`` lambda > 0 the training adds Berthelot et al.'s adversarially constrained
interpolation (ACAI, ICLR 2019, Section 2): a critic learns the mixing coefficient alpha of images decoded
from alpha z_1 + (1 - alpha) z_2, and the autoencoder adds lambda times the critic's squared answer to its
loss, so that decoded mixtures of codes look like data. The codes stay deterministic and unconstrained;
docs/fragmentation.md measures what this does to sampling from the codes' fits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..compute import Compute
from ..config import AutoencoderConfig
from ..data import ImageDataset
from ..distributed import batched
from ..evaluation import psnr
from ..models import Autoencoder, build_model
from ..models.autoencoder import InterpolationCritic
from .tensors import ShuffledEpochs


def mix_codes(codes: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """ACAI's interpolants: alpha z_i + (1 - alpha) z_j for each code z_i of the batch and z_j the code at
    the mirrored position (the batch reversed), alpha ~ U[0, 1/2] per pair; returns (mixed codes, alpha)."""
    alpha = 0.5 * torch.rand(len(codes), 1, generator=rng, device=codes.device)
    return alpha * codes + (1 - alpha) * codes.flip(0), alpha.squeeze(1)


def critic_loss(
    critic: nn.Module,
    interpolants: torch.Tensor,
    alpha: torch.Tensor,
    images: torch.Tensor,
    reconstructions: torch.Tensor,
    blend: float,
) -> torch.Tensor:
    """The critic's loss: |d(x_alpha) - alpha|^2 on decoded interpolants plus |d(gamma x + (1 - gamma)
    x_hat)|^2 on blends of images and their reconstructions, whose target is 0 (gamma = ``blend``)."""
    realistic = blend * images + (1 - blend) * reconstructions
    return (critic(interpolants) - alpha).pow(2).mean() + critic(realistic).pow(2).mean()


class AutoencoderJob(ShuffledEpochs[AutoencoderConfig]):
    """A `TrainingJob` for the autoencoder (and ACAI's critic when ``config.interpolation_weight`` > 0);
    ``evaluate(model)`` adds metrics to the reconstruction ones."""

    name = "autoencoder"

    def __init__(
        self,
        dataset: ImageDataset,
        config: AutoencoderConfig,
        seed: int,
        evaluate: Callable[[Autoencoder], dict[str, float]] | None = None,
        compute: Compute | None = None,
    ):
        self.data = self.start_job(dataset, config, seed, compute)
        self.model = build_model(
            "autoencoder", {"latent_dim": config.latent_dim, "width": config.width, "image_shape": dataset.shape}
        ).to(self.compute.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        total_steps = max(1, config.epochs * self.batches_per_epoch())
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=total_steps)
        self.modules: dict[str, nn.Module] = {"autoencoder": self.model}
        self.optimizers: dict[str, torch.optim.Optimizer] = {"autoencoder": self.optimizer}
        self.schedulers = {"autoencoder": self.scheduler}
        self.critic: InterpolationCritic | None = None
        if config.interpolation_weight > 0:
            self.critic = InterpolationCritic(config.latent_dim, config.width, dataset.shape).to(self.compute.device)
            self.modules["critic"] = self.critic
            self.optimizers["critic"] = torch.optim.Adam(self.critic.parameters(), lr=config.lr)
        self._evaluate = evaluate

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        images = self.data.train_images[self.batches[batch_index]]
        with self.compute.autocast():
            codes = self.model.encode(images)
            reconstructions = self.model.decode(codes)
            mse = F.mse_loss(reconstructions.float(), images)
            if self.critic is not None:
                mixed, alpha = mix_codes(codes, rng)
                interpolants = self.model.decode(mixed)
                penalty = self.critic(interpolants).float().pow(2).mean()
        losses = {"mse": mse.item()}
        loss = mse
        if self.critic is not None:
            loss = mse + self.config.interpolation_weight * penalty
            losses["critic_penalty"] = penalty.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.critic is not None:
            with self.compute.autocast():
                loss_critic = critic_loss(
                    self.critic,
                    interpolants.detach(),
                    alpha,
                    images,
                    reconstructions.detach(),
                    self.config.critic_blend,
                ).float()
            self.optimizers["critic"].zero_grad(set_to_none=True)
            loss_critic.backward()
            self.optimizers["critic"].step()
            losses["critic"] = loss_critic.item()
        return losses

    def finished_models(self) -> dict[str, nn.Module]:
        return {"autoencoder": self.model}

    def evaluate(self) -> dict[str, float]:
        """Test-set reconstruction error (mean squared error in [-1, 1] pixel units, PSNR in dB), plus
        whatever the ``evaluate`` callback adds."""
        images = self.data.test_images
        reconstructions = batched(self.model, images)
        metrics = {
            "reconstruction_mse": F.mse_loss(reconstructions, images).item(),
            "reconstruction_psnr": psnr(reconstructions, images).mean().item(),
        }
        if self._evaluate is not None:
            metrics.update(self._evaluate(self.model))
        return metrics
