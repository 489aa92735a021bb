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
from typing import TYPE_CHECKING, Any

import click

from .config import (
    AUTO,
    FRAGMENTATION_MODELS,
    BasisConfig,
    CompareConfig,
    EvaluateConfig,
    ExploreConfig,
    FragmentationConfig,
    InvertConfig,
    OptionField,
    RedsConfig,
    ReproduceConfig,
    SFVQStudyConfig,
    TrainConfig,
    device_name_error,
    option_fields,
)
from .errors import ComputeError, LatentspectraError, SlowPrecisionWarning
from .io import json_text, parse_json, writer_directory
from .launch import launched_size, rank_label

if TYPE_CHECKING:  # torch is imported when a command runs networks: --help and bad arguments answer without it
    from .distributed import World

NETWORK_CHOICES = ("classifier", "gan", "vae", "encoder", "all", "autoencoder")


def _check_device(context: click.Context, parameter: click.Parameter, value: str) -> str:
    """--device must name a kind of device (`config.device_name_error`); whether this machine has it is checked
    when the command starts, before it writes anything."""
    problem = device_name_error(value)
    if problem is not None:
        raise ComputeError(f"--device {value}: {problem}")
    return value


# Checks of an option's value at parse time beyond its type, by config field.
FIELD_CHECKS: dict[str, Callable[[click.Context, click.Parameter, Any], Any]] = {"device": _check_device}


class NumberOrAuto(click.ParamType):
    """A whole number in ``limits`` (a click.IntRange), or the word "auto"."""

    name = "integer|auto"

    def __init__(self, limits: click.IntRange) -> None:
        self.limits = limits

    def convert(self, value: Any, parameter: click.Parameter | None, context: click.Context | None) -> Any:
        if isinstance(value, str) and value.strip().lower() == AUTO:
            return AUTO
        return self.limits.convert(value, parameter, context)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[INTEGER|auto]"


def _click_type(each: OptionField) -> Any:
    """The click type of a config field's option: its choices, its range, or its plain type."""
    how = each.option
    if how.choices is not None:
        return click.Choice(how.choices)
    if each.kind is int:
        whole = click.IntRange(
            None if how.low is None else int(how.low),
            None if how.high is None else int(how.high),
            min_open=how.low_open,
        )
        return NumberOrAuto(whole) if how.auto else whole
    if each.kind is float:
        return click.FloatRange(how.low, how.high, min_open=how.low_open)
    if how.file:
        return click.Path(dir_okay=False)
    return each.kind


def config_option(config_type: type, each: OptionField) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option a config field declares (config.Option): ``--field-name``, its type, default and help."""
    how = each.option
    flag = how.flag or f"--{each.name.replace('_', '-')}"
    return click.option(
        flag,
        *how.aliases,
        each.name,
        type=_click_type(each),
        default=each.default,
        show_default=True,
        metavar=how.metavar,
        callback=FIELD_CHECKS.get(each.name),
        help=how.help.replace("{use}", getattr(config_type, "dataset_use", "")).replace(
            "{auto}", getattr(config_type, "inversion_auto", "")
        ),
    )


def config_options(config_type: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One option per field of ``config_type`` that declares one (`config.option_fields`); the command receives
    ``config``, the config built from them, instead."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        declared = option_fields(config_type)

        @functools.wraps(command)
        def with_config(**kwargs: Any) -> Any:
            values = {each.name: kwargs.pop(each.name) for each in declared}
            config = config_type(**values)
            if "device" in values:
                from .compute import resolve_device  # the command runs networks: torch is needed from here on

                resolve_device(config.device)  # a device this machine lacks, before anything is written
            return command(config=config, **kwargs)

        decorated: Callable[..., Any] = with_config
        for each in reversed(declared):
            decorated = config_option(config_type, each)(decorated)
        return decorated

    return decorate


def out_option(default: str, help: str, kind: str = "dir") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--out: where the command writes (``kind``: "dir" a directory, "file" a file, "any" either)."""
    path = {"dir": click.Path(file_okay=False), "file": click.Path(dir_okay=False), "any": click.Path()}[kind]
    return click.option("--out", type=path, default=default, show_default=True, help=help)


