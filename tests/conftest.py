"""Shared fixtures: tiny datasets and tiny configs so that every test runs in seconds on 2 cores. torch is imported
where it is used, not here: pytest-xdist's controller, which runs no test, loads this file before it starts its
workers, and importing torch there first held every worker back (1.6 s)."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import spinning
from latentspectra.cli import main
from latentspectra.config import ClassifierConfig, EncoderConfig, GANConfig
from latentspectra.data import ImageDataset, Split, load_dataset


def make_dataset(train: int = 64, test: int = 32, classes: int = 10, seed: int = 0) -> ImageDataset:
    """Random 28 x 28 uint8 images whose class is written as a bright row, so classes are learnable."""
    rng = np.random.default_rng(seed)

    def split(count: int) -> Split:
        labels = rng.integers(0, classes, size=count).astype(np.int64)
        images = rng.integers(0, 40, size=(count, 1, 28, 28)).astype(np.uint8)
        images[np.arange(count), 0, 2 + 2 * labels, :] = 255
        return Split(images=images, labels=labels)

    return ImageDataset(
        name="tiny", train=split(train), test=split(test), classes=tuple(str(i) for i in range(classes))
    )


@pytest.fixture
def tiny_dataset() -> ImageDataset:
    return make_dataset()


@pytest.fixture
def tiny_npz(tmp_path, tiny_dataset):
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        train_images=tiny_dataset.train.images,
        train_labels=tiny_dataset.train.labels,
        test_images=tiny_dataset.test.images,
        test_labels=tiny_dataset.test.labels,
    )
    return path


TINY_CLASSIFIER = ClassifierConfig(epochs=2, batch_size=16, width=4, max_lr=0.01)
TINY_GAN = GANConfig(epochs=2, batch_size=16, latent_dim=8, generator_width=4, discriminator_width=4, hidden=16)
TINY_ENCODER = EncoderConfig(epochs=2, batch_size=16, width=4, hidden=16, warm_up_steps=3)


@pytest.fixture(autouse=True)
def _seeded():
    import torch

    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory) -> Iterator[Path]:
    """No test, nor a command it runs, writes the user's cache: $XDG_CACHE_HOME is this session's own directory
    from before any other fixture starts (so the sprites are drawn once a session)."""
    directory = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(directory))
        yield directory


@pytest.fixture(autouse=True)
def _native_bfloat16_as_asked(monkeypatch):
    """LATENTSPECTRA_TEST_NATIVE_BFLOAT16=1 (or 0) runs the suite as on a CPU with (or without) native bfloat16,
    so that what `auto` picks on the other CPU kind is tried here (in this process; commands run as
    subprocesses see the real CPU). Unset: the real CPU."""
    asked = os.environ.get("LATENTSPECTRA_TEST_NATIVE_BFLOAT16")
    if asked is not None:
        monkeypatch.setattr("latentspectra.compute.cpu_native_bfloat16", lambda: asked == "1")


def one_error_line(err: str) -> str:
    """The single stderr line of a failed command: "latentspectra: error: ..."."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentspectra: error: "), err
    return lines[0]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


# One of `pytest -n 2`'s workers, or a process a test of one starts that imports this file (test_failures' killed
# training child): one core each, not both twice over, and the child at its parent's thread count. At import, from
# the environment the child inherits: a pytest_configure hook would not reach the child.
WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if WORKER:
    import torch

    torch.set_num_threads(1)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker's tests are done: one full garbage collection, then everything still alive is frozen out of the
    collector's sight (`gc.freeze`), so that what follows walks only what is new: pytest's five last collections
    (its check for exceptions raised in finalizers, which a worker does not report to the controller in any case)
    and the interpreter's exit. 3 s less at the suite's end (6.3 -> 3.3 s after the last test). Not in the process
    that reports (xdist's controller, or a run without workers): there the check counts, and hypothesis may first
    be imported for its summary after this and warn that a frozen heap hides the generator it registers."""
    if hasattr(session.config, "workerinput"):  # what pytest-xdist gives its workers alone
        gc.collect()
        gc.freeze()


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reads a run shared by many (the README's end-to-end runs, the session's `readme_runs`, about
    a minute; the launch of two ranks of tests/test_distributed.py, `two_ranks`) is slow: the quick tier
    (-m "not slow") leaves them out; under `pytest -n 2 --dist loadgroup` the readers of one run share one worker,
    so that the run is made once."""
    for item in items:
        for fixture in SHARED_RUNS.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group(fixture))


