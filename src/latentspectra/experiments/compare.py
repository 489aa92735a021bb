"""`latentspectra compare`: every registered direction method (methods/directions.py) on the same networks, the
same seed, the same number of directions K and the same shift t, measured side by side.

Per method, after fitting it (timed):

- Re-scoring (InterFaceGAN, Shen et al. CVPR 2020, Sec. 2.2 / 4, and SeFa, Shen & Zhou CVPR 2021, Sec. 4.1,
  "re-scoring analysis"): for each direction d_k, the mean over the test latents z of C(G(z + t d_k)) minus
  C(G(z)), the classifier's label probabilities, one row of l changes per direction: a (K, l) matrix. Its
  disentanglement is the mean over the directions of max_j |change_j| / sum_j |change_j| (1: a direction moves
  one label's probability only; 1 / l: all alike; with l < 4 labels it is 1/2 whatever the direction, as the
  changes sum to zero, and it is not ranked). For single-channel images the same for the Morpho-MNIST
  measures (area, length, thickness, slant, width, height; Castro et al., JMLR 2019), in standard deviations of
  each measure over the unedited images: ``measure_rescoring``, (K, 6), named by ``measures`` in the record.
- Reconstructor classification accuracy (Voynov & Babenko, ICML 2020, Sec. 4): with the method's K directions
  frozen, a fresh reconstructor R (methods/learned.py's, the same architecture, budget ``reconstructor_steps``,
  batches of 32, Adam at 1e-3, shifts eps as learned.py draws them: |eps| in [0.5, 6], the config's seed) is trained
  to tell which direction moved G(z) to G(z + eps d_k); its accuracy on ``reconstructor_validation`` fresh draws
  (`train_reconstructor`; chance 1 / K). The same budget and seed for every method, so the learned directions are
  scored by a fresh R too, not by the one trained with them.
- Path-attribute correlation (after WarpedGANSpace, Tzelepis et al. ICCV 2021, which ranks paths by how
  monotonically an attribute changes along them): along z + s d_k, s at the ``steps`` values evenly from -t to t,
  the Pearson correlation between s and each label probability of C(G(z + s d_k)) per test latent z (0 where the
  probability does not change), averaged over the test latents; per direction the largest |mean correlation|
  over the labels; per method the mean over the directions, in [0, 1].
- Figures: G(z0 + s d_k) for s evenly from -t to t, one row per direction.

For grey images, InterFaceGAN is also fitted with one boundary per Morpho-MNIST measure (`measure_boundaries`:
z ~ N(0, I) scored by the measures of G(z), as the paper scores latents by attribute predictors), each with its
held-out accuracy and its re-scoring rows.

And label edits a -> b = a + 1 mod l of the test latents classified a (C(G(z))), by up to four approaches: the
LSD rotation by pi / 2 in the plane of the set-1 quasi-eigenvectors of a and b (Algorithm 1; `LSDDirections.
label_edit`) and LSD's projection operators (Eq. 11; both where "lsd" was compared and fitted), the difference of
the class means of the encoded training codes, their classes as C(G(z)) labels them (label b's mean minus label
a's, added in full; the baseline asked for in InterFaceGAN issue #5, github.com/genforce/interfacegan/issues/5; a
pair with a label no training code has is not measured), and a step along the InterFaceGAN normals' difference
n_b - n_a normalised (where "interfacegan" was fitted with one normal per label) as long as that class-mean
difference, so that the two straight edits differ in direction only. Each gives,
at its own step, the fraction classified b after the edit, the mean latent distance moved and the mean distance
between the classifier features of the edited and the original image (the penultimate layer; logits for a
classifier without one). Since the approaches' own steps differ in length, each is also made at the strengths
``edit_strengths`` (multiples of its step: angle s pi / 2, s times the rest) and measured at the first strength
that flips each latent: the share flipped within the largest strength, the median latent distance needed (over
all latents, those never flipped counting as beyond reach) and the median feature distance at the flip.

The latents and networks each fit is given follow the method's own rules (`DirectionMethod`'s class attributes
``fit_latents``, ``reads_activations``, ``float64_jacobians``, ``float32_gradients``, ``scores_own_draws``,
``one_per_label``; nothing here names a method): the learned directions train through G in float32 whatever
the run's precision; the test latents are the latents of the first ``latents`` test images as ``--inversion`` says
(experiments/image_latents.py: the encoder's means by default where the networks have an encoder, gradient descent
on z from the prior where they have none; the edited latents are the first ``edit_latents`` of the same); the
training codes (the encoder means of the training set, or as many draws from the prior where the networks have no
encoder: `image_latents.training_codes`) are the latents of SFVQ and of the class means; GANSpace draws its
own z as its authors do (the PCA of the generator's first linear layer on z, regressed back to z on fresh draws),
read on the generator as the user made it (its batch norms not folded); REDs is fitted on the test latents with G
and C as `latentspectra reds` differentiates them (`jacobian_networks`: float64 copies of the package's own
networks, a user's networks as they are); InterFaceGAN on n_samples z ~ N(0, I) scored one-vs-rest by C(G(z)),
one normal per label (its first K are rescored). The label edits a method makes are its own
(`DirectionMethod.label_edits`). Every edit is z + t d_k, InterFaceGAN's
too (its authors' distance-to-boundary edit is `InterFaceGAN(edit_mode="distance")`, not used here). A method
whose fit fails on these networks (a missing input, a rare label, ...) is recorded as skipped, with the reason.

Ground truth, where the dataset has factors of variation (sprites, an npz with factor arrays; `GROUND_TRUTH` gives
the definitions as compare.json records them): the latents of the first ``ground_truth_images`` test images (made
with the other test latents, as ``--inversion`` says: `test_images_needed`) projected on each method's K unit
directions give K coordinates per image, scored against the images' factors by MIG, DCI (disentanglement,
completeness, informativeness; the importances of gradient-boosted trees, disentanglement_lib's model) and SAP
(`disentanglement.direction_scores`, disentanglement_lib's settings). And an edit-based score read off generated
images: a factor regressor trained on the dataset (`methods.factor_regressor`, cached) reads the normalised factors
r(x) (each in standard deviations of the factor); per direction d_k and factor f, change_kf = mean over the test
latents z of |r_f(G(z + t d_k)) - r_f(G(z))|; ``edit_concentration`` is the mean over the directions of max_f
change_kf / sum_f change_kf (1: each direction moves one factor; 1 / F: all alike; 1 / F for a direction that
changes nothing), computed as the re-scoring's `disentanglement`, and ``edit_target_change`` the mean over the
directions of max_f change_kf. Both depend on the directions alone, so they are measured with the re-scoring
(`Evaluation`) and pooled over the seeds like it. A dataset without factors gets none of this: no ``ground_truth``
in the record.

Seeds: everything random is repeated for ``seeds`` seeds (the fits and their draws, the reconstructors, the
measure boundaries' draws); each headline number is recorded as its mean with a 95% Student t-interval over the
seeds (`intervals.interval`), read against the random baseline's interval, and a method is said to lead only where
its interval clears the others' (`intervals.leaders`). The encodings and the figures do not depend on the seed
(the figures show the first seed's directions), nor do the re-scoring and path correlation of given directions:
where a seed's directions are an earlier seed's bit for bit (SeFa, REDs, the axes) they are measured once.

Sharded (``world=``, `latentspectra compare` under torchrun; docs/scale.md): every network pass over rows (the
encodings and their labels, InterFaceGAN's scored latents, the measured samples, the re-scoring and path images)
runs in the networks' batches dealt over the ranks and gathered in row order (`gathered_batched`; an inversion of
the test images too, each image's draws keyed by its row); the fits, the
reconstructors and the label edits then run alike on every rank from the same tensors and seeds, and rank 0
writes: the record of one process, bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from ..compute import Compute
from ..config import (
    COMPARE_BUDGETS,
    LEARNED_BUDGETS,
    MAX_SEEDS,
    MAX_TRAINING_STEPS,
    CompareConfig,
    config_record,
    derived_seed,
)
from ..data import ImageDataset, images_to_tensor, load_dataset
from ..disentanglement import SCORE_NAMES, GroundTruthSettings, direction_scores
from ..distributed import SINGLE, World, batched, gathered_batched
from ..errors import LatentspectraError
from ..intervals import against, interval, leaders, pairwise_stability
from ..io import versions, write_json, writer_directory
from ..methods.directions import DirectionMethod, LabelEdit, MethodError, available, check_whole, get, method_class
from ..methods.factor_regressor import FactorRegressor, cached_factor_regressor, fit_factor_regressor
from ..methods.interfacegan import InterFaceGAN, classifier_logits
from ..methods.learned import train_reconstructor
from ..methods.morphometry import MORPHO_MEASURES, morpho_measures
from ..methods.reds_jacobians import jacobian_networks
from ..models.foreign import has_penultimate_features
from ..models.inference import InferenceNetwork
from ..report.compare_figures import compare_blocks, direction_figure, rescoring_figure, summary_figure
from ..report.document import write_documents
from .common import Timer, decode, predicted_labels, to_unit_images
from .image_latents import resolve_inversion, study_latents, training_codes
from .networks import Networks, check_dataset_fits, load_study_networks


def check_compare(config: CompareConfig, latent_dim: int) -> tuple[str, ...]:
    """The methods ``config`` names (all registered ones for ``()``), after checking them and K against M.

    Raises:
        MethodError: an unknown method name or parameter, a bad parameter value, K < 1, K > ``latent_dim``, or
            steps, shift, latents or strengths out of range.
    """
    methods = config.methods or tuple(available())
    unknown = [name for name in methods if name not in available()]
    if unknown:
        raise MethodError(f"--methods: expected names among {', '.join(available())}, got {', '.join(unknown)}")
    if not 1 <= config.directions <= latent_dim:
        raise MethodError(f"--directions: expected 1..{latent_dim} (the latent dimension M), got {config.directions}")
    if not (math.isfinite(config.shift) and config.shift > 0):
        raise MethodError(f"--shift: expected a positive number, got {config.shift}")
    if config.latents < 1 or config.edit_latents < 1 or config.steps < 2 or config.measure_samples < 2:
        raise MethodError(
            f"compare: expected latents >= 1, edit_latents >= 1, steps >= 2 and measure_samples >= 2, "
            f"got {config.latents}, {config.edit_latents}, {config.steps} and {config.measure_samples}"
        )
    for name in config.method_params:  # the methods' parameters, names and values, checked by building them
        if name not in available():
            raise MethodError(f"--param: expected methods among {', '.join(available())}, got {name!r}")
        try:
            get(name, **method_params(name, config, latent_dim))
        except MethodError as error:
            raise MethodError(f"--param: {error}") from None
    strengths = config.edit_strengths
    if (
        1.0 not in strengths
        or not all(math.isfinite(value) and value > 0 for value in strengths)
        or list(strengths) != sorted(set(strengths))
    ):
        raise MethodError(
            f"compare: edit_strengths expected increasing positive numbers that include 1, got {list(strengths)}"
        )
    check_whole("compare", "reconstructor_steps", config.reconstructor_steps, 1, most=MAX_TRAINING_STEPS)
    check_whole("compare", "reconstructor_validation", config.reconstructor_validation, 1)
    check_whole("compare", "seeds", config.seeds, 1, most=MAX_SEEDS)
    check_whole("compare", "ground_truth_images", config.ground_truth_images, 2)
    if config.budget not in COMPARE_BUDGETS:
        raise MethodError(f"--budget: expected one of {', '.join(COMPARE_BUDGETS)}, got {config.budget!r}")
    return methods


def probabilities(networks: Networks, z: torch.Tensor, world: World = SINGLE) -> torch.Tensor:
    """softmax C(G(z)) in the networks' batches dealt over the ranks of ``world``, (N, l) float64 on the CPU."""
    generator, classifier = networks.generator, networks.classifier
    assert generator is not None and classifier is not None  # `compare_study` required them
    return gathered_batched(
        lambda chunk: classifier(generator(chunk.float())).softmax(1), z, world, networks.batch_size
    ).double()


