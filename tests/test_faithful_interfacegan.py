"""InterFaceGAN as its authors run it: our own port of their procedure (utils/manipulator.py: `train_boundary`,
`linear_interpolate` of github.com/genforce/interfacegan, written here from their description and code) must give
the project's normals and edits on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import svm

from latentspectra.methods import InterFaceGAN


def authors_boundary(
    latents: np.ndarray,
    scores: np.ndarray,
    ratio: float,
    split: float,
    positive_order: np.ndarray,
    negative_order: np.ndarray,
) -> np.ndarray:
    """Their `train_boundary`: rank by score (highest first), the top and bottom int(N ratio) as positives and
    negatives, each side shuffled (here by the given orders, theirs by NumPy's global state), the first
    int(count (1 - split)) of each side trained on by a linear SVC with its defaults, the weight normalised."""
    ranked = np.argsort(scores)[::-1]
    count = int(len(latents) * ratio)
    train = int(count * (1 - split))
    positives = latents[ranked[:count]][positive_order]
    negatives = latents[ranked[-count:]][negative_order]
    data = np.concatenate([positives[:train], negatives[:train]])
    labels = np.concatenate([np.ones(train, dtype=int), np.zeros(train, dtype=int)])
    weight = svm.SVC(kernel="linear").fit(data, labels).coef_.reshape(-1)
    return weight / np.linalg.norm(weight)


def authors_linear_interpolate(latent: np.ndarray, boundary: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """Their `linear_interpolate`: the latent placed at each signed distance from the boundary, its distance read
    as latent . boundary."""
    return latent + (distances - latent @ boundary)[:, None] * boundary[None]


@pytest.mark.parametrize("dim, count", [(8, 2000), (30, 5000)])
def test_the_normal_is_the_authors_on_the_same_rows(dim, count):
    rng = np.random.default_rng(0)
    latents = rng.standard_normal((count, dim))
    truth = rng.standard_normal(dim)
    scores = latents @ truth + 0.5 * rng.standard_normal(count)
    ours = InterFaceGAN(1, latent_dim=dim, seed=3).fit(
        latents=torch.from_numpy(latents), scores=torch.from_numpy(scores)
    )
    chosen = int(count * 0.02)
    shuffles = torch.Generator().manual_seed(3)  # the shuffles our fit drew: positives first, then negatives
    orders = [torch.randperm(chosen, generator=shuffles).numpy() for _ in range(2)]
    theirs = authors_boundary(latents, scores, 0.02, 0.3, *orders)
    assert abs(float(ours.directions_[0].double() @ torch.from_numpy(theirs))) > 1 - 1e-6


def test_the_distance_edit_is_the_authors_linear_interpolate():
    rng = np.random.default_rng(1)
    latents = rng.standard_normal((400, 6))
    scores = latents[:, 0] - latents[:, 2]
    method = InterFaceGAN(1, latent_dim=6, ratio=0.2, edit_mode="distance").fit(
        latents=torch.from_numpy(latents), scores=torch.from_numpy(scores)
    )
    latent, distances = latents[5], np.linspace(-3, 3, 7)
    theirs = authors_linear_interpolate(latent, method.directions_[0].double().numpy(), distances)
    ours = torch.stack([method.edit(torch.from_numpy(latent)[None], 0, float(t))[0] for t in distances])
    assert np.allclose(ours.numpy(), theirs, atol=1e-6)
    shifted = InterFaceGAN(1, latent_dim=6, ratio=0.2).fit(
        latents=torch.from_numpy(latents), scores=torch.from_numpy(scores)
    )
    moved = shifted.edit(torch.from_numpy(latent)[None], 0, 2.0)[0] - torch.from_numpy(latent)
    assert torch.allclose(moved, 2.0 * shifted.directions_[0].double(), atol=1e-6)  # the default: z + t n
