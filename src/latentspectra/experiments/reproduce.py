"""`latentspectra reproduce`: the paper's whole study on one set of trained networks.

`reproduce_study` computes and returns a `ReproduceResult`; `write_reproduce` writes it (metrics.json,
basis.safetensors, figures/fig2-8.png, report.md, report.html); `run_reproduce` loads (or trains) the
networks, runs the one and then the other. Stages (each timed in ``metrics["seconds"]``): load (or train) the
networks; build the latent sets and the quasi-eigenvectors (Methods steps 4-6); the test images' latents; classify
the test set by LSD over stochastic encodings (Fig. 5, 6); denoise by truncation (Fig. 7, measured); rotate with
Algorithm 1 (Fig. 8, measured); decode what Figs. 2-4 show.

Real images become latents as ``--inversion`` says (experiments/image_latents.py; auto: the encoder where the
networks have one, optimisation from the prior where they have none): with the encoder, stochastic encodings of
the test set over ``trials`` and the encoder's means of the noisy and rotated images, as the paper; with an
inversion, one latent per test image (the classification is one trial: the descent is deterministic, the rotation
starts from the first ``rotation_images`` of them) and one per noisy image. The latent sets are not inverted: set 1
holds stochastic encodings of training images where there is an encoder and draws from the prior where there is
none (`study_basis`), as are the probe latents of ``--per-set auto`` (`experiments.basis.label_probe`).

Seeds per purpose (`config.SEEDS`), offsets from the run's seed: the basis ``basis``, the test-set
encodings ``encodings``, the latent examples of Figs. 2-3 ``examples``, the pixel noise of the denoising
study ``noise``, the inversion's draws ``inversion``.

Every network acting on latents or images runs as an inference copy (batch norm folded, channels-last) on
the run's device (``config.device``, default auto); G and C on generated images in the run's precision
(``config.precision``: auto picks bfloat16 only on hardware with native bfloat16, compute.py), the encoder
and C on the real test images in float32 (see models/inference.py). Latents are drawn on the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..compute import Compute
from ..config import SEEDS, ReproduceConfig, TrainConfig, config_record, derived_seed, per_set_rule
from ..data import ImageDataset, images_to_tensor, load_dataset
from ..distributed import SINGLE, DistributedError, World, batched
from ..evaluation import classifier_accuracy, psnr, summarise
from ..io import output_directory, versions, write_json
from ..latent import QuasiEigenBasis, rotation_path
from ..latent.basis import ORTHOGONALISATIONS
from ..latent.files import save_basis
from ..latent.operators import ROTATION_MODES
from ..latent.sets import LatentSets
from ..models.encoder import reparameterise
from ..progress import progress_bar
from ..report import figures
from ..report.document import write_report
from .basis import BasisBuild, build_basis
from .common import Timer, decode, predict, to_unit_images
from .image_latents import resolve_inversion, study_latents
from .networks import Networks, check_dataset_fits, load_study_networks
from .train import train_networks

# --- What the study returns ---------------------------------------------------------------------------

# What metrics.json keeps of the basis' record: the draws, how settled each set's etas are, and the rounds of a
# basis drawn until stable
BASIS_KEYS = (
    "samples_drawn",
    "draws_per_set",
    "relative_standard_error_per_set",
    "sources",
    "world_size",
    "tolerance",
    "stable",
    "rounds",
)


@dataclass(frozen=True)
class Classification:
    """LSD classification of the test set over stochastic encodings (Figs. 5 and 6).

    ``lsd_top1`` and ``encode_decode`` are {"mean", "std", "trials"} (`evaluation.summarise`);
    ``by_orthogonalisation`` maps each basis to its "top1" and "top4" summaries on the same encodings; the
    arrays are the first trial's, for the figures."""

    lsd_top1: dict[str, Any]
    encode_decode: dict[str, Any]
    topn_cumulative: list[float]
    by_orthogonalisation: dict[str, dict[str, dict[str, Any]]]
    sorted_amplitudes: np.ndarray  # (N, M) |c| sorted, over the largest
    true_rank: np.ndarray  # (N,) rank of the true label's first quasi-eigenvector
    batch_images: np.ndarray  # (B, H, W) the first test images, in [0, 1]
    batch_true: np.ndarray
    batch_pred: np.ndarray


