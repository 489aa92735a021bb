"""`latentspectra fragmentation`: how an encoder fills its latent space, and which samplers hit that region.

After R. Mönchmeyer, "Autoencoders and latent space fragmentation" (linux-blog.anracom.com, 2023): for a
model's codes of the training set ("z-points") the study measures per-component Gaussian fits and the
dominant components, the correlation matrix and its strongest pairs, the radius of the codes against
the shell b sqrt(N/3) that box-sampled vectors fill, the codes inside flat slices around a coordinate
plane; it then compares samplers (box [-b, b], N(0, I), independent per-component Gaussians, a
full-covariance Gaussian, a Gaussian mixture) on the decoded images, and decodes straight paths from
the origin to the codes' centre and through the centre in the planes of dominant components.

Two models side by side, each with its own decoder:

- ``autoencoder``: the plain autoencoder's codes E(x) of the training set, decoded by its own decoder;
- ``encoder``: the generator's latent space: the LSD encoder's codes, one draw z ~ q(z | x) per training image
  (the aggregate posterior, which is what the encoder's training fed to the generator), decoded by the generator
  G. ``--inversion`` says how images become these codes (experiments/image_latents.py): auto is the encoder's
  draws where the networks have an encoder (the study is about how an encoder fills the space); where they have
  none, and with ``--inversion optimize`` or ``hybrid``, each training image's latent found by gradient descent
  on z (GAN inversion), which shows where real images lie in the GAN's latent space. An inversion costs the
  descent per image (about 2 s at 200 steps on 2 CPU cores, docs/inversion.md): ``--codes N`` codes the first N
  training images only.

Sample quality is measured as everywhere in the toolkit (evaluation.py): the share of decoded samples
the classifier assigns with probability > 0.9, the entropy of the predicted labels, the Fréchet distance
between the classifier's penultimate features of the samples and of the test set; plus the share of
samples inside the codes' bulk (Mahalanobis distance below the 99th percentile of the codes' own). The
GAN's own samples G(z), z ~ N(0, I), are measured with the same function and count as the reference.

The networks run on the run's device: the decoders (the generator, the autoencoder's decoder) in the run's
precision, the encoders and the classifier in float32; the codes and their statistics live on the CPU.

Seeds per purpose (`config.SEEDS`), offsets from the run's seed: the GAN's latents ``samples`` (as
`evaluate`), the encoder's stochastic codes ``encodings``, an inversion's draws ``inversion``, the codes shown or
decoded as references ``examples``, sampler k ``samplers + k``.

Sharded (``world=``, `latentspectra fragmentation` under torchrun; docs/scale.md): the network passes over many
rows (encoding or inverting the training set, the test set's features, every sampler's decoded samples) are
batches dealt over the ranks and gathered in row order (`evaluation.gathered_batched`), the same tensors whatever
the number of ranks; every rank then computes the statistics and fits the samplers on the same codes with the
same seeds, and rank 0 alone writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from itertools import product
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from ..compute import Compute, Network
from ..config import FRAGMENTATION_MODELS, SEEDS, FragmentationConfig, config_record, derived_seed
from ..data import images_to_tensor, load_dataset
from ..distributed import SINGLE, World, gathered_batched
from ..errors import LatentspectraError
from ..evaluation import frechet_distance, sample_quality, standard_normal_latents
from ..io import versions, write_json, writer_directory
from ..latent.samplers import (
    BoxSampler,
    FullGaussianSampler,
    GaussianMixtureSampler,
    IndependentGaussianSampler,
    LatentSampler,
    StandardNormalSampler,
)
from ..latent.statistics import (
    CodeBulk,
    box_shell,
    component_fits,
    correlation_matrix,
    dominant_components,
    slice_mask,
    strongest_pairs,
)
from ..models.classifier import Classifier
from ..models.foreign import ForeignNetwork, NetworkError
from ..models.inference import channels_last, inference_copy
from ..report import fragmentation_figures as figures
from .codes import CodedModel, autoencoder_model, encoder_model
from .common import Timer, to_unit_images
from .image_latents import resolve_inversion, study_latents
from .networks import Networks, check_dataset_fits, load_study_networks

FULL_GAUSSIAN = "full-covariance Gaussian"
MIXTURE = "Gaussian mixture"
TARGET_RATIO = 2.0  # the target: a sampler's Fréchet distance within 2x of the GAN's


# --- Statistics of the codes ---------------------------------------------------------------------------


def code_statistics(codes: torch.Tensor, config: FragmentationConfig) -> dict[str, Any]:
    """Per-component Gaussian fits, dominant components, strongest correlations, and the codes' radius
    and centre, as a JSON-ready record."""
    means, stds = component_fits(codes)
    dominant = dominant_components(codes, min(config.dominant, codes.shape[1]))
    correlation = correlation_matrix(codes)
    off_diagonal = correlation[~torch.eye(len(correlation), dtype=torch.bool)].nan_to_num().abs()
    radii = codes.double().norm(dim=1)
    return {
        "points": codes.shape[0],
        "latent_dim": codes.shape[1],
        "component_means": means.tolist(),
        "component_stds": stds.tolist(),
        "centre_norm": means.norm().item(),
        "spread_norm": stds.norm().item(),  # sqrt(trace of the covariance)
        "radius": _summary(radii),
        "dominant_components": [
            {
                "component": int(j),
                "mean": means[j].item(),
                "std": stds[j].item(),
                "second_moment": (means[j] ** 2 + stds[j] ** 2).item(),
            }
            for j in dominant
        ],
        "correlation": {
            "strongest_pairs": [
                {"components": [i, j], "r": r} for i, j, r in strongest_pairs(correlation, config.pairs)
            ],
            "mean_abs_off_diagonal": off_diagonal.mean().item(),
            "share_abs_above_0.3": (off_diagonal > 0.3).double().mean().item(),
        },
    }


def _summary(values: torch.Tensor) -> dict[str, float]:
    quantiles = torch.quantile(values.double(), torch.tensor([0.01, 0.5, 0.99], dtype=torch.float64))
    return {
        "mean": values.double().mean().item(),
        "std": values.double().std().item(),
        "q01": quantiles[0].item(),
        "median": quantiles[1].item(),
        "q99": quantiles[2].item(),
    }


def box_shells(codes: torch.Tensor, box_samples: dict[float, torch.Tensor]) -> list[dict[str, float]]:
    """Per box bound b: the shell radius b sqrt(N/3) and width b/sqrt(15), the measured radius of the
    box samples, and the share of codes whose radius lies within 3 widths of the shell's radius."""
    radii = codes.double().norm(dim=1)
    shells = []
    for bound, samples in box_samples.items():
        radius, width = box_shell(bound, codes.shape[1])
        sample_radii = samples.double().norm(dim=1)
        shells.append(
            {
                "bound": bound,
                "radius_formula": radius,
                "width_formula": width,
                "radius_sampled_mean": sample_radii.mean().item(),
                "radius_sampled_std": sample_radii.std().item(),
                "codes_within_3_widths": ((radii - radius).abs() <= 3 * width).double().mean().item(),
            }
        )
    return shells


