"""Device and precision: what `auto` picks, what a machine without the asked-for hardware says, what every
record states, and that nothing outside compute.py names an accelerator."""

from __future__ import annotations

import json
import os
import platform
import re
import time
from pathlib import Path

import pytest
import torch

import latentspectra
from conftest import busy_cores, run_cli
from latentspectra import compute as compute_module
from latentspectra.compute import (
    Compute,
    ComputeError,
    SlowPrecisionWarning,
    resolve_device,
    resolve_precision,
)
from latentspectra.compute import (
    cpu_native_bfloat16 as real_cpu_native_bfloat16,  # the cached function, whatever a fixture patches in
)
from latentspectra.models.files import shipped_models_dir

CPU = torch.device("cpu")
MNIST_MODELS = shipped_models_dir("mnist")


@pytest.fixture
def no_accelerator(monkeypatch):
    """This machine as one without CUDA or MPS, whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(compute_module, "_mps_available", lambda: False)


@pytest.fixture
def native(monkeypatch):
    """Pretend the CPU has native bfloat16 (its flags) or not."""

    def set_native(flags: bool) -> None:
        monkeypatch.setattr(compute_module, "cpu_native_bfloat16", lambda: flags)

    return set_native


def test_auto_is_the_cpu_without_an_accelerator(no_accelerator):
    assert resolve_device("auto") == CPU and resolve_device("cpu") == CPU and resolve_device(CPU) == CPU


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("cuda", "CUDA is not available"),
        ("cuda:1", "CUDA is not available"),
        ("mps", "MPS (Apple silicon) is not available"),
        ("tpu", "expected auto, cpu, cuda"),
        ("cpu:1", "expected auto"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line_naming_the_option_and_what_it_offers(no_accelerator, spec, expected):
    with pytest.raises(ComputeError) as error:
        resolve_device(spec)
    message = str(error.value)
    assert message.startswith(f"--device {spec}: ") and expected in message and "cpu" in message.split(expected)[-1]
    assert "\n" not in message


def test_a_cuda_index_beyond_the_devices_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("auto") == torch.device("cuda", 0)
    with pytest.raises(ComputeError, match=r"no CUDA device 2 .*cuda:0, cuda:1"):
        resolve_device("cuda:2")


def test_auto_precision_follows_what_the_hardware_reports(native):
    native(flags=False)
    assert resolve_precision("auto", CPU) == "float32"
    native(flags=True)
    assert resolve_precision("auto", CPU) == "bfloat16"
    with pytest.raises(ComputeError, match="--precision float16: expected one of auto, float32, bfloat16"):
        resolve_precision("float16", CPU)


def test_forced_bfloat16_without_native_support_runs_after_a_warning(native):
    native(flags=False)
    with pytest.warns(SlowPrecisionWarning, match="no native bfloat16"):
        assert resolve_precision("bfloat16", CPU) == "bfloat16"
    native(flags=True)
    assert resolve_precision("bfloat16", CPU) == "bfloat16"  # no warning: pytest turns warnings into errors


def test_the_cpu_reports_native_bfloat16_as_torch_sees_it():
    if os.environ.get("LATENTSPECTRA_TEST_NATIVE_BFLOAT16") is not None:
        pytest.skip("LATENTSPECTRA_TEST_NATIVE_BFLOAT16 pretends another CPU's report")
    flags = compute_module.cpu_flags()
    if {"avx512_bf16", "amx_bf16"} & flags:
        assert compute_module.cpu_native_bfloat16() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    elif "avx2" in flags:
        assert not compute_module.cpu_native_bfloat16()


def test_bfloat16_is_native_only_where_onednn_may_run_it(monkeypatch):
    """An x86 CPU that reports AVX512-BF16 but whose oneDNN is held below it (ONEDNN_MAX_CPU_ISA=AVX2) emulates
    bfloat16 products, about five times slower than float32: `auto` must not pick it there."""
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(compute_module, "_x86_reports_bfloat16", lambda: True)
    try:
        for onednn in (True, False):
            monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda onednn=onednn: onednn)
            real_cpu_native_bfloat16.cache_clear()
            assert real_cpu_native_bfloat16() is onednn
    finally:
        real_cpu_native_bfloat16.cache_clear()


@pytest.mark.slow
def test_auto_precision_measures_nothing_so_load_cannot_flip_it(monkeypatch):
    """The choice reads the hardware's report only: with both cores busy and every clock broken, `auto` is
    what the flags say, every time."""

    def no_clock() -> float:
        raise AssertionError("auto precision must not time anything")

    monkeypatch.setattr(time, "perf_counter", no_clock)
    monkeypatch.setattr(time, "time", no_clock)
    expected = "bfloat16" if compute_module.cpu_native_bfloat16() else "float32"
    with busy_cores(2):
        choices = {Compute.select("cpu", "auto").precision for _ in range(20)}
    assert choices == {expected}


@pytest.mark.slow
def test_the_same_basis_command_gives_the_same_bytes_under_load(capsys, tmp_path, mnist_slice):
    """Same command, seed and machine, through `auto`, once idle and once with both cores busy: the same basis,
    byte for byte, and the same precision in both records."""

    def basis(name: str) -> tuple[bytes, str]:
        out = tmp_path / f"{name}.safetensors"
        code, stdout, err = run_cli(
            capsys,
            "basis",
            "--dataset",
            mnist_slice,
            "--models",
            str(MNIST_MODELS),
            "--per-set",
            "3",
            "--device",
            "cpu",
            "--precision",
            "auto",
            "--out",
            str(out),
            "--json",
            "--quiet",
        )
        assert code == 0, err
        return out.read_bytes(), json.loads(stdout)["compute"]["precision"]

    idle = basis("idle")
    with busy_cores(2):
        loaded = basis("loaded")
    assert idle[1] == loaded[1] and idle[0] == loaded[0]


def test_a_compute_record_traces_the_hardware(native):
    native(flags=False)
    record = Compute.select("cpu", "auto").record()
    assert record["device"] == "cpu" and record["precision"] == "float32"
    assert record["requested"] == {"device": "cpu", "precision": "auto"}
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["threads"] == torch.get_num_threads() and record["cpu_native_bfloat16"] is False
    assert record["device_name"].endswith(f"({record['cpu_capability']})")


def test_compute_on_the_cpu_batches_for_its_cache_and_draws_there():
    compute = Compute()
    assert compute.inference_batch_size == latentspectra.config.INFERENCE_BATCH_SIZE
    assert compute.generator(3).device == CPU
    assert torch.equal(torch.randn(4, generator=compute.generator(3)), torch.randn(4, generator=compute.generator(3)))
    with compute.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with Compute(precision="bfloat16").autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ComputeError):
        Compute(precision="auto")


def test_nothing_outside_compute_names_an_accelerator():
    """Device choice lives in compute.py; everything else receives a Compute or a device."""
    root = Path(latentspectra.__file__).parent
    pattern = re.compile(r"\.cuda\(|[\"']cuda[\"':]|[\"']mps[\"']|torch\.cuda\.|torch\.backends\.mps")
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "compute.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "command",
    [
        ["basis", "--out", "{out}/basis.safetensors"],
        ["reproduce", "--out", "{out}"],
        ["evaluate"],
        ["sfvq", "--out", "{out}"],
        ["reds", "--out", "{out}"],
        ["fragmentation", "--out", "{out}"],
        ["train", "gan", "--out", "{out}"],
    ],
)
@pytest.mark.parametrize(
    "option, expected",
    [
        (["--device", "cuda"], "--device cuda: CUDA is not available"),
        (["--device", "mps"], "--device mps: MPS"),
        (["--device", "gpu"], "--device gpu: expected"),
        (["--precision", "half"], "'--precision'"),
    ],
)
def test_every_network_command_refuses_a_device_it_lacks_before_writing(
    capsys, tmp_path, no_accelerator, command, option, expected
):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *[part.format(out=out) for part in command], *option)
    assert code == 2 and err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.filterwarnings("default::latentspectra.compute.SlowPrecisionWarning")
def test_forced_bfloat16_on_an_emulating_cpu_warns_once_and_runs(capsys, native, tiny_models, tiny_npz):
    native(flags=False)
    code, stdout, err = run_cli(
        capsys,
        "evaluate",
        "--models",
        str(tiny_models),
        "--dataset",
        f"npz:{tiny_npz}",
        "--precision",
        "bfloat16",
        "--json",
    )
    assert code == 0, err
    assert err.count("latentspectra: warning:") == 1 and err.count("\n") == 1 and "slower" in err
    assert json.loads(stdout)["compute"]["precision"] == "bfloat16"
