"""Fast inference copies of trained networks, for the loops that push hundreds of thousands of latents
through G and C (the latent sets of Methods steps 4-5, the evaluations).

A copy is frozen, on the run's device, and exact up to rounding in float32:

- batch norm folded into the convolution or linear layer before it (`torch.nn.utils.fusion`), which
  removes a full pass over every activation tensor;
- channels-last memory layout, which makes oneDNN's and cuDNN's convolutions and max-pooling vectorise
  well (single-channel images included, whose strides PyTorch would otherwise leave in NCHW order);
- on the CPU, a transposed convolution with few output channels (an image-producing layer) computed as
  one matmul to columns and an overlap-add (strided adds): oneDNN's deconvolution takes as long for 1 output
  channel as for 16, 2.4x the matmul form for the shipped generator's last layer; and a 2 x 2 max-pooling
  as the elementwise maximum of its four strided views, half the time of ATen's kernel on channels-last
  maps (exact; docs/performance.md);

and, where the run's `Compute` says bfloat16, the forward pass under bfloat16 autocast (faster only on
hardware with native bfloat16; about 0.2% of generated digits change their argmax label).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, TypeGuard, TypeVar, cast

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from ..compute import Compute
from .encoder import GaussianEncoder
from .foreign import ForeignEncoder, ForeignNetwork

_ModuleT = TypeVar("_ModuleT", bound=nn.Module)

_FOLDABLE = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _folded_pair(layer: nn.Module, norm: nn.Module) -> nn.Module | None:
    """``layer`` with the eval-mode batch norm ``norm`` folded in, or None when the pair does not fold."""
    if not isinstance(norm, _BATCH_NORMS) or not isinstance(layer, _FOLDABLE) or not norm.track_running_stats:
        return None
    if isinstance(layer, nn.Linear):
        return fuse_linear_bn_eval(layer, norm) if isinstance(norm, nn.BatchNorm1d) else None
    if not isinstance(norm, nn.BatchNorm2d):
        return None
    return fuse_conv_bn_eval(layer, norm, transpose=isinstance(layer, nn.ConvTranspose2d))


def _replace_in_sequentials(module: _ModuleT, rewrite) -> _ModuleT:
    """Replace the layers of every `nn.Sequential` inside ``module`` (in place) by ``rewrite(layers)``, a
    new list of layers; children are rewritten first. Returns ``module``."""
    for child in module.children():
        _replace_in_sequentials(child, rewrite)
    if isinstance(module, nn.Sequential):
        kept = rewrite(list(module))
        for name in list(module._modules):
            del module._modules[name]
        for position, layer in enumerate(kept):
            module.add_module(str(position), layer)
    return module


def _fold_layers(layers: list[nn.Module]) -> list[nn.Module]:
    kept: list[nn.Module] = []
    index = 0
    while index < len(layers):
        folded = _folded_pair(layers[index], layers[index + 1]) if index + 1 < len(layers) else None
        kept.append(folded if folded is not None else layers[index])
        index += 2 if folded is not None else 1
    return kept


def fold_batch_norms(module: _ModuleT) -> _ModuleT:
    """Fold every batch norm that directly follows a convolution or linear layer inside an
    `nn.Sequential` into that layer, in place; ``module`` must be in eval mode. Returns ``module``."""
    if module.training:
        raise ValueError("fold_batch_norms needs a module in eval mode (batch norm uses its running statistics)")
    if isinstance(module, ForeignNetwork):  # a user's layers are left as they are
        return module
    return _replace_in_sequentials(module, _fold_layers)


class ColumnTransposedConv2d(nn.Module):
    """A `nn.ConvTranspose2d` (groups 1) computed as its definition reads: each input pixel times the
    kernel gives a column of output contributions (one matmul), and the columns are summed into place, one
    strided add per kernel offset into a float32 output (an overlap-add, what `F.fold` computes, in about
    half its time). Same function up to rounding; on the CPU faster than oneDNN's deconvolution when the
    columns are no larger than the input (out_channels x kernel area <= in_channels)."""

    columns: torch.Tensor  # buffers, declared for the type checker (register_buffer sets them)
    bias: torch.Tensor | None

    def __init__(self, layer: nn.ConvTranspose2d):
        super().__init__()
        if layer.groups != 1 or layer.padding_mode != "zeros":
            raise ValueError("ColumnTransposedConv2d: only groups=1 with zero padding")
        in_channels, out_channels, kernel_h, kernel_w = layer.weight.shape
        # (in, kh * kw * out): row c holds what one unit of input channel c adds around its pixel, kernel
        # offset by kernel offset
        self.register_buffer("columns", layer.weight.detach().permute(0, 2, 3, 1).reshape(in_channels, -1).contiguous())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())
        self.out_channels = out_channels
        self.kernel_size = (kernel_h, kernel_w)
        # a transposed convolution's padding is never a string ("same", "valid"): it is a pair of ints
        self.stride, self.padding = layer.stride, cast(tuple[int, ...], layer.padding)
        self.dilation, self.output_padding = layer.dilation, layer.output_padding

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The output's (H, W), as `nn.ConvTranspose2d` computes it."""
        return tuple(
            (size - 1) * stride - 2 * pad + dilation * (kernel - 1) + extra + 1
            for size, stride, pad, dilation, kernel, extra in zip(
                (height, width), self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding
            )
        )

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = inputs.shape
        kernel_h, kernel_w = self.kernel_size
        # (N, H W, in) @ (in, kh kw out): a matmul on the channels-last input, no copy
        pixels = inputs.permute(0, 2, 3, 1).reshape(batch, height * width, channels)
        columns = (pixels @ self.columns).view(batch, height, width, kernel_h, kernel_w, self.out_channels)
        out_h, out_w = self.output_size(height, width)
        (stride_h, stride_w), (pad_h, pad_w) = self.stride, self.padding
        (dilation_h, dilation_w) = self.dilation
        # the uncropped output: every contribution lands inside it, the padding is cut off afterwards
        full = torch.zeros(
            batch, out_h + 2 * pad_h, out_w + 2 * pad_w, self.out_channels, dtype=torch.float32, device=inputs.device
        )
        for row in range(kernel_h):
            for column in range(kernel_w):
                top, left = row * dilation_h, column * dilation_w
                full[
                    :,
                    top : top + stride_h * (height - 1) + 1 : stride_h,
                    left : left + stride_w * (width - 1) + 1 : stride_w,
                ] += columns[:, :, :, row, column]
        output = full[:, pad_h : pad_h + out_h, pad_w : pad_w + out_w].permute(0, 3, 1, 2).to(inputs.dtype)
        if self.bias is not None:
            output = output + self.bias.view(1, -1, 1, 1)
        return output


