"""Training and sampling speed on this machine, each beside its float32 matmul GFLOP/s.

    python benchmarks/bench_training.py [--steps 30] [--json]

Prints images/s of each training loop (classifier, GAN, encoder, default configs, real MNIST batches)
and samples/s of generator + classifier forward passes (float32 networks, and the shipped networks' fast
inference copies that `basis` and `reproduce` use), with the matmul rate measured in the same run, so the
ratio to the machine's limit is visible even when absolute speeds drift.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from latentspectra.config import INFERENCE_BATCH_SIZE, ClassifierConfig, EncoderConfig, GANConfig
from latentspectra.data import load_dataset
from latentspectra.experiments.evaluate import shipped_models_dir
from latentspectra.experiments.networks import load_networks
from latentspectra.models import Classifier, Generator
from latentspectra.training.classifier import ClassifierJob
from latentspectra.training.encoder import EncoderJob
from latentspectra.training.gan import GANJob
from latentspectra.training.loop import epoch_generator


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """float32 GFLOP/s of a size x size matmul: 2 n^3 flops each."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - began) / 1e9


def training_images_per_second(job, batch_size: int, steps: int) -> float:
    rng = epoch_generator(0, 0)
    job.start_epoch(rng)
    for module in job.modules.values():
        module.train()
    job.train_step(0, rng)  # warm-up
    began = time.perf_counter()
    for index in range(1, steps + 1):
        job.train_step(index, rng)
    return batch_size * steps / (time.perf_counter() - began)


@torch.inference_mode()
def sampling_per_second(generator, classifier, latent_dim: int, batch_size: int = 1000, repeats: int = 5) -> float:
    z = torch.randn(batch_size, latent_dim)
    classifier(generator(z))
    began = time.perf_counter()
    for _ in range(repeats):
        classifier(generator(z))
    return batch_size * repeats / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dataset = load_dataset("mnist")
    gan_config, classifier_config, encoder_config = GANConfig(), ClassifierConfig(), EncoderConfig()
    classifier_job = ClassifierJob(dataset, classifier_config, 0)
    gan_job = GANJob(dataset, gan_config, 0)
    results = {"threads": torch.get_num_threads(), "matmul_gflops_before": matmul_gflops()}
    results["classifier_train_images_per_s"] = training_images_per_second(
        classifier_job, classifier_config.batch_size, args.steps)
    results["gan_train_images_per_s"] = training_images_per_second(gan_job, gan_config.batch_size, args.steps)
    # The encoder job freezes the networks it is given, so it is built after they were measured.
    encoder_job = EncoderJob(dataset, encoder_config, 0, gan_job.generator, classifier_job.model)
    results["encoder_train_images_per_s"] = training_images_per_second(
        encoder_job, encoder_config.batch_size, args.steps)
    generator = Generator(gan_config.latent_dim, gan_config.generator_width, gan_config.hidden).eval()
    classifier = Classifier(width=classifier_config.width).eval()
    results["generator_classifier_samples_per_s"] = sampling_per_second(generator, classifier, gan_config.latent_dim)
    shipped = load_networks(shipped_models_dir("mnist"))
    results["inference_copies_samples_per_s"] = sampling_per_second(
        shipped.generator, shipped.classifier, shipped.latent_dim, INFERENCE_BATCH_SIZE, repeats=20)
    results["matmul_gflops_after"] = matmul_gflops()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    gflops = (results["matmul_gflops_before"] + results["matmul_gflops_after"]) / 2
    print(f"float32 matmul 2048x2048: {gflops:.1f} GFLOP/s ({results['threads']} threads)")
    for key, value in results.items():
        if key.endswith("_per_s"):
            print(f"{key:40s} {value:10.0f}   (matmul GFLOP/s in the same run: {gflops:.1f})")


if __name__ == "__main__":
    main()
