"""Training of the generator as the decoder of a variational autoencoder: the `vae` recipe of
`latentspectra train` (beside the GAN of the paper's step 1).

The decoder is the package's `Generator` and the encoder its `GaussianEncoder`, trained together on the
negative evidence lower bound of Kingma & Welling (ICLR 2014), with the KL term weighted by beta
(Higgins et al., ICLR 2017; beta = 1 is the plain VAE):

    loss = -log p(x | z) + beta * KL(q(z | x) || N(0, I)),    z = mu(x) + sigma(x) * eps,

where p(x | z) is a Bernoulli likelihood of each pixel, its probability (G(z) + 1) / 2 and its target
(x + 1) / 2 (pixels live in [-1, 1] here), summed over the pixels: the decoder disentanglement_lib
trains on dSprites (Locatello et al., ICML 2019), and Kingma & Welling's on MNIST. The saved generator is
the decoder; the VAE's encoder is a training aid, like the GAN's discriminator, and `train all` trains
the paper's encoder (step 3) against the decoder afterwards.

Why a second recipe: on `sprites` the GAN collapsed to a few blob-like shapes in every setting tried, where the
VAE's decoder draws all three shapes (docs/ground-truth.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..compute import Compute
from ..config import VAEConfig
from ..data import ImageDataset
from ..models import build_model
from ..models.encoder import reparameterise
from .encoder import gaussian_kl
from .gan import new_generator
from .tensors import ShuffledEpochs, descend

# Pixel probabilities are kept this far from 0 and 1, so that a saturated tanh costs a finite loss.
PROBABILITY_FLOOR = 1e-6


def bernoulli_negative_log_likelihood(decoded: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """-log p(x | z) per row: the binary cross-entropy of the pixel probabilities (decoded + 1) / 2 against the
    targets (images + 1) / 2, both from [-1, 1], summed over the pixels."""
    probabilities = ((decoded.float() + 1) / 2).clamp(PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    targets = (images + 1) / 2
    return F.binary_cross_entropy(probabilities, targets, reduction="none").flatten(1).sum(1)


def vae_loss(
    images: torch.Tensor, decoded: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, kl_weight: float
) -> dict[str, torch.Tensor]:
    """The beta-VAE loss (the negative ELBO for beta = 1) and its two terms, each averaged over the batch."""
    reconstruction = bernoulli_negative_log_likelihood(decoded, images).mean()
    kl = gaussian_kl(mu.float(), logvar.float()).mean()
    return {"loss": reconstruction + kl_weight * kl, "reconstruction": reconstruction, "kl": kl}


class VAEJob(ShuffledEpochs[VAEConfig]):
    """A `TrainingJob` for the generator as a VAE's decoder, with the VAE's encoder beside it.

    ``evaluate_samples`` (optional) maps the trained generator to sample metrics, as for the GAN.
    """

    name = "vae"
    trained = ("generator", "encoder")

    def __init__(
        self, dataset: ImageDataset, config: VAEConfig, seed: int, evaluate_samples=None, compute: Compute | None = None
    ):
        self.images = self.start_job(dataset, config, seed, compute).train_images
        device = self.compute.device
        self.generator = new_generator(config, dataset.shape).to(device)
        self.encoder = build_model(
            "encoder",
            {
                "latent_dim": config.latent_dim,
                "width": config.encoder_width,
                "hidden": config.encoder_hidden,
                "image_shape": dataset.shape,
            },
        ).to(device)
        self.optimizer = torch.optim.Adam([*self.generator.parameters(), *self.encoder.parameters()], lr=config.lr)
        self.modules = {"generator": self.generator, "encoder": self.encoder}
        self.optimizers: dict[str, torch.optim.Optimizer] = {"vae": self.optimizer}
        self.schedulers: dict = {}
        self._evaluate_samples = evaluate_samples

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        index, shard = self.batch(batch_index)
        images = self.images[index]
        with self.compute.autocast():
            mu, logvar = self.replica("encoder")(images)
            z = reparameterise(mu.float(), logvar.float(), noise=shard.normal(rng, self.config.latent_dim))
            decoded = self.replica("generator")(z)
        return descend(self.optimizer, shard, vae_loss(images, decoded, mu, logvar, self.config.kl_weight))

    def finished_models(self) -> dict[str, nn.Module]:
        return {"generator": self.generator}

    def evaluate(self) -> dict[str, float]:
        return self._evaluate_samples(self.generator) if self._evaluate_samples else {}
