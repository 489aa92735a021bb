"""`latentspectra reproduce`: the paper's whole study on one set of trained networks.

Stages (each timed in ``metrics["seconds"]``): load (or train) the networks; build the latent sets and
the quasi-eigenvectors (Methods steps 4-6); classify the test set by LSD over stochastic encodings
(Fig. 5, 6); denoise by truncation (Fig. 7, measured); rotate with Algorithm 1 (Fig. 8, measured);
draw every figure and write metrics.json, report.md and report.html.

Seeds per purpose (as ganspace does), offsets from the run's seed: the basis uses ``seed``, the test-set
encodings ``seed + SEEDS.encodings``, the latent examples of Fig. 3 ``seed + SEEDS.examples``, the pixel
noise of the denoising study ``seed + SEEDS.noise`` (`config.SEEDS`).

Every network acting on latents or images runs as an inference copy (batch norm folded, channels-last) on
the run's device (``config.device``, default auto); G and C on generated images in the run's precision
(``config.precision``: auto picks bfloat16 only on hardware with native bfloat16, compute.py), the encoder
and C on the real test images in float32 (see models/inference.py). Latents are drawn on the device.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..compute import Compute
from ..config import SEEDS, ReproduceConfig, TrainConfig
from ..latent.files import save_basis
from ..models.files import shipped_models_dir
from ..data import images_to_tensor, load_dataset
from ..evaluation import batched, classifier_accuracy, psnr, summarise
from ..io import prepare_out_dir, write_json
from ..latent import QuasiEigenBasis, rotation_path
from ..latent.basis import ORTHOGONALISATIONS
from ..latent.operators import ROTATION_MODES
from ..latent.sets import LatentSets
from ..models.encoder import reparameterise
from ..report import figures
from ..report.document import write_report
from ..io import versions
from .basis import build_basis
from .common import Timer, decode, predict, to_unit_images
from .networks import Networks, load_networks
from .train import train_networks



# --- LSD classification over stochastic encodings (Figs. 5 and 6) -------------------------------------

def classification_study(networks: Networks, basis: QuasiEigenBasis, images: torch.Tensor, labels: torch.Tensor,
                         config: ReproduceConfig, progress: bool,
                         compared: dict[str, QuasiEigenBasis] | None = None) -> dict[str, Any]:
    """Per trial: one stochastic encoding of every test image, drawn from q(z | x) computed once for all
    trials; the encode-decode accuracy (classify G(z)) and the LSD ranks of the true label (Eq. 10,
    argmax |c_k|).

    Returns the metrics (accuracies with mean, std and trials; the cumulative top-n curve averaged
    over trials), under "lsd_compared" the top-1 and top-4 accuracies of each basis in ``compared`` on
    the same encodings, and, under "figure", the first trial's data for Figs. 5 and 6.
    """
    rng = networks.compute.generator(config.seed + SEEDS.encodings)
    mu, logvar = batched(lambda x: torch.cat(networks.encoder(x), 1), images, networks.batch_size).chunk(2, dim=1)
    lsd, encode_decode = [], []
    rank_counts = torch.zeros(basis.dim + 2, dtype=torch.float64, device=mu.device)
    compared = compared or {}
    compared_ranks: dict[str, dict[str, list[float]]] = {name: {"top1": [], "top4": []} for name in compared}
    figure: dict[str, Any] = {}
    for trial in tqdm(range(config.trials), desc="LSD classification (trials)", disable=not progress):
        z = reparameterise(mu, logvar, rng)
        ranks = basis.label_ranks(z, labels)
        lsd.append((ranks == 1).double().mean().item())
        encode_decode.append((predict(networks, z) == labels).double().mean().item())
        rank_counts += torch.bincount(ranks, minlength=basis.dim + 2).double()
        for name, other in compared.items():
            other_ranks = ranks if other is basis else other.label_ranks(z, labels)
            compared_ranks[name]["top1"].append((other_ranks == 1).double().mean().item())
            compared_ranks[name]["top4"].append((other_ranks <= 4).double().mean().item())
        if trial == 0:
            figure = _classification_figure_data(basis, z, labels, ranks)
    cumulative = (rank_counts[1:basis.dim + 1].cumsum(0) / rank_counts.sum()).tolist()
    return {"lsd_top1_accuracy": summarise(lsd), "encode_decode_accuracy": summarise(encode_decode),
            "lsd_topn_cumulative": cumulative, "figure": figure,
            "lsd_compared": {name: {key: summarise(values) for key, values in accuracies.items()}
                             for name, accuracies in compared_ranks.items()}}


def _classification_figure_data(basis: QuasiEigenBasis, z: torch.Tensor, labels: torch.Tensor,
                                ranks: torch.Tensor, batch: int = 25) -> dict[str, Any]:
    amplitudes = basis.decompose(z).abs().sort(dim=1, descending=True).values
    return {"sorted_amplitudes": (amplitudes / amplitudes[:, :1]).cpu().numpy(), "true_rank": ranks.cpu().numpy(),
            "batch_pred": basis.classify(z[:batch])[:, 0].cpu().numpy(), "batch_true": labels[:batch].cpu().numpy()}


# --- Denoising by truncation (Fig. 7, measured) ----------------------------------------------------------

def denoising_study(networks: Networks, basis: QuasiEigenBasis, images: torch.Tensor, labels: torch.Tensor,
                    config: ReproduceConfig) -> dict[str, Any]:
    """Gaussian pixel noise of each sigma on the test images; classifier accuracy and PSNR against the
    clean image of: the noisy image, its encode-decode G(mu(x)), and the LSD truncations of mu(x) to the
    top n components (paper, Fig. 7). Returns the metrics and, under "figure", Fig. 7's rows."""
    rng = networks.compute.generator(config.seed + SEEDS.noise)
    methods = ["noisy", "encode-decode", *(f"top {n}" for n in config.truncations)]
    accuracy: dict[str, list[float]] = {method: [] for method in methods}
    quality: dict[str, list[float]] = {method: [] for method in methods}
    figure_rows: dict[str, np.ndarray] = {}
    for sigma in config.noise_sigmas:
        noise = torch.randn(images.shape, generator=rng, device=images.device) * (2 * sigma)  # [0, 1] -> [-1, 1] units
        noisy = (images + noise).clamp(-1, 1)
        mu = batched(networks.encoder.encode_mean, noisy, networks.batch_size)
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
            figure_rows = {"ground truth": to_unit_images(images[:10]),
                           **{titles.get(name, name): to_unit_images(output[:10]) for name, output in outputs.items()}}
    return {"images": len(images), "sigmas": list(config.noise_sigmas), "methods": methods,
            "accuracy": accuracy, "psnr": quality, "figure": figure_rows}


