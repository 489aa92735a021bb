"""Build the quasi-eigenvector basis from trained networks: `latentspectra basis`.

Latent sets and their averages (Methods steps 4-5) from the encoder, generator and classifier, then
their orthogonalisation (step 6; by default symmetric within each set, `config.ORTHOGONALISATION`), with
the timing and throughput the issue asks to report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..compute import Compute
from ..config import INFERENCE_BATCH_SIZE, ORTHOGONALISATION, SEEDS, BasisConfig, derived_seed, per_set_rule
from ..data import images_to_tensor, load_dataset
from ..distributed import SINGLE, World
from ..errors import LatentspectraError
from ..io import versions, writer_directory, writer_file_lock
from ..latent import QuasiEigenBasis, build_latent_sets
from ..latent.basis import check_orthogonalisation
from ..latent.files import save_basis
from ..latent.sets import EncoderSample, LatentSets, Network
from ..progress import progress_bar
from .finished_sets import FinishedSets, finished_sets_path, probe_digest
from .networks import check_dataset_fits, load_study_networks
from .sharded_sets import run_collector


def _config_value(network: Any, key: str, argument: str) -> int:
    try:
        return int(network.config[key])
    except (AttributeError, KeyError, TypeError):
        raise ValueError(f"cannot read {key!r} from {type(network).__name__}.config; pass {argument}=") from None


class BasisBuild(NamedTuple):
    """What `build_basis` returns: the basis, the latent sets whose etas it was built from, and a
    JSON-ready record (seconds, samples_per_second, samples_drawn, orthogonality_error, ...)."""

    basis: QuasiEigenBasis
    latent_sets: LatentSets
    stats: dict[str, Any]


def build_basis(
    generator: Network,
    classifier: Network,
    encoder_sample: EncoderSample | None,
    train_images: torch.Tensor | None,
    per_set: int = 5000,
    seed: int = 0,
    batch_size: int = INFERENCE_BATCH_SIZE,
    progress: bool = True,
    *,
    latent_dim: int | None = None,
    num_labels: int | None = None,
    max_draws: int | None = None,
    tolerance: float | None = None,
    orthogonalisation: str = ORTHOGONALISATION,
    provenance: dict[str, Any] | None = None,
    device: torch.device | str = "cpu",
    world: World = SINGLE,
    finished_sets: FinishedSets | None = None,
) -> BasisBuild:
    """Latent sets (set 1 by encoding ``train_images``, the rest sampled) and their quasi-eigenvectors.

    ``latent_dim`` and ``num_labels`` default to ``generator.config["latent_dim"]`` and
    ``classifier.config["num_classes"]``. With no encoder (``encoder_sample`` or ``train_images`` None)
    every set is sampled. With ``tolerance``, V doubles from `FIRST_ROUND` up to ``per_set`` until the basis is
    stable (`stable_basis`). ``orthogonalisation`` is passed to `QuasiEigenBasis.from_etas`. ``provenance`` is
    added to the basis' provenance record (seed, V, sources, orthogonalisation). ``device`` is where the
    latents are drawn: the networks' (see `build_latent_sets`). Under a ``world`` of several ranks the
    latent sets are sharded over them (every rank gets the same basis, to float64 rounding) and progress is
    shown by rank 0 only. With ``finished_sets``, the sets it holds are taken as they are and each new set is
    added to it.

    Returns:
        `BasisBuild` whose stats hold at least seconds, samples_per_second, samples_drawn,
        orthogonality_error, per_set, sets, labels and world_size (and with a tolerance, its rounds).
    """
    check_orthogonalisation(orthogonalisation, "build_basis")  # before the minute of sampling
    if latent_dim is None:
        latent_dim = _config_value(generator, "latent_dim", "latent_dim")
    if num_labels is None:
        num_labels = _config_value(classifier, "num_classes", "num_labels")
    if train_images is None:
        encoder_sample = None

    def at(vectors: int, finished: FinishedSets | None = None) -> BasisBuild:
        return _basis_at(
            generator,
            classifier,
            encoder_sample,
            train_images,
            vectors,
            seed=seed,
            batch_size=batch_size,
            progress=progress,
            latent_dim=latent_dim,
            num_labels=num_labels,
            max_draws=max_draws,
            orthogonalisation=orthogonalisation,
            provenance=provenance,
            device=device,
            world=world,
            finished_sets=finished,
        )

    if tolerance is None:
        return at(per_set, finished_sets)
    probe = label_probe(encoder_sample, train_images, latent_dim, seed, device)
    return stable_basis(at, probe, per_set, tolerance)


FIRST_ROUND = 125  # V of the first round of a basis drawn until stable (`stable_basis`)
PROBE_LATENTS = 2000  # the latents whose LSD labels `stable_basis` compares between rounds


def label_probe(
    encoder_sample: EncoderSample | None,
    images: torch.Tensor | None,
    latent_dim: int,
    seed: int,
    device: torch.device | str,
) -> torch.Tensor:
    """The latents `stable_basis` classifies after each round: stochastic encodings of the first
    PROBE_LATENTS training images where there is an encoder (the latents LSD classifies), else z ~ N(0, I); from
    their own random stream (seed offset SEEDS.probe), the same on every rank."""
    rng = torch.Generator(device=device).manual_seed(derived_seed(seed, SEEDS.probe))
    if encoder_sample is not None and images is not None:
        with torch.inference_mode():
            return encoder_sample(images[:PROBE_LATENTS].to(device), rng).float().clone()
    return torch.randn(PROBE_LATENTS, latent_dim, generator=rng, device=rng.device)


def stable_basis(at: Callable[[int], BasisBuild], probe: torch.Tensor, most: int, tolerance: float) -> BasisBuild:
    """`--per-set auto`: the basis at V = FIRST_ROUND, 2 V, 4 V, ... (at most ``most``; ``at(V)`` builds it) until
    the LSD labels (`QuasiEigenBasis.classify`) of the ``probe`` latents change for at most a ``tolerance`` share
    of them from one round to the next. Every round draws its sets afresh (the first V vectors per label of the
    same streams, so a round's sets extend the last one's); the stats count every round's draws and time and
    list the rounds (V, draws, the share of labels changed)."""
    rounds: list[dict[str, Any]] = []
    previous = None
    vectors = min(FIRST_ROUND, most)
    while True:
        built = at(vectors)
        labels = built.basis.classify(probe)[:, 0]
        changed = None if previous is None else float((labels != previous).double().mean())
        rounds.append(
            {
                "per_set": vectors,
                "samples_drawn": built.stats["samples_drawn"],
                "seconds": built.stats["total_seconds"],
                "labels_changed": changed,
            }
        )
        if (changed is not None and changed <= tolerance) or vectors >= most:
            break
        previous, vectors = labels, min(2 * vectors, most)
    drawn, seconds = sum(done["samples_drawn"] for done in rounds), sum(done["seconds"] for done in rounds)
    stats = {
        **built.stats,
        "tolerance": tolerance,
        "stable": changed is not None and changed <= tolerance,
        "rounds": rounds,
        "samples_drawn": drawn,
        "total_seconds": seconds,
        "samples_per_second": drawn / seconds if seconds > 0 else float("inf"),
    }
    return built._replace(stats=stats)


def _basis_at(
    generator: Network,
    classifier: Network,
    encoder_sample: EncoderSample | None,
    train_images: torch.Tensor | None,
    per_set: int,
    *,
    seed: int,
    batch_size: int,
    progress: bool,
    latent_dim: int,
    num_labels: int,
    max_draws: int | None,
    orthogonalisation: str,
    provenance: dict[str, Any] | None,
    device: torch.device | str,
    world: World,
    finished_sets: FinishedSets | None,
) -> BasisBuild:
    """`build_basis` at one V."""
    start = time.perf_counter()
    with progress_bar(f"latent sets (V = {per_set})", progress and world.is_writer, unit="vec") as bar:
        bar.reset(total=(latent_dim // num_labels) * num_labels * per_set)
        collect = run_collector(
            generator,
            classifier,
            num_labels,
            per_set,
            max_draws=max_draws,
            world=world,
            progress=bar,
            finished=finished_sets.load() if finished_sets is not None else (),
            on_set=finished_sets.save if finished_sets is not None else None,
        )
        world.barrier("the start of the latent sets")  # the seconds count from when every rank is ready
        latent_sets = build_latent_sets(
            generator,
            classifier,
            latent_dim=latent_dim,
            num_labels=num_labels,
            per_set=per_set,
            encoder_sample=encoder_sample,
            images=train_images,
            seed=seed,
            batch_size=batch_size,
            max_draws=max_draws,
            device=device,
            collect=collect,
        )
    stats: dict[str, Any] = {"seed": seed, "latent_dim": latent_dim, **latent_sets.stats(), "world_size": world.size}
    basis = QuasiEigenBasis.from_etas(
        latent_sets.etas,
        latent_sets.labels,
        latent_sets.sets,
        orthogonalisation=orthogonalisation,
        provenance={**{key: stats[key] for key in ("seed", "per_set", "sources")}, **(provenance or {})},
    )
    stats["orthogonalisation"] = orthogonalisation
    stats["orthogonality_error"] = basis.orthogonality_error()
    stats["total_seconds"] = time.perf_counter() - start
    return BasisBuild(basis, latent_sets, stats)


def basis_study(
    config: BasisConfig = BasisConfig(),
    *,
    progress: bool = True,
    world: World = SINGLE,
    resume: Path | None = None,
) -> BasisBuild:
    """`build_basis` with the generator, classifier and (where there is one) encoder that ``config.networks`` describes
    (a models directory, a manifest directory, a ``module:function`` factory or a `LatentNetworks`; default:
    the shipped networks for ``config.dataset``), any piece replaced by its file, and the training images of
    the dataset for the encoded set 1 (without an encoder every set is sampled); writes nothing.

    The networks run as `load_networks` copies on ``config.device`` (batch norm folded, channels-last, G and C
    in ``config.precision``, the encoder in float32), in batches of ``config.batch_size`` (default: the
    device's). The stats add ``compute`` (device, precision, threads). Under a ``world`` of several ranks every
    rank calls this with the same arguments (see `build_basis`). With ``resume``, the finished sets are kept
    there (`FinishedSets`) and a rerun resumes after them.

    Raises:
        CheckpointError, NetworkError: networks that cannot be read, lack G or C, or do not fit.
        LatentspectraError: a label too rare to fill its sets.
        DataError: a missing or corrupt dataset, or images not of the networks' shape.
    """
    compute = Compute.select(config.device, config.precision)
    loaded = load_study_networks(config, compute)
    loaded.require("basis", "generator", "classifier")
    assert loaded.generator is not None and loaded.classifier is not None  # `require` raised otherwise
    train_images = None
    if loaded.encoder is not None:
        images = load_dataset(config.dataset)
        check_dataset_fits(loaded.image_shape, images, loaded.source)
        train_images = images_to_tensor(images.train.images).to(compute.device)
    origin = {
        "models": loaded.source,
        "dataset": config.dataset,
        "versions": versions(),
        "compute": loaded.compute_record(),
        "world_size": world.size,
    }
    per_set, tolerance = per_set_rule(config.per_set, config.tolerance)
    finished = None
    if resume is not None and tolerance is None:  # a basis drawn until stable is not resumed: its rounds differ in V
        settings = {
            "models": str(loaded.source),
            "dataset": config.dataset,
            "seed": config.seed,
            "per_set": per_set,
            "batch_size": loaded.batch_size,
            "max_draws": config.max_draws,
            "device": str(compute.device),
            "precision": compute.precision,
            "probe": probe_digest(loaded.generator, loaded.classifier, loaded.latent_dim, compute.device),
        }
        finished = FinishedSets(resume, settings, world)
    try:
        built = build_basis(
            loaded.generator,
            loaded.classifier,
            loaded.encoder.sample if loaded.encoder is not None else None,
            train_images,
            per_set=per_set,
            seed=config.seed,
            batch_size=loaded.batch_size,
            progress=progress,
            latent_dim=loaded.latent_dim,
            num_labels=loaded.num_labels,
            max_draws=config.max_draws,
            tolerance=tolerance,
            orthogonalisation=config.orthogonalisation,
            provenance=origin,
            device=compute.device,
            world=world,
            finished_sets=finished,
        )
    except LatentspectraError:
        raise
    except ValueError as error:  # networks that do not fit together, e.g. fewer latent dimensions than labels
        raise LatentspectraError(f"networks of {loaded.source}: {error}") from None
    return built._replace(stats={**origin, **built.stats})


def check_basis_out(out: Path) -> None:
    """``out`` must name a .safetensors file, not a directory (`latentspectra basis --out`)."""
    if out.suffix != ".safetensors":
        raise LatentspectraError(f"--out {out}: expected a .safetensors file name")
    if out.is_dir():
        raise LatentspectraError(f"--out {out}: is a directory, expected a .safetensors file name")


def write_basis(out: str | Path, result: BasisBuild) -> dict[str, Any]:
    """Save ``result``'s basis as ``out`` (.safetensors, with its .json record beside it); returns the record,
    with ``out``."""
    return {**result.stats, "out": str(save_basis(result.basis, Path(out)))}


def run_basis(
    out: str | Path,
    config: BasisConfig = BasisConfig(),
    *,
    progress: bool = True,
    world: World = SINGLE,
) -> dict[str, Any]:
    """`basis_study` into ``out`` (`write_basis`), as `latentspectra basis` runs it: the finished sets are kept
    beside ``out`` until the basis is written (`finished_sets_path`), so an interrupted run resumes; rank 0
    writes (other ranks return the stats)."""
    out = Path(out)
    check_basis_out(out)
    with writer_directory(world, out.parent), writer_file_lock(world, out):
        resume = finished_sets_path(out)
        built = basis_study(config, progress=progress, world=world, resume=resume)
        if not world.is_writer:
            return built.stats
        record = write_basis(out, built)
        FinishedSets(resume, {}, world).discard()
        return record
