"""`latentspectra sfvq`: space-filling vector quantization of the encoder's latent space (Vali & Bäckström,
"Unsupervised Panoptic Interpretation of Latent Spaces in GANs Using Space-Filling Vector Quantization",
arXiv 2410.20573, 2024) on one set of trained networks.

Stages (each timed in ``record["seconds"]``): load the networks and the dataset; encode the training and
test images with the encoder's mean mu(x); fit the SFVQ curve (methods/sfvq.py) to the training codes and
k-means with the same K as the plain-VQ baseline; quantization errors on the test codes (held out); decode
the codewords in curve order and label them with the classifier (the panoptic map) and measure the curve
order; move test codes along consecutive-codeword directions and measure how often the label changes;
draw the figures and write ``sfvq.json`` and the fitted curve ``curve.safetensors`` (+ ``curve.json``).

Both quantizers use the run's seed. Everything else is deterministic: the moved test codes are the first
``direction_latents`` of the test set. The networks run on the run's device in its precision (G and C on
latents; the encoder in float32); the codes, the quantizers and their measurements live on the CPU.

Sharded (``world=``, `latentspectra sfvq` under torchrun; docs/scale.md): the encodings and the classified
moved codes are batches dealt over the ranks and gathered in row order (`evaluation.gathered_batched`), the
same tensors whatever the number of ranks; every rank then fits the curve and k-means on the same codes with
the same seed, and rank 0 alone writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..compute import Compute
from ..config import SFVQStudyConfig, config_record
from ..data import ImageDataset, load_dataset
from ..distributed import SINGLE, World, batched
from ..io import versions, write_json, writer_directory
from ..methods.files import save_sfvq
from ..methods.sfvq import SFVQ, SFVQError, curve_points, nearest_codewords
from ..progress import progress_bar
from ..report.figures import image_rows
from ..report.sfvq_figures import panoptic_map
from .common import Timer, decode, encoder_means, predicted_labels, to_unit_images
from .networks import Networks, check_dataset_fits, load_study_networks


def fit_kmeans(latents: torch.Tensor, clusters: int, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The plain-VQ baseline: scikit-learn k-means (k-means++ start, one run, seeded) on ``latents`` (N, M).

    Returns:
        The centroids (clusters, M) float64 and a JSON-ready record of the run (parameters, iterations,
        scikit-learn version).
    """
    import sklearn
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(latents.double().numpy())
    record = {
        "n_clusters": clusters,
        "init": "k-means++",
        "n_init": 1,
        "random_state": seed,
        "iterations": int(kmeans.n_iter_),
        "scikit-learn": sklearn.__version__,
    }
    return torch.from_numpy(kmeans.cluster_centers_), record


def quantization_errors(
    curve: SFVQ, centroids: torch.Tensor, latents: torch.Tensor, reference: torch.Tensor
) -> dict[str, float]:
    """Mean over ``latents`` (N, M) of the squared distance to: the nearest point of the SFVQ curve, the
    nearest SFVQ codeword only, the nearest k-means centroid, and ``reference`` (M,), e.g. the training
    mean (the error of a single codeword, for scale)."""
    return {
        "sfvq_curve": curve.quantize(latents).squared_distances.double().mean().item(),
        "sfvq_nearest_codeword": nearest_codewords(latents, curve.codebook_)[1].mean().item(),
        "kmeans": nearest_codewords(latents, centroids)[1].mean().item(),
        "single_codeword_at_mean": (latents.double() - reference.double()).pow(2).sum(1).mean().item(),
    }


def curve_order(
    codeword_labels: torch.Tensor, assigned: torch.Tensor, latent_labels: torch.Tensor, num_labels: int
) -> dict[str, Any]:
    """How well the curve orders the labels.

    Args:
        codeword_labels: (K,) the classified label of each decoded codeword, in curve order.
        assigned: (N,) the nearest codeword of each training code.
        latent_labels: (N,) the true label of each training code.
        num_labels: number of labels.

    Returns:
        label_runs (contiguous runs of one label along the curve; 10 for a perfect map of 10 digits),
        distinct_labels, majority_labels (per codeword, -1 where no code is assigned), empty_codewords,
        and majority_agreement: the fraction of codewords with assigned codes whose label is the
        majority true label of those codes.
    """
    count = len(codeword_labels)
    votes = torch.zeros(count, num_labels, dtype=torch.int64).index_put_(
        (assigned, latent_labels), torch.ones_like(assigned), accumulate=True
    )
    used = votes.sum(1) > 0
    majority = torch.where(used, votes.argmax(1), -1)
    return {
        "label_runs": 1 + int((codeword_labels[1:] != codeword_labels[:-1]).sum()),
        "distinct_labels": len(codeword_labels.unique()),
        "majority_agreement": (codeword_labels == majority)[used].double().mean().item(),
        "empty_codewords": int((~used).sum()),
        "majority_labels": majority.tolist(),
    }


