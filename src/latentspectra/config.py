"""Configurations, in one place: the training of each network, each study, the seeds per purpose and the
batch size of inference calls. Frozen dataclasses whose defaults reach the issues' targets on a 2-core CPU.

Every study's config is a `StudyConfig` (the networks, dataset, seed, device, precision and the network batch); a
field that is also a command-line option declares it once with `option` (its help, range or choices), and the
command line is built from these declarations (cli.py `config_options`), so a new field with an `Option` is a new
option. Nothing here imports torch: the command line reads it before any network runs.

Each default that is not obvious carries a one-line why. `config_record(config)` (`asdict` with the networks
named) is what every run writes beside its outputs.
"""

from __future__ import annotations

import math
import re
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

# Batch of the networks' inference calls on a CPU: the shipped G + C forward runs at 14,700 samples/s in batches
# of 500 against 9,300 in batches of 2,000 on a 2-core AVX512-BF16 CPU in bfloat16, and at 5,360 against 4,200 on
# a 2-core AVX2 CPU in float32 (the activations of smaller batches stay in cache).
INFERENCE_BATCH_SIZE = 500
# On a GPU, large batches keep its cores busy; 8,192 latents of the shipped G + C hold about 1 GB of activations.
ACCELERATOR_INFERENCE_BATCH_SIZE = 8192

# How the etas can become quasi-eigenvectors (latent/basis.py): Gram-Schmidt in Eq. 5's order, or symmetric (Löwdin)
# within each set.
ORTHOGONALISATIONS = ("gram-schmidt", "symmetric")
# How the experiments orthogonalise the etas: "symmetric" within each set
# reaches the paper's LSD accuracy with the shipped networks, Gram-Schmidt in Eq. 5's order does not (the last
# labels of a set keep only residuals; docs/networks.md). The library's own default stays the paper's.
ORTHOGONALISATION = "symmetric"


@dataclass(frozen=True)
class SeedOffsets:
    """Seeds per purpose (as ganspace names them), offsets from a run's seed: each random stream is
    reproducible on its own, whatever else the run draws."""

    basis: int = 0  # the latent sets (basis, reproduce)
    samples: int = 1  # z ~ N(0, I) for sample metrics (evaluate, training records, fragmentation's GAN reference)
    encodings: int = 2  # stochastic encodings (the test set in evaluate and reproduce, the codes in fragmentation)
    examples: int = 3  # latents shown in figures or decoded as references (reproduce, fragmentation)
    noise: int = 4  # pixel noise of the denoising study (reproduce)
    directions: int = 5  # random directions compared with REDs paths (reds)
    probe: int = 6  # the latents whose LSD labels --per-set auto compares between rounds (basis)
    inversion: int = 7  # the restarts' draws from the prior when real images are inverted (invert, --inversion)
    codes: int = 8  # the prior draws that stand for the training codes of networks without an encoder (compare)
    samplers: int = 10  # sampler k of the fragmentation study draws from samplers + k


SEEDS = SeedOffsets()
# The largest seed a run takes: 32 bits, so that every derived stream (offsets above, training's
# seed x 100,003 + epoch) stays inside the 64 bits a torch generator is seeded with.
MAX_SEED = 2**32 - 1


def derived_seed(seed: int, offset: int) -> int:
    """The seed of the stream ``offset`` places after ``seed`` (an offset of `SEEDS`), wrapped into
    [0, MAX_SEED] so that every library takes it (scikit-learn's ``random_state`` stops at 2**32 - 1): the plain
    sum wherever it fits, so the same seed gives the same numbers as before wherever it did."""
    return (seed + offset) % (MAX_SEED + 1)


# The largest V (vectors averaged per label and set) a command takes. A basis draws about V x M latents
# (M = 100: 1.1e9 at V = 1e7, about 40 min at the 450,000 samples/s measured on an H200 and two days at the
# 6,000/s of 2 AVX2 cores); beyond it a run would go on for weeks rather than fail, so it is refused at once.
MAX_PER_SET = 10**7
# The largest training budget in steps of the learned directions and of compare's reconstructors: 100x the
# authors' 10^5 (Voynov & Babenko); beyond it a run would go on for weeks rather than fail, so it is refused.
MAX_TRAINING_STEPS = 10**7
# The most seeds a study repeats itself with (compare --seeds): each seed is a whole run.
MAX_SEEDS = 100

# REDs (methods/reds.py): the two ways to solve for directions, and the defaults of the authors' code.
REDS_METHODS = ("generalized", "nullspace")  # the paper's generalized eigenproblem; the authors' code
REDS_EPS = 1e-4  # regulariser of the Rayleigh quotient, relative to the largest eigenvalue of J_g^T J_g
REDS_HELD_SHARE = 0.99  # the authors' beta_f: spectrum share of the held Gram matrix that is held
REDS_CHANGE_SHARE = 0.999  # the authors' beta_c: spectrum share of the projected changed Gram matrix kept
# The documented (change, hold) examples of `latentspectra reds`.
REDS_EXAMPLES = (("upper", "lower"), ("thickness", "identity"), ("identity", "thickness"))
# The models whose codes the fragmentation study compares.
FRAGMENTATION_MODELS = ("autoencoder", "encoder")
# SFVQ (methods/sfvq.py): the points a training step matches each code against (ours, then the authors'), and the
# growth rules between stages (the authors' split, the default, and our midpoints).
SFVQ_CANDIDATES = ("codewords+dithered", "dithered")
SFVQ_GROWTH = ("split", "midpoint")
# Where networks can run and in which floating-point format (compute.py resolves them).
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "float32", "bfloat16")


