"""The `latentspectra` command line: thin wrappers that parse, build a config, call and print.

Every user-facing error (a bad file, argument or model directory) is one line on stderr with exit
code 2; an interrupted training run keeps its finished epochs and resumes when rerun.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from .compute import DEVICE_CHOICES, PRECISIONS, Compute, SlowPrecisionWarning, resolve_device
from .config import (
    COMPARE_BUDGETS,
    FRAGMENTATION_MODELS,
    MAX_PER_SET,
    MAX_SEED,
    MAX_SEEDS,
    MAX_TRAINING_STEPS,
    ORTHOGONALISATION,
    REDS_EPS,
    REDS_METHODS,
    CompareConfig,
    ExploreConfig,
    FragmentationConfig,
    RedsConfig,
    ReproduceConfig,
    SFVQStudyConfig,
    TrainConfig,
)
from .distributed import World, launched_size, open_world, rank_label
from .errors import LatentspectraError
from .io import json_text, parse_json, writer_directory, writer_file_lock
from .latent.basis import ORTHOGONALISATIONS
from .methods.sfvq import SFVQ_CANDIDATES, SFVQ_GROWTH

NETWORK_CHOICES = ("classifier", "gan", "encoder", "all", "autoencoder")
ORTHOGONALISATION_OPTION = click.option(
    "--orthogonalisation",
    type=click.Choice(ORTHOGONALISATIONS),
    default=ORTHOGONALISATION,
    show_default=True,
    help="How the etas become quasi-eigenvectors: Gram-Schmidt in the paper's order (Eqs. 4-7), or symmetric "
    "(Löwdin) within each set, which privileges no label (docs/networks.md).",
)


def compute_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--device and --precision, for every command that runs a network; the device is checked before the
    command writes anything."""

    def check_device(context: click.Context, parameter: click.Parameter, value: str) -> str:
        resolve_device(value)
        return value

    command = click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default="auto",
        show_default=True,
        help="Floating-point format of the networks' forward passes: auto picks bfloat16 only where the hardware "
        "runs it natively (AVX512-BF16 / AMX / ARM BF16 CPUs, recent GPUs), float32 elsewhere.",
    )(command)
    return click.option(
        "--device",
        default="auto",
        show_default=True,
        callback=check_device,
        help=f"Where the networks run: {DEVICE_CHOICES}; auto is CUDA if present, then MPS, then the CPU.",
    )(command)


def networks_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--networks (alias --models) and the per-network files --generator, --classifier and --encoder, passed to
    the command as ``networks`` and ``overrides`` (piece -> file or None)."""

    @functools.wraps(command)
    def with_networks(
        *args: Any, generator: str | None, classifier: str | None, encoder: str | None, **kwargs: Any
    ) -> Any:
        return command(
            *args, overrides={"generator": generator, "classifier": classifier, "encoder": encoder}, **kwargs
        )

    for piece in ("encoder", "classifier", "generator"):
        with_networks = click.option(
            f"--{piece}",
            type=click.Path(dir_okay=False),
            default=None,
            metavar="FILE",
            help=f"Use this {piece} instead: a torch.export program (.pt2), a TorchScript archive (.pt) or the "
            "package's NAME.safetensors (with NAME.json).",
        )(with_networks)
    return click.option(
        "--networks",
        "--models",
        "networks",
        default=None,
        metavar="SPEC",
        help="The networks: a models directory (the package's format, or a networks.json manifest naming exported "
        "files) or package.module:function returning them (runs that code). Default: the shipped networks "
        "of --dataset. See docs/guide.md.",
    )(with_networks)


def dataset_option(use: str) -> Callable[..., Any]:
    return click.option(
        "--dataset",
        default="mnist",
        show_default=True,
        help=f"Dataset {use}: mnist, fashion-mnist, idx:DIR or npz:FILE.",
    )


def run_options(printed: str | None, quiet: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--seed, --device, --precision, --json (where the command can print ``printed``) and --quiet (where it
    shows progress bars), for every command that runs networks."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        if quiet:
            command = click.option("--quiet", is_flag=True, help="No progress bars.")(command)
        if printed is not None:
            command = click.option("--json", "as_json", is_flag=True, help=f"Print {printed}.")(command)
        command = compute_options(command)
        return click.option(
            "--seed",
            type=click.IntRange(0, MAX_SEED),
            default=0,
            show_default=True,
            help="Seed of every random stream (each purpose its own offset, config.SEEDS).",
        )(command)

    return decorate


def _print_json(obj: object) -> None:
    click.echo(json_text(obj))


# those that run as ranks of one run under torchrun (docs/scale.md)
SHARDED_COMMANDS = ("basis", "reproduce", "train", "evaluate", "sfvq", "fragmentation", "compare")


def sharded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``command`` as one rank of a sharded run when torchrun started it (`distributed.open_world` on its
    --device, its arguments compared across ranks), passing the ``world``; alone otherwise."""

    @functools.wraps(command)
    def in_world(**kwargs: Any) -> Any:
        with open_world(kwargs["device"], sorted(kwargs.items())) as world:
            return command(world=world, **kwargs)

    return in_world


