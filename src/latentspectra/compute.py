"""Where and in which precision the networks run: the device and the floating-point format, chosen from
what this machine offers, and the record that ties a measured number to the hardware that produced it.

``device="auto"`` is CUDA where present, then Apple's MPS, then the CPU. ``precision="auto"`` is
bfloat16 exactly where the hardware reports native bfloat16: a CUDA GPU of compute capability 8.0 or newer,
MPS on macOS 14 or newer, or a CPU with bfloat16 instructions (x86 AVX512-BF16 or AMX, ARM's BF16
extension); everywhere else float32. The choice reads what the hardware reports and nothing it measures, so
the same command on the same machine picks the same precision however loaded the machine is (a timing probe
flipped under load), and every resume key names it. On an x86 CPU without native bfloat16 (AVX2 only),
bfloat16 is emulated and about 8x slower than float32 for the shipped networks (docs/performance.md), so
forcing it there runs after one warning.

This module is the only place that names an accelerator; everything else receives a `Compute`.
"""

from __future__ import annotations

import functools
import platform
import re
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ACCELERATOR_INFERENCE_BATCH_SIZE, DEVICE_CHOICES, INFERENCE_BATCH_SIZE, PRECISIONS
from .errors import ComputeError, SlowPrecisionWarning
from .host import available_host_memory

# A network as the package's math sees it: tensors in, tensors out (a torch module or any callable); the one alias
Network = Callable[[torch.Tensor], torch.Tensor]


def available_devices() -> list[str]:
    """The devices this machine offers, as `--device` spells them."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(spec: str | torch.device = "auto", option: str = "--device") -> torch.device:
    """The torch device named by ``spec``: auto, cpu, cuda, cuda:N or mps (or a torch.device).

    Raises:
        ComputeError: an unknown name, or a device this machine does not have; names ``option`` and the
            devices available here.
    """
    text = str(spec).strip().lower()
    offered = ", ".join(available_devices())
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", text)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise ComputeError(f"{option} {spec}: expected {DEVICE_CHOICES} (this machine offers: {offered})")
    kind = match[1]
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ComputeError(f"{option} {spec}: CUDA is not available on this machine (devices here: {offered})")
        index = int(match[2]) if match[2] is not None else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise ComputeError(f"{option} {spec}: no CUDA device {index} on this machine (devices here: {offered})")
        return torch.device("cuda", index)
    if kind == "mps" and not _mps_available():
        raise ComputeError(
            f"{option} {spec}: MPS (Apple silicon) is not available on this machine (devices here: {offered})"
        )
    return torch.device(kind)


def is_cuda(device: torch.device) -> bool:
    """Whether ``device`` is a CUDA GPU: NCCL's devices, the ones DistributedDataParallel and object collectives
    are told by index."""
    return device.type == "cuda"


def collective_backend(device: torch.device) -> str:
    """The torch.distributed backend for ranks whose work runs on ``device``: NCCL between CUDA GPUs, gloo
    everywhere else (CPUs; an MPS rank's collectives cross over its CPU)."""
    return "nccl" if is_cuda(device) else "gloo"


def bind_local_device(local_rank: int) -> None:
    """Under torchrun, one rank per GPU of a host: make GPU ``local_rank`` this process's current CUDA device,
    so that ``auto`` and ``cuda`` resolve to it; nothing where there is no CUDA."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())


def _cpuinfo_field(pattern: str) -> str | None:
    """The first /proc/cpuinfo field whose name matches ``pattern``; None where there is no such file or field."""
    try:
        match = re.search(rf"^(?:{pattern})\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
    except OSError:
        return None
    return match[1].strip() if match else None


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (x86 "flags", ARM "Features"); empty elsewhere."""
    return set((_cpuinfo_field("flags|Features") or "").split())


def cpu_name() -> str:
    """The CPU's model name (lscpu's "Model name"), or the platform's processor string."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


@functools.cache
def cpu_native_bfloat16() -> bool:
    """True when the CPU has bfloat16 arithmetic in hardware: AVX512-BF16 or AMX on x86, BF16 on ARM.

    Asks torch (which reads cpuinfo) where it can tell, else the kernel's flags. On x86, oneDNN (torch's
    matmul and convolution kernels) must also be allowed to use it: with ``ONEDNN_MAX_CPU_ISA=AVX2`` on such a
    CPU, bfloat16 products are emulated, about five times slower than float32, so the answer is False."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        return _x86_reports_bfloat16() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if machine in ("arm64", "aarch64"):
        return "bf16" in cpu_flags() or bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def _x86_reports_bfloat16() -> bool:
    """True when the x86 processor reports AVX512-BF16 or AMX: torch's reading of cpuinfo, else the flags."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(check is not None for check in checks):
        return any(check() for check in checks if check is not None)
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def native_bfloat16(device: torch.device) -> bool:
    """True where ``device`` runs bfloat16 in hardware: a CUDA GPU of compute capability >= 8.0, Apple MPS
    (macOS 14 or newer), or a CPU with native bfloat16 instructions."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "mps":
        return bool(torch.backends.mps.is_macos_or_newer(14, 0))
    return device.type == "cpu" and cpu_native_bfloat16()