class PairMaxPool2d(nn.Module):
    """`nn.MaxPool2d(2)` (kernel 2, stride 2, no padding) as the maximum of the four strided views of its
    input: the same values, and on the CPU about half the time of the pooling kernel on channels-last maps."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        height, width = inputs.shape[-2] // 2 * 2, inputs.shape[-1] // 2 * 2
        rows = torch.maximum(inputs[..., 0:height:2, :], inputs[..., 1:height:2, :])
        return torch.maximum(rows[..., 0:width:2], rows[..., 1:width:2])


def is_pair_max_pool(layer: nn.Module) -> bool:
    """A max-pooling that `PairMaxPool2d` computes: kernel 2, stride 2, no padding or dilation, floor mode."""

    def pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
        return tuple(value) if isinstance(value, tuple) else (value, value)

    return (
        isinstance(layer, nn.MaxPool2d)
        and not layer.return_indices
        and not layer.ceil_mode
        and (pair(layer.kernel_size), pair(layer.stride), pair(layer.padding), pair(layer.dilation))
        == ((2, 2), (2, 2), (0, 0), (1, 1))
    )


def _cpu_layer(layer: nn.Module) -> nn.Module:
    """``layer``, or its faster equivalent on a CPU."""
    if columns_are_smaller(layer):
        return ColumnTransposedConv2d(layer)
    return PairMaxPool2d() if is_pair_max_pool(layer) else layer


def columns_are_smaller(layer: nn.Module) -> TypeGuard[nn.ConvTranspose2d]:
    """A groups-1 transposed convolution whose columns (out_channels x kernel area values per input pixel) are
    no larger than its input (in_channels): the layers `ColumnTransposedConv2d` computes faster on a CPU."""
    if not isinstance(layer, nn.ConvTranspose2d) or layer.groups != 1 or layer.padding_mode != "zeros":
        return False
    in_channels, out_channels, kernel_h, kernel_w = layer.weight.shape
    return out_channels * kernel_h * kernel_w <= in_channels


def channels_last(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images in channels-last layout. A contiguous single-channel batch already has that layout
    in memory; only its strides are restated (no copy), so that convolutions take their channels-last path."""
    if images.shape[1] == 1 and images.is_contiguous():
        _, _, height, width = images.shape
        return images.as_strided(images.shape, (height * width, 1, width, 1))
    return images.contiguous(memory_format=torch.channels_last)