def device_name_error(name: str) -> str | None:
    """What is wrong with ``name`` as a device (None: it names one: auto, cpu, cuda, cuda:N or mps). Whether this
    machine has it is `compute.resolve_device`'s to say."""
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name.strip().lower()):
        return None
    return f"expected {DEVICE_CHOICES}"


# --- Options: how a config field is a command-line option ---------------------------------------------


@dataclass(frozen=True)
class Option:
    """A config field as a command-line option (cli.py `config_options` builds it): ``--field-name`` (or
    ``flag``), typed by the field's annotation, its default the field's. ``low`` / ``high`` bound a number
    (``low_open``: excluding ``low``; ``auto``: or the word "auto"), ``choices`` a string; ``help`` may name
    ``{use}``, filled from the config's ``dataset_use``, and ``{auto}``, from its ``inversion_auto``."""

    help: str
    flag: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    auto: bool = False  # a whole number in the range, or the word "auto"
    aliases: tuple[str, ...] = ()  # more flags of the same option
    file: bool = False  # a path to a file (not a directory)


def option(default: Any, help: str, **how: Any) -> Any:
    """A dataclass field with ``default`` that is also a command-line option (`Option`: ``help`` and ``how``)."""
    return field(default=default, metadata={"option": Option(help, **how)})


class OptionField(typing.NamedTuple):
    """One option of a config: its field name, Python type on the command line (int, float, str, bool), whether
    None is allowed, its default, its `Option` and every type the field takes in Python (a `LatentNetworks`
    for ``networks``, say)."""

    name: str
    kind: type
    optional: bool
    default: Any
    option: Option
    kinds: tuple[type, ...]


def option_fields(config_type: type) -> list[OptionField]:
    """The fields of ``config_type`` (a config dataclass) that are command-line options, in field order."""
    hints = typing.get_type_hints(config_type)
    found = []
    for each in fields(config_type):
        if "option" in each.metadata:
            kinds = typing.get_args(hints[each.name]) or (hints[each.name],)
            kind = next(kind for kind in kinds if kind is not type(None))
            found.append(
                OptionField(each.name, kind, type(None) in kinds, _default(each), each.metadata["option"], kinds)
            )
    return found


def _default(each: Field) -> Any:
    return each.default if each.default is not MISSING else each.default_factory()  # type: ignore[operator]


def option_value_problem(config: Any) -> str | None:
    """The first option field of ``config`` (a config dataclass built in Python, where the command line's checks
    did not run) whose value its `Option` does not allow, as "NAME VALUE: expected ..."; None when all fit."""
    for each in option_fields(type(config)):
        value, how = getattr(config, each.name), each.option
        if (value is None and each.optional) or (how.auto and value == AUTO):
            continue
        if how.choices is not None:
            fits, expected = value in how.choices, f"one of {', '.join(how.choices)}"
        elif each.kind in (int, float):
            fits, expected = _in_range(value, each.kind, how)
        else:
            fits, expected = isinstance(value, each.kinds), f"a {each.kind.__name__}"
        if not fits:
            return f"{each.name} {value!r}: expected {expected}"
    return None


def _in_range(value: Any, kind: type, how: Option) -> tuple[bool, str]:
    """Whether ``value`` is a number of ``kind`` (an int for int fields) inside ``how``'s bounds, and what the
    declaration expects, in words."""
    whole = kind is int
    bounds = [
        f"{'>' if how.low_open else '>='} {how.low:g}" if how.low is not None else "",
        f"<= {how.high:g}" if how.high is not None else "",
    ]
    expected = f"{'a whole number' if whole else 'a finite number'} {' and '.join(b for b in bounds if b)}".strip()
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not math.isfinite(value):
        return False, expected
    above = how.low is None or (value > how.low if how.low_open else value >= how.low)
    return above and (how.high is None or value <= how.high), expected


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = 4  # 99.4-99.5% test accuracy on MNIST in about 80 s on 2 cores
    batch_size: int = 128
    max_lr: float = 0.01  # peak of the one-cycle schedule (fast-MNIST recipe, see docs)
    weight_decay: float = 5e-4
    width: int = 16
    noise_sigma: float = 0.1  # Gaussian-noise augmentation, as the authors' classifier
    max_rotation: float = 0.2  # radians; light affine augmentation lifts accuracy past 99.3%
    max_scale: float = 0.1
    max_shift: float = 0.12  # fraction of the half-width, about 1.7 px on 28 x 28


@dataclass(frozen=True)
class GANConfig:
    epochs: int = 7
    batch_size: int = 64
    latent_dim: int = 100  # M of the paper
    generator_width: int = 32
    discriminator_width: int = 32
    hidden: int = 512  # width of the dense hidden layer of G and of D (InfoGAN layout)
    lr_generator: float = 1e-3  # InfoGAN's MNIST rates: a faster generator than discriminator
    lr_discriminator: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999  # the shipped generator is an exponential moving average of G's weights