def label_changes(
    networks: Networks, latents: torch.Tensor, moves: torch.Tensor, targets: torch.Tensor, world: World = SINGLE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classify G(z) and G(z + moves[k]) for every code z of ``latents`` (N, M) and move k of ``moves``
    (P, M), in the networks' batches (as one rank of ``world``: its batches, gathered). Returns per move (P,)
    the fraction of codes whose label changes and the fraction whose new label is ``targets[k]`` (P,), on the
    CPU."""
    before = predicted_labels(networks, latents, world)
    after = predicted_labels(networks, (latents[None] + moves[:, None]).flatten(0, 1), world).view(len(moves), -1)
    return (after != before).double().mean(1), (after == targets[:, None]).double().mean(1)


def direction_study(
    networks: Networks,
    codebook: torch.Tensor,
    codeword_labels: torch.Tensor,
    latents: torch.Tensor,
    scale: float,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Move every code of ``latents`` (N, M) by ``scale`` (c_k+1 - c_k) for each consecutive pair (k, k+1)
    and measure how often the classified label of G(z) changes (the moved codes dealt over the ranks of
    ``world``, `label_changes`).

    Pairs whose codeword labels differ cross a label boundary of the curve; the others do not. Boundary
    steps tend to be longer, so the measurement is repeated with every step rescaled to the mean step
    length ("equal_length"), which separates the direction from the distance moved.

    Returns:
        scale, latents, the pair counts and mean step lengths |c_k+1 - c_k| of both groups; the changed
        fraction averaged over the boundary and over the same-label pairs, and the fraction landing on
        label(c_k+1) over the boundary pairs, as moved and under "equal_length" (None for an empty group);
        per pair its labels, step length and both changed fractions.
    """
    steps = (codebook[1:] - codebook[:-1]).to(latents.dtype)
    lengths = torch.linalg.vector_norm(steps.double(), dim=1)
    equal = steps * (lengths.mean() / lengths.clamp_min(torch.finfo(torch.float64).tiny)).to(steps.dtype)[:, None]
    boundary = codeword_labels[1:] != codeword_labels[:-1]

    def mean(values: torch.Tensor, mask: torch.Tensor) -> float | None:
        return values[mask].mean().item() if mask.any() else None

    def fractions(moves: torch.Tensor) -> tuple[torch.Tensor, dict[str, float | None]]:
        changed, to_next = label_changes(networks, latents, scale * moves, codeword_labels[1:], world)
        return changed, {
            "boundary_changed_fraction": mean(changed, boundary),
            "same_label_changed_fraction": mean(changed, ~boundary),
            "boundary_to_next_label_fraction": mean(to_next, boundary),
        }

    changed, as_moved = fractions(steps)
    changed_equal, equal_length = fractions(equal)
    return {
        "scale": scale,
        "latents": len(latents),
        "boundary_pairs": int(boundary.sum()),
        "same_label_pairs": int((~boundary).sum()),
        **as_moved,
        "boundary_mean_step_length": mean(lengths, boundary),
        "same_label_mean_step_length": mean(lengths, ~boundary),
        "equal_length": {"length": scale * lengths.mean().item(), **equal_length},
        "pairs": [
            {
                "pair": [k, k + 1],
                "labels": codeword_labels[k : k + 2].tolist(),
                "step_length": lengths[k].item(),
                "changed_fraction": changed[k].item(),
                "changed_fraction_equal_length": changed_equal[k].item(),
            }
            for k in range(len(steps))
        ],
    }


def shown_pairs(codeword_labels: torch.Tensor, per_kind: int) -> list[int]:
    """Up to ``per_kind`` boundary pairs and ``per_kind`` same-label pairs k (segment [c_k, c_k+1]),
    spread evenly along the curve, boundary pairs first."""
    boundary = codeword_labels[1:] != codeword_labels[:-1]
    chosen = []
    for mask in (boundary, ~boundary):
        pairs = torch.nonzero(mask).flatten()
        if len(pairs) and per_kind:
            spread = torch.linspace(0, len(pairs) - 1, min(per_kind, len(pairs))).round().long()
            chosen += pairs[spread].tolist()
    return chosen


def _pair_title(k: int, codeword_labels: torch.Tensor) -> str:
    return f"{k}->{k + 1} ({int(codeword_labels[k])}->{int(codeword_labels[k + 1])})"


def figure_rows(
    networks: Networks,
    codebook: torch.Tensor,
    codeword_labels: torch.Tensor,
    test_latents: torch.Tensor,
    config: SFVQStudyConfig,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The decoded rows of the direction figure (first row: test codes; then per shown pair k, the same codes
    moved by scale (c_k+1 - c_k)) and of the augmentation figure (per shown pair, G of evenly spaced points
    along the segment [c_k, c_k+1]); both empty when no pair is shown."""
    pairs = shown_pairs(codeword_labels, config.shown_pairs)
    if not pairs:
        return {}, {}
    shown = test_latents[: config.shown_latents]
    steps = (codebook[1:] - codebook[:-1]).to(shown.dtype)
    titles = {k: _pair_title(k, codeword_labels) for k in pairs}

    def images(latents: torch.Tensor) -> np.ndarray:
        return to_unit_images(decode(networks, latents))

    direction_rows = {
        "test codes": images(shown),
        **{titles[k]: images(shown + config.direction_scale * steps[k]) for k in pairs},
    }
    positions = torch.linspace(0, 1, config.segment_points, dtype=codebook.dtype)
    segment_rows = {titles[k]: images(curve_points(codebook, torch.full(positions.shape, k), positions)) for k in pairs}
    return direction_rows, segment_rows


@dataclass(frozen=True)
class SFVQResult:
    """What `sfvq_study` measured, the fitted curve and the data of its figures; `record` is sfvq.json."""

    config: SFVQStudyConfig
    models: str
    latent_dim: int
    train_latents: int
    test_latents: int
    curve: SFVQ
    quantization_error: dict[str, dict[str, float]]
    codeword_labels: list[int]
    curve_order: dict[str, Any]
    directions: dict[str, Any]
    kmeans: dict[str, Any]
    codeword_images: np.ndarray  # (K, H, W) or (K, C, H, W) in curve order, in [0, 1]
    direction_rows: dict[str, np.ndarray]
    segment_rows: dict[str, np.ndarray]
    compute: dict[str, Any]
    seconds: dict[str, float]
    label_names: tuple[str, ...] = ()  # the classifier's labels, for the figures
    world_size: int = 1  # the ranks that computed it (the numbers do not depend on it)

    def record(self, figures: dict[str, str], curve_file: str) -> dict[str, Any]:
        """The JSON record (sfvq.json), naming the ``figures`` and the ``curve_file`` written."""
        return {
            "dataset": self.config.dataset,
            "seed": self.config.seed,
            "models": self.models,
            "latent_dim": self.latent_dim,
            "train_latents": self.train_latents,
            "test_latents": self.test_latents,
            "codewords": self.config.codewords,
            "quantization_error": self.quantization_error,
            "codeword_labels": self.codeword_labels,
            "curve_order": self.curve_order,
            "directions": self.directions,
            "fit": {
                "seconds": self.seconds["fit"],
                "latents": self.train_latents,
                "history": self.curve.history_,
                "params": self.curve.get_params(),
            },
            "kmeans": {"seconds": self.seconds["kmeans"], **self.kmeans},
            "figures": figures,
            "curve": curve_file,
            "seconds": {**self.seconds, "total": sum(self.seconds.values())},
            "config": config_record(self.config),
            "compute": self.compute,
            "world_size": self.world_size,
            "versions": versions(),
        }


def sfvq_study(
    networks: Networks,
    dataset: ImageDataset,
    config: SFVQStudyConfig = SFVQStudyConfig(),
    progress: bool = True,
    timer: Timer | None = None,
    world: World = SINGLE,
) -> SFVQResult:
    """The study on ``networks`` and ``dataset`` (module docstring); writes nothing. As one rank of ``world``
    (every rank calls it alike): the network passes dealt over the ranks, the same result on every rank.

    Raises:
        SFVQError: bad SFVQ parameters (e.g. fewer than 2 codewords, or more than training images).
        NetworkError: networks without a generator, classifier or encoder.
        DataError: the dataset's images are not of the networks' shape.
    """
    networks.require("sfvq", "generator", "classifier", "encoder")
    assert networks.classifier is not None  # `require` raised otherwise
    check_dataset_fits(networks.image_shape, dataset, networks.source)
    timer = timer or Timer()
    if config.codewords > len(dataset.train):
        raise SFVQError(
            f"codewords: {config.codewords} exceeds the {len(dataset.train)} training images of {config.dataset}"
        )
    with timer.stage("encode"):
        train = encoder_means(networks, dataset.train.images, world, progress, "encoding the training set")
        test = encoder_means(networks, dataset.test.images, world, progress, "encoding the test set")
    curve = SFVQ(
        config.codewords,
        epochs_per_stage=config.epochs_per_stage,
        batch_size=config.training_batch_size,
        seed=config.seed,
        candidates=config.candidates,
        growth=config.growth,
    )
    with timer.stage("fit"), progress_bar("SFVQ fit (epochs)", progress) as bar:
        curve.fit(train, progress=bar)
    with timer.stage("kmeans"):
        centroids, kmeans = fit_kmeans(train, config.codewords, config.seed)
    with timer.stage("quantization"):
        mean = train.double().mean(0)
        errors = {
            "test": quantization_errors(curve, centroids, test, mean),
            "train": quantization_errors(curve, centroids, train, mean),
        }
    with timer.stage("labels"):
        codebook = curve.codebook_
        codeword_images = decode(networks, codebook)
        codeword_labels = batched(networks.classifier, codeword_images, networks.batch_size).argmax(1).cpu()
        order = curve_order(
            codeword_labels,
            nearest_codewords(train, codebook)[0],
            torch.from_numpy(dataset.train.labels).long(),
            networks.num_labels,
        )
    with timer.stage("directions"):
        directions = direction_study(
            networks, codebook, codeword_labels, test[: config.direction_latents], config.direction_scale, world
        )
    with timer.stage("figures"):
        direction_rows, segment_rows = figure_rows(networks, codebook, codeword_labels, test, config)
    return SFVQResult(
        config,
        networks.source,
        networks.latent_dim,
        len(train),
        len(test),
        curve,
        errors,
        codeword_labels.tolist(),
        order,
        directions,
        kmeans,
        to_unit_images(codeword_images),
        direction_rows,
        segment_rows,
        networks.compute_record(),
        dict(timer.seconds),
        networks.labels,
        world.size,
    )


def draw_sfvq_figures(directory: Path, result: SFVQResult) -> dict[str, Path]:
    """directory/panoptic.png (decoded codewords in curve order), and directions.png and augmentation.png when
    pairs are shown."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "panoptic": panoptic_map(
            result.codeword_images,
            result.codeword_labels,
            directory / "panoptic.png",
            label_names=result.label_names or None,
        )
    }
    if result.direction_rows:
        paths["directions"] = image_rows(result.direction_rows, directory / "directions.png")
        paths["augmentation"] = image_rows(result.segment_rows, directory / "augmentation.png")
    return paths