def _method_param(
    context: click.Context, parameter: click.Parameter, values: tuple[str, ...]
) -> dict[str, dict[str, object]]:
    """``--param METHOD.NAME=VALUE`` options as {method: {name: value}}, VALUE read as JSON where it is JSON
    (numbers, null, true, quoted strings) and as a plain string otherwise (a layer name)."""
    found: dict[str, dict[str, object]] = {}
    for text in values:
        key, equals, raw = text.partition("=")
        method, dot, name = key.partition(".")
        if not (equals and dot and method and name.isidentifier()):
            raise click.BadParameter(f"expected METHOD.NAME=VALUE, got {text!r}", context, parameter)
        try:
            value = parse_json(raw)
        except ValueError:
            value = raw
        found.setdefault(method, {})[name] = value
    return found


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latentspectra")
@click.pass_context
def cli(context: click.Context) -> None:
    """Read and operate the latent space of a generative model (Latent Spectral Decomposition)."""
    if launched_size() > 1 and context.invoked_subcommand not in SHARDED_COMMANDS:
        raise LatentspectraError(
            f"{context.invoked_subcommand} does not run sharded; start it without torchrun "
            f"(sharded: {', '.join(SHARDED_COMMANDS)}; docs/scale.md)"
        )


@cli.group()
def data() -> None:
    """Datasets: mnist (bundled), fashion-mnist, idx:DIR, npz:FILE."""


@data.command("info")
@click.argument("name")
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory of the IDX files (fashion-mnist); default: the bundled or system copy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def data_info(name: str, root: str | None, as_json: bool) -> None:
    """Sample counts, image shape and classes of dataset NAME."""
    from .data import load_dataset

    info = load_dataset(name, root=root).info()
    if as_json:
        _print_json(info)
        return
    for key, value in info.items():
        click.echo(f"{key}: {value}")


@data.command("download")
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist"]))
@click.option(
    "--to",
    "directory",
    type=click.Path(file_okay=False),
    required=True,
    help="Directory to write the four IDX .gz files to.",
)
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Fetch from this mirror (http(s):// or file://) instead of the dataset's canonical one; every "
    "file is still checked against the canonical checksums.",
)
def data_download(name: str, directory: str, base_url: str | None) -> None:
    """Fetch NAME afresh from its canonical mirror, checking every file's checksum."""
    from .data import download_dataset

    click.echo(str(download_dataset(name, directory, base_url=base_url)))


