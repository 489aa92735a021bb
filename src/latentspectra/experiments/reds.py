"""`latentspectra reds`: Rayleigh EigenDirections (`methods.reds`) on the MNIST networks, measured.

For each example (features f to change, g to hold) and the encoder means of the first ``latents``
test images: a REDs path of ``steps`` steps of ``step_size``, and, with the same path length (sum of
step norms), a straight line along the path's first direction, a straight line along a random
direction and, where f includes the digit's identity, the LSD plane rotation from the quasi-eigenvector
of the digit's label (the classifier's label of G(z)) towards that of the next label (Algorithm 1's
order). Measured along every path:
the change of f and of g between its ends, their ratio, the largest change of g on the way and how
often the classifier's label changed. Also: seconds per direction (Jacobian and eigensolve), and how
far central-difference Jacobians (the authors' code) are from the exact ones, and the angle between
the directions they give.

Networks: the generator, classifier and encoder the networks spec describes (`load_networks` with ``exact``: eval
mode, batch norm folded into the layer before it, exact up to rounding and about 2x faster), on the run's
device; G and C as REDs differentiates them (`reds_networks`, `methods.reds_jacobians.jacobian_networks`, the
code compare's REDs adapter is given its networks by): float64 copies of the package's own networks, a user's
networks as they are (float32 most often). Every path is walked and measured in the dtype they take
(`input_dtype`); reds.json records it per example (``jacobian_dtype``). The encoder is float32 (bfloat16's
rounding would show in the Jacobians, so `precision` bfloat16 is refused). The LSD basis is built with
`basis_study` (V = ``basis_per_set``) or read from ``--basis``.

Seeds per purpose, offsets from the run's seed: the basis uses ``seed``, the random directions
``seed + SEEDS.directions`` (`config.SEEDS`).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..compute import Compute
from ..config import REDS_EXAMPLES, SEEDS, BasisConfig, RedsConfig, config_record, derived_seed
from ..data import images_to_tensor, load_dataset
from ..distributed import batched
from ..errors import LatentspectraError
from ..io import output_directory, versions, write_json
from ..latent import QuasiEigenBasis
from ..latent.files import load_basis
from ..methods import features as feat
from ..methods.reds import rayleigh_path, solve_rayleigh
from ..methods.reds_jacobians import central_difference_jacobians, feature_jacobians, input_dtype, jacobian_networks
from ..models.inference import InferenceEncoder, InferenceNetwork
from ..models.spec import LatentNetworks
from ..progress import progress_bar
from ..report.figures import image_rows
from .basis import basis_study
from .common import Timer, to_unit_images
from .networks import Networks, check_dataset_fits, load_study_networks

# --- Feature specs -----------------------------------------------------------------------------------


def build_feature(spec: str, classifier: nn.Module, image_shape: tuple[int, ...], argument: str) -> feat.Feature:
    """`methods.features.feature_from_spec` for images of ``image_shape`` (C, H, W), its error naming the
    command-line ``argument``.

    Raises:
        LatentspectraError: an unknown name or a bad box, naming ``argument``.
    """
    try:
        return feat.feature_from_spec(spec, classifier, image_shape)
    except feat.FeatureError as error:
        raise LatentspectraError(f"{argument} {spec}: {error}") from None


def example_name(change: str, hold: str) -> str:
    """A file-name-safe name of one example, e.g. change-upper_hold-lower."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"change-{change}_hold-{hold}")


# --- Compared paths ----------------------------------------------------------------------------------


def straight_path(z: torch.Tensor, direction: torch.Tensor, steps: int, step_size: float) -> torch.Tensor:
    """z + t step_size direction for t = 0..steps: (B, M) latents and unit directions -> (steps + 1, B, M)."""
    times = torch.arange(steps + 1, dtype=torch.float64, device=z.device)[:, None, None] * step_size
    return z.double()[None] + times * direction.double()[None]