def write_sfvq(out_dir: str | Path, result: SFVQResult) -> dict[str, Any]:
    """Write ``result`` into ``out_dir``: its figures (`draw_sfvq_figures`, unless the config says
    ``figures=False``), curve.safetensors (+ .json) and sfvq.json. Returns the record written."""
    out = Path(out_dir)
    paths = draw_sfvq_figures(out / "figures", result) if result.config.figures else {}
    save_sfvq(result.curve, out / "curve.safetensors")
    record = result.record({name: str(path) for name, path in paths.items()}, str(out / "curve.safetensors"))
    write_json(out / "sfvq.json", record)
    return record


def run_sfvq(
    out_dir: str | Path,
    config: SFVQStudyConfig = SFVQStudyConfig(),
    progress: bool = True,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Load the networks ``config`` names (`load_study_networks`; default: the shipped ones of
    ``config.dataset``) and the dataset, run the study and write it into
    ``out_dir`` (`write_sfvq`); returns the record written to sfvq.json. As one rank of ``world`` (torchrun):
    every rank runs the study, rank 0 alone writes and returns the record ({} on the other ranks).

    Raises:
        LatentspectraError: a bad ``out_dir`` or networks, a missing dataset, or bad SFVQ parameters (e.g. fewer
            than 2 codewords, or more than training images).
    """
    compute = Compute.select(config.device, config.precision)
    with writer_directory(world, out_dir, lock=True):
        timer = Timer()
        with timer.stage("load"):
            loaded = load_study_networks(config, compute)
            dataset = load_dataset(config.dataset)
        result = sfvq_study(loaded, dataset, config, progress and world.is_writer, timer, world)
        return write_sfvq(out_dir, result) if world.is_writer else {}
