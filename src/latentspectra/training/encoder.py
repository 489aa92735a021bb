"""Training of the Gaussian encoder E (paper, Methods step 3).

E is the encoder of a VAE whose decoder is the frozen generator G; the frozen classifier C's
cross-entropy on the decoded image, weighted by lambda, is added to the VAE loss:

    loss = reconstruction_weight * |x - G(z)|^2 + kl_weight * KL(q(z|x) || N(0, I)) + lambda * CE(C(G(z)), y),
    z = mu(x) + sigma(x) * eps.

Only E's weights change; gradients flow through G and C to z.

Before that loss, a warm-up fits q(z | x) by maximum likelihood to pairs (z, G(z)) with z ~ N(0, I):
the encoder learns to invert the generator on its own samples, where the true latent is known. This
starts E with codes inside the prior's bulk; started from random weights instead, the paper's loss
drives the codes to an off-centre region (mean code norm 14.6 against a code norm of 18.7), which
breaks the quasi-eigenvector classification (see docs/networks.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..compute import Compute
from ..config import EncoderConfig
from ..data import ImageDataset
from ..models import build_model
from ..models.encoder import reparameterise
from ..models.layers import Configured
from .sharding import Shard
from .tensors import ShuffledEpochs, descend


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def gaussian_negative_log_likelihood(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """-log N(z; mu, diag(exp(logvar))) per row, without the constant M/2 log(2 pi)."""
    return 0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar).sum(1)


def encoder_loss(
    images: torch.Tensor,
    labels: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    z: torch.Tensor,
    generator: nn.Module,
    classifier: nn.Module,
    config: EncoderConfig,
    compute: Compute | None = None,
) -> dict[str, torch.Tensor]:
    """The paper's step-3 loss and its three terms, each averaged over the batch; G and C run in
    ``compute``'s precision (default float32)."""
    with (compute or Compute()).autocast():
        decoded = generator(z)
        logits = classifier(decoded)
    reconstruction = (decoded.float() - images).pow(2).flatten(1).sum(1).mean()
    kl = gaussian_kl(mu, logvar).mean()
    cross_entropy = F.cross_entropy(logits.float(), labels)
    total = (
        config.reconstruction_weight * reconstruction + config.kl_weight * kl + config.classifier_weight * cross_entropy
    )
    return {"loss": total, "reconstruction": reconstruction, "kl": kl, "cross_entropy": cross_entropy}


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients: the network acts as a fixed function."""
    return model.eval().requires_grad_(False)


class EncoderJob(ShuffledEpochs[EncoderConfig]):
    """A `TrainingJob` for the encoder, given the trained generator and classifier."""

    name = "encoder"
    trained = ("encoder",)

    def __init__(
        self,
        dataset: ImageDataset,
        config: EncoderConfig,
        seed: int,
        generator: Configured,
        classifier: nn.Module,
        evaluate=None,
        compute: Compute | None = None,
    ):
        self.data = self.start_job(dataset, config, seed, compute)
        device = self.compute.device
        self.generator = freeze(generator).to(device)
        self.classifier = freeze(classifier).to(device)
        latent_dim = generator.config["latent_dim"]
        self.encoder = build_model(
            "encoder",
            {"latent_dim": latent_dim, "width": config.width, "hidden": config.hidden, "image_shape": dataset.shape},
        ).to(device)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=config.lr)
        self.modules = {"encoder": self.encoder}
        self.optimizers: dict[str, torch.optim.Optimizer] = {"encoder": self.optimizer}
        self.schedulers: dict = {}
        self._evaluate = evaluate

    def prepare(self, rng: torch.Generator, progress: bool = True) -> None:
        """The warm-up: Adam steps (lr ``config.warm_up_lr``) on the Gaussian negative log-likelihood of
        z under q(z | G(z)), z ~ N(0, I) drawn from ``rng``: ``config.warm_up_steps`` of them, but never
        more than the training proper takes (epochs x batches per epoch), so that small datasets and
        short runs keep a short warm-up."""
        steps = min(self.config.warm_up_steps, self.config.epochs * self.batches_per_epoch())
        optimizer = torch.optim.Adam(self.encoder.parameters(), lr=self.config.warm_up_lr)
        latent_dim = self.encoder.latent_dim
        self.encoder.train()
        shard = Shard.of(self.config.batch_size, self.world)
        for _ in tqdm(
            range(steps),
            desc="encoder warm-up (inverting G on its samples)",
            disable=not progress,
            leave=False,
            mininterval=1.0,
        ):
            z = shard.normal(rng, latent_dim)
            with torch.no_grad(), self.compute.autocast():
                images = self.generator(z).float()
            mu, logvar = self.replica("encoder")(images)
            loss = shard.scale(gaussian_negative_log_likelihood(z, mu, logvar).mean())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def start_epoch(self, rng: torch.Generator) -> None:
        super().start_epoch(rng)
        # Frozen networks stay in eval mode although run_training puts its modules in train mode.
        freeze(self.generator)
        freeze(self.classifier)

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        index, shard = self.batch(batch_index)
        images, labels = self.data.train_images[index], self.data.train_labels[index]
        mu, logvar = self.replica("encoder")(images)
        z = reparameterise(mu, logvar, noise=shard.normal(rng, mu.shape[1], dtype=mu.dtype))
        terms = encoder_loss(images, labels, mu, logvar, z, self.generator, self.classifier, self.config, self.compute)
        return descend(self.optimizer, shard, terms)

    def finished_models(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def evaluate(self) -> dict[str, float]:
        return self._evaluate(self.encoder) if self._evaluate else {}
