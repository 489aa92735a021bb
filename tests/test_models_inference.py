"""Inference copies: batch norm folded into the layer before it, channels-last, transposed convolutions as
columns on the CPU, the run's precision."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentspectra.compute import Compute
from latentspectra.models import Autoencoder, Classifier, GaussianEncoder, Generator
from latentspectra.models.inference import (
    ColumnTransposedConv2d,
    InferenceEncoder,
    InferenceNetwork,
    PairMaxPool2d,
    channels_last,
    columns_are_smaller,
    fold_batch_norms,
    is_pair_max_pool,
)


def _with_random_statistics(model: nn.Module) -> nn.Module:
    """Give every batch norm non-trivial running statistics and affine parameters, then eval mode."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator))
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(size, generator=generator))
            module.bias.data.copy_(torch.randn(size, generator=generator))
    return model.eval()


def _batch_norm_count(model: nn.Module) -> int:
    return sum(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


@pytest.mark.parametrize(
    "make, inputs",
    [
        (lambda: Generator(latent_dim=8, width=4, hidden=16), lambda: torch.randn(5, 8)),
        (lambda: Classifier(width=4), lambda: torch.rand(5, 1, 28, 28) * 2 - 1),
    ],
)
def test_folding_removes_every_batch_norm_and_keeps_the_function(make, inputs):
    model = _with_random_statistics(make())
    x = inputs()
    with torch.no_grad():
        expected = model(x)
        fast = InferenceNetwork(model)
        assert _batch_norm_count(model) > 0 and _batch_norm_count(fast) == 0
        torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-4)
        # bfloat16 keeps about 3 significant digits
        reduced = InferenceNetwork(model, Compute(precision="bfloat16"))
        torch.testing.assert_close(reduced(x), expected, rtol=0.05, atol=0.05)
        assert not torch.equal(reduced(x), fast(x)), "bfloat16 must round"
        exact = InferenceNetwork(model, Compute(precision="bfloat16"), full_precision=True)
        torch.testing.assert_close(exact(x), fast(x), rtol=0, atol=0)
    assert _batch_norm_count(model) > 0, "the original network must be left untouched"
    assert fast.config == model.config


def test_fold_in_place_keeps_the_encoder_methods():
    encoder = _with_random_statistics(GaussianEncoder(latent_dim=8, width=4, hidden=16))
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        mu, logvar = encoder(x)
        folded = fold_batch_norms(encoder)
        assert folded is encoder and _batch_norm_count(folded) == 0
        torch.testing.assert_close(folded(x)[0], mu, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(folded(x)[1], logvar, rtol=1e-4, atol=1e-4)
        assert folded.sample(x, torch.Generator().manual_seed(0)).shape == (3, 8)


def test_a_batch_norm_without_a_layer_before_it_stays():
    model = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 4), nn.BatchNorm1d(4)).eval()
    fold_batch_norms(model)
    assert [type(layer) for layer in model] == [nn.ReLU, nn.BatchNorm1d, nn.Linear]


def test_folding_a_training_network_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


@pytest.mark.parametrize(
    "in_channels, out_channels, kernel, stride, padding, output_padding, dilation",
    [
        (32, 1, 4, 2, 1, 0, 1),  # the shipped generator's last layer
        (8, 3, 3, 2, 1, 1, 1),
        (6, 2, 5, 3, 2, 2, 2),
        (4, 4, 2, 1, 0, 0, 1),
    ],
)
def test_columns_compute_the_transposed_convolution(
    in_channels, out_channels, kernel, stride, padding, output_padding, dilation
):
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
    )
    x = torch.randn(3, in_channels, 5, 7)
    with torch.no_grad():
        expected = layer(x)
        for inputs in (x, channels_last(x)):
            result = ColumnTransposedConv2d(layer)(inputs)
            assert result.shape == expected.shape
            torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