@cli.command()
@click.argument("network", type=click.Choice(NETWORK_CHOICES))
@dataset_option("to train on")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="runs/train",
    show_default=True,
    help="Directory for weights, JSON records and resumable checkpoints.",
)
@click.option("--epochs", type=int, default=None, help="Epochs for each network trained (default: per network).")
@click.option(
    "--latent-dim", type=int, default=None, help="Latent size of the generator and of the autoencoder (default: 100)."
)
@click.option(
    "--encoder-weights",
    type=float,
    nargs=3,
    default=None,
    metavar="REC KL CLS",
    help="The encoder's loss weights: reconstruction, KL and classifier cross-entropy (the paper's "
    "lambda). Default 0.1 0.1 100, tuned for LSD accuracy; 1 1 100 gives more faithful "
    "reconstructions and codes nearer N(0, I) (docs/networks.md).",
)
@click.option(
    "--interpolation-weight",
    type=float,
    default=None,
    metavar="LAMBDA",
    help="Autoencoder only: weight of an adversarial critic on decoded mixtures of codes (ACAI; "
    "default 0, the plain autoencoder). 1 lets Gaussian-mixture samples of its codes decode "
    "near the GAN's quality (docs/fragmentation.md).",
)
@run_options(None)
@sharded
def train(
    network: str,
    dataset: str,
    out: str,
    epochs: int | None,
    latent_dim: int | None,
    encoder_weights: tuple[float, float, float] | None,
    interpolation_weight: float | None,
    seed: int,
    device: str,
    precision: str,
    quiet: bool,
    world: World,
) -> None:
    """Train NETWORK (classifier, gan, encoder or all = those three in that order; or the plain
    autoencoder of the fragmentation study) into --out.

    Rerunning the same command after an interruption resumes from the last finished epoch.
    """
    from .experiments.train import (
        train_networks,
        with_encoder_weights,
        with_epochs,
        with_interpolation_weight,
        with_latent_dim,
    )

    if interpolation_weight is not None and network != "autoencoder":
        raise LatentspectraError(f"--interpolation-weight applies to the autoencoder only, not to {network}")
    config = with_epochs(replace(TrainConfig(), dataset=dataset, seed=seed, device=device, precision=precision), epochs)
    config = with_encoder_weights(with_latent_dim(config, latent_dim), encoder_weights)
    config = with_interpolation_weight(config, interpolation_weight)
    with writer_directory(world, Path(out), lock=True):
        record = train_networks(network, out, config, progress=not quiet, world=world)
    if world.is_writer:
        _print_json({"seconds": record["seconds"], "metrics": _scalars(record["metrics"])})


@cli.command()
@networks_options
@dataset_option("of the test images and the evaluation")
@run_options("a JSON object", quiet=False)
@sharded
def evaluate(
    networks: str | None,
    overrides: dict[str, str | None],
    dataset: str,
    seed: int,
    device: str,
    precision: str,
    as_json: bool,
    world: World,
) -> None:
    """Classifier accuracy, sample confidence and label entropy, classifier-feature FID, and
    encode -> decode -> classify accuracy of the networks in --models."""
    from .experiments.evaluate import evaluate_models

    metrics = evaluate_models(networks, dataset, seed, Compute.select(device, precision), overrides, world)
    if world.is_writer:
        _print_record(metrics, as_json)