# --- Rotation (Algorithm 1, Fig. 8, measured) ------------------------------------------------------------

def rotation_study(networks: Networks, basis: QuasiEigenBasis, images: torch.Tensor,
                   config: ReproduceConfig) -> dict[str, Any]:
    """Algorithm 1 from the encoded test images (z = mu(x)) through labels 0, 1, ..., l - 1, with the
    literal Eq. 12 operator and with the plane rotation: the fraction of segment ends (where z reaches
    the next label's quasi-eigenvector) whose decoded image C assigns to that label, overall and per
    target. Returns the metrics and, under "figure", decoded paths for Fig. 8."""
    labels = tuple(range(networks.num_labels))
    mu = batched(networks.encoder.encode_mean, images, networks.batch_size)
    ends = torch.arange(config.rotation_steps, len(labels) * config.rotation_steps, config.rotation_steps)
    targets = torch.tensor(labels[1:], device=mu.device).repeat_interleave(len(images))
    modes: dict[str, Any] = {}
    paths: dict[str, torch.Tensor] = {}
    for mode in ROTATION_MODES:
        path = rotation_path(mu, basis, labels, config.rotation_dtheta, config.rotation_steps, mode=mode)
        hits = (predict(networks, path[ends].flatten(0, 1)) == targets).double()
        modes[mode] = {"segment_end_accuracy": hits.mean().item(),
                       "per_target": hits.view(len(labels) - 1, len(images)).mean(1).tolist()}
        paths[mode] = path
    shown = torch.cat([paths["plane"][:, :4], paths["literal"][:, :1]], dim=1)  # (steps + 1, 5, M)
    sequence = decode(networks, shown.flatten(0, 1)).unflatten(0, shown.shape[:2])
    figure = np.stack([to_unit_images(step) for step in sequence])
    return {"images": len(images), "labels": list(labels), "dtheta": config.rotation_dtheta,
            "steps": config.rotation_steps, "modes": modes, "figure": figure}