@dataclass(frozen=True)
class Denoising:
    """Classifier accuracy and PSNR of each method at each noise level (Fig. 7, measured); ``rows``: the
    figure's image rows at the middle noise level."""

    images: int
    sigmas: list[float]
    methods: list[str]
    accuracy: dict[str, list[float]]
    psnr: dict[str, list[float]]
    rows: dict[str, np.ndarray]

    def record(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "sigmas": self.sigmas,
            "methods": self.methods,
            "accuracy": self.accuracy,
            "psnr": self.psnr,
        }


@dataclass(frozen=True)
class Rotation:
    """Algorithm 1's segment ends classified as the label reached, per operator mode (Fig. 8, measured);
    ``sequence``: decoded paths of the figure, (steps + 1, 5, H, W)."""

    images: int
    labels: list[int]
    dtheta: float
    steps: int
    modes: dict[str, dict[str, Any]]
    sequence: np.ndarray

    def record(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "labels": self.labels,
            "dtheta": self.dtheta,
            "steps": self.steps,
            "modes": self.modes,
        }


@dataclass(frozen=True)
class Examples:
    """What Figs. 2-4 show, decoded: test images, their encode-decode and samples G(z) (Fig. 2); latents of
    both sources with their labels (Fig. 3); decoded etas and quasi-eigenvectors and the Gram matrices (Fig. 4)."""

    test_images: np.ndarray
    reconstructions: np.ndarray
    samples: np.ndarray
    panels: dict[str, dict[str, Any]]
    eta_images: np.ndarray
    basis_images: np.ndarray
    eta_gram: np.ndarray
    basis_gram: np.ndarray


@dataclass(frozen=True)
class ReproduceResult:
    """Everything the study measured and the data of its figures; `metrics` is metrics.json."""

    config: ReproduceConfig
    models: str
    basis: QuasiEigenBasis
    basis_stats: dict[str, Any]
    classifier_accuracy: dict[str, Any]
    classification: Classification
    denoising: Denoising
    rotation: Rotation
    examples: Examples
    compute: dict[str, Any]
    seconds: dict[str, float]
    label_names: tuple[str, ...] = ()  # the classifier's labels, for the figures
    inversion: dict[str, Any] = field(default_factory=dict)  # how the test images became latents (`ImageLatents`)

    def metrics(self) -> dict[str, Any]:
        """The JSON record of the run (metrics.json)."""
        classification, stats = self.classification, self.basis_stats
        return {
            "dataset": self.config.dataset,
            "seed": self.config.seed,
            "models": self.models,
            "latent_dim": stats["latent_dim"],
            "per_set": self.config.per_set,
            "classifier_accuracy": self.classifier_accuracy,
            "encode_decode_accuracy": classification.encode_decode,
            "lsd_top1_accuracy": classification.lsd_top1,
            "lsd_top4_accuracy": classification.topn_cumulative[3],
            "lsd_topn_cumulative": classification.topn_cumulative,
            "inversion": self.inversion,
            "orthogonalisation": self.config.orthogonalisation,
            "lsd_by_orthogonalisation": classification.by_orthogonalisation,
            "basis_orthogonality_error": stats["orthogonality_error"],
            "basis": {key: stats[key] for key in BASIS_KEYS if key in stats},  # the last three with --per-set auto
            "denoising": self.denoising.record(),
            "rotation": self.rotation.record(),
            "seconds": {**self.seconds, "total": sum(self.seconds.values())},
            "basis_samples_per_second": stats["samples_per_second"],
            "config": config_record(self.config),
            "compute": self.compute,
            "versions": versions(),
        }


# --- LSD classification over stochastic encodings (Figs. 5 and 6) -------------------------------------