def test_columns_replace_only_small_transposed_convolutions_on_the_cpu():
    assert columns_are_smaller(nn.ConvTranspose2d(32, 1, 4)) and not columns_are_smaller(nn.ConvTranspose2d(64, 32, 4))
    assert not columns_are_smaller(nn.ConvTranspose2d(32, 2, 4, groups=2)) and not columns_are_smaller(nn.Linear(2, 2))
    generator = _with_random_statistics(Generator(latent_dim=8, width=16, hidden=16))  # last layer: 16 -> 1 channel
    fast = InferenceNetwork(generator)
    kinds = [type(module) for module in fast.modules()]
    assert kinds.count(ColumnTransposedConv2d) == 1 and kinds.count(nn.ConvTranspose2d) == 1
    with torch.no_grad():
        z = torch.randn(4, 8)
        torch.testing.assert_close(fast(z), generator(z), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(3, 4, 8, 6), (2, 3, 7, 9), (1, 1, 2, 2)])
def test_pair_max_pooling_is_max_pooling(shape):
    x = torch.randn(shape)
    for inputs in (x, channels_last(x)):
        assert torch.equal(PairMaxPool2d()(inputs), nn.functional.max_pool2d(inputs, 2))
    assert is_pair_max_pool(nn.MaxPool2d(2)) and is_pair_max_pool(nn.MaxPool2d((2, 2), stride=2))
    assert not any(
        is_pair_max_pool(layer)
        for layer in (
            nn.MaxPool2d(3),
            nn.MaxPool2d(2, stride=1),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.MaxPool2d(2, padding=1),
        )
    )
    classifier = InferenceNetwork(_with_random_statistics(Classifier(width=4)))
    assert sum(isinstance(module, PairMaxPool2d) for module in classifier.modules()) == 3


def test_single_channel_images_take_the_channels_last_layout_without_a_copy():
    images = torch.rand(5, 1, 28, 28)
    restated = channels_last(images)
    assert restated.stride() == (784, 1, 28, 1) and restated.data_ptr() == images.data_ptr()
    assert torch.equal(restated, images)
    convolved = nn.Conv2d(1, 4, 3)(restated)
    assert convolved.is_contiguous(memory_format=torch.channels_last) and not convolved.is_contiguous()
    several = channels_last(torch.rand(2, 3, 4, 4))
    assert several.is_contiguous(memory_format=torch.channels_last)


def test_inference_encoder_keeps_the_encoder_calls():
    encoder = _with_random_statistics(GaussianEncoder(latent_dim=8, width=4, hidden=16))
    fast = InferenceEncoder(encoder)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        mu, logvar = encoder(x)
        torch.testing.assert_close(fast(x)[0], mu, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast(x)[1], logvar, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fast.encode_mean(x), mu, rtol=1e-4, atol=1e-4)
        first, second = (fast.sample(x, torch.Generator().manual_seed(1)) for _ in range(2))
        assert torch.equal(first, second) and first.shape == (3, 8)
    assert fast.latent_dim == 8 and _batch_norm_count(encoder) > 0


def test_the_autoencoder_decoder_folds_and_keeps_its_function():
    autoencoder = _with_random_statistics(Autoencoder(latent_dim=6, width=4))
    fast = InferenceNetwork(autoencoder.decoder)
    codes = torch.randn(4, 6)
    with torch.no_grad():
        torch.testing.assert_close(fast(codes), autoencoder.decode(codes), rtol=1e-4, atol=1e-4)


def test_an_exact_copy_is_the_network_in_float32_and_passes_gradients_to_its_inputs():
    """`exact`: batch norm folded and nothing else, no autocast even where the run says bfloat16, the output in the
    network's own dtype (float64 after a cast, as REDs takes it), and a gradient with respect to the latents."""
    generator = _with_random_statistics(Generator(latent_dim=8, width=4, hidden=16))
    exact = InferenceNetwork(generator, Compute(precision="bfloat16"), exact=True)
    assert not any(isinstance(module, ColumnTransposedConv2d) for module in exact.modules())
    assert _batch_norm_count(exact) == 0 and exact.compute.precision == "float32"
    z = torch.randn(5, 8, requires_grad=True)
    with torch.no_grad():
        expected = generator(z)
    torch.testing.assert_close(exact(z), expected, atol=1e-5, rtol=1e-5)
    exact(z).square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in exact.parameters())
    assert exact.to(torch.float64)(z.detach().double()).dtype == torch.float64