# --- Figures 2-4: data, latent sets, etas and quasi-eigenvectors -----------------------------------------

def latent_examples(networks: Networks, latents: torch.Tensor, per_label: int = 3) -> dict[str, Any]:
    """Fig. 3 data for one latent source: a few latents per label (label = C(G(z))) and the pooled
    components of every latent of each label."""
    predicted, latents = predict(networks, latents).cpu(), latents.cpu()
    shown = torch.cat([torch.nonzero(predicted == label).flatten()[:per_label]
                       for label in range(networks.num_labels)])
    return {"latents": latents[shown].numpy(), "latent_labels": predicted[shown].numpy(),
            "components": {label: latents[predicted == label].flatten().numpy()
                           for label in range(networks.num_labels)}}


def draw_figures(out_dir: Path, networks: Networks, basis: QuasiEigenBasis, latent_sets: LatentSets,
                 test_images: torch.Tensor, train_images: torch.Tensor, results: dict[str, Any],
                 config: ReproduceConfig) -> dict[str, Path]:
    """Figs. 2-8 of the paper from this run's data, as out_dir/figures/figN.png."""
    directory = out_dir / "figures"
    directory.mkdir(parents=True, exist_ok=True)
    rng = networks.compute.generator(config.seed + SEEDS.examples)
    shown = test_images[:100]
    decoded_shown = decode(networks, networks.encoder.sample(shown, rng))
    samples = decode(networks, torch.randn(100, networks.latent_dim, generator=rng, device=rng.device))
    eta_images = to_unit_images(decode(networks, latent_sets.etas))
    encoded = batched(lambda x: networks.encoder.sample(x, rng), train_images[:2000], networks.batch_size)
    sampled = torch.randn(2000, networks.latent_dim, generator=rng, device=rng.device)
    by_set = {index: eta_images[(latent_sets.sets == index).numpy()] for index in (1, 2)}
    panels = {"step 4a: encoded training set (set 1)": {**latent_examples(networks, encoded), "decoded_etas": by_set[1]},
              "step 4b: z ~ N(0, I) (set 2)": {**latent_examples(networks, sampled), "decoded_etas": by_set[2]}}
    etas = latent_sets.etas
    classification = results["classification"]["figure"]
    drawn = {
        "fig2": figures.figure2(to_unit_images(shown), to_unit_images(decoded_shown), to_unit_images(samples),
                                directory / "fig2.png"),
        "fig3": figures.figure3(panels, directory / "fig3.png"),
        "fig4": figures.figure4(eta_images, to_unit_images(decode(networks, basis.vectors)),
                                (etas @ etas.T).numpy(), (basis.vectors @ basis.vectors.T / basis.norm).numpy(),
                                directory / "fig4.png"),
        "fig5": figures.figure5(to_unit_images(test_images[:len(classification["batch_true"])]),
                                classification["batch_true"], classification["batch_pred"],
                                results["lsd_top1_accuracy"]["trials"], results["classifier_accuracy"]["mean"],
                                results["encode_decode_accuracy"]["trials"], results["lsd_topn_cumulative"],
                                directory / "fig5.png"),
        "fig6": figures.figure6(classification["sorted_amplitudes"], classification["true_rank"],
                                directory / "fig6.png"),
        "fig7": figures.figure7(results["denoising"]["figure"], directory / "fig7.png"),
        "fig8": figures.figure8(results["rotation"]["figure"], directory / "fig8.png",
                                caption="rows 1-4: plane rotation of four test digits; row 5: Eq. 12 as printed; "
                                        f"labels 0 -> {networks.num_labels - 1}, dtheta = pi/6, 3 steps per label"),
    }
    return drawn


# --- The whole study -------------------------------------------------------------------------------------

