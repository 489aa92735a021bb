"""Sharded runs (torch.distributed, gloo on 127.0.0.1; docs/scale.md): the same basis from 1, 2 and 3 ranks,
the collectives, the one-line failures (ranks with other arguments, a rendezvous nobody answers, a rank
killed mid-run), DistributedDataParallel training against one process with the same global batch (global
batch norm, shards of each batch and of its noise), `evaluate`'s metrics from 2 ranks against 1, and the
records of the studies (`sfvq`, `fragmentation`, ...) from 2 ranks against 1. The checks of 2 ranks against
1 process share one launch of two ranks (`two_ranks`). Every multi-process run gets a free port, a 30 s
collective timeout and a bounded wait."""

from __future__ import annotations

import copy
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from threadpoolctl import threadpool_limits

import sharded_networks
from conftest import make_dataset, one_error_line, run_cli
from latentspectra.cli import SHARDED_COMMANDS, main
from latentspectra.config import AutoencoderConfig, BasisConfig, EvaluateConfig
from latentspectra.distributed import SINGLE, DistributedError, World, open_world, timeout_seconds
from latentspectra.experiments import finished_sets, sharded_sets
from latentspectra.experiments.basis import basis_study, run_basis
from latentspectra.experiments.evaluate import run_evaluate
from latentspectra.experiments.train import train_networks
from latentspectra.models.files import load_model
from latentspectra.threads import single_thread
from latentspectra.training.autoencoder import AutoencoderJob
from latentspectra.training.sharding import GlobalBatchNorm, Shard, global_batch_norm, plain_batch_norm