def slice_counts(codes: torch.Tensor, plane: tuple[int, int], bounds: tuple[float, ...]) -> list[dict[str, Any]]:
    """Codes inside the flat slice |x_k - c_k| <= b (every k off the plane) for each b, with c the origin
    and with c the codes' mean."""
    centre = codes.double().mean(0)
    return [
        {
            "plane": list(plane),
            "bound": bound,
            "codes_in_slice_at_origin": int(slice_mask(codes, plane, bound).sum()),
            "codes_in_slice_at_centre": int(slice_mask(codes, plane, bound, centre=centre).sum()),
        }
        for bound in bounds
    ]


# --- Samplers and the quality of decoded samples --------------------------------------------------------


def make_samplers(config: FragmentationConfig) -> dict[str, LatentSampler]:
    """The compared strategies by name; sampler k draws from seed ``config.seed + SEEDS.samplers + k``
    (`derived_seed`)."""
    factories: dict[str, Callable[[int], LatentSampler]] = {
        **{f"box b={bound:g}": partial(BoxSampler, bound) for bound in config.box_bounds},
        "N(0, I)": StandardNormalSampler,
        "independent Gaussians": IndependentGaussianSampler,
        FULL_GAUSSIAN: FullGaussianSampler,
        MIXTURE: lambda seed: GaussianMixtureSampler(config.mixture_components, seed=seed),
    }
    return {
        name: make(derived_seed(config.seed, SEEDS.samplers + k)) for k, (name, make) in enumerate(factories.items())
    }


