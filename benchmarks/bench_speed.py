"""Speed of the networks on this machine at each precision, beside the same run's matmul peak.

    python benchmarks/bench_speed.py [--steps 10] [--json]

Prints, in one run: float32 and bfloat16 matmul GFLOP/s (1024 x 1024 both; float32 also 2048 x 2048 and
again at the end; the peak is the best of the three); the shipped generator + classifier (the inference
copies `basis` and `reproduce` use) in samples/s and GFLOP/s at each precision, as a fraction of the float32 peak
and of its own precision's matmul peak; with --layers, each layer of G and C: milliseconds per batch, GFLOP and
GFLOP/s at each precision (forward hooks; the layers' sum is a little above the whole pass);
the latent-set throughput of `build_latent_sets` at the precision `auto` picks here; images/s of each training loop
(classifier, GAN, encoder; default configs, real MNIST batches) at each precision and what `train all`'s epochs
would take at those rates. The FLOPs per sample are counted by
torch.utils.flop_counter, not assumed. Absolute speeds drift on shared machines: compare ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from latentspectra.compute import Compute, describe_device
from latentspectra.config import TrainConfig
from latentspectra.data import images_to_tensor, load_dataset
from latentspectra.experiments.networks import load_networks
from latentspectra.latent import build_latent_sets
from latentspectra.models.files import shipped_models_dir
from latentspectra.training.classifier import ClassifierJob
from latentspectra.training.encoder import EncoderJob
from latentspectra.training.gan import GANJob
from latentspectra.training.loop import epoch_generator

PRECISIONS = ("float32", "bfloat16")


def rate(work: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls of ``work`` per second, after one warm-up call, over at least ``seconds``."""
    work()
    calls, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds or calls < 2:
        work()
        calls += 1
    return calls / elapsed


def matmul_gflops(dtype: torch.dtype, size: int = 1024) -> float:
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    return 2 * size**3 * rate(lambda: a @ b) / 1e9


def flops_per_sample(networks) -> float:
    z = torch.randn(10, networks.latent_dim)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        networks.classifier(networks.generator(z))
    return counter.get_total_flops() / len(z)


def inference(precision: str, batch_size: int) -> tuple[float, float]:
    """(samples/s of G + C on a batch of latents, FLOPs per sample) for the shipped inference copies."""
    networks = load_networks(shipped_models_dir("mnist"), Compute(precision=precision))
    z = torch.randn(batch_size, networks.latent_dim)
    with torch.inference_mode():
        calls = rate(lambda: networks.classifier(networks.generator(z)), 2.0)
    return calls * batch_size, flops_per_sample(networks)


def layer_times(precision: str, batch_size: int, repeats: int = 10) -> list[dict]:
    """Per leaf layer of the shipped G and C inference copies, in the order they run: its name, milliseconds per
    batch of ``batch_size`` latents (forward hooks, after 3 warm-up passes), GFLOP per batch and GFLOP/s."""
    networks = load_networks(shipped_models_dir("mnist"), Compute(precision=precision))
    z = torch.randn(batch_size, networks.latent_dim)
    seconds: dict[str, float] = {}
    began: dict[str, float] = {}
    leaves = [
        (f"{tag}.{name}", module)
        for tag, root in (("G", networks.generator), ("C", networks.classifier))
        for name, module in root.named_modules()
        if not list(module.children())
    ]
    for name, module in leaves:
        module.register_forward_pre_hook(lambda *_, name=name: began.__setitem__(name, time.perf_counter()))
        module.register_forward_hook(
            lambda *_, name=name: seconds.__setitem__(name, seconds.get(name, 0.0) + time.perf_counter() - began[name])
        )
    with torch.inference_mode():
        for _ in range(3):
            networks.classifier(networks.generator(z))
        seconds.clear()
        for _ in range(repeats):
            networks.classifier(networks.generator(z))
        with FlopCounterMode(display=False) as counter:
            networks.classifier(networks.generator(z))
    counts = counter.get_flop_counts()
    found = []
    for name, _ in leaves:
        path = name.split(".", 1)[1]
        flops = sum(sum(count.values()) for key, count in counts.items() if key.endswith(path) and key != "Global")
        milliseconds = seconds.get(name, 0.0) / repeats * 1000
        found.append(
            {
                "layer": name,
                "ms": milliseconds,
                "gflop": flops / 1e9,
                "gflops": flops / 1e9 / (milliseconds / 1000) if milliseconds else 0.0,
            }
        )
    return found


def latent_set_rate(compute: Compute, per_set: int) -> float:
    """Latents drawn and classified per second by `build_latent_sets` (set 1 encoded, the rest sampled)."""
    networks = load_networks(shipped_models_dir("mnist"), compute)
    images = images_to_tensor(load_dataset("mnist").train.images[:20_000])
    sets = build_latent_sets(
        networks.generator,
        networks.classifier,
        latent_dim=networks.latent_dim,
        num_labels=networks.num_labels,
        per_set=per_set,
        encoder_sample=networks.encoder.sample,
        images=images,
        batch_size=networks.batch_size,
    )
    return sets.samples_per_second