def output_options(printed: str | None, quiet: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--json (where the command can print ``printed``) and --quiet (where it shows progress bars)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        if quiet:
            command = click.option("--quiet", is_flag=True, help="No progress bars.")(command)
        if printed is not None:
            command = click.option("--json", "as_json", is_flag=True, help=f"Print {printed}.")(command)
        return command

    return decorate


def _print_json(obj: object) -> None:
    click.echo(json_text(obj))


# those that run as ranks of one run under torchrun (docs/scale.md)
SHARDED_COMMANDS = ("basis", "reproduce", "train", "evaluate", "sfvq", "fragmentation", "compare")


def sharded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``command`` as one rank of a sharded run when torchrun started it (`distributed.open_world` on its
    config's device, its arguments compared across ranks), passing the ``world``; alone otherwise."""

    @functools.wraps(command)
    def in_world(**kwargs: Any) -> Any:
        from .distributed import open_world

        with open_world(kwargs["config"].device, sorted(kwargs.items())) as world:
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
    """Datasets: mnist, fashion-mnist, sprites, idx:DIR, npz:FILE."""


@data.command("info")
@click.argument("name")
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory of the IDX files (fashion-mnist) or of the cached sprites; default: the bundled or system "
    "copy, the user's cache directory for sprites.",
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
@config_options(TrainConfig)
@out_option("runs/train", "Directory for weights, JSON records and resumable checkpoints.")
@click.option("--epochs", type=int, default=None, help="Epochs for each network trained (default: per network).")
@click.option(
    "--latent-dim",
    type=int,
    default=None,
    help="Latent size of the generator and of the autoencoder (default: 100; 10 for the vae recipe).",
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
@output_options(None)
@sharded
def train(
    network: str,
    config: TrainConfig,
    out: str,
    epochs: int | None,
    latent_dim: int | None,
    encoder_weights: tuple[float, float, float] | None,
    interpolation_weight: float | None,
    quiet: bool,
    world: World,
) -> None:
    """Train NETWORK (classifier, gan, encoder or all = those three in that order; vae, the generator as a
    VAE's decoder, which all trains instead of gan with --generator-recipe vae; or the plain autoencoder of the
    fragmentation study) into --out.

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
    config = with_encoder_weights(with_latent_dim(with_epochs(config, epochs), latent_dim), encoder_weights)
    config = with_interpolation_weight(config, interpolation_weight)
    with writer_directory(world, Path(out), lock=True):
        record = train_networks(network, out, config, progress=not quiet, world=world)
    if world.is_writer:
        _print_json({"seconds": record["seconds"], "metrics": _scalars(record["metrics"])})


@cli.command()
@config_options(EvaluateConfig)
@output_options("a JSON object", quiet=False)
@sharded
def evaluate(
    config: EvaluateConfig,
    as_json: bool,
    world: World,
) -> None:
    """Classifier accuracy, sample confidence and label entropy, classifier-feature FID, and
    encode -> decode -> classify accuracy of the networks in --models."""
    from .experiments.evaluate import run_evaluate

    metrics = run_evaluate(config, world=world)
    if world.is_writer:
        _print_record(metrics, as_json)


@cli.command()
@config_options(BasisConfig)
@out_option(
    "runs/basis.safetensors", "Where to save the basis (safetensors, with a .json record beside it).", kind="file"
)
@output_options("a JSON object (seconds, samples_per_second, ...)")
@sharded
def basis(
    config: BasisConfig,
    out: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """Build the latent sets and their quasi-eigenvectors (paper steps 4-6) and save the basis."""
    from .experiments.basis import run_basis

    stats = run_basis(out, config, progress=not quiet, world=world)
    if world.is_writer:
        _print_record(stats, as_json)


@cli.command()
@config_options(ReproduceConfig)
@out_option("runs/reproduce", "Directory for metrics.json, figures/, report.md and report.html.", kind="any")
@click.option("--retrain", is_flag=True, help="Train all three networks first (into OUT/models).")
@click.option(
    "--epochs",
    type=int,
    default=None,
    help="With --retrain: epochs for each network trained (default: per network, as `train`).",
)
@output_options("metrics.json's content")
@sharded
def reproduce(
    config: ReproduceConfig,
    out: str,
    retrain: bool,
    epochs: int | None,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """The paper's whole study: basis, LSD classification, denoising, rotations, Figs. 2-8 and a report."""
    from .experiments.reproduce import run_reproduce
    from .experiments.train import with_epochs
    from .report.summaries import reproduce_summary

    if retrain and (config.networks or any(config.network_files.values())):
        raise LatentspectraError(
            "--retrain trains new networks into OUT/models; do not combine it with --networks or a network file"
        )
    if epochs is not None and not retrain:
        raise LatentspectraError("--epochs applies to --retrain only (the networks it trains)")
    train_config = with_epochs(
        TrainConfig(dataset=config.dataset, seed=config.seed, device=config.device, precision=config.precision), epochs
    )
    metrics = run_reproduce(
        out,
        config,
        retrain=retrain,
        progress=not quiet,
        train_config=train_config,
        world=world,
    )
    if world.is_writer:
        _print_result(metrics, as_json, reproduce_summary(metrics, Path(out)))


@cli.command()
@config_options(SFVQStudyConfig)
@out_option("runs/sfvq", "Directory for sfvq.json, curve.safetensors (+ .json) and figures/.", kind="any")
@output_options("sfvq.json's content")
@sharded
def sfvq(
    config: SFVQStudyConfig,
    out: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """Space-filling vector quantization of the encoded training set: the panoptic map, label-boundary
    directions and quantization error against k-means (Vali & Bäckström 2024)."""
    from .experiments.sfvq import run_sfvq
    from .report.summaries import sfvq_summary

    record = run_sfvq(out, config, progress=not quiet, world=world)
    if world.is_writer:
        _print_result(record, as_json, sfvq_summary(record, Path(out)))


@cli.command()
@config_options(CompareConfig)
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
@out_option("runs/compare", "Directory for compare.json, report.md and figures/.", kind="any")
@output_options("compare.json's content")
@sharded
def compare(
    config: CompareConfig,
    methods: str | None,
    params: dict[str, dict[str, object]],
    out: str,
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
    budgets = config.method_params
    method_params = {name: {**budgets.get(name, {}), **params.get(name, {})} for name in {*budgets, *params}}
    config = replace(config, methods=names, method_params=method_params)
    record = run_compare(out, config, progress=not quiet, world=world)
    if world.is_writer:
        _print_result(record, as_json, compare_summary(record, Path(out)))


@cli.command()
@config_options(RedsConfig)
@click.option(
    "--change",
    default=None,
    help="Features to change: upper, lower, left, right, identity, ink, thickness, all, "
    "box:T:B:L:R, outside:T:B:L:R, joined by '+' (default: the three documented examples).",
)
@click.option("--hold", default=None, help="Features to hold, same names (give --change and --hold together).")
@click.option(
    "--basis",
    "basis_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="LSD basis (.safetensors from `latentspectra basis`) for the identity comparisons "
    "(default: built with V = --basis-per-set).",
)
@out_option("runs/reds", "Directory for reds.json and the path images.", kind="any")
@output_options("reds.json's content")
def reds(
    config: RedsConfig,
    change: str | None,
    hold: str | None,
    basis_file: str | None,
    out: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Rayleigh EigenDirections: paths that change --change features while holding --hold features,
    measured against straight lines, random directions and the LSD rotation."""
    from .experiments.reds import run_reds
    from .report.summaries import reds_summary

    if (change is None) != (hold is None):
        raise LatentspectraError("give --change and --hold together (or neither, for the documented examples)")
    if change is not None and hold is not None:  # both or neither (checked above)
        config = replace(config, examples=((change, hold),))
    record = run_reds(out, config, basis_file=basis_file, progress=not quiet)
    _print_result(record, as_json, reds_summary(record, Path(out)))


@cli.command()
@click.option(
    "--model",
    "model",
    type=click.Choice([*FRAGMENTATION_MODELS, "both"]),
    default="both",
    show_default=True,
    help="Whose codes: the autoencoder's (--autoencoder), the generator's latent space's (the LSD encoder's draws, "
    "or the training images inverted: --inversion), or both side by side.",
)
@config_options(FragmentationConfig)
@out_option("runs/fragmentation", "Directory for fragmentation.json and figures/.", kind="any")
@output_options("fragmentation.json's content")
@sharded
def fragmentation(
    model: str,
    config: FragmentationConfig,
    out: str,
    as_json: bool,
    quiet: bool,
    world: World,
) -> None:
    """How the codes fill latent space (component fits, correlations, radii, slices) and which samplers
    (box, N(0, I), independent or full Gaussian, mixture) decode to digits, against the GAN."""
    from .experiments.fragmentation import run_fragmentation
    from .report.summaries import fragmentation_summary

    config = replace(config, models=FRAGMENTATION_MODELS if model == "both" else (model,))
    result = run_fragmentation(out, config, progress=not quiet, world=world)
    if world.is_writer:
        _print_result(result, as_json, fragmentation_summary(result, Path(out)))


@cli.command()
@config_options(InvertConfig)
@out_option("runs/invert", "Directory for latents.safetensors (+ latents.json) and invert.json.", kind="any")
@output_options("invert.json's content")
def invert(
    config: InvertConfig,
    out: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Latents for real images by gradient descent on z (GAN inversion: pixel, classifier-feature and prior loss,
    restarts), from the encoder's means where there is an encoder; their reconstructions measured against the
    encoder alone's."""
    from .experiments.invert import run_invert
    from .report.summaries import invert_summary

    record = run_invert(out, config, progress=not quiet)
    _print_result(record, as_json, invert_summary(record, Path(out)))


@cli.command()
@config_options(ExploreConfig)
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
    "--basis",
    "basis_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="LSD basis (.safetensors from `latentspectra basis`) instead of building one.",
)
@click.option(
    "--cache",
    "cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory for the basis and fitted directions (default: ~/.cache/latentspectra/explore).",
)
@click.option("--check", is_flag=True, help="Start, fetch the page and /api/info once, stop: a smoke test.")
@output_options(None)
def explore(
    config: ExploreConfig,
    host: str,
    port: int,
    basis_file: str | None,
    cache: str | None,
    check: bool,
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
    say = (lambda line: None) if quiet else (lambda line: click.echo(line, err=True))
    try:
        session = open_session(config, basis_file=basis_file, cache_root=cache, progress=not quiet, say=say)
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