def image_measures(networks: Networks, z: torch.Tensor, world: World = SINGLE) -> np.ndarray:
    """The Morpho-MNIST measures of G(z) (`morpho_measures`, each image's own), (N, 6) float64, in the networks'
    batches dealt over the ranks of ``world``."""
    generator = networks.generator
    assert generator is not None  # `compare_study` required it

    def measured(chunk: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(morpho_measures(generator(chunk.float())))

    return gathered_batched(measured, z, world, networks.batch_size).numpy()


def shifted(latents: torch.Tensor, directions: torch.Tensor, shift: float) -> torch.Tensor:
    """(K N, M): ``latents`` (N, M) moved by ``shift`` along each of ``directions`` (K, M), direction by direction."""
    return (latents[None] + shift * directions.to(latents)[:, None]).flatten(0, 1)


def rescoring(
    networks: Networks, directions: torch.Tensor, latents: torch.Tensor, shift: float, world: World = SINGLE
) -> torch.Tensor:
    """The re-scoring matrix (InterFaceGAN Sec. 4, SeFa Sec. 4.1): per direction d_k of ``directions`` (K, M)
    the mean over ``latents`` (N, M) of softmax C(G(z + shift d_k)) - softmax C(G(z)); (K, l) float64 (the
    images dealt over the ranks of ``world``)."""
    before = probabilities(networks, latents, world)
    after = probabilities(networks, shifted(latents, directions, shift), world)
    after = after.view(len(directions), len(latents), -1)
    return (after - before[None]).mean(1)


def measure_rescoring(
    networks: Networks, directions: torch.Tensor, latents: torch.Tensor, shift: float, world: World = SINGLE
) -> list[list[float]] | None:
    """The re-scoring matrix of image measurements (Morpho-MNIST, Castro et al. 2019: area, length, thickness,
    slant, width, height; `methods.morphometry`): per direction d_k of ``directions`` (K, M) the mean over
    ``latents`` of each measure of G(z + shift d_k) minus that of G(z), in units of the measure's standard
    deviation over the G(z); (K, 6) (the images dealt over the ranks of ``world``). None for multi-channel
    images, which these stroke measures do not fit."""
    if networks.image_shape[0] != 1:
        return None
    before = image_measures(networks, latents, world)
    after = image_measures(networks, shifted(latents, directions, shift), world)
    after = after.reshape(len(directions), len(latents), -1)
    spread = before.std(0)
    change = (after - before[None]).mean(1) / np.where(spread > 0, spread, 1.0)
    return change.tolist()


def rescoring_summary(matrix: torch.Tensor, measures: list[list[float]] | None) -> dict[str, Any]:
    """The scalars read off one method's re-scoring matrices (K, l) and (K, 6): its `disentanglement`; the
    re-scoring of each direction's target label against the rest, as InterFaceGAN and SeFa read their matrices
    (per direction the label it changes most is its target: ``target_change`` the mean |change| of the targets,
    ``rest_change`` the mean |change| of the other labels); the largest |change| of a label probability; and the
    largest |change| of an image measurement, with the measure (None for colour images)."""
    size = matrix.abs()
    target = size.max(1).values
    rest = (size.sum(1) - target) / max(size.shape[1] - 1, 1)
    summary: dict[str, Any] = {
        "disentanglement": disentanglement(matrix),
        "target_change": target.mean().item(),
        "rest_change": rest.mean().item(),
        "largest_label_change": size.max().item(),
        "largest_measure_change": None,
        "largest_measure": None,
    }
    if measures is not None:
        changes = np.abs(np.array(measures))
        summary["largest_measure_change"] = float(changes.max())
        summary["largest_measure"] = MORPHO_MEASURES[int(changes.max(0).argmax())]
    return summary


def disentanglement(matrix: torch.Tensor) -> float:
    """Mean over the rows of a re-scoring matrix (K, l) of max |change| / sum |change| (SeFa Sec. 4.1's
    reading of the matrix: one dominant label per direction); rows without change count as 1 / l."""
    size = matrix.abs()
    share = size.max(1).values / size.sum(1).clamp_min(torch.finfo(size.dtype).tiny)
    return torch.where(size.sum(1) > 0, share, 1 / matrix.shape[1]).mean().item()


def path_correlation(
    networks: Networks, directions: torch.Tensor, latents: torch.Tensor, shifts: torch.Tensor, world: World = SINGLE
) -> float:
    """How monotonically a label probability changes along the straight paths z + s d_k (module docstring):
    per direction of ``directions`` (K, M) and per label, the Pearson correlation between the ``shifts`` s (S,)
    and softmax C(G(z + s d_k)) for each of ``latents`` (N, M) (0 where the probability is constant along the
    path), averaged over the latents; the largest |average| over the labels, averaged over the directions (the
    images dealt over the ranks of ``world``)."""
    s = shifts.double()
    moved = latents[None, None] + shifts.to(latents)[None, :, None, None] * directions.to(latents)[:, None, None]
    found = probabilities(networks, moved.flatten(0, 2), world).view(len(directions), len(s), len(latents), -1)
    centred, offsets = found - found.mean(1, keepdim=True), (s - s.mean())[None, :, None, None]
    spread = (centred.square().sum(1) * offsets.square().sum()).sqrt()  # (K, N, l)
    correlation = torch.where(spread > 0, (centred * offsets).sum(1) / spread.clamp_min(1e-300), 0.0)
    return correlation.mean(1).abs().max(1).values.clamp(0, 1).mean().item()


def feature_map(networks: Networks) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """The float32 classifier's penultimate features of images, or its logits where it has none
    (`has_penultimate_features`); and which."""
    classifier, described = networks.exact_classifier, networks.description.classifier
    assert classifier is not None and described is not None  # `compare_study` required the classifier
    if has_penultimate_features(described):
        return classifier.features, "classifier features (penultimate layer)"
    return classifier, "classifier logits"


def measure_edits(
    networks: Networks,
    features: Callable[[torch.Tensor], torch.Tensor],
    original: torch.Tensor,
    edited: torch.Tensor,
    target: int,
) -> dict[str, torch.Tensor]:
    """Per row of ``original`` and ``edited`` latents (N, M): whether G(edited) is classified ``target``, the latent
    distance moved and the distance between the classifier features of G(edited) and G(original); each (N,)."""
    images = decode(networks, torch.cat([original, edited]))
    moved = batched(features, images, networks.batch_size).double().cpu()
    assert networks.classifier is not None  # `compare_study` required it
    labels = batched(networks.classifier, images[len(original) :], networks.batch_size).argmax(1).cpu()
    return {
        "reached": labels == target,
        "latent_distance": torch.linalg.vector_norm((edited - original).double().cpu(), dim=1),
        "feature_distance": torch.linalg.vector_norm(moved[len(original) :] - moved[: len(original)], dim=1),
    }


def label_edit_approaches(
    fitted: dict[str, DirectionMethod], train: torch.Tensor, train_labels: torch.Tensor, num_labels: int
) -> dict[str, LabelEdit]:
    """Per approach, the edit of latents of label a towards label b at a strength s (None where it cannot make
    that edit); s = 1 is the approach's own edit and s scales it: every fitted method's own label edits
    (`DirectionMethod.label_edits`: LSD's rotation by s pi / 2 and its projection operators, InterFaceGAN's step
    along (n_b - n_a) / |n_b - n_a| as long as s |mu_b - mu_a|), then s times the class-mean difference
    mu_b - mu_a of the training codes by classified label (InterFaceGAN issue #5)."""
    means = {
        label: train[train_labels == label].double().mean(0)
        for label in range(num_labels)
        if bool((train_labels == label).any())
    }

    def class_means(z: torch.Tensor, a: int, b: int, s: float) -> torch.Tensor | None:
        return z + (s * (means[b] - means[a])).to(z) if a in means and b in means else None

    approaches: dict[str, LabelEdit] = {}
    for method in fitted.values():
        approaches.update(method.label_edits(means, num_labels))
    approaches["class_means"] = class_means
    return approaches


def first_flips(measured: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """From the measurements of one set of latents at increasing strengths (`measure_edits` per strength): per
    latent whether any strength reached the target, and the latent and feature distances at the first that did
    (infinite where none did); each (N,)."""
    reached = torch.stack([step["reached"] for step in measured])  # (S, N)
    first, rows, flipped = reached.int().argmax(0), torch.arange(reached.shape[1]), reached.any(0)
    return {
        "reached": flipped,
        **{
            key: torch.where(flipped, torch.stack([step[key] for step in measured])[first, rows], math.inf)
            for key in ("latent_distance", "feature_distance")
        },
    }


def edit_summary(
    own: list[dict[str, torch.Tensor]],
    flips: list[dict[str, torch.Tensor]],
    pairs: list[dict],
    strengths: tuple[float, ...],
) -> dict[str, Any]:
    """One approach's label-edit record pooled over its pairs: at strength 1 (``own``, one `measure_edits` per
    pair) the success rate and mean distances; over ``strengths`` (``flips``, one `first_flips` per pair) the
    share of latents that some strength flips, the median over all latents of the latent distance at which each
    first flips (None where fewer than half flip: the median lies beyond the largest strength), and the median
    feature distance at the flip over the latents that flip."""
    if not own:
        return {
            "pairs_measured": 0,
            "latents": 0,
            "success_rate": None,
            "mean_latent_distance": None,
            "mean_feature_distance": None,
            "flipped_within": max(strengths),
            "flip_rate": None,
            "median_latent_distance_to_flip": None,
            "median_feature_distance_at_flip": None,
            "pairs": pairs,
        }
    at_one = {key: torch.cat([pair[key] for pair in own]) for key in own[0]}
    flipped = {key: torch.cat([pair[key] for pair in flips]) for key in flips[0]}
    done = flipped["reached"]
    needed = flipped["latent_distance"].quantile(0.5, interpolation="lower").item()
    return {
        "pairs_measured": len(pairs),
        "latents": len(done),
        "success_rate": at_one["reached"].double().mean().item(),
        "mean_latent_distance": at_one["latent_distance"].mean().item(),
        "mean_feature_distance": at_one["feature_distance"].mean().item(),
        "flipped_within": max(strengths),
        "flip_rate": done.double().mean().item(),
        "median_latent_distance_to_flip": needed if math.isfinite(needed) else None,
        "median_feature_distance_at_flip": flipped["feature_distance"][done].median().item()
        if bool(done.any())
        else None,
        "pairs": pairs,
    }


def label_edits(
    networks: Networks,
    approaches: dict[str, LabelEdit],
    test: torch.Tensor,
    test_labels: torch.Tensor,
    strengths: tuple[float, ...],
) -> tuple[dict[str, Any], str]:
    """For every pair (a, a + 1 mod l) and approach, the test latents classified a edited towards a + 1 at each of
    ``strengths`` (which include 1): `edit_summary` per approach, with each pair's counts; and what the feature
    distance is measured on."""
    features, space = feature_map(networks)
    num_labels = networks.num_labels
    results: dict[str, Any] = {}
    for name, edit in approaches.items():
        own, flips, pairs = [], [], []
        for a in range(num_labels):
            b, source = (a + 1) % num_labels, test[test_labels == a]
            edited = [edit(source, a, b, s) for s in strengths] if len(source) else [None]
            if edited[0] is None:
                continue
            # None depends on the pair alone (`LabelEdit`): an approach that makes this edit makes it at every strength
            measured = [measure_edits(networks, features, source, cast(torch.Tensor, moved), b) for moved in edited]
            own.append(measured[strengths.index(1.0)])
            flips.append(first_flips(measured))
            pairs.append(
                {
                    "pair": [a, b],
                    "latents": len(source),
                    "reached": int(own[-1]["reached"].sum()),
                    "flipped": int(flips[-1]["reached"].sum()),
                }
            )
        results[name] = edit_summary(own, flips, pairs, strengths)
    return results, space


def measure_boundaries(
    networks: Networks, config: CompareConfig, test: torch.Tensor, world: World = SINGLE
) -> dict[str, Any]:
    """InterFaceGAN boundaries of the image measurements (Morpho-MNIST, `methods.morphometry`): the method as
    compared (its parameters, `method_params`, and seed) fitted on ``config.measure_samples`` z ~ N(0, I) scored
    by each measure of G(z), one boundary per measure; per boundary its held-out accuracy and, at the shift t, the
    re-scoring rows of the label probabilities and of the measures over the ``test`` latents, and the |cos| between
    every two measures' normals (``normals_cosine``). Where a measure's
    top and bottom latents do not differ, the reason instead. The images are dealt over the ranks of ``world``.

    Raises:
        FeatureError: multi-channel images (the caller measures grey images only).
    """
    params = {**method_params("interfacegan", config, networks.latent_dim), "n_samples": config.measure_samples}
    method = get("interfacegan", **params)
    assert isinstance(method, InterFaceGAN)  # the class registered as "interfacegan"
    z = method.sampled_latents(networks.latent_dim)
    scores = torch.from_numpy(image_measures(networks, z, world))
    try:
        method.fit(latents=z, scores=scores)
    except LatentspectraError as error:
        return {"samples": len(z), "skipped": " ".join(str(error).split())}
    directions = method.directions_.cpu()
    unit = torch.nn.functional.normalize(directions.double(), dim=1)
    return {
        "samples": len(z),
        "measures": list(MORPHO_MEASURES),
        "validation_accuracy": method.validation_accuracy_.tolist(),
        "normals_cosine": (unit @ unit.T).abs().tolist(),
        "rescoring": rescoring(networks, directions, test, config.shift, world).tolist(),
        "measure_rescoring": measure_rescoring(networks, directions, test, config.shift, world),
    }


# --- Ground truth (datasets with factors; module docstring) ---------------------------------------------------


@dataclass(frozen=True)
class GroundTruth:
    """What the ground-truth track scores directions against: the latents of the first test images, their
    factors (N, F) and the names of these, the factor regressor that reads the factors of generated images, and
    the metrics' settings (disentanglement_lib's, but for the config's ``dci_trees``)."""

    latents: torch.Tensor  # (N, M) on the CPU
    factors: np.ndarray  # (N, F) float64
    factor_names: tuple[str, ...]
    reader: FactorRegressor
    settings: GroundTruthSettings = field(default_factory=GroundTruthSettings)


def test_images_needed(dataset: ImageDataset, config: CompareConfig) -> int:
    """How many of the first test images compare turns into latents: those edited and rescored (``latents``),
    those whose labels are edited (``edit_latents``) and, where the dataset has factors, those of the ground-truth
    track (``ground_truth_images``)."""
    return max(config.latents, config.edit_latents, config.ground_truth_images if dataset.has_factors else 0)


def ground_truth_inputs(
    dataset: ImageDataset, config: CompareConfig, latents: torch.Tensor, reader: FactorRegressor | None = None
) -> GroundTruth | None:
    """The `GroundTruth` of ``dataset``'s first ``config.ground_truth_images`` test images, given the ``latents``
    of (at least) these (the study's test latents, `test_images_needed`), read with ``reader`` (trained here,
    `fit_factor_regressor`, where None); None for a dataset without factors."""
    factors, names = dataset.test.factors, dataset.factor_names
    if factors is None or names is None:
        return None
    count = min(config.ground_truth_images, len(factors))
    reader = reader if reader is not None else fit_factor_regressor(dataset, config.factor_regressor)
    return GroundTruth(latents[:count], factors[:count], names, reader, GroundTruthSettings(dci_trees=config.dci_trees))


def read_factors(networks: Networks, reader: FactorRegressor, z: torch.Tensor, world: World = SINGLE) -> torch.Tensor:
    """The normalised factors ``reader`` reads off G(z), (N, F) float64 (the images dealt over the ranks of
    ``world``)."""
    generator = networks.generator
    assert generator is not None  # `compare_study` required it
    return gathered_batched(lambda chunk: reader.read(generator(chunk.float())), z, world, networks.batch_size)


def factor_changes(
    networks: Networks,
    reader: FactorRegressor,
    directions: torch.Tensor,
    latents: torch.Tensor,
    shift: float,
    world: World = SINGLE,
) -> torch.Tensor:
    """change_kf: per direction d_k of ``directions`` (K, M) and factor f, the mean over ``latents`` (N, M) of
    |r_f(G(z + shift d_k)) - r_f(G(z))|, r the normalised factors ``reader`` reads (standard deviations of each
    factor); (K, F) float64."""
    before = read_factors(networks, reader, latents, world)
    after = read_factors(networks, reader, shifted(latents, directions, shift), world)
    return (after.view(len(directions), len(latents), -1) - before[None]).abs().mean(1)


def ground_truth_measures(
    truth: GroundTruth,
    networks: Networks,
    directions: torch.Tensor,
    test: torch.Tensor,
    shift: float,
    world: World = SINGLE,
) -> dict[str, Any]:
    """The ground-truth track of ``directions`` (K, M) (module docstring, `GROUND_TRUTH`): MIG, DCI and SAP of the
    projections of ``truth``'s latents on them, and the edit-based score of the edits of ``test`` by ``shift``
    along them (``edit_concentration``, ``edit_target_change`` and the (K, F) matrix ``edit_changes``); why not,
    where the metrics cannot score these factors (every factor constant on the rows the trees train on)."""
    changes = factor_changes(networks, truth.reader, directions, test, shift, world)
    unit = torch.nn.functional.normalize(directions.double(), dim=1)
    try:
        _, scores = direction_scores(unit.numpy(), truth.latents.double().numpy(), truth.factors, truth.settings)
    except ValueError as error:
        return {"skipped": " ".join(str(error).split())}
    return {
        **scores,
        "edit_concentration": disentanglement(changes),
        "edit_target_change": changes.max(1).values.mean().item(),
        "edit_changes": changes.tolist(),
    }


def pooled_ground_truth(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One method's ground-truth track over the seeds' records: an `interval` of each `GROUND_TRUTH_POOLED` number
    and the first seed's ``edit_changes``, as ``{"ground_truth": ...}`` (a seed's reason where it was skipped);
    empty without a ground-truth track."""
    found = [record["ground_truth"] for record in per_seed if "ground_truth" in record]
    if not found:
        return {}
    skipped = next((truth for truth in found if "skipped" in truth), None)
    if skipped is not None:
        return {"ground_truth": skipped}
    pooled = {key: interval([truth[key] for truth in found]) for key in GROUND_TRUTH_POOLED}
    return {"ground_truth": {**pooled, "edit_changes": found[0]["edit_changes"]}}


def measured_ground_truth(methods: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per measured method whose ground-truth track was scored, its pooled ``ground_truth``."""
    return {
        name: record["ground_truth"]
        for name, record in methods.items()
        if "ground_truth" in record and "skipped" not in record["ground_truth"]
    }


def ground_truth_against_baseline(methods: dict[str, dict[str, Any]]) -> None:
    """Add to each scored ``ground_truth`` its ``against_baseline``: per `GROUND_TRUTH_HEADLINES` metric whether its
    interval is above, below or within the random baseline's (`intervals.against`), where that was scored."""
    scored = measured_ground_truth(methods)
    reference = scored.get(BASELINE)
    if reference is None:
        return
    for truth in scored.values():
        truth["against_baseline"] = {key: against(truth[key], reference[key]) for key in GROUND_TRUTH_HEADLINES}


def ground_truth_record(
    truth: GroundTruth, methods: dict[str, dict[str, Any]], inversion: str, edited: int, shift: float
) -> dict[str, Any]:
    """compare.json's ``ground_truth``: what was scored (the factors, the images and how their latents were made,
    ``inversion``, how many test latents were edited and by which shift), the definitions (`GROUND_TRUTH`) and
    settings of the metrics, the factor regressor's record (its training and its accuracy on the test split) and,
    per metric, who leads (`intervals.leaders`)."""
    scored = measured_ground_truth(methods)
    return {
        "factors": list(truth.factor_names),
        "images": len(truth.latents),
        "latents": inversion,
        "edits": {"latents": edited, "shift": shift},
        "definitions": GROUND_TRUTH,
        "settings": asdict(truth.settings),
        "factor_regressor": truth.reader.record,
        "leaders": {
            key: leaders({name: found[key] for name, found in scored.items()}) for key in GROUND_TRUTH_HEADLINES
        },
    }


def factor_regressor_of(dataset: ImageDataset, config: CompareConfig, world: World = SINGLE) -> FactorRegressor:
    """The factor regressor of ``dataset`` and ``config.factor_regressor`` from the user's cache, trained and cached
    first where it is not (`cached_factor_regressor`), on the writing rank, and rank 0's on every other rank of
    ``world``.

    Raises:
        FactorRegressorError: a dataset without factors, or a damaged cached regressor.
    """
    found = cached_factor_regressor(dataset, config.factor_regressor) if world.is_writer else None
    shared = world.share(None if found is None else (found.tensors(), found.record), "the factor regressor")
    if found is not None:
        return found
    assert shared is not None  # the writing rank has one
    return FactorRegressor.from_tensors(*shared)


def method_params(name: str, config: CompareConfig, latent_dim: int) -> dict[str, Any]:
    """The parameters ``name`` is built with: K (InterFaceGAN: None, one normal per label), M, the config's seed
    where the method takes one, the learned directions' budget (`LEARNED_BUDGETS`; ``budget="paper"`` with K = M,
    as their authors train them: the first K are measured), and over these its entry of ``config.method_params``."""
    params: dict[str, Any] = {
        "n_directions": None if method_class(name).one_per_label else config.directions,
        "latent_dim": latent_dim,
    }
    if "seed" in get(name, **params).get_params():
        params["seed"] = config.seed
    if name == "learned":
        params.update(LEARNED_BUDGETS[config.budget])
        if config.budget == "paper":
            params["n_directions"] = latent_dim
    return {**params, **config.method_params.get(name, {})}


def fit_inputs(
    method: DirectionMethod,
    networks: Networks,
    train: torch.Tensor | None,
    test: torch.Tensor | None,
    world: World = SINGLE,
) -> dict[str, Any]:
    """The keyword arguments of ``method``'s fit by its rules (`DirectionMethod`'s class attributes; module
    docstring: which latents, which precision); a method that scores its own draws and is given no latents is
    given their scores (`sampled_scores`)."""
    described = networks.description
    # the studies that fit (compare, explore) require the generator and the classifier
    assert described.generator is not None and described.classifier is not None
    assert networks.generator is not None and networks.classifier is not None
    if method.float64_jacobians:
        generator, classifier = jacobian_networks(
            described.generator, described.classifier, device=networks.compute.device
        )
    elif method.reads_activations:  # the layers as the user's generator computes them, batch norms unfolded
        generator, classifier = described.generator.eval(), networks.classifier
    elif method.float32_gradients and networks.compute.precision != "float32":
        generator = InferenceNetwork(described.generator, networks.compute, full_precision=True)
        classifier = networks.classifier
    else:
        generator, classifier = networks.generator, networks.classifier
    latents = {"train": train, "test": test, None: None}[method.fit_latents]
    scores = sampled_scores(method, networks, world) if method.scores_own_draws and latents is None else None
    return {"generator": generator, "classifier": classifier, "latents": latents, "scores": scores}


def sampled_scores(method: DirectionMethod, networks: Networks, world: World = SINGLE) -> torch.Tensor:
    """The scores of C(G(z)) for the latents a method's fit draws (`DirectionMethod.draws_to_score`: InterFaceGAN's
    n_samples), in its batches dealt over the ranks of ``world``: the scores its own fit computes, whatever the
    number of ranks.

    Raises:
        MethodError: bad parameters, a method that scores no draws, or a classifier that does not return (B, L)
            logits.
    """
    latents, batch_size = method.draws_to_score(networks.latent_dim)
    assert networks.generator is not None and networks.classifier is not None  # `compare_study` required them
    logits = gathered_batched(
        partial(classifier_logits, networks.generator, networks.classifier), latents, world, batch_size
    )
    return method.scores_from_logits(logits)


# The per-seed numbers pooled into intervals (`intervals.interval`); the first five are the headline metrics,
# each with whether a higher value is better, compared with the random baseline and ranked (`leaders`).
HEADLINES = {
    "disentanglement": True,
    "target_change": True,
    "rest_change": False,
    "reconstructor_accuracy": True,
    "path_correlation": True,
}
POOLED = (
    *HEADLINES,
    "largest_label_change",
    "largest_measure_change",
    "fit_seconds",
    "eval_seconds",
    "reconstructor_seconds",
)
EDIT_POOLED = (
    "success_rate",
    "mean_latent_distance",
    "mean_feature_distance",
    "flip_rate",
    "median_latent_distance_to_flip",
    "median_feature_distance_at_flip",
)
BASELINE = "random"  # the method whose interval every headline number is read against
# The ground-truth metrics (datasets with factors), each higher where the directions are the factors: compared with
# the random baseline and ranked (`leaders`); with the edits' mean largest factor change, pooled into intervals.
GROUND_TRUTH_HEADLINES = (*SCORE_NAMES, "edit_concentration")
GROUND_TRUTH_POOLED = (*GROUND_TRUTH_HEADLINES, "edit_target_change")
# What each ground-truth number is, as compare.json states it (`ground_truth_record`).
GROUND_TRUTH = {
    "coordinates": "each test image's latent projected on each of a method's K unit directions: K codes per image",
    "mig": "mutual information gap (Chen et al. 2018): the codes discretised into equal-width bins; per factor the "
    "gap between the two codes of most mutual information with it, over the factor's entropy; mean over factors",
    "dci_disentanglement": "DCI (Eastwood & Williams 2018) with gradient-boosted trees (scikit-learn's "
    "GradientBoostingClassifier, disentanglement_lib's importance model) predicting each factor from all codes, "
    "trained on the first train_share of the images: per code one minus the entropy (base F) of its importances, "
    "weighted by the code's share of the importances",
    "dci_completeness": "per factor one minus the entropy (base K) of its importances over the codes, weighted by "
    "the factor's share",
    "dci_informativeness": "the trees' accuracy on the held-out images, mean over factors",
    "sap": "SAP (Kumar et al. 2018): per code and factor a linear SVM on that code alone, its held-out accuracy; per "
    "factor the gap between the two best codes; mean over factors",
    "factor_vae": "FactorVAE score (Kim & Mnih 2018): votes of a factor held fixed in a batch of 64 test images for "
    "the code of least variance there relative to its variance over all images; the accuracy on 5,000 votes of "
    "the majority-vote classifier read off 10,000",
    "edit_changes": "change_kf, per direction d_k and factor f: the mean over the edited test latents z of "
    "|r_f(G(z + t d_k)) - r_f(G(z))|, r_f the factor regressor's reading of factor f in standard deviations of "
    "the factor (first seed)",
    "edit_concentration": "per direction max_f change_kf / sum_f change_kf (1 / F where nothing changes), mean over "
    "directions: 1 where each direction moves one factor, 1 / F where it moves all alike",
    "edit_target_change": "per direction max_f change_kf, mean over directions (standard deviations)",
}


@dataclass(frozen=True)
class SeedRun:
    """Everything `compare_study` measured with one seed: per method its record (or why it was skipped) and the
    fitted method, InterFaceGAN's measure boundaries (grey images) and the label edits."""

    seed: int
    records: dict[str, dict[str, Any]]
    fitted: dict[str, DirectionMethod]
    measure_boundaries: dict[str, Any] | None
    label_edits: dict[str, Any]


@dataclass(frozen=True)
class CompareResult:
    """What `compare_study` measured and the images of its figures; `record` is compare.json."""

    config: CompareConfig
    models: str
    latent_dim: int
    labels: tuple[str, ...]
    train_latents: int
    test_latents: int
    seeds: tuple[int, ...]
    methods: dict[str, dict[str, Any]]  # per method: params, seconds, rescoring, intervals; or skipped
    leaders: dict[str, dict[str, Any]]  # per headline metric: `intervals.leaders` (or why it is `unranked`)
    label_edits: dict[str, Any]
    ground_truth: dict[str, Any] | None  # `ground_truth_record`; None for a dataset without factors
    feature_space: str
    figure_images: dict[str, np.ndarray]  # per fitted method (rows, steps, H, W) or (rows, steps, C, H, W)
    compute: dict[str, Any]
    seconds: dict[str, float]
    world_size: int = 1  # the ranks that computed it (the numbers do not depend on it)
    inversion: dict[str, Any] = field(default_factory=dict)  # how the test images became latents (`ImageLatents`)
    train_codes: str = "encoder means"  # or "prior draws" (`image_latents.training_codes`)

    def record(self, figures: dict[str, str]) -> dict[str, Any]:
        """The JSON record (compare.json), naming the ``figures`` written."""
        return {
            "dataset": self.config.dataset,
            "seed": self.config.seed,
            "seeds": list(self.seeds),
            "interval": "95% Student t-interval over the seeds",
            "models": self.models,
            "latent_dim": self.latent_dim,
            "labels": list(self.labels),
            "directions": self.config.directions,
            "shift": self.config.shift,
            "train_latents": self.train_latents,
            "train_codes": self.train_codes,
            "test_latents": self.test_latents,
            "inversion": self.inversion,
            "measures": list(MORPHO_MEASURES),
            "baseline": BASELINE,
            "methods": self.methods,
            "leaders": self.leaders,
            "label_edits": {"feature_space": self.feature_space, "approaches": self.label_edits},
            **({"ground_truth": self.ground_truth} if self.ground_truth is not None else {}),
            "figures": figures,
            "seconds": {**self.seconds, "total": sum(self.seconds.values())},
            "config": config_record(self.config),
            "compute": self.compute,
            "world_size": self.world_size,
            "versions": versions(),
        }


@dataclass(frozen=True)
class Evaluation:
    """The seed-free measurements of one method's directions: re-scoring matrices and path correlation."""

    directions: torch.Tensor  # (K, M), the directions measured
    rescoring: torch.Tensor  # (K, l)
    measure_rescoring: list[list[float]] | None  # (K, 6), grey images only
    path_correlation: float
    ground_truth: dict[str, Any] | None = None  # `ground_truth_measures`, datasets with factors only


def evaluate_directions(
    networks: Networks,
    directions: torch.Tensor,
    test: torch.Tensor,
    shift: float,
    shifts: torch.Tensor,
    earlier: Evaluation | None = None,
    world: World = SINGLE,
    truth: GroundTruth | None = None,
) -> Evaluation:
    """The `Evaluation` of ``directions`` on the test latents, with their ground-truth track where ``truth`` is
    given; ``earlier`` (the same method's evaluation with an earlier seed) is returned as it is where its directions
    are these, bit for bit (SeFa, REDs and the axes give the same directions for every seed, and these measurements
    draw nothing)."""
    if earlier is not None and torch.equal(earlier.directions, directions):
        return earlier
    return Evaluation(
        directions,
        rescoring(networks, directions, test, shift, world),
        measure_rescoring(networks, directions, test, shift, world),
        path_correlation(networks, directions, test, shifts, world),
        None if truth is None else ground_truth_measures(truth, networks, directions, test, shift, world),
    )


def measure_method(
    name: str,
    config: CompareConfig,
    networks: Networks,
    train: torch.Tensor,
    test: torch.Tensor,
    shifts: torch.Tensor,
    earlier: Evaluation | None = None,
    world: World = SINGLE,
    truth: GroundTruth | None = None,
) -> tuple[DirectionMethod | None, Evaluation | None, dict[str, Any]]:
    """Fit method ``name`` with ``config``'s seed and measure its first K directions (module docstring), with their
    ground-truth track where ``truth`` is given: the fitted method and its `Evaluation` (None where its fit failed)
    and its record for this seed (or why it was skipped); ``earlier`` is the method's evaluation with an earlier
    seed (`evaluate_directions`)."""
    params = method_params(name, config, networks.latent_dim)
    began = time.perf_counter()
    try:
        method = get(name, **params)
        method.fit(**fit_inputs(method, networks, train, test, world))
    except LatentspectraError as error:
        return None, None, {"params": params, "skipped": " ".join(str(error).split())}
    fit_seconds = time.perf_counter() - began
    began = time.perf_counter()
    directions = method.directions_[: config.directions].cpu()
    found = evaluate_directions(networks, directions, test, config.shift, shifts, earlier, world, truth)
    eval_seconds = time.perf_counter() - began
    began = time.perf_counter()
    assert networks.generator is not None  # `compare_study` required it
    accuracy = train_reconstructor(
        networks.generator,
        directions,
        steps=config.reconstructor_steps,
        seed=config.seed,
        n_validation=config.reconstructor_validation,
    )
    record = {
        "params": method.get_params(),
        "directions": len(directions),
        "fit_seconds": fit_seconds,
        "eval_seconds": eval_seconds,
        "reconstructor_seconds": time.perf_counter() - began,
        "rescoring": found.rescoring.tolist(),
        "measure_rescoring": found.measure_rescoring,
        **rescoring_summary(found.rescoring, found.measure_rescoring),
        "reconstructor_accuracy": accuracy,
        "path_correlation": found.path_correlation,
        "fit_record": method.fit_record(),
    }
    if found.ground_truth is not None:
        record["ground_truth"] = found.ground_truth
    return method, found, record


def seed_run(
    networks: Networks,
    config: CompareConfig,
    methods: tuple[str, ...],
    latents: dict[str, torch.Tensor],
    progress: bool,
    timer: Timer,
    evaluations: dict[str, Evaluation],
    world: World = SINGLE,
    truth: GroundTruth | None = None,
) -> SeedRun:
    """Every method fitted and measured with ``config.seed``, then InterFaceGAN's measure boundaries (grey
    images) and the label edits; ``latents`` holds the encoded ``train`` and ``test`` latents, the ``edited``
    latents and the labels C(G(z)) gives the training and edited ones (``train_labels``, ``edited_labels``).
    ``evaluations`` holds each method's `Evaluation` with the previous seed and is updated with this one's;
    ``truth``, where given, the ground-truth track's inputs."""
    train, test = latents["train"], latents["test"]
    shifts = torch.linspace(-config.shift, config.shift, config.steps)
    records: dict[str, dict[str, Any]] = {}
    fitted: dict[str, DirectionMethod] = {}
    with timer.stage("methods"):
        for name in tqdm(methods, desc=f"direction methods, seed {config.seed}", disable=not progress):
            method, found, records[name] = measure_method(
                name, config, networks, train, test, shifts, evaluations.get(name), world, truth
            )
            if method is not None and found is not None:
                fitted[name], evaluations[name] = method, found
    boundaries = None
    if "interfacegan" in fitted and networks.image_shape[0] == 1:
        with timer.stage("measure_boundaries"):
            boundaries = measure_boundaries(networks, config, test, world)
    with timer.stage("label_edits"):
        approaches = label_edit_approaches(fitted, train, latents["train_labels"], networks.num_labels)
        edits, _ = label_edits(networks, approaches, latents["edited"], latents["edited_labels"], config.edit_strengths)
    return SeedRun(config.seed, records, fitted, boundaries, edits)


def pooled_method(name: str, runs: list[SeedRun], directions: int) -> dict[str, Any]:
    """One method's record over the seeds' ``runs``: its first seed's parameters, re-scoring matrices (those of
    the figures) and fit record (`DirectionMethod.fit_record`: the learned method's convergence curve; every
    seed's in ``fit_record_by_seed``), an
    `interval` of each `POOLED` number, the measure most often changed most, and the stability of its first
    ``directions`` directions across the seeds (`pairwise_stability`), its ground-truth track where it has one
    (`pooled_ground_truth`); skipped where any seed's fit failed."""
    per_seed = [run.records[name] for run in runs]
    failed = next((record for record in per_seed if "skipped" in record), None)
    if failed is not None:
        return failed
    first = per_seed[0]
    measures = [record["largest_measure"] for record in per_seed if record["largest_measure"] is not None]
    found = [run.fitted[name].directions_[:directions].cpu() for run in runs]
    by_seed = {"fit_record_by_seed": [record["fit_record"] for record in per_seed]} if first["fit_record"] else {}
    return {
        "params": first["params"],
        "directions": first["directions"],
        "rescoring": first["rescoring"],
        "measure_rescoring": first["measure_rescoring"],
        **{key: interval([record[key] for record in per_seed]) for key in POOLED},
        "largest_measure": max(measures, key=measures.count) if measures else None,
        "stability": pairwise_stability(found) if len(runs) > 1 else None,
        **first["fit_record"],
        **by_seed,
        **pooled_ground_truth(per_seed),
    }


def against_baseline(methods: dict[str, dict[str, Any]]) -> None:
    """Add to each measured method ``against_baseline``: per headline metric whether its interval is above,
    below or within the random baseline's (`intervals.against`), where the baseline was measured."""
    baseline = methods.get(BASELINE, {})
    if "skipped" in baseline or not baseline:
        return
    for record in methods.values():
        if "skipped" not in record:
            record["against_baseline"] = {key: against(record[key], baseline[key]) for key in HEADLINES}


# Below four labels the re-scoring disentanglement is 1/2 for every direction: the changes of the label probabilities
# sum to zero, so with two or three labels the largest |change| is half their sum. It is then not ranked.
FEWEST_LABELS_TO_RANK_DISENTANGLEMENT = 4
UNRANKED_DISENTANGLEMENT = (
    "1/2 for every direction with fewer than four labels (the changes of the label probabilities sum to zero, so "
    "the largest |change| is half their sum); not ranked"
)


def headline_leaders(methods: dict[str, dict[str, Any]], num_labels: int) -> dict[str, dict[str, Any]]:
    """Per headline metric, which methods lead (`intervals.leaders`: the best, and those whose intervals overlap
    it) and which are behind; with fewer than four labels ``disentanglement`` ranks nobody and says why
    (``unranked``)."""
    measured = {name: record for name, record in methods.items() if "skipped" not in record}
    ranked: dict[str, dict[str, Any]] = {
        key: leaders({name: record[key] for name, record in measured.items()}, higher)
        for key, higher in HEADLINES.items()
    }
    if num_labels < FEWEST_LABELS_TO_RANK_DISENTANGLEMENT:
        ranked["disentanglement"] = {"best": [], "behind": [], "unranked": UNRANKED_DISENTANGLEMENT}
    return ranked


def pooled_edits(runs: list[SeedRun]) -> dict[str, Any]:
    """Each label-edit approach over the seeds: the first seed's counts and pairs, an `interval` of each rate and
    distance (`EDIT_POOLED`)."""
    pooled = {}
    for name, first in runs[0].label_edits.items():
        per_seed = [run.label_edits.get(name, {}) for run in runs]
        pooled[name] = {**first, **{key: interval([record.get(key) for record in per_seed]) for key in EDIT_POOLED}}
    return pooled


def pooled_boundaries(runs: list[SeedRun]) -> dict[str, Any] | None:
    """InterFaceGAN's measure boundaries over the seeds: the first seed's record, with per measure an `interval` of
    the held-out accuracy and of the change of its own measure along its normal (standard deviations), and the
    |cos| between the measures' normals averaged over the seeds (``normals_cosine``, measures x measures)."""
    found = [run.measure_boundaries for run in runs]
    first = found[0]
    if first is None or any(boundary is None or "skipped" in boundary for boundary in found):
        return first
    measured = [boundary for boundary in found if boundary is not None]  # every one of them, after the check above
    count = len(first["measures"])
    return {
        **first,
        "validation_accuracy": [interval([b["validation_accuracy"][k] for b in measured]) for k in range(count)],
        "own_change": [interval([b["measure_rescoring"][k][k] for b in measured]) for k in range(count)],
        "normals_cosine": np.mean([b["normals_cosine"] for b in measured], axis=0).tolist(),
    }


def compare_study(
    networks: Networks,
    dataset: ImageDataset,
    config: CompareConfig = CompareConfig(),
    progress: bool = True,
    timer: Timer | None = None,
    world: World = SINGLE,
    reader: FactorRegressor | None = None,
) -> CompareResult:
    """The comparison on ``networks`` and ``dataset`` (module docstring), repeated for ``config.seeds`` seeds
    (``config.seed`` and the next ones, `derived_seed`), each repeating everything random (the fits and their
    draws, the reconstructors, the measure boundaries' draws); writes nothing. The figures show the first seed.
    As one rank of a sharded ``world`` (every rank calls it alike): the networks' passes over rows (the encodings
    and their labels, InterFaceGAN's scored latents, the re-scoring, path correlation and measure boundaries)
    are dealt over the ranks and gathered, so every rank fits and measures the same tensors; the result is that
    of one process. A dataset with factors gets the ground-truth track, its generated images read by ``reader``
    (trained here where None: `ground_truth_inputs`).

    Raises:
        MethodError: an unknown method or K > M (`check_compare`).
        NetworkError: networks without a generator or classifier, or without what ``config.inversion`` needs.
        DataError: the dataset's images are not of the networks' shape, or its classes not the classifier's labels.
    """
    networks.require("compare", "generator", "classifier")
    resolve_inversion(config.inversion, networks, config.inversion_auto)  # one line before any work
    methods = check_compare(config, networks.latent_dim)
    check_dataset_fits(networks.image_shape, dataset, networks.source, networks.num_labels)
    timer = timer or Timer()
    with timer.stage("encode"):
        codes = training_codes(networks, dataset.train.images, config.seed, world)
        test_images = images_to_tensor(dataset.test.images[: test_images_needed(dataset, config)])
        inverted = study_latents(test_images, networks, config, config.seed, progress=progress, world=world)
        train, edited = codes.latents, inverted.latents
        latents = {
            "train": train,
            "test": edited[: config.latents],
            "edited": edited[: config.edit_latents],
            "train_labels": predicted_labels(networks, train, world),
        }
        latents["edited_labels"] = predicted_labels(networks, latents["edited"], world)
    truth = None
    if dataset.has_factors:
        with timer.stage("ground_truth"):
            truth = ground_truth_inputs(dataset, config, edited, reader)
    seeds = tuple(derived_seed(config.seed, index) for index in range(config.seeds))
    evaluations: dict[str, Evaluation] = {}
    runs = [
        seed_run(networks, replace(config, seed=seed), methods, latents, progress, timer, evaluations, world, truth)
        for seed in seeds
    ]
    pooled = {name: pooled_method(name, runs, config.directions) for name in methods}
    against_baseline(pooled)
    ground_truth_against_baseline(pooled)
    if "interfacegan" in pooled and "skipped" not in pooled["interfacegan"] and runs[0].measure_boundaries:
        pooled["interfacegan"]["measure_boundaries"] = pooled_boundaries(runs)
    _, space = feature_map(networks)
    shifts = torch.linspace(-config.shift, config.shift, config.steps)
    with timer.stage("figures"):
        figure_images = {
            name: direction_images(networks, latents["test"][:1], method.directions_[: config.directions], shifts)
            for name, method in runs[0].fitted.items()
        }
    return CompareResult(
        config,
        networks.source,
        networks.latent_dim,
        networks.labels,
        len(train),
        len(latents["test"]),
        seeds,
        pooled,
        headline_leaders(pooled, len(networks.labels)),
        pooled_edits(runs),
        None
        if truth is None
        else ground_truth_record(truth, pooled, inverted.inversion, len(latents["test"]), config.shift),
        space,
        figure_images,
        networks.compute_record(),
        dict(timer.seconds),
        world.size,
        inverted.record(),
        codes.source,
    )


def direction_images(
    networks: Networks, start: torch.Tensor, directions: torch.Tensor, shifts: torch.Tensor
) -> np.ndarray:
    """G(z0 + s d_k) in [0, 1] for the latent ``start`` (1, M), each of ``directions`` (K, M) and each of
    ``shifts`` (S,): (K, S, H, W) or (K, S, C, H, W), the rows of a method's figure."""
    directions = directions.cpu()
    path = (start + shifts[:, None, None] * directions[None]).transpose(0, 1).flatten(0, 1)
    images = to_unit_images(decode(networks, path))
    return images.reshape(len(directions), len(shifts), *images.shape[1:])


def draw_compare_figures(directory: Path, result: CompareResult) -> dict[str, str]:
    """directory/<method>.png and <method>-rescoring.png per fitted method and directory/summary.png (the headline
    metrics with their intervals and the random baseline's band): caption -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    figures = {
        name: str(direction_figure(images, directory / f"{name}.png", name, result.config.shift))
        for name, images in result.figure_images.items()
    }
    factors = (result.ground_truth or {}).get("factors", ())
    figures.update(
        {
            f"{name} rescoring": str(
                rescoring_figure(
                    method, result.labels, MORPHO_MEASURES, directory / f"{name}-rescoring.png", name, factors
                )
            )
            for name, method in result.methods.items()
            if "skipped" not in method
        }
    )
    figures["headline metrics over the seeds"] = str(summary_figure(result.record(figures), directory / "summary.png"))
    return figures


def write_compare(out_dir: str | Path, result: CompareResult) -> dict[str, Any]:
    """Write ``result`` into ``out_dir``: its figures (`draw_compare_figures`, unless the config says
    ``figures=False``), compare.json, report.md and a self-contained report.html. Returns the record written."""
    out = Path(out_dir)
    figures = draw_compare_figures(out / "figures", result) if result.config.figures else {}
    record = result.record(figures)
    write_json(out / "compare.json", record)
    write_documents(
        out,
        compare_blocks(record, {caption: Path(path) for caption, path in figures.items()}),
        "latentspectra: direction methods compared",
    )
    return record


def run_compare(
    out_dir: str | Path,
    config: CompareConfig = CompareConfig(),
    progress: bool = True,
    world: World = SINGLE,
) -> dict[str, Any]:
    """Load the networks ``config`` names (`load_study_networks`; default: the shipped ones of
    ``config.dataset``), check the methods and K against them before
    anything is written, load the dataset (and, where it has factors, its factor regressor: `factor_regressor_of`),
    run the comparison and write it into ``out_dir`` (`write_compare`);
    returns the record written to compare.json. As one rank of a sharded ``world`` (`compare_study`), rank 0
    alone shows progress and writes; the other ranks return the record without its figures.

    Raises:
        LatentspectraError: a bad ``out_dir``, networks or dataset, an unknown method or K > M.
    """
    compute = Compute.select(config.device, config.precision)
    timer = Timer()
    with timer.stage("load"):
        loaded = load_study_networks(config, compute)
        check_compare(config, loaded.latent_dim)
        dataset = load_dataset(config.dataset)
    reader = None
    if dataset.has_factors:
        with timer.stage("factor_regressor"):
            reader = factor_regressor_of(dataset, config, world)
    with writer_directory(world, out_dir, lock=True):
        result = compare_study(loaded, dataset, config, progress and world.is_writer, timer, world, reader)
        return write_compare(out_dir, result) if world.is_writer else result.record({})
