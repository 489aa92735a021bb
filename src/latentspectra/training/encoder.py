"""Training of the Gaussian encoder E (paper, Methods step 3).

E is the encoder of a VAE whose decoder is the frozen generator G; the frozen classifier C's
cross-entropy on the decoded image, weighted by lambda, is added to the VAE loss:

    loss = |x - G(z)|^2 + kl_weight * KL(q(z|x) || N(0, I)) + lambda * CE(C(G(z)), y),
    z = mu(x) + sigma(x) * eps.

Only E's weights change; gradients flow through G and C to z.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import EncoderConfig
from ..data import ImageDataset
from ..models import GaussianEncoder
from .tensors import DatasetTensors


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)


def encoder_loss(images: torch.Tensor, labels: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                 z: torch.Tensor, generator: nn.Module, classifier: nn.Module,
                 config: EncoderConfig) -> dict[str, torch.Tensor]:
    """The paper's step-3 loss and its three terms, each averaged over the batch."""
    decoded = generator(z)
    reconstruction = (decoded - images).pow(2).flatten(1).sum(1).mean()
    kl = gaussian_kl(mu, logvar).mean()
    cross_entropy = F.cross_entropy(classifier(decoded), labels)
    total = reconstruction + config.kl_weight * kl + config.classifier_weight * cross_entropy
    return {"loss": total, "reconstruction": reconstruction, "kl": kl, "cross_entropy": cross_entropy}


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no parameter gradients: the network acts as a fixed function."""
    return model.eval().requires_grad_(False)


class EncoderJob:
    """A `TrainingJob` for the encoder, given the trained generator and classifier."""

    name = "encoder"

    def __init__(self, dataset: ImageDataset, config: EncoderConfig, seed: int, generator: nn.Module,
                 classifier: nn.Module, evaluate=None):
        torch.manual_seed(seed)
        self.config = config
        self.data = DatasetTensors.from_dataset(dataset)
        self.generator = freeze(generator)
        self.classifier = freeze(classifier)
        latent_dim = generator.config["latent_dim"]
        self.encoder = GaussianEncoder(latent_dim, config.width, config.hidden, dataset.shape)
        self.optimizer = torch.optim.Adam(self.encoder.parameters(), lr=config.lr)
        self.modules = {"encoder": self.encoder}
        self.optimizers = {"encoder": self.optimizer}
        self.schedulers: dict = {}
        self._order = torch.arange(len(self.data.train_labels))
        self._evaluate = evaluate

    def batches_per_epoch(self) -> int:
        return max(1, len(self.data.train_labels) // self.config.batch_size)

    def start_epoch(self, rng: torch.Generator) -> None:
        self._order = torch.randperm(len(self.data.train_labels), generator=rng)
        # Frozen networks stay in eval mode although run_training puts its modules in train mode.
        freeze(self.generator)
        freeze(self.classifier)

    def train_step(self, batch_index: int, rng: torch.Generator) -> dict[str, float]:
        size = self.config.batch_size
        index = self._order[batch_index * size:(batch_index + 1) * size]
        images, labels = self.data.train_images[index], self.data.train_labels[index]
        mu, logvar = self.encoder(images)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=rng)
        terms = encoder_loss(images, labels, mu, logvar, z, self.generator, self.classifier, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        self.optimizer.step()
        return {key: value.item() for key, value in terms.items()}

    def finished_models(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def evaluate(self) -> dict[str, float]:
        return self._evaluate(self.encoder) if self._evaluate else {}