def decoded_quality(
    decode: Network,
    classifier: Classifier | ForeignNetwork,
    latents: torch.Tensor,
    real_features: torch.Tensor,
    config: FragmentationConfig,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Classifier confidence share, label entropy and feature Fréchet distance to the test set of the images
    decoded from ``latents``; the decoder and the classifier's trunk run once per latent (as one rank of
    ``world``: on its batches, the features gathered)."""
    assert config.batch_size is not None  # `fragmentation_study` fills in the device's
    features = gathered_batched(lambda z: classifier.features(decode(z)), latents, world, config.batch_size).to(
        real_features.device
    )
    # sample_quality classifies generator(latents): here the "generator" is the identity on the features
    # just computed and the classifier is the head that turns them into logits.
    metrics = sample_quality(lambda f: f, classifier.head, features, config.confidence)
    metrics["frechet_distance"] = frechet_distance(features, real_features)
    return metrics


def sampler_study(
    model: CodedModel,
    classifier: Classifier | ForeignNetwork,
    real_features: torch.Tensor,
    bulk: CodeBulk,
    config: FragmentationConfig,
    progress: bool,
    world: World = SINGLE,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Every sampler fitted to the model's codes, plus the codes themselves (the decoder's reconstructions,
    the best a sampler can do), measured on ``config.samples`` decoded samples each (decoded as one rank of
    ``world``: `decoded_quality`). Returns the metrics by sampler and the latents drawn."""
    rng = torch.Generator().manual_seed(derived_seed(config.seed, SEEDS.examples))
    count = min(config.samples, len(model.codes))
    drawn = {"codes (reconstructions)": model.codes[torch.randperm(len(model.codes), generator=rng)[:count]]}
    fit_codes = model.codes[torch.randperm(len(model.codes), generator=rng)[: config.mixture_codes]]
    results: dict[str, Any] = {}
    for name, sampler in tqdm(make_samplers(config).items(), desc=f"{model.name}: samplers", disable=not progress):
        began = time.perf_counter()
        sampler.fit(fit_codes if isinstance(sampler, GaussianMixtureSampler) else model.codes)
        drawn[name] = sampler.sample(config.samples)
        results[name] = {"fit_seconds": time.perf_counter() - began}
        if isinstance(sampler, GaussianMixtureSampler):
            results[name].update(components=sampler.components, fitted_on=len(fit_codes), converged=sampler.converged_)
    for name, latents in drawn.items():
        metrics = decoded_quality(model.decode, classifier, latents, real_features, config, world)
        metrics["inside_bulk"] = bulk.fraction_inside(latents)
        metrics["radius_mean"] = latents.double().norm(dim=1).mean().item()
        results[name] = {**results.get(name, {}), **metrics}
    return results, drawn


# --- Paths -------------------------------------------------------------------------------------------------


def latent_paths(codes: torch.Tensor, dominant: list[int], config: FragmentationConfig) -> dict[str, torch.Tensor]:
    """Straight paths (steps, N): origin -> the codes' mean c, and c + s (sigma_i e_i +- sigma_j e_j) for s
    from -span to +span, the two diagonals of the plane of each dominant pair (d1, d2), (d3, d4), ...
    (``config.path_planes`` planes)."""
    centre = codes.double().mean(0)
    stds = codes.double().std(0)
    paths = {"origin -> centre": torch.linspace(0, 1, config.path_steps, dtype=torch.float64)[:, None] * centre}
    offsets = torch.linspace(-config.path_span, config.path_span, config.path_steps, dtype=torch.float64)
    planes = list(zip(dominant[0::2], dominant[1::2]))[: config.path_planes]
    for (i, j), (sign, symbol) in product(planes, ((1, "+"), (-1, "-"))):
        direction = torch.zeros_like(centre)
        direction[i], direction[j] = stds[i], sign * stds[j]
        paths[f"plane ({i}, {j}), diagonal {symbol}"] = centre + offsets[:, None] * direction
    return {name: path.float() for name, path in paths.items()}