def trial_latents(
    networks: Networks, images: torch.Tensor, config: ReproduceConfig, inverted: torch.Tensor | None
) -> Iterator[torch.Tensor]:
    """The test latents of each classification trial: with the encoder, ``config.trials`` stochastic encodings of
    ``images``, drawn from q(z | x) computed once for all trials (seed offset ``encodings``); with an inversion, its
    one latent per image, ``inverted``, in a single trial (the descent is deterministic)."""
    if inverted is not None:
        yield inverted
        return
    encoder = networks.encoder
    assert encoder is not None  # `reproduce_study` resolved the inversion "encoder", which requires it
    rng = networks.compute.generator(derived_seed(config.seed, SEEDS.encodings))
    mu, logvar = batched(lambda x: torch.cat(encoder(x), 1), images, networks.batch_size).chunk(2, dim=1)
    for _ in range(config.trials):
        yield reparameterise(mu, logvar, rng)


def classification_study(
    networks: Networks,
    bases: dict[str, QuasiEigenBasis],
    basis: QuasiEigenBasis,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ReproduceConfig,
    progress: bool,
    inverted: torch.Tensor | None = None,
) -> Classification:
    """Per trial (`trial_latents`: a stochastic encoding of every test image, or their inverted latents ``inverted``
    once): the encode-decode accuracy (classify G(z)) and the LSD ranks of the true label (Eq. 10, argmax |c_k|)
    in ``basis``, and the top-1 and top-4 accuracies of each of ``bases`` on the same latents. The cumulative top-n
    curve is averaged over trials; the figures get the first trial."""
    trials = 1 if inverted is not None else config.trials
    lsd, encode_decode = [], []
    rank_counts = torch.zeros(basis.dim + 2, dtype=torch.float64, device=labels.device)
    compared_ranks: dict[str, dict[str, list[float]]] = {name: {"top1": [], "top4": []} for name in bases}
    with progress_bar("LSD classification (trials)", progress) as bar:
        bar.reset(total=trials)
        for trial, z in enumerate(trial_latents(networks, images, config, inverted)):
            ranks = basis.label_ranks(z, labels)
            lsd.append((ranks == 1).double().mean().item())
            encode_decode.append((predict(networks, z) == labels).double().mean().item())
            rank_counts += torch.bincount(ranks, minlength=basis.dim + 2).double()
            for name, other in bases.items():
                other_ranks = ranks if other is basis else other.label_ranks(z, labels)
                compared_ranks[name]["top1"].append((other_ranks == 1).double().mean().item())
                compared_ranks[name]["top4"].append((other_ranks <= 4).double().mean().item())
            if trial == 0:
                first = (z, ranks)
            bar.update()
    z, ranks = first
    amplitudes = basis.decompose(z).abs().sort(dim=1, descending=True).values
    shown = 25
    return Classification(
        lsd_top1=summarise(lsd),
        encode_decode=summarise(encode_decode),
        topn_cumulative=(rank_counts[1 : basis.dim + 1].cumsum(0) / rank_counts.sum()).tolist(),
        by_orthogonalisation={
            name: {key: summarise(values) for key, values in accuracies.items()}
            for name, accuracies in compared_ranks.items()
        },
        sorted_amplitudes=(amplitudes / amplitudes[:, :1]).cpu().numpy(),
        true_rank=ranks.cpu().numpy(),
        batch_images=to_unit_images(images[:shown]),
        batch_true=labels[:shown].cpu().numpy(),
        batch_pred=basis.classify(z[:shown])[:, 0].cpu().numpy(),
    )


# --- Denoising by truncation (Fig. 7, measured) ----------------------------------------------------------