def training_rates(precision: str, steps: int) -> dict[str, float]:
    """Images/s of one training step of each network (default configs, MNIST) at ``precision``."""
    dataset, config, compute = load_dataset("mnist"), TrainConfig(), Compute(precision=precision)
    classifier = ClassifierJob(dataset, config.classifier, 0, compute)
    gan = GANJob(dataset, config.gan, 0, compute=compute)
    # The encoder job freezes the networks it is given, so it is built after they were measured.
    jobs = {"classifier": (classifier, config.classifier.batch_size), "gan": (gan, config.gan.batch_size)}
    rates = {name: images_per_second(job, batch, steps) for name, (job, batch) in jobs.items()}
    encoder = EncoderJob(dataset, config.encoder, 0, gan.generator, classifier.model, compute=compute)
    rates["encoder"] = images_per_second(encoder, config.encoder.batch_size, steps)
    return rates


def images_per_second(job, batch_size: int, steps: int) -> float:
    rng = epoch_generator(0, 0)
    job.start_epoch(rng)
    for module in job.modules.values():
        module.train()
    job.train_step(0, rng)  # warm-up
    began = time.perf_counter()
    for index in range(1, steps + 1):
        job.train_step(index, rng)
    return batch_size * steps / (time.perf_counter() - began)


def train_all_seconds(rates: dict[str, float]) -> float:
    """What `train all`'s default epochs (and the encoder's warm-up) take at these images/s."""
    config, images = TrainConfig(), len(load_dataset("mnist").train)
    epochs = {"classifier": config.classifier.epochs, "gan": config.gan.epochs, "encoder": config.encoder.epochs}
    warm_up = config.encoder.warm_up_steps * config.encoder.batch_size / rates["encoder"]
    return sum(epochs[name] * images / rates[name] for name in epochs) + warm_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="training steps timed per network and precision")
    parser.add_argument("--per-set", type=int, default=300, help="V of the timed latent sets")
    parser.add_argument("--layers", action="store_true", help="also time each layer of G and C at each precision")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    auto = Compute.select("cpu", "auto")
    results: dict = {
        "cpu": describe_device(auto.device),
        "threads": torch.get_num_threads(),
        "auto_precision": auto.precision,
        "native_bfloat16": auto.record()["cpu_native_bfloat16"],
    }
    matmul = {name: matmul_gflops(getattr(torch, name)) for name in PRECISIONS}
    matmul["float32_2048"] = matmul_gflops(torch.float32, 2048)
    inference_rates = {precision: inference(precision, auto.inference_batch_size) for precision in PRECISIONS}
    flops = inference_rates["float32"][1]
    rates = {f"generator_classifier_{precision}": samples for precision, (samples, _) in inference_rates.items()}
    rates[f"latent_sets_{auto.precision}"] = latent_set_rate(auto, args.per_set)
    training = {precision: training_rates(precision, args.steps) for precision in PRECISIONS}
    matmul["float32_after"] = matmul_gflops(torch.float32)
    peak = max(value for name, value in matmul.items() if name.startswith("float32"))
    results.update(
        matmul_gflops=matmul,
        float32_peak_gflops=peak,
        mflop_per_sample=flops / 1e6,
        samples_per_s={
            name: {
                "samples_per_s": value,
                "gflops": value * flops / 1e9,
                "fraction_of_float32_peak": value * flops / 1e9 / peak,
                "fraction_of_own_peak": value
                * flops
                / 1e9
                / (peak if name.endswith("float32") else matmul["bfloat16"]),
            }
            for name, value in rates.items()
        },
        training_images_per_s=training,
        train_all_seconds_estimate={precision: train_all_seconds(value) for precision, value in training.items()},
    )
    if args.layers:
        results["layers"] = {precision: layer_times(precision, auto.inference_batch_size) for precision in PRECISIONS}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{results['cpu']}, {results['threads']} threads; native bfloat16: {results['native_bfloat16']}; "
        f"auto picks {results['auto_precision']}"
    )
    print(
        "matmul GFLOP/s (1024 x 1024 unless named): "
        + ", ".join(f"{name} {value:.2f}" for name, value in matmul.items())
        + f"; float32 peak {peak:.1f}"
    )
    print(f"shipped G + C: {flops / 1e6:.1f} MFLOP per sample")
    for name, entry in results["samples_per_s"].items():
        print(
            f"{name:32s} {entry['samples_per_s']:8.0f} samples/s  {entry['gflops']:6.1f} GFLOP/s  "
            f"{entry['fraction_of_float32_peak']:.0%} of the float32 peak, "
            f"{entry['fraction_of_own_peak']:.0%} of its own"
        )
    for precision, layers in results.get("layers", {}).items():
        print(f"layers, {precision} (ms per batch of {auto.inference_batch_size}, GFLOP, GFLOP/s):")
        for layer in layers:
            print(f"  {layer['layer']:28s} {layer['ms']:6.2f} {layer['gflop']:6.3f} {layer['gflops']:7.1f}")
    for precision, value in training.items():
        print(
            f"training images/s, {precision}: "
            + ", ".join(f"{name} {rate:.0f}" for name, rate in value.items())
            + f"; train all at these rates: {results['train_all_seconds_estimate'][precision]:.0f} s"
        )


if __name__ == "__main__":
    main()