def reproduce(out_dir: str | Path, config: ReproduceConfig = ReproduceConfig(), models_dir: str | Path | None = None,
              retrain: bool = False, progress: bool = True,
              train_config: TrainConfig | None = None) -> dict[str, Any]:
    """Run the study into ``out_dir`` (metrics.json, figures/fig2-8.png, report.md, report.html).

    With ``retrain`` the networks are trained first into ``out_dir/models`` (``train_config``, default
    `TrainConfig` with this dataset and seed); otherwise ``models_dir`` or the shipped networks are used.
    Returns the metrics written to metrics.json.
    """
    compute = Compute.select(config.device, config.precision)
    out = prepare_out_dir(out_dir)
    timer = Timer()
    torch.manual_seed(config.seed)
    if retrain:
        with timer.stage("train"):
            train_config = train_config or TrainConfig(dataset=config.dataset, seed=config.seed, device=config.device,
                                                       precision=config.precision)
            train_networks("all", out / "models", train_config, progress)
        models_dir = out / "models"
    models_dir = Path(models_dir) if models_dir is not None else shipped_models_dir(config.dataset)
    with timer.stage("load"):
        networks = load_networks(models_dir, compute, config.batch_size)
        dataset = load_dataset(config.dataset)
        train_images = images_to_tensor(dataset.train.images).to(compute.device)
        test_images = images_to_tensor(dataset.test.images).to(compute.device)
        test_labels = torch.from_numpy(dataset.test.labels).long().to(compute.device)
    with timer.stage("basis"):
        basis, latent_sets, basis_stats = build_basis(
            networks.generator, networks.classifier, networks.encoder.sample, train_images, per_set=config.per_set,
            seed=config.seed + SEEDS.basis, batch_size=networks.batch_size, progress=progress,
            latent_dim=networks.latent_dim, num_labels=networks.num_labels,
            orthogonalisation=config.orthogonalisation, device=compute.device)
        save_basis(basis, out / "basis.safetensors")
        bases = {method: basis if method == config.orthogonalisation else
                 QuasiEigenBasis.from_etas(latent_sets.etas, latent_sets.labels, latent_sets.sets,
                                           orthogonalisation=method) for method in ORTHOGONALISATIONS}
    results: dict[str, Any] = {}
    with timer.stage("classification"):
        results["classifier_accuracy"] = summarise([classifier_accuracy(networks.exact_classifier, test_images,
                                                                      test_labels)])
        classification = classification_study(networks, basis, test_images, test_labels, config, progress, bases)
        results["classification"] = classification
        results.update({key: classification[key] for key in
                        ("lsd_top1_accuracy", "encode_decode_accuracy", "lsd_topn_cumulative")})
    with timer.stage("denoising"):
        count = config.denoise_images
        results["denoising"] = denoising_study(networks, basis, test_images[:count], test_labels[:count], config)
    with timer.stage("rotation"):
        results["rotation"] = rotation_study(networks, basis, test_images[:config.rotation_images], config)
    with timer.stage("figures"):
        drawn = draw_figures(out, networks, basis, latent_sets, test_images, train_images, results, config)
    metrics = _metrics(results, basis_stats, models_dir, config, timer.seconds, networks)
    write_json(out / "metrics.json", metrics)
    write_report(out, metrics, drawn)
    return metrics


def _without_figure_data(section: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in section.items() if key != "figure"}


def _metrics(results: dict[str, Any], basis_stats: dict[str, Any], models_dir: Path, config: ReproduceConfig,
             seconds: dict[str, float], networks: Networks) -> dict[str, Any]:
    return {
        "dataset": config.dataset,
        "seed": config.seed,
        "models": str(models_dir),
        "latent_dim": basis_stats["latent_dim"],
        "per_set": config.per_set,
        "classifier_accuracy": results["classifier_accuracy"],
        "encode_decode_accuracy": results["encode_decode_accuracy"],
        "lsd_top1_accuracy": results["lsd_top1_accuracy"],
        "lsd_top4_accuracy": results["lsd_topn_cumulative"][3],
        "lsd_topn_cumulative": results["lsd_topn_cumulative"],
        "orthogonalisation": config.orthogonalisation,
        "lsd_by_orthogonalisation": results["classification"]["lsd_compared"],
        "basis_orthogonality_error": basis_stats["orthogonality_error"],
        "basis": {key: basis_stats[key] for key in ("samples_drawn", "draws_per_set", "sources")},
        "denoising": _without_figure_data(results["denoising"]),
        "rotation": _without_figure_data(results["rotation"]),
        "seconds": {**seconds, "total": sum(seconds.values())},
        "basis_samples_per_second": basis_stats["samples_per_second"],
        "config": asdict(config),
        "compute": {**networks.compute.record(), "batch_size": networks.batch_size},
        "versions": versions(),
    }