def denoising_study(
    networks: Networks,
    basis: QuasiEigenBasis,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: ReproduceConfig,
    progress: bool = False,
) -> Denoising:
    """Gaussian pixel noise of each sigma on the test images; classifier accuracy and PSNR against the
    clean image of: the noisy image, its encode-decode G(mu(x)), and the LSD truncations of mu(x) to the
    top n components (paper, Fig. 7); mu(x) is the noisy image's latent as ``config.inversion`` says (the
    encoder's mean, or the descent's latent: `image_latents.study_latents`)."""
    # `reproduce_study` required them; the exact classifier is loaded with the classifier
    assert networks.classifier is not None and networks.exact_classifier is not None
    rng = networks.compute.generator(derived_seed(config.seed, SEEDS.noise))
    methods = ["noisy", "encode-decode", *(f"top {n}" for n in config.truncations)]
    accuracy: dict[str, list[float]] = {method: [] for method in methods}
    quality: dict[str, list[float]] = {method: [] for method in methods}
    rows: dict[str, np.ndarray] = {}
    for sigma in config.noise_sigmas:
        noise = torch.randn(images.shape, generator=rng, device=images.device) * (2 * sigma)  # [0, 1] -> [-1, 1] units
        noisy = (images + noise).clamp(-1, 1)
        mu = study_latents(noisy, networks, config, config.seed, progress=progress).latents.to(noisy.device)
        outputs = {"noisy": noisy, "encode-decode": decode(networks, mu)}
        for n in config.truncations:
            outputs[f"top {n}"] = decode(networks, basis.truncate(mu, n))
        for method, output in outputs.items():
            classifier = networks.exact_classifier if method == "noisy" else networks.classifier
            predictions = batched(classifier, output, networks.batch_size).argmax(1)
            accuracy[method].append((predictions == labels).double().mean().item())
            quality[method].append(psnr(output, images).mean().item())
        if sigma == config.noise_sigmas[len(config.noise_sigmas) // 2]:
            titles = {"noisy": f"noisy (sigma {sigma})", "encode-decode": f"all {basis.dim}"}
            rows = {
                "ground truth": to_unit_images(images[:10]),
                **{titles.get(name, name): to_unit_images(output[:10]) for name, output in outputs.items()},
            }
    return Denoising(len(images), list(config.noise_sigmas), methods, accuracy, quality, rows)


# --- Rotation (Algorithm 1, Fig. 8, measured) ------------------------------------------------------------


def rotation_study(networks: Networks, basis: QuasiEigenBasis, mu: torch.Tensor, config: ReproduceConfig) -> Rotation:
    """Algorithm 1 from the test images' latents ``mu`` (the encoder's means or the inverted latents) through
    labels 0, 1, ..., l - 1, with the literal Eq. 12 operator and with the plane rotation: the fraction of segment
    ends (where z reaches the next label's quasi-eigenvector) whose decoded image C assigns to that label, overall
    and per target; and the decoded paths of Fig. 8."""
    labels = tuple(range(networks.num_labels))
    ends = torch.arange(config.rotation_steps, len(labels) * config.rotation_steps, config.rotation_steps)
    targets = torch.tensor(labels[1:], device=mu.device).repeat_interleave(len(mu))
    modes: dict[str, Any] = {}
    paths: dict[str, torch.Tensor] = {}
    for mode in ROTATION_MODES:
        path = rotation_path(mu, basis, labels, config.rotation_dtheta, config.rotation_steps, mode=mode)
        hits = (predict(networks, path[ends].flatten(0, 1)) == targets).double()
        modes[mode] = {
            "segment_end_accuracy": hits.mean().item(),
            "per_target": hits.view(len(labels) - 1, len(mu)).mean(1).tolist(),
        }
        paths[mode] = path
    shown = torch.cat([paths["plane"][:, :4], paths["literal"][:, :1]], dim=1)  # (steps + 1, 5, M)
    sequence = decode(networks, shown.flatten(0, 1)).unflatten(0, shown.shape[:2])
    return Rotation(
        len(mu),
        list(labels),
        config.rotation_dtheta,
        config.rotation_steps,
        modes,
        np.stack([to_unit_images(step) for step in sequence]),
    )


# --- Figures 2-4: data, latent sets, etas and quasi-eigenvectors -----------------------------------------


def latent_examples(networks: Networks, latents: torch.Tensor, per_label: int = 3) -> dict[str, Any]:
    """Fig. 3 data for one latent source: a few latents per label (label = C(G(z))) and the pooled
    components of every latent of each label."""
    predicted, latents = predict(networks, latents).cpu(), latents.cpu()
    shown = torch.cat([torch.nonzero(predicted == label).flatten()[:per_label] for label in range(networks.num_labels)])
    return {
        "latents": latents[shown].numpy(),
        "latent_labels": predicted[shown].numpy(),
        "components": {label: latents[predicted == label].flatten().numpy() for label in range(networks.num_labels)},
    }


def examples_study(
    networks: Networks,
    basis: QuasiEigenBasis,
    latent_sets: LatentSets,
    test_images: torch.Tensor,
    train_images: torch.Tensor,
    config: ReproduceConfig,
    inverted: torch.Tensor | None = None,
) -> Examples:
    """The decoded images and latents that Figs. 2-4 show: the test images' reconstructions from one stochastic
    encoding each, or from their inverted latents ``inverted``; set 1's panel from stochastic encodings of training
    images where the networks have an encoder, else from the prior as its set was drawn."""
    encoder = networks.encoder
    rng = networks.compute.generator(derived_seed(config.seed, SEEDS.examples))
    shown = test_images[:100]
    if inverted is None:
        assert encoder is not None  # `reproduce_study` resolved the inversion "encoder", which requires it
        reconstructions = decode(networks, encoder.sample(shown, rng))
    else:
        reconstructions = decode(networks, inverted[:100].to(shown.device))
    samples = decode(networks, torch.randn(100, networks.latent_dim, generator=rng, device=rng.device))
    eta_images = to_unit_images(decode(networks, latent_sets.etas))
    if encoder is not None:
        first = "step 4a: encoded training set (set 1)"
        set_one = batched(lambda x: encoder.sample(x, rng), train_images[:2000], networks.batch_size)
    else:
        first = "step 4a: z ~ N(0, I) (set 1, no encoder)"
        set_one = torch.randn(2000, networks.latent_dim, generator=rng, device=rng.device)
    sampled = torch.randn(2000, networks.latent_dim, generator=rng, device=rng.device)
    by_set = {index: eta_images[(latent_sets.sets == index).numpy()] for index in (1, 2)}
    panels = {
        first: {**latent_examples(networks, set_one), "decoded_etas": by_set[1]},
        "step 4b: z ~ N(0, I) (set 2)": {**latent_examples(networks, sampled), "decoded_etas": by_set[2]},
    }
    etas = latent_sets.etas
    return Examples(
        to_unit_images(shown),
        to_unit_images(reconstructions),
        to_unit_images(samples),
        panels,
        eta_images,
        to_unit_images(decode(networks, basis.vectors)),
        (etas @ etas.T).numpy(),
        (basis.vectors @ basis.vectors.T / basis.norm).numpy(),
    )


# --- The whole study -------------------------------------------------------------------------------------


def study_basis(
    networks: Networks,
    train_images: torch.Tensor,
    config: ReproduceConfig,
    progress: bool = True,
    world: World = SINGLE,
) -> BasisBuild:
    """The study's first stage, the basis (paper steps 4-6) from ``train_images`` (on the networks' device), the
    one stage that is sharded over the ranks of ``world``: every rank calls it. Set 1 holds stochastic encodings
    of the training images where the networks have an encoder, and draws from the prior like every other set where
    they have none (as `latentspectra basis`; an inversion gives one latent per image, where a set takes V per label
    from epochs of fresh encodings, and would take hours)."""
    # the callers (`reproduce_study`, `run_reproduce`) required them
    assert networks.generator is not None and networks.classifier is not None
    per_set, tolerance = per_set_rule(config.per_set, config.tolerance)
    return build_basis(
        networks.generator,
        networks.classifier,
        None if networks.encoder is None else networks.encoder.sample,
        train_images,
        per_set=per_set,
        tolerance=tolerance,
        seed=derived_seed(config.seed, SEEDS.basis),
        batch_size=networks.batch_size,
        progress=progress,
        latent_dim=networks.latent_dim,
        num_labels=networks.num_labels,
        orthogonalisation=config.orthogonalisation,
        device=networks.compute.device,
        world=world,
    )


def reproduce_study(
    networks: Networks,
    dataset: ImageDataset,
    config: ReproduceConfig = ReproduceConfig(),
    progress: bool = True,
    timer: Timer | None = None,
    world: World = SINGLE,
) -> ReproduceResult:
    """The study on ``networks`` (loaded with `load_networks`) and ``dataset``; writes nothing. Each stage is
    timed into ``timer`` (a new one by default), whose seconds the result keeps. Under a ``world`` of several
    ranks this is rank 0's part: the others call `study_basis` alone.

    The test images' latents are made as ``config.inversion`` says (`image_latents.study_latents`): the encoder's
    (stochastic encodings for the classification, means for the denoising and the rotation) or, with an inversion,
    one latent per test image (classification in one trial, the rotation from the first ``rotation_images``) and
    per noisy image (denoising).

    Raises:
        NetworkError: networks without a generator or classifier, or without what ``config.inversion`` needs.
        DataError: the dataset's images are not of the networks' shape, or its classes not the classifier's labels.
    """
    networks.require("reproduce", "generator", "classifier")
    chosen = resolve_inversion(config.inversion, networks, config.inversion_auto)
    assert networks.exact_classifier is not None  # loaded with the classifier, which `require` checked
    check_dataset_fits(networks.image_shape, dataset, networks.source, networks.num_labels)
    timer = timer or Timer()
    device = networks.compute.device
    torch.manual_seed(config.seed)
    train_images = images_to_tensor(dataset.train.images).to(device)
    test_images = images_to_tensor(dataset.test.images).to(device)
    test_labels = torch.from_numpy(dataset.test.labels).long().to(device)
    with timer.stage("basis"):
        basis, latent_sets, basis_stats = study_basis(networks, train_images, config, progress, world)
        bases = {
            method: basis
            if method == config.orthogonalisation
            else QuasiEigenBasis.from_etas(
                latent_sets.etas, latent_sets.labels, latent_sets.sets, orthogonalisation=method
            )
            for method in ORTHOGONALISATIONS
        }
    with timer.stage("test latents"):  # the encoder's means of the rotation's images, or every image inverted
        count = config.rotation_images if chosen == "encoder" else len(test_images)
        test_latents = study_latents(test_images[:count], networks, config, config.seed, progress=progress)
        inverted = None if chosen == "encoder" else test_latents.latents.to(device)
    with timer.stage("classification"):
        accuracy = summarise([classifier_accuracy(networks.exact_classifier, test_images, test_labels)])
        classification = classification_study(
            networks, bases, basis, test_images, test_labels, config, progress, inverted
        )
    with timer.stage("denoising"):
        count = config.denoise_images
        denoising = denoising_study(networks, basis, test_images[:count], test_labels[:count], config, progress)
    with timer.stage("rotation"):
        rotation = rotation_study(networks, basis, test_latents.latents[: config.rotation_images].to(device), config)
    with timer.stage("figures"):
        examples = examples_study(networks, basis, latent_sets, test_images, train_images, config, inverted)
    return ReproduceResult(
        config,
        networks.source,
        basis,
        basis_stats,
        accuracy,
        classification,
        denoising,
        rotation,
        examples,
        networks.compute_record(),
        dict(timer.seconds),
        networks.labels,
        test_latents.record(),
    )


def draw_figures(directory: Path, result: ReproduceResult) -> dict[str, Path]:
    """Figs. 2-8 of the paper from ``result``, as directory/figN.png."""
    directory.mkdir(parents=True, exist_ok=True)
    examples, classification = result.examples, result.classification
    labels = result.rotation.labels
    return {
        "fig2": figures.figure2(
            examples.test_images, examples.reconstructions, examples.samples, directory / "fig2.png"
        ),
        "fig3": figures.figure3(examples.panels, directory / "fig3.png", label_names=result.label_names or None),
        "fig4": figures.figure4(
            examples.eta_images,
            examples.basis_images,
            examples.eta_gram,
            examples.basis_gram,
            directory / "fig4.png",
            labels=len(result.label_names) or None,
        ),
        "fig5": figures.figure5(
            classification.batch_images,
            classification.batch_true,
            classification.batch_pred,
            classification.lsd_top1["trials"],
            result.classifier_accuracy["mean"],
            classification.encode_decode["trials"],
            classification.topn_cumulative,
            directory / "fig5.png",
            label_names=result.label_names or None,
        ),
        "fig6": figures.figure6(classification.sorted_amplitudes, classification.true_rank, directory / "fig6.png"),
        "fig7": figures.figure7(result.denoising.rows, directory / "fig7.png"),
        "fig8": figures.figure8(
            result.rotation.sequence,
            directory / "fig8.png",
            caption="rows 1-4: plane rotation of four test images; row 5: Eq. 12 as printed; "
            f"labels {labels[0]} -> {labels[-1]}, dtheta = pi/6, 3 steps per label",
        ),
    }


def write_reproduce(out_dir: str | Path, result: ReproduceResult) -> dict[str, Any]:
    """Write ``result`` into ``out_dir``: basis.safetensors (+ .json), figures/fig2-8.png (unless the config says
    ``figures=False``), metrics.json, report.md and report.html. Returns the metrics written."""
    out = Path(out_dir)
    save_basis(result.basis, out / "basis.safetensors")
    drawn = draw_figures(out / "figures", result) if result.config.figures else {}
    metrics = result.metrics()
    write_json(out / "metrics.json", metrics)
    write_report(out, metrics, drawn)
    return metrics


def run_reproduce(
    out_dir: str | Path,
    config: ReproduceConfig = ReproduceConfig(),
    retrain: bool = False,
    progress: bool = True,
    train_config: TrainConfig | None = None,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Run the study into ``out_dir`` (see `write_reproduce`); returns the metrics written to metrics.json.

    With ``retrain`` the networks are trained first into ``out_dir/models`` (``train_config``, default
    `TrainConfig` with this dataset, seed, device and precision); otherwise those ``config`` names
    (`load_study_networks`: a models directory, a manifest directory, a factory; default the shipped networks,
    any piece replaced by its file).

    Under a ``world`` of several ranks (torchrun) every rank builds its share of the basis; rank 0 alone runs
    the other stages and writes, and returns the metrics ({} on the other ranks).

    Raises:
        DistributedError: ``retrain`` in a sharded run.
    """
    compute = Compute.select(config.device, config.precision)
    if retrain and world.size > 1:
        raise DistributedError(
            "--retrain does not run sharded: train the networks first (`latentspectra train all "
            "--out DIR`), then run reproduce sharded with --networks DIR"
        )
    if not world.is_writer:
        loaded = load_study_networks(config, compute)
        loaded.require("reproduce", "generator", "classifier")
        resolve_inversion(config.inversion, loaded, config.inversion_auto)  # refused on every rank alike
        train_images = images_to_tensor(load_dataset(config.dataset).train.images).to(compute.device)
        study_basis(loaded, train_images, config, progress=False, world=world)
        return {}
    with output_directory(out_dir) as out:
        timer = Timer()
        if retrain:
            with timer.stage("train"):
                train_config = train_config or TrainConfig(
                    dataset=config.dataset, seed=config.seed, device=config.device, precision=config.precision
                )
                train_networks("all", out / "models", train_config, progress)
            config = replace(config, networks=out / "models")
        with timer.stage("load"):
            loaded = load_study_networks(config, compute)
            dataset = load_dataset(config.dataset)
        return write_reproduce(out, reproduce_study(loaded, dataset, config, progress, timer, world))