@dataclass(frozen=True)
class VAEConfig:
    """The `vae` recipe of the generator (training/vae.py): G trained as the decoder of a beta-VAE."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    latent_dim: int = 10  # the latent size of the dSprites VAEs of disentanglement_lib (Locatello et al. 2019)
    generator_width: int = 32  # the decoder is the GAN's generator (models/gan.py) at these sizes
    hidden: int = 512
    encoder_width: int = 32
    encoder_hidden: int = 256
    # beta of Higgins et al. (1 is the plain VAE); their dSprites value. On sprites (latent 10, 6 epochs) beta = 4
    # draws clean shapes from the prior where beta = 1 (3 epochs) still draws many shapeless blots.
    kl_weight: float = 4.0


@dataclass(frozen=True)
class EncoderConfig:
    epochs: int = 4
    batch_size: int = 128
    lr: float = 3e-4
    width: int = 32
    hidden: int = 256
    classifier_weight: float = 100.0  # lambda of the paper's step 3
    # The paper's loss is KL + reconstruction + lambda * classifier cross-entropy. The reconstruction's scale is
    # a convention (here the squared error summed over the pixels in [-1, 1]), so lambda = 100 fixes a balance
    # only together with the other two weights. The authors' code weighs the KL by 1/25; here that leaves the
    # codes off-centre (mean code norm 2.3-14.6). Reconstruction and KL at 0.1 each (the classifier term ten
    # times the weight of 1 : 1 : 100) give 97.1% encode-decode accuracy and, with the symmetric basis, LSD
    # top-1 93.7-94.0% over two seeds against 89.5% for 1 : 1 : 100 (docs/networks.md, Orthogonalisation).
    reconstruction_weight: float = 0.1
    kl_weight: float = 0.1
    # Warm-up before the paper's loss: fit q(z | x) to (z, G(z)) pairs, z ~ N(0, I), by maximum likelihood,
    # so that the encoder starts out inverting G near the prior (see training/encoder.py).
    warm_up_steps: int = 1500
    warm_up_lr: float = 1e-3


@dataclass(frozen=True)
class AutoencoderConfig:
    """The plain autoencoder of the fragmentation study (not one of the paper's networks)."""

    epochs: int = 10  # test reconstruction PSNR 28.7 dB; about 1 minute on one core
    batch_size: int = 128
    lr: float = 2e-3  # start of Adam's cosine-annealed rate
    latent_dim: int = 100  # N of the study (it also tries 256)
    width: int = 16  # 335k parameters, 1.3 MB of float32 weights at N = 100
    # lambda of ACAI's interpolation critic (Berthelot et al., ICLR 2019); 0 trains the plain autoencoder
    interpolation_weight: float = 0.0
    critic_blend: float = 0.2  # ACAI's gamma: the critic sees gamma x + (1 - gamma) reconstruction as real


GENERATOR_RECIPES = ("gan", "vae")  # the ways `train` makes a generator: training/gan.py, training/vae.py
NETWORK_PIECES = ("generator", "classifier", "encoder")  # the networks a study runs, each replaceable by a file
NETWORK_FILE_HELP = (
    "Use this {} instead: a torch.export program (.pt2), a TorchScript archive (.pt) or the package's "
    "NAME.safetensors (with NAME.json)."
)


def _network_file(piece: str) -> Any:
    """The field of the file that replaces ``piece``: option --PIECE FILE."""
    return option(None, NETWORK_FILE_HELP.format(piece), flag=f"--{piece}", metavar="FILE", file=True)


@dataclass(frozen=True)
class NetworksChoice:
    """Which networks a study runs: ``networks`` (a models directory, a manifest directory, a ``module:function``
    factory, or in Python a `LatentNetworks`; None: the shipped networks of the dataset), with any of them
    replaced by a file (``generator_file``, ``classifier_file``, ``encoder_file``); experiments/networks.py
    `load_study_networks` reads them."""

    # object: a `models.spec.LatentNetworks` too, which this module (below models) does not import
    networks: str | Path | object | None = option(
        None,
        "The networks: a models directory (the package's format, or a networks.json manifest naming exported files) "
        "or package.module:function returning them (runs that code). Default: the shipped networks of --dataset. "
        "See docs/guide.md.",
        flag="--networks",
        aliases=("--models",),
        metavar="SPEC",
    )
    generator_file: str | Path | None = _network_file("generator")
    classifier_file: str | Path | None = _network_file("classifier")
    encoder_file: str | Path | None = _network_file("encoder")

    @property
    def network_files(self) -> dict[str, str | Path | None]:
        """Piece (generator, classifier, encoder) -> the file that replaces it, or None."""
        return {piece: getattr(self, f"{piece}_file") for piece in NETWORK_PIECES}


@dataclass(frozen=True)
class RunConfig:
    """What every command that runs networks shares: the dataset, the seed of every random stream, and where and
    in which floating-point format the networks run (compute.py)."""

    dataset_use: ClassVar[str] = "of the run"  # completes the --dataset help: "Dataset {use}: ..."

    dataset: str = option("mnist", "Dataset {use}: mnist, fashion-mnist, sprites, idx:DIR or npz:FILE.")
    seed: int = option(
        0, "Seed of every random stream (each purpose its own offset, config.SEEDS).", low=0, high=MAX_SEED
    )
    # auto: CUDA, then MPS, then the CPU; bfloat16 only on hardware with native bfloat16 (compute.py). On an
    # AVX512-BF16 CPU bfloat16 trains the GAN 1.2-1.4x faster; on an AVX2 CPU it is 6.7x slower.
    device: str = option(
        "auto", f"Where the networks run: {DEVICE_CHOICES}; auto is CUDA if present, then MPS, then the CPU."
    )
    precision: str = option(
        "auto",
        "Floating-point format of the networks' forward passes: auto picks bfloat16 only where the hardware runs it "
        "natively (AVX512-BF16 / AMX / ARM BF16 CPUs, recent GPUs), float32 elsewhere.",
        choices=PRECISIONS,
    )


@dataclass(frozen=True)
class StudyConfig(RunConfig, NetworksChoice):  # NetworksChoice first in the fields (and options): its fields lead
    """What every study shares: the networks (`NetworksChoice`), `RunConfig` and ``batch_size``, the inputs of one
    network call (latents through G and C, images through the encoder) everywhere; batches of anything else say
    what they batch."""

    batch_size: int | None = option(
        None, "Inputs per network call (default: 500 on a CPU, 8192 on a GPU).", low=1
    )  # None: the device's (Compute.inference_batch_size)


def config_record(config: Any) -> dict[str, Any]:
    """``asdict(config)`` as a run records it: the networks named instead of copied (a path as its text, a
    `LatentNetworks` by its ``source``; asdict would copy its modules)."""
    if not isinstance(config, NetworksChoice):
        return asdict(config)
    named = {each.name: _network_name(getattr(config, each.name)) for each in fields(NetworksChoice)}
    return {**asdict(replace(config, networks=None)), **named}


def _network_name(value: Any) -> str | None:
    if value is None:
        return None
    return str(value) if isinstance(value, str | Path) else str(getattr(value, "source", type(value).__name__))


@dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Everything `latentspectra train` needs: `RunConfig` and one config per network (`train all` trains the
    paper's three; the autoencoder only on request)."""

    dataset_use: ClassVar[str] = "to train on"

    generator_recipe: str = option(
        "gan",
        "How `train all` trains the generator: gan (the paper's step 1) or vae (the decoder of a beta-VAE; the "
        "recipe of the shipped sprites networks, where the GAN collapses: docs/ground-truth.md).",
        choices=GENERATOR_RECIPES,
    )
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    gan: GANConfig = field(default_factory=GANConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)


# --- Real images as latents -----------------------------------------------------------------------------

# How a command turns real images into latents (experiments/image_latents.py): the encoder's means, gradient descent
# on z from the prior (GAN inversion by optimisation), or descent started from the encoder's means; auto is optimize
# where the networks have no encoder and, where they have one, what the command says (`InversionChoice`).
INVERSIONS = ("auto", "encoder", "optimize", "hybrid")
# Where `latentspectra invert` starts its descent: the encoder's means (hybrid) or the prior (optimize); auto is the
# encoder where there is one.
INVERSION_STARTS = ("auto", "encoder", "prior")
SPLITS = ("test", "train")
INVERSION_STEPS = 200  # the descent's most Adam steps per start (`InversionSettings.steps`)


# The descent's defaults, tuned on the first 50 MNIST test images with the shipped networks (one AVX512 core, float32):
# from the encoder's means, learning rate 0.1 reaches pixel MSE 0.024 in 200 steps where 0.05 reaches 0.025 and
# 0.02 0.036 (the encoder alone: 0.23); a feature weight of 0.1 halves the feature distance of none (0.018 against
# 0.039) at the same pixel MSE, where 1 costs pixel MSE (0.038); a prior weight of 0.003 keeps the latents' norm at
# the prior's (|z| 10.3 against sqrt(M) = 10; 0.01 shrinks it to 8.2, none lets it grow to 11.6); three starts take
# the descent from the prior from pixel MSE 0.14 (one start) to 0.058.
@dataclass(frozen=True)
class InversionSettings:
    """How `latent.invert` searches a latent z for each image x (latent/inversion.py): Adam on z against
    pixel MSE + ``feature_weight`` x the classifier-feature distance + ``prior_weight`` x |z|^2 / 2M, from
    ``restarts`` starts, each for at most ``steps`` steps and stopped where the loss stops improving."""

    steps: int = option(
        INVERSION_STEPS, "Most Adam steps on z per start (fewer where the loss stops improving, see --patience).", low=1
    )
    restarts: int = option(
        3,
        "Starts per image, the best latent kept: the encoder's mean (where the descent starts there) and draws from "
        "the prior.",
        low=1,
    )
    learning_rate: float = option(0.1, "Adam's step size on z.", low=0, low_open=True)
    feature_weight: float = option(
        0.1,
        "Weight of the classifier-feature distance in the loss (penultimate layer where the classifier has one).",
        low=0,
    )
    prior_weight: float = option(0.003, "Weight of the prior term |z|^2 / 2M in the loss.", low=0)
    patience: int = option(
        20,
        "An image stops after this many steps without its loss falling by --min-improvement (relative).",
        low=1,
    )
    min_improvement: float = option(
        1e-3, "The relative fall of the loss that counts as progress for --patience.", low=0
    )
    reach_threshold: float = option(
        0.5,
        "An image counts as reached where G(z) leaves less than this share of its pixel variance unexplained "
        "(pixel MSE / variance).",
        low=0,
        low_open=True,
    )

    def inversion_settings(self) -> InversionSettings:
        """These settings alone, from a config that mixes them in with others (`InvertConfig`)."""
        return InversionSettings(**{each.name: getattr(self, each.name) for each in fields(InversionSettings)})


# What `--inversion auto` means for a command whose networks have an encoder (without one it is optimize
# everywhere). The issue asks for hybrid, and explore takes it: one image per request, 1.5-4 s on one core of an
# AVX512 AMD EPYC in float32 (docs/inversion.md). The commands that turn thousands of images into latents keep
# the encoder's means, for cost and for LSD: on 2 idle cores of that CPU the hybrid's 200 steps run at 4.1
# images/s, so reproduce (its 10,000 test images and 3 x 2,000 noisy ones) would take about 65 minutes more than
# its minute and compare (1,000 test images) about 4 minutes more; and LSD top-1 through the hybrid's latents is far
# below the encoder's (68% against 92% on the first 300 MNIST test images at 25 steps: LSD reads labels where the
# encoder puts them); fragmentation studies the encoder's own codes. `--inversion hybrid` asks for it anywhere.
BULK_INVERSION_AUTO = "encoder"
INVERSION_HELP = (
    "How real images become latents: encoder (its means), optimize (gradient descent on z from draws of the "
    "prior), hybrid (descent from the encoder's means); auto: {auto} where the networks have an encoder, "
    "optimize where they have none (docs/inversion.md)."
)


@dataclass(frozen=True)
class FiguresChoice:
    """Whether a study that draws figures draws them: drawing is most of a small run's time (matplotlib lays out
    every panel), so runs made for their records alone (sweeps, scripted checks) can leave it out."""

    figures: bool = option(
        True,
        "Draw the figures; --no-figures writes the records (and the report, where there is one) without them.",
        flag="--figures/--no-figures",
    )


@dataclass(frozen=True)
class InversionChoice:
    """How a study turns real images into latents (experiments/image_latents.py): ``inversion`` and the most steps
    of its descent; ``inversion_auto`` is what auto means for the command where the networks have an encoder
    (`BULK_INVERSION_AUTO` unless the command says otherwise)."""

    inversion_auto: ClassVar[str] = BULK_INVERSION_AUTO

    inversion: str = option("auto", INVERSION_HELP, choices=INVERSIONS)
    inversion_steps: int = option(
        INVERSION_STEPS,
        "With --inversion optimize or hybrid: most Adam steps on z per start (fewer where the loss stops improving).",
        low=1,
    )

    def inversion_settings(self) -> InversionSettings:
        """The descent's settings: `InversionSettings` with ``inversion_steps`` steps."""
        return InversionSettings(steps=self.inversion_steps)


# --- Studies ------------------------------------------------------------------------------------------

PER_SET_HELP = "V: latent vectors averaged into each eta."
PER_SET_AUTO_HELP = (
    "V: latent vectors averaged into each eta, or auto: V doubled from 125 until the basis is stable (at most "
    "--tolerance of 2,000 probe latents change their LSD label from one V to the next), at most 5,000."
)
# --per-set auto (experiments/basis.py stable_basis): V = 125, 250, 500, ... until at most TOLERANCE of the probe
# latents (2,000 stochastic encodings of training images) change their LSD label between two rounds, at most
# AUTO_MOST_PER_SET (the paper's V). On the shipped MNIST networks it stops at V = 500 (0.7-0.8% changed from 250,
# 1.0-1.2% from 125 to 250): LSD top-1 within 0.2 points of V = 5,000 for a sixth of its draws (docs/performance.md,
# "Accuracy against draws")
AUTO = "auto"
AUTO_MOST_PER_SET = 5000
TOLERANCE = 0.01
TOLERANCE_HELP = "With --per-set auto: the share of probe latents whose LSD label may change between rounds."


def per_set_rule(per_set: int | str, tolerance: float) -> tuple[int, float | None]:
    """(V, tolerance) of `latent.set_means` for a config's ``per_set``: a number V, or "auto" (at most
    AUTO_MOST_PER_SET, until ``tolerance``)."""
    return (AUTO_MOST_PER_SET, tolerance) if per_set == AUTO else (int(per_set), None)


ORTHOGONALISATION_HELP = (
    "How the etas become quasi-eigenvectors: Gram-Schmidt in the paper's order (Eqs. 4-7), or symmetric (Löwdin) "
    "within each set, which privileges no label (docs/networks.md)."
)


@dataclass(frozen=True)
class EvaluateConfig(StudyConfig):
    """What `latentspectra evaluate` measures: the networks' metrics on the dataset (experiments/evaluate.py)."""

    dataset_use: ClassVar[str] = "of the test images and the evaluation"


@dataclass(frozen=True)
class BasisConfig(StudyConfig):
    """What `latentspectra basis` builds: the latent sets (Methods steps 4-5) and their quasi-eigenvectors (step 6)."""

    dataset_use: ClassVar[str] = "whose training set is encoded for set 1"

    # on a user's networks the sets are drawn until stable; a number V is the paper's protocol
    per_set: int | str = option(AUTO, PER_SET_AUTO_HELP, low=1, high=MAX_PER_SET, auto=True)
    tolerance: float = option(TOLERANCE, TOLERANCE_HELP, low=0, low_open=True)
    max_draws: int | None = option(
        None, "Per-set cap on drawn latents before a rare label is an error (default 50 x V x labels).", low=1
    )
    orthogonalisation: str = option(ORTHOGONALISATION, ORTHOGONALISATION_HELP, choices=ORTHOGONALISATIONS)


@dataclass(frozen=True)
class ReproduceConfig(FiguresChoice, InversionChoice, StudyConfig):
    """What `reproduce` does; the defaults are the paper's study and the issue's measurements."""

    dataset_use: ClassVar[str] = "of the study (and of the shipped models)"

    per_set: int | str = option(5000, PER_SET_AUTO_HELP, low=1, high=MAX_PER_SET, auto=True)  # V of the paper
    tolerance: float = option(TOLERANCE, TOLERANCE_HELP, low=0, low_open=True)
    trials: int = option(20, "Stochastic encodings of the test set.", low=1)  # of the whole test set
    # of the basis every stage uses; both are measured in stage 2
    orthogonalisation: str = option(ORTHOGONALISATION, ORTHOGONALISATION_HELP, choices=ORTHOGONALISATIONS)
    noise_sigmas: tuple[float, ...] = (0.25, 0.5, 0.75)  # in [0, 1] pixel units
    truncations: tuple[int, ...] = (1, 2, 3, 4, 10)  # components kept when denoising (Fig. 7)
    denoise_images: int = 2000  # test images in the denoising measurement
    rotation_images: int = 1000  # test images in the rotation measurement
    rotation_dtheta: float = math.pi / 6  # the paper's text (Algorithm 1 prints pi/3, see rotation_path)
    rotation_steps: int = 3


@dataclass(frozen=True)
class SFVQStudyConfig(FiguresChoice, StudyConfig):
    """What `sfvq_study` does; the quantizer's training defaults are the authors' (methods/sfvq.py)."""

    dataset_use: ClassVar[str] = "whose training set is encoded and fitted"

    codewords: int = option(64, "K: codewords on the curve (and k-means clusters of the baseline).", low=2)  # K
    # the training step's candidates: ours, the lower quantization error; "dithered" is the authors', whose curves
    # order the labels better (docs/sfvq.md)
    candidates: str = option(
        "codewords+dithered",
        "Points each code is matched against in a training step: the K codewords and the K - 1 dithered points "
        "(ours: lower quantization error), or the dithered points only (the authors': labels ordered better along "
        "the curve; docs/sfvq.md).",
        choices=SFVQ_CANDIDATES,
    )
    # how the codebook grows between stages: the authors' split, the lower test error on the shipped MNIST codes at
    # K = 16 and 64 (docs/sfvq.md); "midpoint" is ours
    growth: str = option(
        "split",
        "How the codebook doubles between stages: split each codeword in two along the curve (the authors' "
        "codebook_extension) or add the segments' midpoints (ours); docs/sfvq.md.",
        choices=SFVQ_GROWTH,
    )
    epochs_per_stage: int = 5
    training_batch_size: int = 64  # codes per SFVQ training step (the authors')
    direction_latents: int = 500  # test codes moved along each consecutive-codeword direction
    direction_scale: float = 1.0  # z -> z + scale (c_k+1 - c_k): one full step along the curve
    shown_pairs: int = 3  # boundary and same-label pairs each, in the direction and augmentation figures
    shown_latents: int = 8  # test codes per row of the direction figure
    segment_points: int = 9  # evenly spaced t in [0, 1] per row of the augmentation figure


@dataclass(frozen=True)
class RedsConfig(FiguresChoice, StudyConfig):
    """What `latentspectra reds` does; the defaults are the documented study (docs/reds.md). Its Jacobians run in
    float32 or float64 whatever ``precision`` says (`run_reds` refuses bfloat16)."""

    dataset_use: ClassVar[str] = "whose test images are encoded"

    method: str = option(
        REDS_METHODS[0],
        "generalized: the paper's generalized eigenproblem; nullspace: the authors' code.",
        choices=REDS_METHODS,
    )
    steps: int = option(6, "Steps along every path.", low=1)
    step_size: float = option(1.0, "Length of every step in latent units.", low=0, low_open=True)  # the authors'
    eps: float = option(
        REDS_EPS, "Regulariser of the Rayleigh quotient, relative to the largest eigenvalue of J_g^T J_g.", low=0
    )
    # V of the LSD basis built for identity changes
    basis_per_set: int | str = option(
        500,
        f"V of the LSD basis built when no --basis is given, or auto (as `basis --per-set auto`, tolerance "
        f"{TOLERANCE}).",
        low=1,
        high=MAX_PER_SET,
        auto=True,
    )
    latents: int = option(200, "Encoder means of the first N test images.", low=1)
    examples: tuple[tuple[str, str], ...] = REDS_EXAMPLES  # (change, hold) feature specs
    held_share: float = REDS_HELD_SHARE
    change_share: float = REDS_CHANGE_SHARE
    fd_steps: tuple[float, ...] = (1.0, 0.1, 0.01)  # central-difference steps compared (1.0: the authors')
    fd_latents: int = 50  # latents of the finite-difference comparison and the timing
    shown: int = 4  # latents drawn in each example's figure
    jacobian_batch_size: int = 50  # latents per Jacobian computation


@dataclass(frozen=True)
class FragmentationConfig(FiguresChoice, InversionChoice, StudyConfig):
    """What the study measures; the defaults are the issue's."""

    dataset_use: ClassVar[str] = "whose training set is encoded"

    # its file stem in the models directory; the shipped also: "autoencoder-acai"
    autoencoder: str = option(
        "autoencoder",
        "The autoencoder's file name in --networks, without .json / .safetensors. The shipped models also hold "
        "autoencoder-acai, trained with --interpolation-weight 1 (docs/fragmentation.md).",
        metavar="NAME",
    )
    # decoded samples per sampler, as many as the GAN's reference samples
    samples: int = option(10_000, "Decoded samples per sampler (and of the GAN's reference).", low=2)
    # one per digit, as Ghosh et al.'s ex-post density estimate
    mixture_components: int = option(10, "Components of the Gaussian mixture sampler (10: one per digit).", low=1)
    # codes the mixture is fitted on: EM on all 60,000 costs minutes
    mixture_codes: int = option(10_000, "Codes the mixture is fitted on, a random subset of the training set's.", low=2)
    # None: every training image. Inverted codes (--inversion optimize or hybrid) cost the descent per image, about
    # 4 images/s at 200 steps on 2 idle CPU cores (docs/inversion.md): all 60,000 MNIST images would take 4 hours
    codes: int | None = option(
        None,
        "Code the first N training images per model (default: all of them). Inverted codes (--inversion optimize or "
        "hybrid) take about 0.25 s an image at 200 steps on 2 CPU cores (docs/inversion.md): give a few thousand, or "
        "fewer --inversion-steps.",
        low=2,
    )
    models: tuple[str, ...] = FRAGMENTATION_MODELS
    box_bounds: tuple[float, ...] = (1.0, 1.5, 2.0, 5.0)
    confidence: float = 0.9
    bulk_quantile: float = 0.99
    dominant: int = 6  # dominant components reported and drawn
    pairs: int = 10  # strongest correlated pairs reported
    path_steps: int = 11
    path_span: float = 3.0  # paths through the centre run from -span to +span standard deviations
    path_planes: int = 2  # planes of dominant pairs with paths through the centre
    shown_codes: int = 5000  # codes drawn in the scatter plots


@dataclass(frozen=True)
class InvertConfig(InversionSettings, StudyConfig):
    """What `latentspectra invert` does: latents for the first ``count`` images of a split by gradient descent on z
    (`InversionSettings`), started from the encoder's means or the prior, measured against the encoder alone."""

    dataset_use: ClassVar[str] = "whose images are inverted"

    split: str = option("test", "The split whose first --count images are inverted.", choices=SPLITS)
    count: int = option(1000, "Images inverted: the first N of --split (all of it where it holds fewer).", low=1)
    start: str = option(
        "auto",
        "Where the descent starts: the encoder's means (the hybrid of encoder and optimisation), draws from the "
        "prior alone, or auto: the encoder where the networks have one.",
        choices=INVERSION_STARTS,
    )


@dataclass(frozen=True)
class FactorRegressorConfig:
    """The factor regressor that reads a dataset's ground-truth factors off images (methods/factor_regressor.py):
    compare's edit-based ground-truth score reads G(z) and G(z + t d_k) with it. Trained once per dataset and
    these settings on the CPU and cached (the user's cache directory, keyed by the dataset's checksum); its own
    ``seed``, not the run's, so every seed of a compare reads the images with one instrument."""

    images: int = 20_000  # the first training images it learns from (sprites: 23% of the training split)
    # Adam steps of ``batch_size`` images, about 10 passes over 20,000: 35 s on sprites (one loaded AMD EPYC core),
    # its shape read to R^2 0.88 on the test split; 1,500 steps read it to 0.59 (0.18 without batch norm)
    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 2e-3  # Adam's rate, cosine-annealed to 0 over the steps
    width: int = 16  # channels of the first convolution (then 2x and 4x); 0.16 M parameters
    test_images: int = 5000  # the first test images its accuracy is measured on (recorded)
    seed: int = 0  # its initial weights and the order of its batches


# The learned directions' parameters in `compare` per --budget, measured on the shipped MNIST networks (K = 10;
# docs/compare.md, "Budgets, measured"). "default": 16,000 steps of 64 at rate 3e-3, stopped earlier only where
# two doublings of the steps in a row, from 2,000 on, each add less than 0.02 to the reconstructor's held-out
# accuracy (one is not enough: a seed paused for a doubling at 0.81 and went on to 0.94); measured with seeds 0-2
# and the authors' LeNet reconstructor, all three trained 16,000 steps (0.968, 0.956, 0.970; the last doubling
# adding +0.019, +0.010 and +0.015), about 8 minutes a seed on 2 CPU cores in float32. "quick": 500 steps at the
# class's batch and rate, not converged (about 15 s a seed), for a first look. "paper": Voynov & Babenko's 10^5
# steps at rate 1e-4 with their "ortho" deformator and K = M (`compare.method_params`; the first K are measured),
# about an hour a seed on 2 CPU cores.
CONVERGED_GAIN = 0.02  # converged where two doublings of the learned directions' steps in a row each add less
LEARNED_BUDGETS: dict[str, dict[str, object]] = {
    "default": {"steps": 16_000, "batch_size": 64, "learning_rate": 3e-3, "tolerance": CONVERGED_GAIN},
    "quick": {"steps": 500},
    "paper": {"steps": 100_000, "learning_rate": 1e-4, "deformator": "expm"},
}
COMPARE_BUDGETS = tuple(LEARNED_BUDGETS)


@dataclass(frozen=True)
class CompareConfig(FiguresChoice, InversionChoice, StudyConfig):
    """What `compare_study` does: every registered direction method (or ``methods``) on the same networks, seed,
    K and shift t; the per-method budgets keep the whole command on the shipped networks to minutes on 2 cores.
    ``seed`` is every method's seed parameter (the first seed's)."""

    dataset_use: ClassVar[str] = "whose images are encoded (training codes and test latents)"

    # K per method (InterFaceGAN: one per label, its first K rescored)
    directions: int = option(10, "K: directions per method (at most the latent dimension M).", low=1)
    # t of the edits z + t d_k (rescoring, path correlation, figures)
    shift: float = option(3.0, "t: every edit moves z to z + t d_k.", low=0, low_open=True)
    # latents of the first test images (--inversion), the latents edited
    latents: int = option(
        200, "Latents of the first N test images (--inversion), the latents edited and rescored.", low=1
    )
    # the learned directions' budget (LEARNED_BUDGETS; method_params' learned entry goes over it): "default" trains
    # until converged, "quick" for a first look, "paper" their authors' budget
    budget: str = option(
        "default",
        "The learned directions' budget. default: 16,000 steps of 64, fewer where two doublings of the steps each "
        "add < 0.02 to their reconstructor accuracy (about 8 minutes a seed on 2 CPU cores); quick: "
        "500 steps, not converged, for a first look; paper: their authors' budget (10^5 steps at rate 1e-4, K = M, "
        "their ortho deformator; about an hour a seed on 2 CPU cores).",
        choices=COMPARE_BUDGETS,
    )
    # everything random (fits, their draws, reconstructors) is repeated with seed, seed + 1, ...: each headline
    # number is a mean with its 95% t-interval over these seeds (intervals.py)
    seeds: int = option(
        3,
        "Seeds (--seed, --seed + 1, ...) everything random is repeated with: every headline number is a mean with "
        "its 95% t-interval over them.",
        low=1,
        high=MAX_SEEDS,
    )
    # the reconstructor accuracy of every method's frozen directions: a fresh R trained for reconstructor_steps
    # batches of 32, scored on reconstructor_validation fresh draws. Cost on the shipped MNIST networks, 2 AVX2
    # cores (AMD EPYC): 13-19 s a method (one outlier of 32 s on a busy host), 151 s for all nine at these values
    # (about 25-30 ms a step); the whole compare went from about 60 s to 272 s
    reconstructor_steps: int = option(
        500,
        "Training steps of the reconstructor that scores each method's directions.",
        low=1,
        high=MAX_TRAINING_STEPS,
    )
    reconstructor_validation: int = option(
        1600, "Fresh shifted draws the reconstructor's accuracy is measured on (its standard error about 0.01).", low=1
    )
    # latents of the first test images whose labels the label edits change
    edit_latents: int = option(
        1000, "Latents of the first N test images (--inversion) that the label edits change.", low=1
    )
    # InterFaceGAN's boundaries of the image measurements (grey images): z ~ N(0, I) scored by the Morpho-MNIST
    # measures of G(z), about 5 ms an image on 2 AVX2 cores; 2% from each end gives 100 latents a side
    measure_samples: int = option(
        5000,
        "Sampled latents scored by the image measurements for InterFaceGAN's measure boundaries (grey images).",
        low=2,
    )
    # datasets with factors (sprites, an npz with factor arrays): the latents of the first test images (made with the
    # other test latents, --inversion: no extra descent where these are at least as many), their projections on each
    # method's K directions scored against the images' factors (MIG, DCI, SAP). DCI's trees dominate the cost: on
    # sprites at K = 10, 1,000 images take about 15 s per method and seed (13.5 s of it DCI) on 2 loaded AMD EPYC
    # cores, about 5.5 minutes of a default compare's 40 (benchmarks/bench_ground_truth.py, docs/compare.md); 500
    # take 10 s, with fewer examples of each of orientation's 40 values for the trees
    ground_truth_images: int = option(
        1000,
        "Datasets with factors: latents of the first N test images (--inversion) whose projections on each "
        "method's directions are scored against their factors (MIG, DCI, SAP).",
        low=2,
    )
    # DCI's gradient-boosted trees per factor: disentanglement_lib's 100 take most of the track's time (13.5 s of 15
    # per method and seed at 1,000 images on a loaded machine, docs/compare.md); fewer trade DCI's accuracy for speed
    dci_trees: int = option(
        100,
        "Datasets with factors: gradient-boosted trees per factor in DCI (disentanglement_lib's 100; fewer: faster).",
        low=1,
    )
    # each label edit is also made at these multiples s of its own step (s = 1): rotation by s pi / 2, s times the
    # projection, the boundary step or the mean difference; the first s that flips a latent gives the distance
    # the approach needs, so approaches with steps of different lengths are compared at the distance they need
    edit_strengths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    methods: tuple[str, ...] = ()  # registry names; () is all of `methods.directions.available()`
    steps: int = 5  # images per direction in the figures and points per path (path correlation), s from -t to +t
    # per-method parameters (replacing the whole mapping replaces these budgets). GANSpace as its authors run it on
    # a generator without a mapping network (the PCA of its first linear layer on z, regressed back to z, its
    # default 100,000 samples), SFVQ on the encoded training codes, REDs (change upper, hold lower) on the encoded
    # test latents, InterFaceGAN on its default n_samples (200,000: where two seeds' normals agree to |cos| >= 0.95)
    # z ~ N(0, I) scored by C(G(z))
    method_params: dict[str, dict[str, object]] = field(
        default_factory=lambda: {"lsd": {"per_set": 500}, "reds": {"change": "upper", "hold": "lower"}}
    )
    # the factor regressor that reads the factors of generated images (the edit-based ground-truth score)
    factor_regressor: FactorRegressorConfig = field(default_factory=FactorRegressorConfig)


@dataclass(frozen=True)
class ExploreConfig(InversionChoice, StudyConfig):
    """What `latentspectra explore` serves: the networks' latent space on a local page (explore/). ``dataset``: the
    test images to pick from and the training codes of the methods that fit on them; ``seed``: the LSD basis and
    every method's seed parameter."""

    dataset_use: ClassVar[str] = "whose test images are offered and whose training set is encoded"
    # one image per request (a test image, a drawing, an upload): the hybrid takes 1.5-4 s on one AVX512 core
    inversion_auto: ClassVar[str] = "hybrid"

    # V of the LSD basis built at the first start, then read from the cache: a tenth of `basis`'s 5,000 (40-70 s on 2
    # cores, docs/networks.md); 60 s measured for V = 500 while other jobs kept the 2 cores busy
    per_set: int | str = option(
        500,
        "V of the LSD basis built at start (cached for the next start), or auto (as `basis --per-set auto`).",
        low=1,
        high=MAX_PER_SET,
        auto=True,
    )
    # K sliders per method (LSD: the set-1 quasi-eigenvectors, one per label)
    directions: int = option(10, "K: sliders per direction method.", low=1)
    slider_range: float = 5.0  # the sliders' shared scale, -range..range latent units (the prior's sigma is 1)
    strip_images: int = 9  # images in the strip along one direction
    rotation_steps: int = 6  # steps of pi / 12 from one label's quasi-eigenvector to the next (Algorithm 1)
    upload_bytes: int = 5 * 2**20  # the largest image file accepted
    upload_pixels: int = 4096 * 4096  # the largest image accepted, checked from its header before decoding