def frozen(network: _ModuleT) -> _ModuleT:
    """An eval-mode copy of a package network that may be changed freely; a user's network (`ForeignNetwork`)
    itself, frozen: its layers are its own, and copying an exported program is not supported by torch."""
    if isinstance(network, ForeignNetwork):
        return network.eval().requires_grad_(False)
    return copy.deepcopy(network).eval()


def inference_copy(network: _ModuleT, device: torch.device) -> _ModuleT:
    """A frozen copy of ``network`` with batch norms folded, channels-last, on ``device``; on the CPU its
    transposed convolutions with small columns become `ColumnTransposedConv2d` and its 2 x 2 max-poolings
    `PairMaxPool2d`. ``network`` is untouched, except a user's network (`frozen`), which is only moved."""
    if isinstance(network, ForeignNetwork):
        return frozen(network).to(device)
    module = fold_batch_norms(frozen(network)).requires_grad_(False)
    if device.type == "cpu":
        _replace_in_sequentials(module, lambda layers: [_cpu_layer(layer) for layer in layers])
    # Module.to takes memory_format (torch._C._nn._parse_to reads it), but torch's overloads do not declare it
    return module.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]


def _prepared(inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    inputs = inputs.to(device)
    return channels_last(inputs) if inputs.ndim == 4 else inputs


def exact_copy(network: _ModuleT, device: torch.device) -> _ModuleT:
    """A frozen float32 copy of ``network`` with batch norms folded, on ``device``, and nothing else changed: exact
    up to rounding, and differentiable with respect to its inputs. A user's network is only frozen and moved."""
    if isinstance(network, ForeignNetwork):
        return frozen(network).to(device)
    return fold_batch_norms(frozen(network)).requires_grad_(False).to(device)


class InferenceNetwork(nn.Module):
    """A frozen, batch-norm-folded, channels-last copy of ``network`` on ``compute.device`` whose forward pass
    runs under ``compute``'s precision (float32 when ``full_precision``) and returns float32 outputs on that
    device; with ``exact``, the float32 `exact_copy` instead, called as it is (no faster layers, no autocast,
    outputs in its own dtype), for those that differentiate through it. Inputs are moved to the device. Keeps the
    network's ``config``."""

    def __init__(
        self, network: nn.Module, compute: Compute | None = None, *, full_precision: bool = False, exact: bool = False
    ):
        super().__init__()
        compute = compute or Compute()
        self.compute = replace(compute, precision="float32") if full_precision or exact else compute
        self.device = compute.device
        self.exact = exact
        self.network = exact_copy(network, self.device) if exact else inference_copy(network, self.device)
        self.config: dict[str, Any] = dict(getattr(network, "config", {}))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._run(self.network, inputs)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The network's own ``features(inputs)`` (a classifier's penultimate layer; a user's classifier without
        them: its logits), run as `forward` is."""
        return self._run(self.network.features, inputs)

    def _run(self, function, inputs: torch.Tensor) -> torch.Tensor:
        if self.exact:
            return function(inputs.to(self.device))
        with self.compute.autocast():
            outputs = function(_prepared(inputs, self.device))
        return outputs.float().contiguous()


class InferenceEncoder:
    """A Gaussian encoder's inference copy (as `InferenceNetwork`, always float32: its codes are what the
    latent sets average; with ``exact``, its `exact_copy`) with the encoder's own calls: ``(mu, logvar)``,
    `encode_mean` and `sample`."""

    def __init__(
        self, encoder: GaussianEncoder | ForeignEncoder, compute: Compute | None = None, *, exact: bool = False
    ):
        self.device = (compute or Compute()).device
        self.network = (exact_copy if exact else inference_copy)(encoder, self.device)
        self.latent_dim = int(encoder.latent_dim)
        self.config: dict[str, Any] = dict(getattr(encoder, "config", {}))

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network(_prepared(images, self.device))

    def encode_mean(self, images: torch.Tensor) -> torch.Tensor:
        """mu(x) (N, M)."""
        return self.network.encode_mean(_prepared(images, self.device))

    def sample(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One stochastic encoding z = mu + sigma * eps, eps drawn from ``generator`` (on this device)."""
        return self.network.sample(_prepared(images, self.device), generator)