TESTS = Path(__file__).parent
WAIT = 120  # seconds any launched run may take before the test fails instead of hanging
LAUNCH_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "GROUP_RANK",
    "TORCHELASTIC_RUN_ID",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if key not in LAUNCH_VARIABLES}
    return {
        **environment,
        "PYTHONPATH": os.pathsep.join([str(TESTS), environment.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "LATENTSPECTRA_DIST_TIMEOUT": "30",
        **extra,
    }


def _torchrun(ranks: int, arguments: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        str(ranks),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{_free_port()}",
        "-m",
        "latentspectra",
        *arguments,
    ]
    return subprocess.run(command, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=WAIT)


def _ranks(commands: list[list[str]], cwd: Path, wait: float = WAIT) -> list[tuple[int, str, str]]:
    """Start one process per command as rank 0, 1, ... of one world (what torchrun's environment says), and
    wait for all, ``wait`` seconds at most each: (exit code, stdout, stderr) of each."""
    port = _free_port()

    def launch(rank: int, command: list[str]) -> subprocess.Popen:
        world = {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(len(commands)),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        return subprocess.Popen(
            [sys.executable, *command],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environment(**world),
        )

    processes = [launch(rank, command) for rank, command in enumerate(commands)]
    try:
        return [(process.wait(wait), *process.communicate()) for process in processes]
    finally:
        for process in processes:
            process.kill()


def tiny_basis_config(root) -> BasisConfig:
    """The basis of the tiny networks on ROOT/tiny.npz, as the ranks of `sharded_networks.main` build it."""
    return sharded_networks.basis_config(root / "tiny.npz")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A directory holding the tiny networks' dataset, their basis built by one process (the reference), and
    the finished sets of a build interrupted in set 2 (interrupted.sets.safetensors: set 1 of 3)."""
    root = tmp_path_factory.mktemp("sharded")
    sharded_networks.write_dataset(root / "tiny.npz")
    reference = basis_study(tiny_basis_config(root), progress=False)
    collect = sharded_sets.sharded_label_means

    def interrupted_in_set_2(*args, description: str, **kwargs):
        if description.startswith("set 2/"):
            raise KeyboardInterrupt
        return collect(*args, description=description, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(sharded_sets, "sharded_label_means", interrupted_in_set_2)
        run_basis(root / "interrupted.safetensors", tiny_basis_config(root), progress=False)
    assert not (root / "interrupted.safetensors").exists()
    return root, reference


def _interrupted_copy(root: Path, name: str) -> Path:
    """A copy of the interrupted build's finished sets as NAME.sets.safetensors (with its record)."""
    for suffix in (".safetensors", ".json"):
        (root / f"{name}.sets{suffix}").write_bytes((root / f"interrupted.sets{suffix}").read_bytes())
    return root / f"{name}.safetensors"


# The checks that compare two ranks with one process share one launch of two ranks (`two_ranks`), and so one
# worker under pytest-xdist's loadgroup (conftest.py).
TWO_RANKS_WAIT = 300  # seconds the launch of every step may take


@dataclass(frozen=True)
class TwoRanks:
    """The launch of `two_ranks`: its working directory and each step's [exit code, stdout, stderr] per rank."""

    directory: Path
    results: list[dict[str, list]]

    def step(self, name: str, code: int = 0) -> list[tuple[int, str, str]]:
        """Each rank's (exit code, stdout, stderr) of step ``name``, both checked to have ended with ``code``."""
        found = [tuple(results[name]) for results in self.results]
        assert [ended for ended, _, _ in found] == [code, code], found
        return found


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(_free_port())
    return sorted(ports)


@pytest.fixture(scope="module")
def two_ranks(tiny, tmp_path_factory) -> TwoRanks:
    """Every two-rank check against one process, as two ranks of `sharded_networks.steps` started once (each
    rank imports torch and the package once, not once per check): `sharded_networks.main` resuming the tiny
    basis after the interrupted build's finished sets; `sharded_networks.train` into two-train, its encoder on
    the networks of one-train, trained here first by one process with the same global batch;
    `sharded_networks.evaluate` on large.npz (200 training, 1300 test rows) and tiny.npz; the command lines of
    `_command_lines`, each into two-NAME; and the tiny basis with --seed 0 on rank 0 and --seed 1 on rank 1 (step
    "mismatch"). The one-process runs of those command lines are the tests' own."""
    root, _ = tiny
    directory = tmp_path_factory.mktemp("two-ranks")
    resume = finished_sets.finished_sets_path(_interrupted_copy(root, "shared"))
    sharded_networks.write_dataset(root / "large.npz", train=200, test=1300)
    sharded_networks.write_dataset(directory / "rows.npz", train=600, test=140)
    dataset = make_dataset(train=64, test=32)
    digits = directory / "digits.npz"
    np.savez(
        digits,
        x_train=dataset.train.images[:, 0],
        y_train=dataset.train.labels,
        x_test=dataset.test.images[:, 0],
        y_test=dataset.test.labels,
    )
    one = directory / "one-train"
    train_networks("all", one, sharded_networks.train_config(str(digits)), progress=False)
    train_networks("vae", one / "vae", sharded_networks.train_config(str(digits)), progress=False)
    steps = {
        "main": ("main", [str(root), str(root / "tiny.npz"), str(resume)]),
        "train": ("train", [str(directory / "two-train"), str(digits), str(one)]),
        "evaluate": ("evaluate", [str(root / "evaluated.json"), str(root / "large.npz"), str(root / "tiny.npz")]),
        **{
            name: ("cli", [*arguments, "--out", str(directory / f"two-{name}")])
            for name, arguments in _command_lines(directory).items()
        },
    }
    basis = [f"npz:{root / 'tiny.npz'}" if arg == "npz:tiny.npz" else arg for arg in BASIS]
    steps["mismatch"] = ("cli", [*basis, "--out", str(root / "mismatch.safetensors")])
    rank_args = {"mismatch": {str(rank): ["--seed", str(rank)] for rank in (0, 1)}}
    plan = directory / "plan.json"
    plan.write_text(
        json.dumps(
            {
                name: {"step": step, "args": args, "rank_args": rank_args.get(name, {}), "port": port}
                for (name, (step, args)), port in zip(steps.items(), _free_ports(len(steps)))
            }
        )
    )
    launched = _ranks([["-m", "sharded_networks", "steps", str(plan)]] * 2, directory, wait=TWO_RANKS_WAIT)
    assert [code for code, _, _ in launched] == [0, 0], launched
    return TwoRanks(
        directory, [json.loads((directory / f"plan.json.rank-{rank}.json").read_text()) for rank in range(2)]
    )


BASIS = [
    "basis",
    "--networks",
    "sharded_networks:build",
    "--dataset",
    "npz:tiny.npz",
    "--per-set",
    "40",
    "--batch-size",
    "16",
    "--device",
    "cpu",
    "--precision",
    "float32",
    "--quiet",
]  # the reference's precision


def test_one_process_is_the_same_code_with_collectives_that_return_their_argument(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with open_world("cpu", ("any", "arguments")) as world:
        assert world is SINGLE and world.is_writer and world.size == 1
    values = torch.arange(3, dtype=torch.float32)
    summed = SINGLE.sum(values)
    assert summed.dtype == torch.float64 and torch.equal(summed, values.double()) and summed is not values
    assert SINGLE.gather(values).shape == (1, 3)
    assert [SINGLE.deal(round_index) for round_index in range(3)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("value", "message"), [("0", "expected a number of seconds > 0"), ("soon", "expected a number of seconds > 0")]
)
def test_a_bad_timeout_is_one_line(monkeypatch, value, message):
    monkeypatch.setenv("LATENTSPECTRA_DIST_TIMEOUT", value)
    with pytest.raises(DistributedError, match=message):
        timeout_seconds()


@pytest.mark.slow
def test_three_ranks_under_torchrun_build_the_basis_of_one_process(tiny):
    root, reference = tiny
    run = _torchrun(3, [*BASIS, "--out", "three.safetensors"], root)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("samples_drawn:") == 1  # rank 0 alone prints
    assert "world_size: 3" in run.stdout
    assert f"samples_drawn: {reference.stats['samples_drawn']}" in run.stdout
    sharded = load_file(root / "three.safetensors")
    assert torch.allclose(sharded["vectors"], reference.basis.vectors, rtol=0, atol=1e-12)
    assert torch.equal(sharded["labels"], reference.basis.labels)


def test_a_rerun_resumes_after_the_finished_sets_and_removes_them(tiny, capsys):
    root, reference = tiny
    out = _interrupted_copy(root, "resumed")
    stats = run_basis(out, tiny_basis_config(root), progress=False)
    assert "resuming the basis after 1 finished set(s)" in capsys.readouterr().err
    assert torch.equal(load_file(out)["vectors"], reference.basis.vectors)
    assert stats["draws_per_set"] == list(reference.latent_sets.draws)
    assert not finished_sets.finished_sets_path(out).exists() and not out.with_name("resumed.sets.json").exists()


def test_finished_sets_of_other_settings_are_not_used(tiny, capsys):
    root, _ = tiny
    out = _interrupted_copy(root, "reseeded")
    run_basis(out, replace(tiny_basis_config(root), seed=1), progress=False)
    assert "not resuming from" in capsys.readouterr().err
    assert not finished_sets.finished_sets_path(out).exists()


def test_two_ranks_share_the_latent_sets_the_finished_sets_and_the_collectives(tiny, two_ranks):
    root, reference = tiny
    results = two_ranks.step("main")
    assert "resuming the basis after 1 finished set(s)" in results[0][2]
    sharded = load_file(root / "world.safetensors")
    assert torch.allclose(sharded["etas"], reference.latent_sets.etas, rtol=0, atol=1e-12)
    assert torch.allclose(sharded["vectors"], reference.basis.vectors, rtol=0, atol=1e-12)
    assert sharded["draws"].tolist() == list(reference.latent_sets.draws)  # the same vectors, in block order
    assert sharded["summed"].tolist() == [3.0] * 3 and sharded["summed"].dtype == torch.float64
    assert sharded["gathered"].tolist() == [[0, 0], [1, 10]] and int(sharded["world_size"]) == 2
    rows = torch.arange(37 * 2, dtype=torch.float32).view(37, 2)  # chunk b of 5 rows by rank b % 2 (factor rank + 1)
    factor = (torch.arange(37) // 5 % 2 + 1).float()
    assert torch.equal(sharded["mapped"], torch.stack([rows.sum(1), rows[:, 0] * factor], 1))


@pytest.mark.slow
def test_ranks_started_with_other_arguments_are_refused_in_one_line(tiny, two_ranks):
    root, _ = tiny
    for _, _, stderr in two_ranks.step("mismatch", code=2):
        assert stderr.strip().count("\n") == 0, stderr
        assert "rank 1 was started with other arguments than rank 0" in stderr
    assert not list(root.glob("mismatch*"))


@pytest.mark.slow  # a 1 s wait
def test_a_rendezvous_nobody_answers_is_one_line_within_the_timeout(tiny, capsys, monkeypatch):
    """Rank 1 of 2 alone (in this process: a failed rendezvous opens no process group): one line, exit code 2,
    within about the timeout asked for."""
    root, _ = tiny
    port = _free_port()
    world = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for key, value in {**world, "LATENTSPECTRA_DIST_TIMEOUT": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    began = time.monotonic()
    code, _, stderr = run_cli(capsys, *BASIS, "--out", "alone.safetensors")
    assert code == 2 and time.monotonic() - began < 10
    assert one_error_line(stderr).startswith(
        f"latentspectra: error: rank 1 of 2: cannot join the other ranks at 127.0.0.1:{port} within 1 s"
    )
    assert not list(root.glob("alone*"))


@pytest.mark.slow
def test_a_rank_killed_mid_run_ends_the_run_without_an_output(tiny):
    root, _ = tiny
    run = _torchrun(2, [*BASIS[:2], "sharded_networks:dying", *BASIS[3:], "--out", "killed.safetensors"], root)
    assert run.returncode != 0
    assert "exitcode  : -9" in run.stderr and "rank      : 1" in run.stderr  # torchrun names the rank lost
    assert not list(root.glob("killed*")) and not list(root.glob(".*.part"))


def test_a_command_that_is_not_sharded_refuses_torchrun(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SystemExit) as exit_info:
        main(["reds"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "latentspectra: error: rank 1 of 2: reds does not run sharded; start it "
        f"without torchrun (sharded: {', '.join(SHARDED_COMMANDS)}; docs/scale.md)\n"
    )


def test_the_shards_of_a_batch_are_its_rows_in_rank_order_with_the_noise_of_one_process():
    rows, rng = torch.arange(15), torch.Generator().manual_seed(0)
    whole = torch.randn(15, 3, generator=torch.Generator().manual_seed(0))
    shards = [Shard.of(15, World(rank, 2)) for rank in range(2)]
    assert [(shard.start, shard.stop) for shard in shards] == [(0, 7), (7, 15)]
    assert torch.equal(torch.cat([shard.take(rows) for shard in shards]), rows)
    assert torch.equal(torch.cat([shard.normal(rng.manual_seed(0), 3) for shard in shards]), whole)
    losses = whole.sum(1)  # per row: the ranks' weighted shard means average to the batch's mean
    weighted = [shard.scale(shard.take(losses).mean()) for shard in shards]
    assert torch.allclose(sum(weighted) / 2, losses.mean(), rtol=1e-6, atol=0)
    assert Shard.of(16, World(1, 2)).scale(losses) is losses  # equal shards: no weighting
    with pytest.raises(DistributedError, match="a batch of 2 rows cannot be split over 3 ranks"):
        Shard.of(2, World(0, 3))


@pytest.fixture
def world_of_one():
    """A gloo process group of one rank in this process (the differentiable all-reduce returns its argument)."""
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield World(0, 1)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(
    ("norm", "shape", "momentum"), [(torch.nn.BatchNorm2d, (6, 3, 4, 5), 0.1), (torch.nn.BatchNorm1d, (7, 3), None)]
)
def test_global_batch_norm_is_batch_norm_and_goes_back_to_it(world_of_one, norm, shape, momentum):
    plain = norm(3, momentum=momentum)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
        plain.bias.uniform_(-1, 1)
    model = torch.nn.Sequential(copy.deepcopy(plain))
    global_batch_norm(model)
    assert isinstance(model[0], GlobalBatchNorm) and list(model[0].state_dict()) == list(plain.state_dict())
    for step in range(2):
        inputs = 3 * torch.randn(shape, generator=torch.Generator().manual_seed(step)) + 2
        weights = torch.randn(shape, generator=torch.Generator().manual_seed(10 + step))
        outputs = []
        for module in (plain, model):
            module.zero_grad()
            leaf = inputs.clone().requires_grad_(True)
            output = module(leaf)
            (output * weights).sum().backward()
            state = dict(zip(plain.state_dict(), module.state_dict().values()))  # keys without the 0. prefix
            outputs.append((output, leaf.grad, state, [p.grad for p in module.parameters()]))
        (expected, expected_grad, expected_state, expected_grads), (got, got_grad, got_state, got_grads) = outputs
        assert torch.allclose(got, expected, rtol=0, atol=1e-5)
        assert torch.allclose(got_grad, expected_grad, rtol=0, atol=1e-5)
        for key, value in expected_state.items():
            assert torch.allclose(got_state[key].double(), value.double(), rtol=1e-5, atol=1e-6), key
        assert all(torch.allclose(g, e, rtol=1e-5, atol=1e-5) for g, e in zip(got_grads, expected_grads))
    model.eval()
    plain.eval()
    assert torch.allclose(model(inputs), plain(inputs), rtol=0, atol=1e-5)
    parameters = list(model.parameters())
    plain_batch_norm(model)
    assert type(model[0]) is norm and not model[0].training
    assert all(now is before for now, before in zip(model.parameters(), parameters, strict=True))


def test_a_network_without_replicas_refuses_to_train_sharded(tiny_dataset):
    job = AutoencoderJob(tiny_dataset, AutoencoderConfig(epochs=1, batch_size=16, latent_dim=8, width=4), seed=0)
    with pytest.raises(DistributedError, match="train autoencoder does not run sharded"):
        job.shard_over(World(0, 2))


# DDP's average of the ranks' gradients and the global batch norms' float64 statistics add in another order than
# one process does: float32 rounding, about 1e-7 relative per step, which 4 Adam steps carry to a few 1e-6 in the
# weights (measured: 8.2e-6 at most, in the generator's second linear layer; 4.5e-8 in the encoder).
TRAINING_TOLERANCE = 2e-5
# A bias right before a batch norm is a null direction of the loss (the norm subtracts it again): its exact
# gradient is 0, the computed one rounding noise, which Adam normalises into steps of up to its learning rate,
# whatever the order of the sums (at most 0.01 here, 4 steps). Those biases, and the running means of the norms
# after them, agree only to that (measured: 9.6e-3 at most, in the classifier).
NULL_DIRECTION_TOLERANCE = 5e-2


def _null_directions(model: torch.nn.Module) -> set[str]:
    """The state-dict keys of the biases that a batch norm right after their layer removes, and of that batch
    norm's running mean."""
    keys = set()
    for prefix, parent in model.named_modules():
        children = list(parent.named_children())
        for (name, layer), (norm_name, norm) in itertools.pairwise(children):
            if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm) and getattr(layer, "bias", None) is not None:
                keys |= {
                    ".".join(filter(None, (prefix, name, "bias"))),
                    ".".join(filter(None, (prefix, norm_name, "running_mean"))),
                }
    return keys


def test_two_ranks_train_the_weights_of_one_process_with_the_same_global_batch(two_ranks):
    two_ranks.step("train")
    one, two = two_ranks.directory / "one-train", two_ranks.directory / "two-train"
    for name, directory, reference in (
        ("classifier", two, one),
        ("generator", two, one),
        ("discriminator", two, one),
        ("encoder", two / "encoder", one),
        ("generator", two / "vae", one / "vae"),  # the VAE's decoder (its encoder a replica too)
    ):
        model, record = load_model(directory, name, name)
        expected = load_file(reference / f"{name}.safetensors")
        got = load_file(directory / f"{name}.safetensors")
        assert list(got) == list(expected) and record["world_size"] == 2, name  # plain batch norms again
        null = _null_directions(model)
        assert null, name  # every shipped network has a layer with a bias before a batch norm
        for key, value in expected.items():
            tolerance = NULL_DIRECTION_TOLERANCE if key in null else TRAINING_TOLERANCE
            assert torch.allclose(got[key].double(), value.double(), rtol=0, atol=tolerance), (name, key)
    assert json.loads((two / "train-gan.json").read_text())["world_size"] == 2


def test_two_ranks_evaluate_to_the_numbers_of_one_process(tiny, two_ranks):
    root, _ = tiny
    two_ranks.step("evaluate")
    datasets = [str(root / "large.npz"), str(root / "tiny.npz")]  # large: chunks of 500, 500, 300; tiny: one
    for got, dataset in zip(json.loads((root / "evaluated.json").read_text()), datasets):
        expected = run_evaluate(
            EvaluateConfig(
                dataset=f"npz:{dataset}", device="cpu", precision="float32", networks="sharded_networks:build"
            )
        )
        assert got["world_size"] == 2 and expected["world_size"] == 1
        fid = got.pop("classifier_fid"), expected.pop("classifier_fid")
        assert fid[0] == pytest.approx(fid[1], rel=1e-10, abs=1e-10)
        for key in ("compute", "versions", "world_size"):
            got.pop(key), expected.pop(key)
        assert got == expected  # counts, accuracies, label histograms, the encodings' trials: identical


STUDIES = {
    "sfvq": ["--codewords", "4"],
    "fragmentation": ["--model", "encoder", "--samples", "600", "--mixture-components", "2", "--mixture-codes", "100"],
    # InterFaceGAN's 1200 scored latents 3 batches (the last short), the 600 measured ones 2, the re-scoring's
    # 3 x 200 moved latents 2, the path correlation's 3 x 5 x 200 6
    "compare": [
        "--seeds",
        "2",
        "--methods",
        "interfacegan,ganspace,lsd",
        "--directions",
        "3",
        "--latents",
        "200",
        "--edit-latents",
        "140",
        "--reconstructor-steps",
        "1",
        "--reconstructor-validation",
        "100",
        "--measure-samples",
        "600",
        "--param",
        "interfacegan.n_samples=1200",
        "--param",
        "lsd.per_set=2",
    ],
}
TIMINGS = ("seconds", "fit_seconds", "eval_seconds", "reconstructor_seconds")


def _untimed(value: object) -> object:
    """A record less its timings (every key of `TIMINGS`)."""
    if isinstance(value, dict):
        return {key: _untimed(item) for key, item in value.items() if key not in TIMINGS}
    return [_untimed(item) for item in value] if isinstance(value, list) else value


def _one_process(capsys, arguments: list[str], out: Path) -> None:
    """The command ``arguments`` as one process on one thread (as each rank), writing to ``out``."""
    with single_thread(), threadpool_limits(1):
        main([*arguments, "--out", str(out)])
    capsys.readouterr()


def _on_rows(directory: Path, *arguments: str, networks: str = "sharded_networks:build") -> list[str]:
    """``arguments`` on ``networks`` and DIRECTORY/rows.npz (600 training and 140 test rows, `two_ranks`), on the
    CPU in float32, quiet."""
    return [
        *arguments,
        "--networks",
        networks,
        "--dataset",
        f"npz:{directory / 'rows.npz'}",
        "--device",
        "cpu",
        "--precision",
        "float32",
        "--quiet",
    ]


def _command_lines(directory: Path) -> dict[str, list[str]]:
    """The command lines the two ranks run (`two_ranks`) and one process runs again, by step name, less --out:
    the studies of `STUDIES`, `reproduce` (its basis stage sharded, the rest on rank 0), and `compare` on networks
    without an encoder, which inverts its 140 test images in 3 batches of 50 dealt over 2 ranks (rank 0 the
    first and third, rank 1 the second), each image's draws keyed by its row. `compare` draws its figures (rank 0
    alone, the other rank waiting), the others none: their numbers are the point here."""
    figures = {command: () if command == "compare" else ("--no-figures",) for command in STUDIES}
    return {
        **{
            command: _on_rows(directory, command, *STUDIES[command], *figures[command], "--json") for command in STUDIES
        },
        "reproduce": _on_rows(directory, "reproduce", "--per-set", "5", "--trials", "2", "--no-figures"),
        "invert": _on_rows(
            directory,
            "compare",
            *STUDIES["compare"],
            "--inversion-steps",
            "5",
            "--batch-size",
            "50",
            "--no-figures",
            networks="sharded_networks:no_encoder",
        ),
    }


@pytest.mark.parametrize("command", STUDIES)
def test_two_ranks_run_the_study_of_one_process(two_ranks, capsys, command):
    """600 training images (and 600 samples per sampler) are 2 batches of 500, one per rank; the 140 test images
    are one batch, none for rank 1. The one process runs on one thread, as each rank: k-means itself differs
    in the last digit between 1 and 2 threads."""
    results = two_ranks.step(command)
    arguments = [*_command_lines(two_ranks.directory)[command], "--no-figures"]  # compare's: rank 0 drew them
    _one_process(capsys, arguments, two_ranks.directory / f"one-{command}")
    assert results[1][1] == ""  # rank 0 alone prints
    got, expected = (
        json.loads((two_ranks.directory / f"{out}-{command}" / f"{command}.json").read_text()) for out in ("two", "one")
    )
    assert json.loads(results[0][1]) == got
    assert (got.pop("world_size"), expected.pop("world_size")) == (2, 1)
    for record in (got, expected):  # the ranks report the real CPU, this process may pretend another (conftest)
        record["compute"].pop("cpu_native_bfloat16")
        record["config"].pop("figures")
    assert bool(got["figures"]) == (command == "compare") and expected["figures"] == {}
    for key in ("figures", *(("curve",) if command == "sfvq" else ())):
        got.pop(key), expected.pop(key)
    assert _untimed(got) == _untimed(expected)  # every number identical
    if command == "sfvq":
        curves = [load_file(two_ranks.directory / f"{out}-sfvq" / "curve.safetensors") for out in ("two", "one")]
        assert curves[0].keys() == curves[1].keys()
        assert all(torch.equal(curves[0][key], curves[1][key]) for key in curves[0])


def test_two_ranks_reproduce_the_metrics_of_one_process(two_ranks, capsys):
    """`reproduce` under torchrun: its basis stage sharded, the rest on rank 0, metrics.json as one process'."""
    two_ranks.step("reproduce")
    _one_process(capsys, _command_lines(two_ranks.directory)["reproduce"], two_ranks.directory / "one-reproduce")
    got, expected = (
        json.loads((two_ranks.directory / f"{out}-reproduce" / "metrics.json").read_text()) for out in ("two", "one")
    )
    assert (got["basis"].pop("world_size"), expected["basis"].pop("world_size")) == (2, 1)
    for record in (got, expected):
        record.pop("basis_samples_per_second"), record.pop("compute")
    assert _untimed(got) == _untimed(expected)  # the basis, its metrics and every study number identical


def test_two_ranks_invert_the_latents_of_one_process(two_ranks, capsys):
    """`compare` on networks without an encoder (`_command_lines`): the inverted latents, and so compare.json, of
    one process."""
    two_ranks.step("invert")
    _one_process(capsys, _command_lines(two_ranks.directory)["invert"], two_ranks.directory / "one-invert")
    got, expected = (
        json.loads((two_ranks.directory / f"{out}-invert" / "compare.json").read_text()) for out in ("two", "one")
    )
    assert (got.pop("world_size"), expected.pop("world_size")) == (2, 1)
    for record in (got, expected):
        record.pop("compute"), record.pop("figures")
    assert got["inversion"]["inversion"] == "optimize" and got["inversion"]["optimisation"]["images"] == 140
    assert _untimed(got) == _untimed(expected)  # the inverted latents' summary and every number identical