def path_study(
    model: CodedModel, classifier: Classifier | ForeignNetwork, bulk: CodeBulk, paths: dict[str, torch.Tensor]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Per path and step: the decoded image's top class probability and label, and the Mahalanobis
    distance to the codes' centre (the bulk ends at ``bulk.threshold_``). Returns metrics and images."""
    results, images = {}, {}
    for name, path in paths.items():
        decoded = model.decode(path)
        probabilities = classifier(decoded).softmax(1)
        top, labels = probabilities.max(1)
        results[name] = {
            "top_probability": top.tolist(),
            "label": labels.tolist(),
            "mahalanobis": bulk.distances(path).tolist(),
        }
        images[name] = to_unit_images(decoded)
    return results, images


# --- The whole study ------------------------------------------------------------------------------------------


@torch.inference_mode()
def study_model(
    model: CodedModel,
    classifier: Classifier | ForeignNetwork,
    real_features: torch.Tensor,
    config: FragmentationConfig,
    timer: Timer,
    progress: bool,
    world: World = SINGLE,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every measurement of the study on one model (the samplers' decoded samples dealt over the ranks of
    ``world``); returns its JSON record and its figure data."""
    with timer.stage(f"{model.name}: statistics"):
        record = code_statistics(model.codes, config)
        record["codes"] = model.description
        if model.inversion is not None:
            record["inversion"] = model.inversion
        dominant = [entry["component"] for entry in record["dominant_components"]]
        bulk = CodeBulk(config.bulk_quantile).fit(model.codes)
        record["bulk"] = {
            "quantile": config.bulk_quantile,
            "mahalanobis_threshold": bulk.threshold_,
            "codes_mahalanobis_median": bulk.distances(model.codes).median().item(),
            "origin_mahalanobis": bulk.distances(torch.zeros(1, model.codes.shape[1])).item(),
        }
        record["slices"] = slice_counts(model.codes, (dominant[0], dominant[1]), config.box_bounds)
    with timer.stage(f"{model.name}: samplers"):
        record["samplers"], drawn = sampler_study(model, classifier, real_features, bulk, config, progress, world)
    record["box_shells"] = box_shells(model.codes, {bound: drawn[f"box b={bound:g}"] for bound in config.box_bounds})
    with timer.stage(f"{model.name}: paths"):
        record["paths"], path_images = path_study(model, classifier, bulk, latent_paths(model.codes, dominant, config))
    shown = model.codes[: config.shown_codes]
    figure_data = {
        "name": model.name,
        "codes": shown.numpy(),
        "in_slice": slice_mask(shown, (dominant[0], dominant[1]), config.box_bounds[-1]).numpy(),
        "radii": model.codes.double().norm(dim=1).numpy(),
        "box_radii": {bound: drawn[f"box b={bound:g}"].double().norm(dim=1).numpy() for bound in config.box_bounds},
        "correlation": correlation_matrix(model.codes).numpy(),
        "slice_bound": config.box_bounds[-1],
        "sample_images": {name: to_unit_images(model.decode(latents[:12])) for name, latents in drawn.items()},
        "path_images": path_images,
    }
    return record, figure_data


@dataclass(frozen=True)
class FragmentationResult:
    """What the study measured on each model and on the GAN, and the data of its figures; `record` is
    fragmentation.json."""

    config: FragmentationConfig
    models_dir: str
    test_images: int
    gan: dict[str, Any]
    models: dict[str, dict[str, Any]]
    figure_data: dict[str, dict[str, Any]]
    compute: dict[str, Any]
    seconds: dict[str, float]
    label_names: tuple[str, ...] = ()  # the classifier's labels, for the figures
    world_size: int = 1  # the ranks that computed it (the numbers do not depend on it)

    def record(self, figures: dict[str, str]) -> dict[str, Any]:
        """The JSON record (fragmentation.json), naming the ``figures`` drawn."""
        return {
            "dataset": self.config.dataset,
            "seed": self.config.seed,
            "models_dir": self.models_dir,
            "test_images": self.test_images,
            "gan": self.gan,
            "target": gan_target(self.models, self.gan),
            "models": self.models,
            "figures": figures,
            "seconds": {**self.seconds, "total": sum(self.seconds.values())},
            "config": config_record(self.config),
            "compute": self.compute,
            "world_size": self.world_size,
            "versions": versions(),
        }


def check_config(config: FragmentationConfig) -> None:
    """Refuse models and counts the study cannot use, before anything is loaded.

    Raises:
        LatentspectraError: an unknown model name, fewer than 2 samples or codes, more mixture components
            than codes (mixture codes or ``codes``).
    """
    unknown = sorted(set(config.models) - set(FRAGMENTATION_MODELS))
    if unknown or not config.models:
        raise LatentspectraError(f"--model: expected some of {list(FRAGMENTATION_MODELS)}, got {list(config.models)}")
    if config.samples < 2 or config.mixture_codes < 2:
        raise LatentspectraError(
            f"samples and mixture_codes must be at least 2, got {config.samples} and {config.mixture_codes}"
        )
    if config.mixture_components > config.mixture_codes:
        raise LatentspectraError(
            f"--mixture-components ({config.mixture_components}) must be at most --mixture-codes "
            f"({config.mixture_codes}), the codes the mixture is fitted on"
        )
    if config.codes is not None and config.codes < max(2, config.mixture_components):
        raise LatentspectraError(
            f"--codes {config.codes}: expected at least 2 and at least --mixture-components "
            f"({config.mixture_components}), the codes the mixture is fitted on"
        )


def fragmentation_study(
    latent_models: list[CodedModel],
    generator: Network,
    classifier: Classifier | ForeignNetwork,
    real_features: torch.Tensor,
    config: FragmentationConfig,
    *,
    latent_dim: int,
    label_names: tuple[str, ...] = (),
    progress: bool = True,
    timer: Timer | None = None,
    models_dir: str = "",
    compute: Compute | None = None,
    world: World = SINGLE,
) -> FragmentationResult:
    """Every measurement of the study on each of ``latent_models`` and on the GAN's own samples G(z) (z of width
    ``latent_dim``), the classifier's features compared with ``real_features`` (the test set's); writes nothing.
    ``models_dir`` and ``compute`` (default: the CPU) say where the networks came from and where they ran, for
    the record. As one rank of ``world`` (every rank calls it alike): the decoded samples dealt over the ranks,
    the same result on every rank. ``config.batch_size`` None: the device's batch (`Compute.inference_batch_size`)."""
    timer = timer or Timer()
    compute = compute or Compute()
    config = replace(config, batch_size=config.batch_size or compute.inference_batch_size)
    with timer.stage("gan"), torch.inference_mode():
        latents = standard_normal_latents(
            config.samples, latent_dim, derived_seed(config.seed, SEEDS.samples), real_features.device
        )
        gan = decoded_quality(generator, classifier, latents, real_features, config, world)
    records, figure_data = {}, {}
    for model in latent_models:
        records[model.name], figure_data[model.name] = study_model(
            model, classifier, real_features, config, timer, progress, world
        )
    return FragmentationResult(
        config,
        models_dir,
        len(real_features),
        gan,
        records,
        figure_data,
        compute.record(),
        dict(timer.seconds),
        tuple(label_names),
        world.size,
    )