def resolve_precision(spec: str, device: torch.device, option: str = "--precision") -> str:
    """ "float32" or "bfloat16" for ``spec`` (auto, float32 or bfloat16) on ``device``.

    ``auto`` picks bfloat16 where the hardware reports it natively (`native_bfloat16`), float32 elsewhere:
    the same answer on every call and under any load. A forced bfloat16 on a device without native support is
    honoured after a `SlowPrecisionWarning`.

    Raises:
        ComputeError: an unknown ``spec``; names ``option``.
    """
    if spec not in PRECISIONS:
        raise ComputeError(f"{option} {spec}: expected one of {', '.join(PRECISIONS)}")
    native = native_bfloat16(device)
    if spec == "auto":
        return "bfloat16" if native else "float32"
    if spec == "bfloat16" and not native:
        warnings.warn(
            f"{option} bfloat16 on {describe_device(device)}, which has no native bfloat16: it is "
            "emulated there and several times slower than float32",
            SlowPrecisionWarning,
            stacklevel=2,
        )
    return spec


def computes_float64(device: torch.device) -> bool:
    """Whether ``device`` computes in float64: every device but Apple's MPS, which has no float64."""
    return device.type != "mps"


def available_memory(device: torch.device | str = "cpu") -> int | None:
    """Bytes of memory free for new work on ``device``: the GPU's free memory for CUDA, the kernel's
    MemAvailable (or free physical pages) for the CPU; None where the platform does not say (MPS, other
    systems), and then nothing is refused on size."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return available_host_memory() if device.type == "cpu" else None


def check_fits_memory(needed: int, what: str, device: torch.device | str = "cpu") -> None:
    """Refuse work that cannot fit: ``needed`` bytes against `available_memory` of ``device``.

    Raises:
        ComputeError: "``what``: needs about X GiB, Y GiB are available on DEVICE".
    """
    available = available_memory(device)
    if available is not None and needed > available:
        raise ComputeError(
            f"{what}: needs about {needed / 2**30:,.1f} GiB, {available / 2**30:,.1f} GiB are "
            f"available on {torch.device(device)}"
        )


def describe_device(device: torch.device) -> str:
    """A human name for ``device``: the GPU's name, or the CPU's model name and capability."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple MPS ({platform.machine()})"
    return f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()})"


@dataclass(frozen=True)
class Compute:
    """A resolved device and precision: where networks run and in which format.

    ``precision`` applies to the bulk of the work, the generator and classifier on latents and the forward
    passes of training; encoders and classifiers on real images stay float32 (see models/inference.py).
    Build one with `Compute.select`; ``Compute()`` is the CPU in float32.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "float32"
    requested: tuple[str, str] = ("cpu", "float32")  # what the user asked for: (device, precision)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS[1:]:
            raise ComputeError(f"Compute: precision must be float32 or bfloat16, got {self.precision!r}")

    @classmethod
    def select(cls, device: str | torch.device = "auto", precision: str = "auto") -> Compute:
        """Resolve ``device`` (auto, cpu, cuda, cuda:N, mps) and ``precision`` (auto, float32, bfloat16).

        Raises:
            ComputeError: a device this machine does not have, or an unknown name (one line, naming the
                option and what this machine offers).
        """
        resolved = resolve_device(device)
        return cls(resolved, resolve_precision(precision, resolved), (str(device), precision))

    @property
    def bfloat16(self) -> bool:
        return self.precision == "bfloat16"

    @property
    def inference_batch_size(self) -> int:
        """Latents or images per network call that suit the device."""
        return INFERENCE_BATCH_SIZE if self.device.type == "cpu" else ACCELERATOR_INFERENCE_BATCH_SIZE

    def autocast(self) -> AbstractContextManager:
        """bfloat16 autocast on this device (matmuls and convolutions in bfloat16, reductions in float32), or
        a no-op in float32."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bfloat16)

    def generator(self, seed: int) -> torch.Generator:
        """A random stream on this device seeded with ``seed``: latents are drawn where they are used."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def record(self) -> dict[str, Any]:
        """JSON-ready: the device, its name, the precision chosen and asked for, the CPU's capability and
        native bfloat16, the thread count, so that every number can be traced to its hardware."""
        return {
            "device": str(self.device),
            "device_name": describe_device(self.device),
            "precision": self.precision,
            "requested": {"device": self.requested[0], "precision": self.requested[1]},
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_native_bfloat16": cpu_native_bfloat16(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        }