@cli.command()
@networks_options
@dataset_option("whose training set is encoded for set 1")
@click.option(
    "--per-set",
    type=click.IntRange(1, MAX_PER_SET),
    default=ReproduceConfig.per_set,
    show_default=True,
    help="V: latent vectors averaged into each eta.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Latent vectors per generator + classifier call (default: 500 on a CPU, 8192 on a GPU).",
)
@click.option(
    "--max-draws",
    type=click.IntRange(min=1),
    default=None,
    help="Per-set cap on drawn latents before a rare label is an error (default 50 x V x labels).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="runs/basis.safetensors",
    show_default=True,
    help="Where to save the basis (safetensors, with a .json record beside it).",
)
@ORTHOGONALISATION_OPTION
@run_options("a JSON object (seconds, samples_per_second, ...)")
@sharded
def basis(
    networks: str | None,
    overrides: dict[str, str | None],
    dataset: str,
    per_set: int,
    batch_size: int | None,
    max_draws: int | None,
    out: str,
    orthogonalisation: str,
    seed: int,
    device: str,
    precision: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """Build the latent sets and their quasi-eigenvectors (paper steps 4-6) and save the basis."""
    from .experiments.basis import run_basis

    out_path = Path(out)
    if out_path.suffix != ".safetensors":
        raise LatentspectraError(f"--out {out}: expected a .safetensors file name")
    if out_path.is_dir():
        raise LatentspectraError(f"--out {out}: is a directory, expected a .safetensors file name")
    with writer_directory(world, out_path.parent), writer_file_lock(world, out_path):
        stats = run_basis(
            out_path,
            networks,
            dataset,
            world=world,
            per_set=per_set,
            seed=seed,
            progress=not quiet,
            batch_size=batch_size,
            max_draws=max_draws,
            orthogonalisation=orthogonalisation,
            compute=Compute.select(device, precision),
            overrides=overrides,
        )
    if world.is_writer:
        _print_record(stats, as_json)


@cli.command()
@dataset_option("of the study (and of the shipped models)")
@click.option(
    "--out",
    type=click.Path(),
    default="runs/reproduce",
    show_default=True,
    help="Directory for metrics.json, figures/, report.md and report.html.",
)
@networks_options
@click.option("--retrain", is_flag=True, help="Train all three networks first (into OUT/models).")
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="With --retrain: epochs for each network trained (default: per network, as `train`).",
)
@click.option(
    "--per-set",
    type=click.IntRange(1, MAX_PER_SET),
    default=ReproduceConfig.per_set,
    show_default=True,
    help="V: latent vectors averaged into each eta.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=ReproduceConfig.trials,
    show_default=True,
    help="Stochastic encodings of the test set.",
)
@ORTHOGONALISATION_OPTION
@run_options("metrics.json's content")
@sharded
def reproduce(
    dataset: str,
    out: str,
    networks: str | None,
    overrides: dict[str, str | None],
    retrain: bool,
    epochs: int | None,
    per_set: int,
    trials: int,
    orthogonalisation: str,
    seed: int,
    device: str,
    precision: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """The paper's whole study: basis, LSD classification, denoising, rotations, Figs. 2-8 and a report."""
    from .experiments.reproduce import run_reproduce
    from .experiments.train import with_epochs
    from .report.summaries import reproduce_summary

    if retrain and (networks or any(overrides.values())):
        raise LatentspectraError(
            "--retrain trains new networks into OUT/models; do not combine it with --networks or a network file"
        )
    if epochs is not None and not retrain:
        raise LatentspectraError("--epochs applies to --retrain only (the networks it trains)")
    config = ReproduceConfig(
        dataset=dataset,
        seed=seed,
        per_set=per_set,
        trials=trials,
        orthogonalisation=orthogonalisation,
        device=device,
        precision=precision,
    )
    train_config = with_epochs(TrainConfig(dataset=dataset, seed=seed, device=device, precision=precision), epochs)
    metrics = run_reproduce(
        out,
        config,
        networks=networks,
        overrides=overrides,
        retrain=retrain,
        progress=not quiet,
        train_config=train_config,
        world=world,
    )
    if world.is_writer:
        _print_result(metrics, as_json, reproduce_summary(metrics, Path(out)))


@cli.command()
@networks_options
@dataset_option("whose training set is encoded and fitted")
@click.option(
    "--codewords",
    type=click.IntRange(min=2),
    default=SFVQStudyConfig.codewords,
    show_default=True,
    help="K: codewords on the curve (and k-means clusters of the baseline).",
)
@click.option(
    "--candidates",
    type=click.Choice(SFVQ_CANDIDATES),
    default=SFVQStudyConfig.candidates,
    show_default=True,
    help="Points each code is matched against in a training step: the K codewords and the K - 1 dithered "
    "points (ours: lower quantization error), or the dithered points only (the authors': labels "
    "ordered better along the curve; docs/sfvq.md).",
)
@click.option(
    "--growth",
    type=click.Choice(SFVQ_GROWTH),
    default=SFVQStudyConfig.growth,
    show_default=True,
    help="How the codebook doubles between stages: split each codeword in two along the curve (the "
    "authors' codebook_extension) or add the segments' midpoints (ours); docs/sfvq.md.",
)
@click.option(
    "--out",
    type=click.Path(),
    default="runs/sfvq",
    show_default=True,
    help="Directory for sfvq.json, curve.safetensors (+ .json) and figures/.",
)
@run_options("sfvq.json's content")
@sharded
def sfvq(
    networks: str | None,
    overrides: dict[str, str | None],
    dataset: str,
    codewords: int,
    candidates: str,
    growth: str,
    out: str,
    seed: int,
    device: str,
    precision: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """Space-filling vector quantization of the encoded training set: the panoptic map, label-boundary
    directions and quantization error against k-means (Vali & Bäckström 2024)."""
    from .experiments.sfvq import run_sfvq
    from .report.summaries import sfvq_summary

    config = SFVQStudyConfig(
        dataset=dataset,
        seed=seed,
        codewords=codewords,
        candidates=candidates,
        growth=growth,
        device=device,
        precision=precision,
    )
    record = run_sfvq(out, config, networks=networks, overrides=overrides, progress=not quiet, world=world)
    if world.is_writer:
        _print_result(record, as_json, sfvq_summary(record, Path(out)))


@cli.command()
@networks_options
@dataset_option("whose images are encoded (training codes and test latents)")
@click.option(
    "--directions",
    type=click.IntRange(min=1),
    default=CompareConfig.directions,
    show_default=True,
    help="K: directions per method (at most the latent dimension M).",
)
@click.option(
    "--shift",
    type=click.FloatRange(min=0, min_open=True),
    default=CompareConfig.shift,
    show_default=True,
    help="t: every edit moves z to z + t d_k.",
)
@click.option(
    "--latents",
    type=click.IntRange(min=1),
    default=CompareConfig.latents,
    show_default=True,
    help="Encoder means of the first N test images, the latents edited and rescored.",
)
@click.option(
    "--methods",
    default=None,
    metavar="A,B,...",
    help="Registered direction methods to compare, comma-separated (default: all of them).",
)
@click.option(
    "--param",
    "params",
    multiple=True,
    callback=_method_param,
    metavar="METHOD.NAME=VALUE",
    help="A constructor parameter of one method, over its default budget (repeatable), e.g. "
    "sefa.layer=project.0, ganspace.layer=project.2, learned.steps=2000; VALUE is JSON or else a string.",
)
@click.option(
    "--budget",
    type=click.Choice(COMPARE_BUDGETS),
    default=CompareConfig.budget,
    show_default=True,
    help="The learned directions' budget. default: trained until two doublings of the steps each add < 0.02 "
    "to their reconstructor accuracy (at most 16,000 steps of 64; about 10 minutes a seed on 2 CPU "
    "cores); quick: 500 steps, not converged, for a first look; paper: their authors' budget (10^5 "
    "steps at rate 1e-4, K = M, their ortho deformator; about an hour a seed on 2 CPU cores).",
)
@click.option(
    "--seeds",
    type=click.IntRange(1, MAX_SEEDS),
    default=CompareConfig.seeds,
    show_default=True,
    help="Seeds (--seed, --seed + 1, ...) everything random is repeated with: every headline number is a "
    "mean with its 95% t-interval over them.",
)
@click.option(
    "--reconstructor-steps",
    type=click.IntRange(1, MAX_TRAINING_STEPS),
    default=CompareConfig.reconstructor_steps,
    show_default=True,
    help="Training steps of the reconstructor that scores each method's directions.",
)
@click.option(
    "--edit-latents",
    type=click.IntRange(min=1),
    default=CompareConfig.edit_latents,
    show_default=True,
    help="Encoder means of the first N test images that the label edits change.",
)
@click.option(
    "--measure-samples",
    type=click.IntRange(min=2),
    default=CompareConfig.measure_samples,
    show_default=True,
    help="Sampled latents scored by the image measurements for InterFaceGAN's measure boundaries (grey images).",
)
@click.option(
    "--out",
    type=click.Path(),
    default="runs/compare",
    show_default=True,
    help="Directory for compare.json, report.md and figures/.",
)
@run_options("compare.json's content")
@sharded
def compare(
    networks: str | None,
    overrides: dict[str, str | None],
    dataset: str,
    directions: int,
    shift: float,
    latents: int,
    methods: str | None,
    params: dict[str, dict[str, object]],
    budget: str,
    seeds: int,
    reconstructor_steps: int,
    edit_latents: int,
    measure_samples: int,
    out: str,
    seed: int,
    device: str,
    precision: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """Every direction method on the same networks, seed, K and shift: re-scoring matrices, disentanglement,
    reconstructor accuracy, path correlation, label edits (LSD rotation and projection, InterFaceGAN, class
    means), cost and figures per method."""
    from .experiments.compare import run_compare
    from .report.summaries import compare_summary

    names = () if methods is None else tuple(name.strip() for name in methods.split(",") if name.strip())
    budgets = CompareConfig().method_params
    method_params = {name: {**budgets.get(name, {}), **params.get(name, {})} for name in {*budgets, *params}}
    config = CompareConfig(
        dataset=dataset,
        seed=seed,
        seeds=seeds,
        budget=budget,
        directions=directions,
        shift=shift,
        latents=latents,
        methods=names,
        method_params=method_params,
        reconstructor_steps=reconstructor_steps,
        edit_latents=edit_latents,
        measure_samples=measure_samples,
        device=device,
        precision=precision,
    )
    record = run_compare(out, config, networks=networks, overrides=overrides, progress=not quiet, world=world)
    if world.is_writer:
        _print_result(record, as_json, compare_summary(record, Path(out)))


@cli.command()
@networks_options
@dataset_option("whose test images are encoded")
@click.option(
    "--change",
    default=None,
    help="Features to change: upper, lower, left, right, identity, ink, thickness, all, "
    "box:T:B:L:R, outside:T:B:L:R, joined by '+' (default: the three documented examples).",
)
@click.option("--hold", default=None, help="Features to hold, same names (give --change and --hold together).")
@click.option(
    "--method",
    type=click.Choice(REDS_METHODS),
    default=RedsConfig.method,
    show_default=True,
    help="generalized: the paper's generalized eigenproblem; nullspace: the authors' code.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=RedsConfig.steps, show_default=True, help="Steps along every path."
)
@click.option(
    "--step-size",
    type=click.FloatRange(min=0, min_open=True),
    default=RedsConfig.step_size,
    show_default=True,
    help="Length of every step in latent units.",
)
@click.option(
    "--eps",
    type=click.FloatRange(min=0),
    default=REDS_EPS,
    show_default=True,
    help="Regulariser of the Rayleigh quotient, relative to the largest eigenvalue of J_g^T J_g.",
)
@click.option(
    "--basis",
    "basis_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="LSD basis (.safetensors from `latentspectra basis`) for the identity comparisons "
    "(default: built with V = --basis-per-set).",
)
@click.option(
    "--basis-per-set",
    type=click.IntRange(1, MAX_PER_SET),
    default=RedsConfig.basis_per_set,
    show_default=True,
    help="V of the LSD basis built when no --basis is given.",
)
@click.option(
    "--out",
    type=click.Path(),
    default="runs/reds",
    show_default=True,
    help="Directory for reds.json and the path images.",
)
@click.option(
    "--latents",
    type=click.IntRange(min=1),
    default=RedsConfig.latents,
    show_default=True,
    help="Encoder means of the first N test images.",
)
@run_options("reds.json's content")
def reds(
    networks: str | None,
    overrides: dict[str, str | None],
    dataset: str,
    change: str | None,
    hold: str | None,
    method: str,
    steps: int,
    step_size: float,
    eps: float,
    basis_file: str | None,
    basis_per_set: int,
    out: str,
    seed: int,
    latents: int,
    device: str,
    precision: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Rayleigh EigenDirections: paths that change --change features while holding --hold features,
    measured against straight lines, random directions and the LSD rotation."""
    from .experiments.reds import run_reds
    from .report.summaries import reds_summary

    if (change is None) != (hold is None):
        raise LatentspectraError("give --change and --hold together (or neither, for the documented examples)")
    config = RedsConfig(
        dataset=dataset,
        seed=seed,
        latents=latents,
        method=method,
        steps=steps,
        step_size=step_size,
        eps=eps,
        basis_per_set=basis_per_set,
        device=device,
        precision=precision,
    )
    if change is not None and hold is not None:  # both or neither (checked above)
        config = replace(config, examples=((change, hold),))
    record = run_reds(out, config, networks=networks, overrides=overrides, basis_file=basis_file, progress=not quiet)
    _print_result(record, as_json, reds_summary(record, Path(out)))


@cli.command()
@click.option(
    "--model",
    "model",
    type=click.Choice([*FRAGMENTATION_MODELS, "both"]),
    default="both",
    show_default=True,
    help="Whose codes: the autoencoder's (--autoencoder), the LSD encoder's, or both side by side.",
)
@networks_options
@click.option(
    "--autoencoder",
    "autoencoder",
    default=FragmentationConfig.autoencoder,
    show_default=True,
    metavar="NAME",
    help="The autoencoder's file name in --networks, without .json / .safetensors. The shipped models "
    "also hold autoencoder-acai, trained with --interpolation-weight 1 (docs/fragmentation.md).",
)
@dataset_option("whose training set is encoded")
@click.option(
    "--out",
    type=click.Path(),
    default="runs/fragmentation",
    show_default=True,
    help="Directory for fragmentation.json and figures/.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=FragmentationConfig.samples,
    show_default=True,
    help="Decoded samples per sampler (and of the GAN's reference).",
)
@click.option(
    "--mixture-components",
    type=click.IntRange(min=1),
    default=FragmentationConfig.mixture_components,
    show_default=True,
    help="Components of the Gaussian mixture sampler (10: one per digit).",
)
@click.option(
    "--mixture-codes",
    type=click.IntRange(min=2),
    default=FragmentationConfig.mixture_codes,
    show_default=True,
    help="Codes the mixture is fitted on, a random subset of the training set's.",
)
@run_options("fragmentation.json's content")
@sharded
def fragmentation(
    model: str,
    networks: str | None,
    overrides: dict[str, str | None],
    autoencoder: str,
    dataset: str,
    out: str,
    samples: int,
    mixture_components: int,
    mixture_codes: int,
    seed: int,
    device: str,
    precision: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """How the codes fill latent space (component fits, correlations, radii, slices) and which samplers
    (box, N(0, I), independent or full Gaussian, mixture) decode to digits, against the GAN."""
    from .experiments.fragmentation import run_fragmentation
    from .report.summaries import fragmentation_summary

    config = FragmentationConfig(
        dataset=dataset,
        seed=seed,
        samples=samples,
        mixture_components=mixture_components,
        mixture_codes=mixture_codes,
        models=FRAGMENTATION_MODELS if model == "both" else (model,),
        autoencoder=autoencoder,
        device=device,
        precision=precision,
    )
    result = run_fragmentation(out, config, networks=networks, overrides=overrides, progress=not quiet, world=world)
    if world.is_writer:
        _print_result(result, as_json, fragmentation_summary(result, Path(out)))


@cli.command()
@networks_options
@dataset_option("whose test images are offered and whose training set is encoded")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback lets other machines use the page (a warning says so).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: any free one).",
)
@click.option(
    "--per-set",
    type=click.IntRange(1, MAX_PER_SET),
    default=ExploreConfig.per_set,
    show_default=True,
    help="V of the LSD basis built at start (cached for the next start).",
)
@click.option(
    "--basis",
    "basis_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="LSD basis (.safetensors from `latentspectra basis`) instead of building one.",
)
@click.option(
    "--directions",
    type=click.IntRange(min=1),
    default=ExploreConfig.directions,
    show_default=True,
    help="K: sliders per direction method.",
)
@click.option(
    "--cache",
    "cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the basis and fitted directions (default: ~/.cache/latentspectra/explore).",
)
@click.option("--check", is_flag=True, help="Start, fetch the page and /api/info once, stop: a smoke test.")
@run_options(None)
def explore(
    networks: str | None,
    overrides: dict[str, str | None],
    dataset: str,
    host: str,
    port: int,
    per_set: int,
    basis_file: str | None,
    directions: int,
    cache: str | None,
    check: bool,
    seed: int,
    device: str,
    precision: str,
    quiet: bool,
) -> None:
    """A local web page to read and move through the latent space: a latent from a seed, a test image, a drawing
    or an image file; its image, label probabilities and LSD spectrum; sliders along every direction method,
    Algorithm 1's rotation, exports (docs/explore.md)."""
    from .explore import bind, create_app, open_session, serve, serving
    from .explore.server import LOCAL_HOSTS, address
    from .explore.server import check as check_server
    from .threads import single_thread

    sock = bind(host, port)  # before the networks load: a port in use is the first thing said
    if host not in LOCAL_HOSTS:
        click.echo(
            f"latentspectra: warning: listening on {host}: anyone who can reach this machine can use the page "
            "(there is no login)",
            err=True,
        )
    config = ExploreConfig(
        dataset=dataset, seed=seed, per_set=per_set, directions=directions, device=device, precision=precision
    )
    say = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    try:
        session = open_session(
            config, networks, overrides=overrides, basis_file=basis_file, cache_root=cache, progress=not quiet, say=say
        )
    except BaseException:
        sock.close()
        raise
    app = create_app(session)
    # One intra-op thread while serving: a view is a batch of two latents, which two threads only slow down (6 ms on
    # one, 176 ms on two while other processes use the cores); a fit in the background takes the other core.
    try:
        with single_thread():
            if check:
                with serving(app, sock) as url:
                    click.echo(check_server(url))
                return
            click.echo(f"latentspectra explore: serving {address(sock)} (Ctrl-C stops)")
            serve(app, sock)
    except KeyboardInterrupt:  # uvicorn has shut down cleanly and re-raised Ctrl-C: nothing is left to say
        click.echo("latentspectra explore: stopped", err=True)
    finally:
        session.methods.close()


def _print_result(record: dict, as_json: bool, summary: list[str]) -> None:
    """The whole record as JSON, or the command's plain-text ``summary``."""
    if as_json:
        _print_json(record)
        return
    for line in summary:
        click.echo(line)


def _print_record(record: dict, as_json: bool) -> None:
    """The whole record as JSON, or its scalar entries as "key: value" lines."""
    if as_json:
        _print_json(record)
        return
    for key, value in _scalars(record).items():
        click.echo(f"{key}: {value}")


def _scalars(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if not isinstance(value, (list, dict))}


def _interrupted_note(argv: list[str] | None) -> str:
    """What an interrupted command kept: training resumes from its finished epochs; other commands leave only
    whole files."""
    words = sys.argv[1:] if argv is None else argv
    if "train" in words or ("reproduce" in words and "--retrain" in words):
        return "finished epochs are saved, rerun the same command to resume training"
    if "basis" in words:
        return "finished latent sets are kept beside --out, rerun the same command to resume after them"
    return "files already written are whole, nothing half-written was left; rerun the command to start again"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user-facing errors into one line and exit code 2, and the package's
    own warnings (a slow precision) into one line each."""
    default_show = warnings.showwarning

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, SlowPrecisionWarning):
            click.echo(f"latentspectra: warning: {message}", err=True)
        else:
            default_show(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        cli.main(args=argv, prog_name="latentspectra", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:  # usage errors: one line too, instead of click's usage block
        hint = " (see --help)" if isinstance(error, click.UsageError) else ""
        click.echo(f"latentspectra: error: {error.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo(f"latentspectra: interrupted; {_interrupted_note(argv)}", err=True)
        sys.exit(130)
    except LatentspectraError as error:
        click.echo(f"latentspectra: error: {rank_label()}{' '.join(str(error).split())}", err=True)
        sys.exit(2)
    finally:
        warnings.showwarning = default_show
