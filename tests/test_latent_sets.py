"""Latent sets and their averages (Methods steps 4-5, Eq. 3), and a known-answer test of the whole LSD
pipeline on a linear generator whose class directions are known."""

from __future__ import annotations

import itertools

import pytest
import torch

from conftest import linear_label_toy
from latentspectra.errors import LatentspectraError
from latentspectra.experiments.basis import build_basis
from latentspectra.latent import (
    UNLABELLED,
    UNLABELLED_SET,
    LatentSetError,
    QuasiEigenBasis,
    block_generator,
    build_latent_sets,
    collect_label_means,
    encode_blocks,
    load_basis,
    sample_blocks,
    save_basis,
)

DIM, LABELS = 20, 10


def _toy(seed: int = 0, scale: float = 6.0, dim: int = DIM, labels: int = LABELS):
    """A linear generator G(z) = z Q (Q orthogonal), a classifier whose logits are z . w_alpha for
    orthonormal class directions w_alpha (columns of W), and an encoder that maps an 'image' (the
    one-hot vector of its class) to scale * w_alpha + N(0, I); M = ``dim``, l = ``labels`` <= M."""
    generator, classifier, w = linear_label_toy(seed, dim, labels)

    def encoder_sample(images: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        return scale * images @ w.T + torch.randn(len(images), dim, generator=noise)

    return generator, classifier, encoder_sample, w


def _images(count: int, seed: int = 1, classes: int = LABELS) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` one-hot 'images', every one of ``classes`` equally often, in a seeded random order."""
    labels = (torch.arange(count) % classes)[torch.randperm(count, generator=torch.Generator().manual_seed(seed))]
    return torch.nn.functional.one_hot(labels, classes).float(), labels


def test_running_means_equal_the_direct_mean_of_the_first_v_vectors_per_label():
    generator, classifier, _, _ = _toy()
    stream = torch.randn(7, 300, DIM, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    per_label = 40
    result = collect_label_means(generator, classifier, iter(stream), LABELS, per_label)
    vectors = stream.reshape(-1, DIM)[: result.draws]
    labels = classifier(generator(vectors)).argmax(1)
    for label in range(LABELS):
        accepted = vectors[labels == label][:per_label]
        assert len(accepted) == per_label
        assert torch.allclose(result.means[label], accepted.mean(0), atol=1e-12, rtol=0)
    assert result.counts.tolist() == [per_label] * LABELS
    assert result.draws % 300 == 0 and result.draws < 7 * 300
    assert result.means.dtype == torch.float64 and not result.means.is_inference()
    for label in range(LABELS):  # the spread: sqrt(tr S / V) / |eta|, S the sample covariance
        accepted = vectors[labels == label][:per_label]
        spread = accepted.var(0, correction=1).sum()
        expected = (spread / per_label).sqrt() / accepted.mean(0).norm()
        assert result.relative_standard_errors()[label] == pytest.approx(float(expected), rel=1e-9)


def test_a_basis_drawn_until_stable_doubles_v_until_the_probe_labels_settle():
    """`stable_basis` (--per-set auto): V = 125, 250, ... until at most the tolerance of the probe latents change
    their LSD label between rounds, or V reaches the most; the basis is the one built at the last V, and the stats
    count every round's draws."""
    from latentspectra.experiments.basis import build_basis

    generator, classifier, encoder_sample, _ = _toy()
    images, _ = _images(300)
    arguments = {"latent_dim": DIM, "num_labels": LABELS, "batch_size": 64, "progress": False}
    settled = build_basis(generator, classifier, encoder_sample, images, 1000, tolerance=0.5, **arguments)
    rounds = settled.stats["rounds"]
    assert [done["per_set"] for done in rounds] == [125, 250] and rounds[0]["labels_changed"] is None
    assert rounds[1]["labels_changed"] <= 0.5 and settled.stats["stable"] is True
    assert settled.stats["samples_drawn"] == sum(done["samples_drawn"] for done in rounds)
    fixed = build_basis(generator, classifier, encoder_sample, images, 250, **arguments)
    assert torch.equal(settled.basis.vectors, fixed.basis.vectors) and settled.stats["per_set"] == 250
    capped = build_basis(generator, classifier, encoder_sample, images, 100, tolerance=0.5, **arguments)
    assert [done["per_set"] for done in capped.stats["rounds"]] == [100] and capped.stats["stable"] is False
    assert "rounds" not in fixed.stats


def test_float32_latents_give_the_same_means_to_float32_precision():
    generator, classifier, _, _ = _toy()
    stream = torch.randn(5, 400, DIM, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    exact = collect_label_means(generator, classifier, iter(stream), LABELS, 30)
    single = collect_label_means(generator, classifier, iter(stream.float()), LABELS, 30)
    assert torch.allclose(exact.means, single.means, atol=1e-5)


def test_same_seed_same_etas_and_different_seed_different_etas():
    generator, classifier, encoder_sample, _ = _toy()
    images, _ = _images(200)

    def build(seed: int):
        return build_latent_sets(
            generator,
            classifier,
            latent_dim=DIM,
            num_labels=LABELS,
            per_set=15,
            encoder_sample=encoder_sample,
            images=images,
            seed=seed,
            batch_size=64,
        )

    first, again, other = build(0), build(0), build(1)
    assert torch.equal(first.etas, again.etas)
    assert not torch.allclose(first.etas, other.etas)


def test_latent_sets_are_in_the_order_of_eq_5_with_stats():
    generator, classifier, encoder_sample, _ = _toy()
    images, _ = _images(200)
    sets = build_latent_sets(
        generator,
        classifier,
        latent_dim=DIM,
        num_labels=LABELS,
        per_set=10,
        encoder_sample=encoder_sample,
        images=images,
        batch_size=50,
    )
    assert sets.etas.shape == (DIM, DIM) and sets.etas.dtype == torch.float64
    assert sets.labels.tolist() == list(range(LABELS)) * 2
    assert sets.sets.tolist() == [1] * LABELS + [2] * LABELS
    assert sets.sources == ("encode", "sample")
    stats = sets.stats()
    assert stats["sets"] == 2 and stats["labels"] == LABELS and stats["per_set"] == 10
    assert stats["accepted"] == 10 * DIM and stats["samples_drawn"] == sum(sets.draws) >= 10 * DIM
    assert stats["seconds"] > 0 and stats["samples_per_second"] > 0


def test_encode_source_cycles_through_epochs_with_fresh_encodings():
    _, _, encoder_sample, _ = _toy()
    images, _ = _images(30)
    blocks = encode_blocks(encoder_sample, images, 16, seed=0)
    first_epoch = torch.cat([blocks(0), blocks(1)])
    second_epoch = torch.cat([blocks(2), blocks(3)])
    assert first_epoch.shape == second_epoch.shape == (30, DIM)
    assert torch.equal(blocks(1), blocks(1))  # a block is keyed, not drawn from a shared stream
    assert not torch.allclose(first_epoch, second_epoch)
    generator, classifier, _, _ = _toy()
    sets = build_latent_sets(
        generator,
        classifier,
        latent_dim=DIM,
        num_labels=LABELS,
        per_set=12,
        encoder_sample=encoder_sample,
        images=images,
        sources=("encode", "encode"),
        batch_size=16,
    )
    assert min(sets.draws) > len(images)  # 12 vectors per label need several passes over 30 images


def test_the_latent_sets_create_every_tensor_where_they_are_told():
    """With the default device elsewhere ("meta", which holds no data), a tensor that the latent-set loop made
    without naming the device it was given would land there and fail to mix with the real ones: this is
    how the GPU path's plumbing is checked on a CPU."""
    generator, classifier, _, w = _toy()
    images, _ = _images(40)

    def encoder_sample(batch: torch.Tensor, noise: torch.Generator) -> torch.Tensor:
        return 6.0 * batch @ w.T + torch.randn(len(batch), DIM, generator=noise, device=batch.device)

    arguments = {
        "latent_dim": DIM,
        "num_labels": LABELS,
        "per_set": 6,
        "encoder_sample": encoder_sample,
        "images": images,
        "batch_size": 16,
        "device": "cpu",
    }
    expected = build_latent_sets(generator, classifier, **arguments)
    with torch.device("meta"):
        built = build_latent_sets(generator, classifier, **arguments)
    assert built.etas.device.type == built.labels.device.type == built.sets.device.type == "cpu"
    assert torch.equal(built.etas, expected.etas) and torch.equal(built.labels, expected.labels)


def test_every_set_can_be_sampled():
    generator, classifier, _, _ = _toy()
    sets = build_latent_sets(generator, classifier, latent_dim=DIM, num_labels=LABELS, per_set=5)
    assert sets.sources == ("sample", "sample")
    blocks = sample_blocks(DIM, 8, seed=0, stream=1)
    batch = blocks(3)
    assert batch.shape == (8, DIM) and batch.dtype == torch.float32
    assert torch.equal(batch, torch.randn(8, DIM, generator=block_generator(0, 1, 3)))
    assert not torch.equal(batch, blocks(2)) and not torch.equal(batch, sample_blocks(DIM, 8, seed=0, stream=2)(3))


def test_sample_cap_names_the_missing_label():
    generator, classifier, _, _ = _toy()

    def never_three(images: torch.Tensor) -> torch.Tensor:
        logits = classifier(images)
        logits[:, 3] = -1e9
        return logits

    with pytest.raises(LatentSetError, match=r"after 1000 draws label 3 has 0 of 5;") as info:
        collect_label_means(
            generator,
            never_three,
            sample_blocks(DIM, 250, seed=0),
            LABELS,
            5,
            max_draws=1000,
            description="set 2/2 (sample)",
        )
    assert str(info.value).startswith("set 2/2 (sample)")
    assert isinstance(info.value, LatentspectraError)


def test_default_sample_cap_is_50_draws_per_requested_vector():
    generator, _, _, _ = _toy()

    def always_zero(images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.zeros(len(images), dtype=torch.int64), 2).float()

    with pytest.raises(LatentSetError, match=r"after 400 draws label 1 has 0 of 4"):
        collect_label_means(generator, always_zero, sample_blocks(DIM, 100, seed=0), 2, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"latent_dim": 9},
            r"^build_latent_sets: need M >= l >= 1 \(n = floor\(M / l\) latent sets per label\), "
            r"got latent dimension M = 9 and l = 10 labels$",
        ),
        ({"num_labels": 0}, r"got latent dimension M = 20 and l = 0 labels$"),
        ({"sources": ("sample",)}, "need one source per set: 2 sets, got 1"),
        ({"sources": ("sample", "dream")}, r"unknown latent sources \['dream'\]"),
        ({"sources": ("encode", "sample")}, 'source "encode" needs encoder_sample and images'),
    ],
)
def test_build_latent_sets_rejects_bad_arguments(kwargs, message):
    generator, classifier, _, _ = _toy()
    arguments = {"latent_dim": DIM, "num_labels": LABELS, "per_set": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_latent_sets(generator, classifier, **arguments)


def test_logits_of_the_wrong_shape_are_reported():
    generator, classifier, _, _ = _toy()
    with pytest.raises(ValueError, match=r"logits of shape \(100, 10\) for 100 latents, got \(100, 9\)"):
        collect_label_means(generator, lambda x: classifier(x)[:, :9], sample_blocks(DIM, 100, seed=0), LABELS, 2)


def test_known_answer_on_a_linear_generator():
    """Set 1 (encodings) averages to scale * w_alpha, so its quasi-eigenvectors align with the known class
    directions; LSD classification of fresh encodings agrees with the classifier."""
    generator, classifier, encoder_sample, w = _toy()
    images, _ = _images(3000)
    basis, _, stats = build_basis(
        generator,
        classifier,
        encoder_sample,
        images,
        per_set=200,
        seed=0,
        batch_size=500,
        latent_dim=DIM,
        num_labels=LABELS,
    )
    assert isinstance(basis, QuasiEigenBasis)
    assert stats["orthogonality_error"] <= 1e-10
    for key in ("seconds", "samples_per_second", "per_set", "sets", "labels", "samples_drawn"):
        assert key in stats
    assert (stats["per_set"], stats["sets"], stats["labels"]) == (200, 2, LABELS)
    for label in range(LABELS):
        xi = basis.vectors[basis.index_of(label, 1)]
        cosine = float(xi @ w[:, label].double()) / float(xi.norm())
        assert cosine > 0.99, (label, cosine)

    fresh, _ = _images(2000, seed=9)
    z = encoder_sample(fresh, torch.Generator().manual_seed(10))
    logits = classifier(generator(z))
    predicted = logits.argmax(1)
    lsd = basis.classify(z, top=4)
    # clear: the top logit beats the runner-up by 1 and the whole part of z outside span(W) by 1
    top_two = logits.topk(2, dim=1).values
    outside = (z - (z @ w) @ w.T).norm(dim=1)
    clear = (top_two[:, 0] - top_two[:, 1] > 1.0) & (top_two[:, 0] - outside > 1.0)
    assert clear.sum() > 1000
    assert torch.equal(lsd[clear, 0], predicted[clear])
    assert (lsd[:, 0] == predicted).float().mean() > 0.9
    assert (lsd == predicted[:, None]).any(1).float().mean() > 0.98


def test_build_basis_needs_sizes_from_config_or_arguments():
    generator, classifier, _, _ = _toy()
    with pytest.raises(ValueError, match="cannot read 'latent_dim' from function.config; pass latent_dim="):
        build_basis(generator, classifier, None, None, per_set=2)


def test_any_iterator_of_batches_is_accepted_and_a_finite_one_may_run_out():
    generator, classifier, _, _ = _toy()
    batch = torch.randn(500, DIM, generator=torch.Generator().manual_seed(2))
    result = collect_label_means(generator, classifier, itertools.repeat(batch), LABELS, 3)
    assert result.draws == 500
    with pytest.raises(
        LatentSetError, match="after 500 draws label .* has .* of 100; the stream of latent batches ended"
    ):
        collect_label_means(generator, classifier, iter([batch]), LABELS, 100)


# --- M not a multiple of l: n = floor(M / l) sets per label, r = M - n l unlabelled directions -----------------

UNEVEN = [(25, 4, 6, 1), (10, 3, 3, 1), (7, 3, 2, 1)]  # M, l, n, r


def _uneven_basis(dim: int, labels: int, orthogonalisation: str, seed: int = 0):
    """Latent sets (set 1 encoded, the rest sampled) of the toy networks with M = ``dim`` and l = ``labels``,
    and their quasi-eigenvectors."""
    generator, classifier, encoder_sample, _ = _toy(dim=dim, labels=labels)
    images, _ = _images(20 * labels, classes=labels)
    sets = build_latent_sets(
        generator,
        classifier,
        latent_dim=dim,
        num_labels=labels,
        per_set=8,
        encoder_sample=encoder_sample,
        images=images,
        seed=seed,
        batch_size=64,
    )
    return sets, QuasiEigenBasis.from_etas(sets.etas, sets.labels, sets.sets, orthogonalisation=orthogonalisation)


@pytest.mark.parametrize("orthogonalisation", ["gram-schmidt", "symmetric"])
@pytest.mark.parametrize(("dim", "labels", "per_label", "unlabelled"), UNEVEN)
def test_m_not_a_multiple_of_l_gives_floor_m_over_l_sets_and_unlabelled_directions_last(
    dim, labels, per_label, unlabelled, orthogonalisation
):
    sets, basis = _uneven_basis(dim, labels, orthogonalisation)
    count = per_label * labels
    assert sets.etas.shape == (count, dim) and len(sets.sources) == per_label
    assert sets.unlabelled_directions == sets.stats()["unlabelled_directions"] == unlabelled
    assert basis.dim == dim and basis.orthogonality_error() <= 1e-10
    assert torch.equal(basis.labels[:count], sets.labels) and torch.equal(basis.sets[:count], sets.sets)
    assert basis.labels[count:].tolist() == [UNLABELLED] * unlabelled
    assert basis.sets[count:].tolist() == [UNLABELLED_SET] * unlabelled
    assert basis.labelled.tolist() == [True] * count + [False] * unlabelled
    assert basis.provenance == {"orthogonalisation": orthogonalisation, "unlabelled_directions": unlabelled}
    assert ((basis.vectors[count:] @ sets.etas.T).abs() <= 1e-10 * sets.etas.norm(dim=1)).all()
    assert basis.index_of(labels - 1, per_label) == count - 1


@pytest.mark.parametrize("orthogonalisation", ["gram-schmidt", "symmetric"])
@pytest.mark.parametrize(("dim", "labels", "per_label", "unlabelled"), UNEVEN)
def test_unlabelled_directions_are_never_predicted_nor_ranked(dim, labels, per_label, unlabelled, orthogonalisation):
    _, basis = _uneven_basis(dim, labels, orthogonalisation)
    count = per_label * labels
    unlabelled_row = basis.vectors[count]
    # the unlabelled coefficient is by far the largest: the prediction is the label of the runner-up
    runner_up = basis.index_of(1, per_label)
    z = torch.cat(
        [
            10 * unlabelled_row + 3 * basis.vectors[runner_up] + 0.1 * basis.vectors[:count].sum(0)[None],
            torch.randn(300, dim, generator=torch.Generator().manual_seed(5), dtype=torch.float64),
        ]
    )
    predicted = basis.classify(z, top=count)
    assert (predicted >= 0).all() and predicted[0, 0] == 1
    truth = (torch.arange(len(z)) + 1) % labels  # z[0]: label 1, the runner-up's
    ranks = basis.label_ranks(z, truth)
    assert ranks[0] == 1 and (ranks >= 1).all() and (ranks <= count).all()  # the unlabelled rank 1 is skipped
    assert torch.equal(ranks == 1, predicted[:, 0] == truth)
    with pytest.raises(ValueError, match=rf"classify: top must be in 1..{count} \(the labelled quasi-eigenvectors\)"):
        basis.classify(z, top=count + 1)
    assert torch.allclose(basis.truncate(z, dim), z, atol=1e-10)
    kept = basis.decompose(basis.truncate(z[:1], 1))
    assert kept[0, count] == pytest.approx(10.0) and kept[0, :count].abs().max() <= 1e-12


@pytest.mark.parametrize("orthogonalisation", ["gram-schmidt", "symmetric"])
def test_a_basis_with_unlabelled_directions_is_deterministic_and_round_trips(tmp_path, orthogonalisation):
    _, basis = _uneven_basis(25, 4, orthogonalisation, seed=3)
    _, again = _uneven_basis(25, 4, orthogonalisation, seed=3)
    assert torch.equal(basis.vectors, again.vectors) and torch.equal(basis.labels, again.labels)
    loaded = load_basis(save_basis(basis, tmp_path / "basis.safetensors"))
    assert torch.equal(loaded.vectors, basis.vectors)
    assert torch.equal(loaded.labels, basis.labels) and torch.equal(loaded.sets, basis.sets)
    assert loaded.provenance == basis.provenance and loaded.provenance["unlabelled_directions"] == 1