SHARED_RUNS = {"readme_runs", "two_ranks"}  # fixtures of runs read by many tests (pytest_collection_modifyitems)


@pytest.fixture(scope="session")
def mnist_slice(tmp_path_factory):
    """The first 600 training and 300 test images of MNIST as an npz dataset."""
    mnist = load_dataset("mnist")
    path = tmp_path_factory.mktemp("data") / "mnist-slice.npz"
    np.savez(
        path,
        x_train=mnist.train.images[:600],
        y_train=mnist.train.labels[:600],
        x_test=mnist.test.images[:300],
        y_test=mnist.test.labels[:300],
    )
    return f"npz:{path}"


@pytest.fixture(scope="session")
def readme_runs(tmp_path_factory):
    """Every command line of the README, run once per session as written from a fresh directory with small
    sizes (tests/readme.py)."""
    from readme import run_readme

    return run_readme(tmp_path_factory.mktemp("readme"))


@pytest.fixture
def tiny_models(tmp_path):
    """A models directory of untrained tiny networks (generator, classifier, encoder; M = 10, 10 labels)."""
    from latentspectra.models import Classifier, GaussianEncoder, Generator
    from latentspectra.models.files import save_model

    directory = tmp_path / "tiny-models"
    for name, model in (
        ("generator", Generator(latent_dim=10, width=4, hidden=16)),
        ("classifier", Classifier(width=4)),
        ("encoder", GaussianEncoder(latent_dim=10, width=4, hidden=16)),
    ):
        save_model(directory, name, model.eval(), {"seed": 0})
    return directory


UNPICKLED: list[str] = []  # what a `PickleTrap` recorded: empty unless something unpickled one


def _record_unpickle(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class PickleTrap:
    """Pickles to a call of _record_unpickle, so unpickling would be observable in `UNPICKLED`."""

    def __reduce__(self):
        return (_record_unpickle, ("unpickled!",))


def linear_label_toy(seed: int = 0, dim: int = 20, labels: int = 10):
    """A linear generator G(z) = z Q (Q orthogonal) and a classifier whose logits are z . w_alpha for orthonormal
    class directions w_alpha (the columns of W, returned too): every label about equally frequent, the etas
    independent; M = ``dim``, l = ``labels`` <= M."""
    import torch

    rng = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(dim, dim, generator=rng)).Q
    w = torch.linalg.qr(torch.randn(dim, labels, generator=rng)).Q

    def generator(z: torch.Tensor) -> torch.Tensor:
        return z @ q.to(z.dtype)

    def classifier(images: torch.Tensor) -> torch.Tensor:
        return images @ (q.T @ w).to(images.dtype)

    return generator, classifier, w


def rewrite_pair(path, change, tensors_change=None) -> None:
    """Rewrite the safetensors file ``path`` and its JSON record as one unit, as latentspectra writes them, with
    ``change(record)`` (and ``tensors_change(tensors)``) applied: a consistent pair whose content is wrong."""
    from latentspectra.errors import CheckpointError
    from latentspectra.io import load_tensors_and_record, save_tensors_with_record

    tensors, record = load_tensors_and_record(path, CheckpointError, "test file")
    save_tensors_with_record(path, tensors_change(tensors) if tensors_change else tensors, change(record))


def assert_traces_hardware(record: dict) -> None:
    """A run's record names the hardware its numbers came from: device (the CPU, or the accelerator `auto`
    picks on a machine that has one), its name, precision, CPU capability, threads."""
    import torch

    from latentspectra.compute import resolve_device

    compute = record["compute"]
    assert compute["device"] in {"cpu", str(resolve_device("auto"))}
    assert compute["precision"] in ("float32", "bfloat16")
    assert compute["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and compute["device_name"]
    assert compute["threads"] == torch.get_num_threads()


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """``count`` processes that keep a core each busy until the block ends: the load under which a result must
    not change. The block starts once every one of them spins (`spinning.spin`), 30 s at most."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Barrier(count + 1), context.Event()
    workers = [context.Process(target=spinning.spin, args=(ready, stop), daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    try:
        ready.wait(timeout=30)
        yield
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