def lsd_rotation_path(
    z: torch.Tensor, labels: torch.Tensor, basis: QuasiEigenBasis, steps: int, step_size: float
) -> tuple[torch.Tensor, int]:
    """The LSD plane rotation (`QuasiEigenBasis.rotation`, mode "plane") of each latent from xi of its
    label towards xi of the next label (set 1), by the angle that makes every step's chord
    2 r sin(dtheta / 2) equal ``step_size`` (r: the norm of z in that plane), so that the path length
    matches the other paths. Without the rescaling of `rotation_path`, which would move |z| to sqrt(M).

    Returns:
        (steps + 1, B, M) latents on the device of ``z``, and how many latents had r < step_size / 2 (rotated
        by pi per step, with shorter steps).
    """
    device, z = z.device, z.double().cpu()  # a small loop over latents, done where the basis is
    num_labels = len(basis.labels[basis.labelled].unique())
    rows, short = [], 0
    for latent, label in zip(z, labels.tolist()):
        i, j = basis.index_of(label), basis.index_of((label + 1) % num_labels)
        radius = math.hypot(float(basis.vectors[i] @ latent), float(basis.vectors[j] @ latent)) / math.sqrt(basis.norm)
        ratio = step_size / (2 * radius) if radius > 0 else math.inf
        short += ratio > 1
        rotation = basis.rotation(i, j, 2 * math.asin(min(ratio, 1.0)), mode="plane")
        points = [latent]
        for _ in range(steps):
            points.append(rotation @ points[-1])
        rows.append(torch.stack(points))
    return torch.stack(rows, dim=1).to(device), short


# --- Measurements ------------------------------------------------------------------------------------


def _describe(values: torch.Tensor) -> dict[str, float]:
    values = values.double()
    return {"mean": values.mean().item(), "median": values.median().item(), "max": values.max().item()}


class PathValues(NamedTuple):
    """f, g (steps + 1, B, d) and the classifier's labels (steps + 1, B) along a path, and its images."""

    f: torch.Tensor
    g: torch.Tensor
    labels: torch.Tensor
    images: torch.Tensor


def evaluate_path(
    networks: Networks, f: feat.Feature, g: feat.Feature, path: torch.Tensor, batch_size: int, dtype: torch.dtype
) -> PathValues:
    """G, f, g and the classifier at every latent of ``path`` (steps + 1, B, M), taken in ``dtype``."""
    generator, classifier = differentiated(networks)
    flat = path.flatten(0, 1).to(dtype)
    images = batched(generator, flat, batch_size)
    values = [batched(function, images, batch_size) for function in (f, g, classifier)]
    shape = path.shape[:2]
    return PathValues(
        values[0].unflatten(0, shape),
        values[1].unflatten(0, shape),
        values[2].argmax(1).unflatten(0, shape),
        images.unflatten(0, shape),
    )


def path_changes(values: PathValues, path: torch.Tensor) -> dict[str, Any]:
    """The change of f and g between the path's ends (L2 norms), their ratio, the largest change of g
    along the way, the fraction of latents whose label changed, and the path length."""
    delta_f = (values.f[-1] - values.f[0]).norm(dim=-1)
    delta_g = (values.g[-1] - values.g[0]).norm(dim=-1)
    largest_g = (values.g - values.g[:1]).norm(dim=-1).max(dim=0).values
    lengths = (path[1:] - path[:-1]).norm(dim=-1).sum(0)
    return {
        "delta_f": _describe(delta_f),
        "delta_g": _describe(delta_g),
        "ratio_median": (delta_f / delta_g.clamp(min=1e-12)).median().item(),
        "ratio_of_means": (delta_f.mean() / delta_g.mean().clamp(min=1e-12)).item(),
        "largest_delta_g": _describe(largest_g),
        "label_changed": (values.labels[-1] != values.labels[0]).double().mean().item(),
        "path_length": _describe(lengths),
    }