def write_fragmentation(out_dir: str | Path, result: FragmentationResult) -> dict[str, Any]:
    """Write ``result`` into ``out_dir``: figures/<model>/*.png and figures/comparison.png (unless the config says
    ``figures=False``) and fragmentation.json. Returns the record written."""
    out = Path(out_dir)
    drawn = (
        figures.draw_all(
            out / "figures", result.figure_data, result.models, result.gan, label_names=result.label_names or None
        )
        if result.config.figures
        else {}
    )
    record = result.record({name: str(path) for name, path in drawn.items()})
    write_json(out / "fragmentation.json", record)
    return record


def run_fragmentation(
    out_dir: str | Path,
    config: FragmentationConfig = FragmentationConfig(),
    progress: bool = True,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Load the networks ``config`` names (`load_study_networks`; default: the shipped ones of ``config.dataset``),
    run the study and write it into ``out_dir`` (`write_fragmentation`);
    returns the record written to fragmentation.json. The autoencoder is read by name (``config.autoencoder``)
    from the networks' models directory. As one rank of ``world`` (torchrun): every rank runs the study, rank 0
    alone writes and returns the record ({} on the other ranks).

    Raises:
        LatentspectraError: an unknown model name or bad counts; CheckpointError, NetworkError: a missing network.
    """
    check_config(config)
    compute = Compute.select(config.device, config.precision)
    batch_size = config.batch_size or compute.inference_batch_size
    with writer_directory(world, out_dir, lock=True):
        timer = Timer()
        torch.manual_seed(config.seed)
        with timer.stage("load"):
            loaded = load_study_networks(config, compute)
            loaded.require("fragmentation", "generator", "classifier")
            if "encoder" in config.models:
                resolve_inversion(config.inversion, loaded, config.inversion_auto)  # one line before any work
            assert loaded.generator is not None and loaded.description.classifier is not None  # `require` raised
            directory = _autoencoder_directory(loaded, config)
            # the classifier's own module (its features and head are used apart), as an inference copy in float32:
            # the package's classifier or a user's in its `ForeignNetwork` adapter (`LatentNetworks`)
            classifier = cast(
                "Classifier | ForeignNetwork", inference_copy(loaded.description.classifier, compute.device)
            )
            dataset = load_dataset(config.dataset)
            check_dataset_fits(loaded.image_shape, dataset, loaded.source)
            train_images = images_to_tensor(dataset.train.images[: config.codes]).to(compute.device)
        with timer.stage("codes"):
            models = []
            for name in config.models:
                if name == "autoencoder":
                    assert directory is not None  # `_autoencoder_directory` raised otherwise
                    models.append(
                        autoencoder_model(directory, train_images, batch_size, config.autoencoder, compute, world)
                    )
                else:
                    models.append(generator_model(loaded, train_images, config, progress, world))
            test_images = channels_last(images_to_tensor(dataset.test.images).to(compute.device))
            real_features = gathered_batched(classifier.features, test_images, world, batch_size).to(compute.device)
        result = fragmentation_study(
            models,
            loaded.generator,
            classifier,
            real_features,
            config,
            latent_dim=loaded.latent_dim,
            label_names=loaded.labels,
            progress=progress and world.is_writer,
            timer=timer,
            models_dir=loaded.source,
            compute=compute,
            world=world,
        )
        return write_fragmentation(out_dir, result) if world.is_writer else {}


def generator_model(
    networks: Networks, train_images: torch.Tensor, config: FragmentationConfig, progress: bool, world: World
) -> CodedModel:
    """The "encoder" model: the generator's latent space, its codes of ``train_images`` as ``config.inversion``
    says (module docstring): one draw from the encoder's q(z | x) per image (`codes.encoder_model`), or each image's
    latent found by inversion (`image_latents.study_latents`, dealt over ``world``); decoded by G."""
    encoder, generator = networks.description.encoder, networks.generator
    assert generator is not None  # `run_fragmentation` required it
    if resolve_inversion(config.inversion, networks, config.inversion_auto) == "encoder":
        assert encoder is not None  # `resolve_inversion` required it
        drawn = encoder_model(
            encoder, generator, train_images, config.seed, networks.batch_size, networks.compute, world
        )
        return replace(drawn, inversion={"inversion": "encoder", "requested": config.inversion})
    inverted = study_latents(train_images, networks, config, config.seed, progress=progress, world=world)
    return CodedModel(
        "encoder",
        inverted.latents,
        generator,
        f"GAN inversion ({inverted.inversion}): each training image's latent by gradient descent on z, decoded by the "
        "generator G",
        inverted.record(),
    )


def _autoencoder_directory(networks: Networks, config: FragmentationConfig) -> Path | None:
    """The models directory the autoencoder is read from, when the study needs one.

    Raises:
        NetworkError: the autoencoder is asked for but the networks come from no models directory.
    """
    if "autoencoder" in config.models and networks.description.directory is None:
        raise NetworkError(
            f"fragmentation --model {'both' if len(config.models) > 1 else 'autoencoder'}: reads the "
            f"autoencoder {config.autoencoder!r} from a models directory written by `latentspectra "
            f"train autoencoder`, and the networks of {networks.source} come from none; use --model "
            "encoder"
        )
    return networks.description.directory


def gan_target(records: dict[str, Any], gan: dict[str, Any]) -> dict[str, Any]:
    """The issue's target per model: the Fréchet distance of the full-covariance and mixture samplers'
    decoded images over the GAN's, the better of the two, and whether it is <= TARGET_RATIO."""
    target: dict[str, Any] = {"gan_frechet_distance": gan["frechet_distance"], "max_ratio": TARGET_RATIO}
    for name, record in records.items():
        ratios = {
            sampler: record["samplers"][sampler]["frechet_distance"] / gan["frechet_distance"]
            for sampler in (FULL_GAUSSIAN, MIXTURE)
        }
        best = min(ratios.values())
        target[name] = {
            **{f"ratio_{key}": value for key, value in ratios.items()},
            "best_ratio": best,
            "met": best <= TARGET_RATIO,
        }
    return target
