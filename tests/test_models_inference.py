"""Inference copies: batch norm folded into the layer before it, channels-last, optional bfloat16."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentspectra.models import Classifier, GaussianEncoder, Generator
from latentspectra.models.inference import InferenceNetwork, fold_batch_norms


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


@pytest.mark.parametrize("make, inputs", [
    (lambda: Generator(latent_dim=8, width=4, hidden=16), lambda: torch.randn(5, 8)),
    (lambda: Classifier(width=4), lambda: torch.rand(5, 1, 28, 28) * 2 - 1),
])
def test_folding_removes_every_batch_norm_and_keeps_the_function(make, inputs):
    model = _with_random_statistics(make())
    x = inputs()
    with torch.no_grad():
        expected = model(x)
        fast = InferenceNetwork(model, bfloat16=False)
        assert _batch_norm_count(model) > 0 and _batch_norm_count(fast) == 0
        torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-4)
        # bfloat16 keeps about 3 significant digits
        torch.testing.assert_close(InferenceNetwork(model)(x), expected, rtol=0.05, atol=0.05)
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