def _angle_degrees(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between the lines of unit vectors a and b (B, M), sign-insensitive, in degrees."""
    cosine = (a * b).sum(-1).abs().clamp(max=1.0)
    return torch.rad2deg(torch.arccos(cosine))


def start_directions_study(
    networks: Networks, f: feat.Feature, g: feat.Feature, z: torch.Tensor, config: RedsConfig
) -> dict[str, Any]:
    """At the starting latents ``z``: the exact Jacobians and best direction, timed (seconds per
    direction, Jacobian and eigensolve); for "nullspace" the dimensions of the held subspace and of the
    followed span; and for each central-difference step the relative Frobenius error of J_f and J_g,
    the angle between the best directions from the two, and the seconds per latent; and the Jacobians' dtype."""
    solve: dict[str, Any] = {  # the keyword arguments of `solve_rayleigh`
        "k": 1,
        "eps": config.eps,
        "method": config.method,
        "held_share": config.held_share,
        "change_share": config.change_share,
    }
    began = time.perf_counter()
    generator, _ = differentiated(networks)
    j_f, j_g = feature_jacobians(generator, f, g, z, config.jacobian_batch_size)
    jacobian_seconds = time.perf_counter() - began
    began = time.perf_counter()
    exact = solve_rayleigh(j_f, j_g, **solve)
    solve_seconds = time.perf_counter() - began
    fd: dict[str, Any] = {
        "latents": len(z),
        "steps": list(config.fd_steps),
        "relative_error_f": [],
        "relative_error_g": [],
        "angle_degrees": [],
        "seconds_per_latent": [],
    }
    for step in config.fd_steps:
        began = time.perf_counter()
        fd_f, fd_g = central_difference_jacobians(generator, f, g, z, step)
        fd["seconds_per_latent"].append((time.perf_counter() - began) / len(z))
        for key, approximate, truth in (("relative_error_f", fd_f, j_f), ("relative_error_g", fd_g, j_g)):
            fd[key].append(_describe((approximate - truth).flatten(1).norm(dim=1) / truth.flatten(1).norm(dim=1)))
        fd["angle_degrees"].append(
            _describe(_angle_degrees(solve_rayleigh(fd_f, fd_g, **solve).directions[:, 0], exact.directions[:, 0]))
        )
    seconds = {"jacobian": jacobian_seconds / len(z), "solve": solve_seconds / len(z)}
    record = {
        "jacobian_dtype": str(j_f.dtype).removeprefix("torch."),
        "seconds_per_direction": {**seconds, "total": sum(seconds.values())},
        "finite_differences": fd,
    }
    if exact.held_dims is not None:
        assert exact.change_dims is not None  # "nullspace" gives both, the other method neither
        record["nullspace_dims"] = {"held": _describe(exact.held_dims), "change": _describe(exact.change_dims)}
    return record


# --- One example, the whole study --------------------------------------------------------------------


def run_example(
    networks: Networks,
    z: torch.Tensor,
    change: str,
    hold: str,
    basis: QuasiEigenBasis | None,
    config: RedsConfig,
    progress: bool,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One (change, hold) example on latents ``z`` (B, M): the compared paths and their measurements,
    plus the figure's rows (the first ``shown`` latents, every path kind)."""
    generator, classifier = differentiated(networks)
    f = build_feature(change, classifier, networks.image_shape, "--change")
    g = build_feature(hold, classifier, networks.image_shape, "--hold")
    record: dict[str, Any] = {"change": change, "hold": hold, "method": config.method}
    dtype = input_dtype(z, generator, f, g)
    began = time.perf_counter()
    with progress_bar(f"REDs path ({config.method})", progress, unit="step") as bar:
        reds = rayleigh_path(
            generator,
            f,
            g,
            z,
            config.steps,
            config.step_size,
            eps=config.eps,
            method=config.method,
            held_share=config.held_share,
            change_share=config.change_share,
            batch_size=config.jacobian_batch_size,
            progress=bar,
        )
    record["path_seconds_per_direction"] = (time.perf_counter() - began) / (config.steps * len(z))
    first = (reds[1] - reds[0]) / config.step_size
    rng = torch.Generator().manual_seed(derived_seed(config.seed, SEEDS.directions))
    random = torch.randn(z.shape, generator=rng, dtype=torch.float64).to(z.device)
    paths = {
        "reds": reds,
        "straight": straight_path(z, first, config.steps, config.step_size),
        "random": straight_path(z, random / random.norm(dim=1, keepdim=True), config.steps, config.step_size),
    }
    if basis is not None and "identity" in change.split("+"):
        labels = batched(lambda latents: classifier(generator(latents)).argmax(1), z.to(dtype))
        paths["lsd"], record["lsd_short_radius"] = lsd_rotation_path(z, labels, basis, config.steps, config.step_size)
    record["paths"], rows = {}, {}
    for kind, path in paths.items():
        values = evaluate_path(networks, f, g, path, config.jacobian_batch_size, dtype)
        record["paths"][kind] = path_changes(values, path)
        rows[kind] = values.images[:, : config.shown]
    record.update(start_directions_study(networks, f, g, z[: config.fd_latents], config))
    figure_rows = {
        f"z{index} {kind}": to_unit_images(images[:, index])
        for index in range(min(config.shown, len(z)))
        for kind, images in rows.items()
    }
    return record, figure_rows


def reds_networks(config: RedsConfig, compute: Compute | None = None) -> Networks:
    """The exact networks ``config`` names (`load_study_networks` with ``exact``) with the generator and classifier
    as REDs differentiates them (`jacobian_networks`: float64 copies of the package's own networks, a user's networks as
    they are).

    Raises:
        CheckpointError, NetworkError: networks that cannot be read, lack a piece or do not fit.
    """
    exact = load_study_networks(config, compute, exact=True)
    exact.require("reds", "generator", "classifier", "encoder")
    wrappers = differentiated(exact)
    widened = jacobian_networks(*(each.network for each in wrappers), device=exact.compute.device)
    for wrapper, network in zip(wrappers, widened):
        wrapper.network = network
    return exact


def differentiated(networks: Networks) -> tuple[InferenceNetwork, InferenceNetwork]:
    """The generator and classifier REDs differentiates (`reds_networks` required them)."""
    assert networks.generator is not None and networks.classifier is not None
    return networks.generator, networks.classifier


def encoded_test_latents(
    encoder: InferenceEncoder,
    dataset: str,
    count: int,
    image_shape: tuple[int, int, int],
    source: str,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Encoder means mu(x) of the first ``count`` test images of ``dataset`` (float32, (count, M)), on
    ``device`` (the encoder's).

    Raises:
        LatentspectraError: ``count`` exceeds the test split; DataError: images not of ``image_shape``, the
            networks' of ``source``.
    """
    loaded = load_dataset(dataset)
    check_dataset_fits(image_shape, loaded, source)
    test = loaded.test
    if not 1 <= count <= len(test):
        raise LatentspectraError(f"--latents {count}: expected 1 to {len(test)} (test images of {dataset})")
    return batched(encoder.encode_mean, images_to_tensor(test.images[:count]).to(device))


def fitting_examples(config: RedsConfig, image_shape: tuple[int, int, int]) -> tuple[RedsConfig, tuple[str, ...]]:
    """``config`` without those of the documented examples (`config.REDS_EXAMPLES`) whose features do not fit
    images of ``image_shape`` (stroke features on colour images, `methods.features.unfit_features`), and a note
    on each one dropped. Examples the user asked for are kept: they fail with one line if they do not fit.

    """
    if config.examples != REDS_EXAMPLES:
        return config, ()
    kept, skipped = [], []
    for change, hold in config.examples:
        unfit = feat.unfit_features(f"{change}+{hold}", image_shape)
        if unfit:
            skipped.append(f"{change} / {hold}: {', '.join(unfit)} applies to single-channel stroke images only")
        else:
            kept.append((change, hold))
    return replace(config, examples=tuple(kept)), tuple(skipped)


def _check_config(config: RedsConfig) -> None:
    if config.steps < 1 or not config.step_size > 0:
        raise LatentspectraError(f"--steps {config.steps} / --step-size {config.step_size}: expected >= 1 and > 0")
    if not config.eps >= 0:
        raise LatentspectraError(f"--eps {config.eps}: expected >= 0")
    if config.precision not in ("auto", "float32"):
        raise LatentspectraError(
            f"--precision {config.precision}: reds runs in float32 (bfloat16's rounding "
            "would show in the Jacobians); use auto or float32"
        )


@dataclass(frozen=True)
class RedsExample:
    """One (change, hold) example: its record (paths compared, their measurements, the start directions'
    timing and finite-difference comparison) and its figure's rows."""

    name: str
    title: str
    record: dict[str, Any]
    rows: dict[str, np.ndarray]


@dataclass(frozen=True)
class RedsResult:
    """What `reds_study` measured; `record` is reds.json."""

    config: RedsConfig
    models: str
    latents: int
    latent_dim: int
    basis: dict[str, Any] | None  # where the LSD basis came from, when an example changes the identity
    examples: list[RedsExample]
    compute: dict[str, Any]
    seconds: dict[str, float]
    skipped: tuple[str, ...] = ()  # the documented examples these images cannot take, and why

    def record(self, figures: dict[str, str]) -> dict[str, Any]:
        """The JSON record (reds.json), with each example's figure file name in ``figures`` (None where none was
        drawn)."""
        examples = {example.name: {**example.record, "figure": figures.get(example.name)} for example in self.examples}
        return {
            "dataset": self.config.dataset,
            "seed": self.config.seed,
            "models": self.models,
            "latents": self.latents,
            "latent_dim": self.latent_dim,
            "basis": self.basis,
            "examples": examples,
            "skipped_examples": list(self.skipped),
            "seconds": {**self.seconds, "total": sum(self.seconds.values())},
            "config": config_record(self.config),
            "compute": self.compute,
            "versions": versions(),
        }


def reds_study(
    networks: Networks,
    z: torch.Tensor,
    config: RedsConfig = RedsConfig(),
    *,
    basis: QuasiEigenBasis | None = None,
    basis_source: dict[str, Any] | None = None,
    models: str = "",
    compute: Compute | None = None,
    progress: bool = True,
    timer: Timer | None = None,
) -> RedsResult:
    """Every example of ``config`` on the latents ``z`` (B, M), with ``basis`` for the LSD comparisons of
    identity changes; writes nothing. ``models``, ``basis_source`` and ``compute`` (default: the CPU) say
    where the networks and the basis came from and where they ran, for the record.

    Raises:
        LatentspectraError: a bad feature spec.
    """
    timer = timer or Timer()
    examples = []
    for change, hold in tqdm(config.examples, desc="REDs examples", disable=not progress):
        name = example_name(change, hold)
        with timer.stage(name):
            record, rows = run_example(networks, z, change, hold, basis, config, progress)
        title = f"change {change}, hold {hold} ({config.method}): {config.steps} steps of {config.step_size:g}"
        examples.append(RedsExample(name, title, record, rows))
    return RedsResult(
        config, models, len(z), z.shape[1], basis_source, examples, (compute or Compute()).record(), dict(timer.seconds)
    )


def write_reds(out_dir: str | Path, result: RedsResult) -> dict[str, Any]:
    """Write ``result`` into ``out_dir``: one PNG of path rows per example (unless the config says
    ``figures=False``; the example's ``figure`` is then None) and reds.json. Returns the record."""
    out = Path(out_dir)
    figures = {
        example.name: image_rows(example.rows, out / f"{example.name}.png", example.title).name
        for example in result.examples
        if result.config.figures
    }
    record = result.record(figures)
    write_json(out / "reds.json", record)
    return record


def run_reds(
    out_dir: str | Path,
    config: RedsConfig = RedsConfig(),
    basis_file: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Load the networks ``config`` names (`reds_networks`; default: the shipped ones of
    ``config.dataset``), the test latents and, when an example changes the identity, the LSD basis
    (``basis_file``, or built with V = ``config.basis_per_set``); run the study and write it into ``out_dir``
    (`write_reds`). Returns the record written to reds.json.

    Raises:
        CheckpointError, NetworkError: networks that cannot be read or lack a piece; BasisError: an unreadable
            ``basis_file``; LatentspectraError: a bad feature spec, parameter, output directory, or a basis
            whose dimension is not the generator's.
    """
    _check_config(config)
    compute = Compute.select(config.device, "float32")
    with output_directory(out_dir) as out:
        timer = Timer()
        with timer.stage("load"):
            exact = reds_networks(config, compute)
            assert exact.encoder is not None  # `reds_networks` required it
            z = encoded_test_latents(
                exact.encoder, config.dataset, config.latents, exact.image_shape, exact.source, compute.device
            )
        config, skipped = fitting_examples(config, exact.image_shape)
        for change, hold in config.examples:  # feature specs fail here, before any long computation
            for spec, argument in ((change, "--change"), (hold, "--hold")):
                build_feature(spec, differentiated(exact)[1], exact.image_shape, argument)
        basis, basis_source = None, None
        if any("identity" in change.split("+") for change, _ in config.examples):
            with timer.stage("basis"):
                basis, basis_source = _lsd_basis(exact.description, basis_file, config, z.shape[1], progress, compute)
        result = reds_study(
            exact,
            z,
            config,
            basis=basis,
            basis_source=basis_source,
            models=exact.source,
            compute=compute,
            progress=progress,
            timer=timer,
        )
        result = replace(result, skipped=skipped)
        return write_reds(out, result)


def _lsd_basis(
    networks: LatentNetworks,
    basis_file: str | Path | None,
    config: RedsConfig,
    dim: int,
    progress: bool,
    compute: Compute,
) -> tuple[QuasiEigenBasis, dict[str, Any]]:
    """The LSD basis from ``basis_file`` or built from the networks (V = basis_per_set, seed)."""
    if basis_file is not None:
        basis = load_basis(basis_file)
        source: dict[str, Any] = {"file": str(basis_file)}
    else:
        basis_config = BasisConfig(
            dataset=config.dataset,
            seed=config.seed,
            device=str(compute.device),
            precision=compute.precision,
            batch_size=config.batch_size,
            per_set=config.basis_per_set,
            networks=networks,
        )
        built = basis_study(basis_config, progress=progress)
        basis, source = built.basis, {"per_set": built.stats["per_set"], "seed": config.seed}
    if basis.dim != dim:
        raise LatentspectraError(f"--basis {basis_file}: dimension {basis.dim}, the generator's latents have {dim}")
    return basis, source
