"""Learned directions (methods/learned.py, Voynov & Babenko 2020) on toy generators whose factors are the latent
axes: the directions find the axes, the same seed gives the same directions, the generator stays frozen, and
misuse is one-line MethodErrors. The contract itself (edit, transform, files) is in test_directions.py."""

from __future__ import annotations

import json
from itertools import permutations

import pytest
import torch
from torch import nn

from latentspectra.methods import LearnedDirections, MethodError, get
from latentspectra.methods.learned import (
    build_reconstructor,
    checkpoint_steps,
    direction_rows,
    draw_shifts,
    train_reconstructor,
    train_steps,
)
from latentspectra.models.gan import Generator

SIZE = 33  # the toy's images are 1 x 33 x 33 (the authors' LeNet takes 32 and more): three bands of 11 rows


class MirroredBumps(nn.Module):
    """G(z) for z of M = 3: band i of a 1 x 33 x 33 image holds a Gaussian bump at column 1 + |z_i|.

    Each factor is told apart at a glance (it moves its own band), and the response is even, so an edit's sign
    cannot be read from a band: an edit along e_1 + e_2 looks like one along e_1 - e_2, and only directions along
    single axes are always told apart. ``flat`` gives the 1,089 pixels as vectors (N, 1089) instead of images."""

    latent_dim = 3

    def __init__(self, flat: bool = False) -> None:
        super().__init__()
        self.flat = flat

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        centres = 1 + z.abs()  # (N, 3)
        rows = torch.exp(-((torch.arange(float(SIZE)) - centres[..., None]) ** 2) / 2)  # (N, 3, 33)
        images = rows.repeat_interleave(SIZE // 3, dim=1)[:, None]  # (N, 1, 33, 33)
        return images.flatten(1) if self.flat else images


def best_matching(directions: torch.Tensor) -> torch.Tensor:
    """|cos| of each direction with the factor axis a one-to-one matching gives it, the matching that maximises
    the smallest of them."""
    cosines = directions.abs()  # rows are unit vectors; the axes are e_0 .. e_2
    matchings = [cosines[torch.arange(len(cosines)), list(order)] for order in permutations(range(cosines.shape[1]))]
    return max(matchings, key=lambda matched: float(matched.min()))


@pytest.mark.slow
def test_learned_directions_align_with_the_factor_axes():
    """100 steps, about 2.5 s on 2 cores (1.5 s of it torch importing its compiler for the first Adam). With the
    factors in 3 of M coordinates, some seeds keep a direction along the ignored ones, where the loss has no
    gradient once R tells the directions apart: M = 4, 400 steps, one seed in six (|cos| 0.73-0.81); M = 6, 300
    steps, one in four (a direction wholly in the ignored coordinates). Hence M = 3 here: seeds 0-5 all reach
    |cos| > 0.99 within 100 steps."""
    params = {"n_directions": 3, "learning_rate": 3e-2, "n_validation": 320, "seed": 0}
    method = LearnedDirections(steps=100, **params).fit(generator=MirroredBumps())
    assert bool((best_matching(method.directions_) > 0.8).all()), method.directions_
    assert torch.allclose(method.directions_ @ method.directions_.T, torch.eye(3), atol=1e-5)
    assert method.reconstructor_accuracy_ > 0.8  # chance: 1/3
    assert [entry["steps"] for entry in method.history_] == list(range(10, 101, 10))
    assert json.loads(json.dumps(method.history_)) == method.history_
    untrained = LearnedDirections(steps=1, **params).fit(generator=MirroredBumps())  # the same initial frame
    assert not bool((best_matching(untrained.directions_) > 0.8).all()), untrained.directions_


def test_same_seed_same_directions_on_vector_outputs():
    """The MLP reconstructor (outputs (N, D)); the global torch generator is left as it was."""
    generator = MirroredBumps(flat=True)
    state = torch.random.get_rng_state()
    first = LearnedDirections(2, steps=20, n_validation=64, seed=5).fit(generator=generator)
    assert torch.equal(torch.random.get_rng_state(), state)
    second = LearnedDirections(2, steps=20, n_validation=64, seed=5).fit(generator=generator)
    assert torch.equal(first.directions_, second.directions_)
    assert first.history_ == second.history_ and first.reconstructor_accuracy_ == second.reconstructor_accuracy_
    other = LearnedDirections(2, steps=20, n_validation=64, seed=6).fit(generator=generator)
    assert not torch.equal(other.directions_, first.directions_)


def test_unit_directions_with_the_linear_deformator():
    method = LearnedDirections(3, steps=10, deformator="linear", n_validation=32).fit(generator=MirroredBumps())
    assert torch.allclose(method.directions_.norm(dim=1), torch.ones(3), atol=1e-6)
    assert not torch.allclose(method.directions_ @ method.directions_.T, torch.eye(3), atol=1e-3)


def test_the_authors_ortho_deformator_is_a_rotation_whose_first_columns_are_the_directions():
    """The authors' "ortho" A (expm of a skew-symmetric M x M matrix, its first K columns): orthonormal rows."""
    method = LearnedDirections(2, steps=10, deformator="expm", n_validation=32).fit(generator=MirroredBumps())
    assert torch.allclose(method.directions_ @ method.directions_.T, torch.eye(2), atol=1e-5)
    free = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    rotation = torch.linalg.matrix_exp(free - free.T)
    assert torch.allclose(direction_rows(free, "expm", 3), rotation[:, :3].T)


def test_the_convergence_curve_is_read_at_the_doublings():
    """R's held-out accuracy after steps/16, ..., steps, on draws of their own, and the gain of the last doubling."""
    generator = MirroredBumps()
    method = LearnedDirections(2, steps=32, n_validation=64, seed=1).fit(generator=generator)
    assert method.convergence_["steps"] == checkpoint_steps(32) == [2, 4, 8, 16, 32]
    assert checkpoint_steps(2000) == [125, 250, 500, 1000, 2000]  # longer budgets: halved down to CURVE_FIRST
    assert checkpoint_steps(16000) == [125, 250, 500, 1000, 2000, 4000, 8000, 16000]
    assert all(0 <= value <= 1 for value in method.convergence_["reconstructor_accuracy"])
    record = method.fit_record()["convergence"]
    assert record["last_doubling_gain"] == pytest.approx(
        record["reconstructor_accuracy"][-1] - record["reconstructor_accuracy"][-2]
    )


@pytest.mark.slow
def test_a_tolerance_stops_training_once_two_doublings_add_less():
    """With a tolerance the fit stops at the first point of the curve, from steps/8 on, where the last two
    doublings each moved R's accuracy by less; the steps it ran are the curve's last point, and training to there
    without a tolerance gives the same directions."""
    generator = MirroredBumps()
    # a rate at which R's accuracy rises steadily with either CPU kind's kernels (at 3e-2 it fell at step 200 with
    # oneDNN's AVX2 kernels, and the fit ran to the end)
    params = {"n_directions": 3, "learning_rate": 1e-2, "n_validation": 320, "seed": 0}
    stopped = LearnedDirections(steps=800, tolerance=0.05, **params).fit(generator=generator)
    curve = stopped.convergence_
    ran = curve["steps"][-1]
    assert curve["steps"] == checkpoint_steps(800)[: len(curve["steps"])] and ran < 800
    gains = [b - a for a, b in zip(curve["reconstructor_accuracy"], curve["reconstructor_accuracy"][1:])]
    flat = [abs(gain) < 0.05 for gain in gains]
    judged = [step >= 800 // 8 for step in curve["steps"][1:]]
    stops = [index for index in range(1, len(gains)) if flat[index - 1] and flat[index] and judged[index]]
    assert stops == [len(gains) - 1]
    assert stopped.history_[-1]["steps"] == ran
    assert stopped.fit_record()["convergence"]["tolerance"] == 0.05
    assert stopped.fit_record()["convergence"]["converged"] is True
    assert torch.equal(LearnedDirections(steps=ran, **params).fit(generator=generator).directions_, stopped.directions_)
    with pytest.raises(MethodError, match="LearnedDirections: tolerance expected a finite number > 0, got 0"):
        get("learned", n_directions=2, tolerance=0)


def test_the_generator_stays_frozen():
    generator = Generator(latent_dim=8, width=2, hidden=16).eval()
    weights = {name: value.clone() for name, value in generator.state_dict().items()}
    method = LearnedDirections(2, steps=3, batch_size=4, n_validation=8).fit(generator=generator)
    assert method.directions_.shape == (2, 8)
    assert all(torch.equal(value, weights[name]) for name, value in generator.state_dict().items())
    assert all(parameter.grad is None and parameter.requires_grad for parameter in generator.parameters())


@pytest.mark.slow
def test_train_reconstructor_tells_distinct_frozen_directions_apart():
    """R alone on frozen directions (the compare study's reconstructor accuracy): the toy's axes, each moving its own
    band, are told apart; three copies of one axis cannot be (chance 1/3). The global torch generator is left as it
    was and the same seed gives the same accuracy."""
    generator, state = MirroredBumps(), torch.random.get_rng_state()
    params = {"steps": 60, "learning_rate": 3e-2, "n_validation": 320, "seed": 0}
    axes = train_reconstructor(generator, torch.eye(3), **params)
    assert axes > 0.9
    assert torch.equal(torch.random.get_rng_state(), state)
    assert train_reconstructor(generator, torch.eye(3), **params) == axes
    same = train_reconstructor(generator, torch.eye(3)[[0, 0, 0]], **params)
    assert 0.2 < same < 0.47
    with pytest.raises(MethodError, match="train_reconstructor: steps expected an integer >= 1, got 0"):
        train_reconstructor(generator, torch.eye(3), steps=0)


def test_misuse_is_one_line_method_errors():
    with pytest.raises(MethodError, match=r"LearnedDirections: generator expected \(fit\(generator=...\)\), got None"):
        LearnedDirections(2, latent_dim=3).fit()
    with pytest.raises(MethodError, match="LearnedDirections: latent_dim expected"):
        LearnedDirections(2).fit(generator=lambda z: z)
    with pytest.raises(
        MethodError,
        match=r"generator expected outputs of shape \(N, D\) or \(N, C, H, W\), "
        r"got \(2, 3, 4\)",
    ):
        LearnedDirections(2, latent_dim=3).fit(generator=lambda z: z[:, :, None].expand(-1, -1, 4))
    with pytest.raises(MethodError, match="LearnedDirections: max_shift expected a finite number >= 2, got 1.0"):
        get("learned", n_directions=2, min_shift=2.0, max_shift=1.0)
    with pytest.raises(MethodError, match="LearnedDirections: batch_size expected an integer >= 2, got 1"):
        get("learned", n_directions=2, batch_size=1)
    with pytest.raises(MethodError, match="LearnedDirections: deformator expected one of qr, expm, linear, got 1"):
        get("learned", n_directions=2, deformator=1)
    with pytest.raises(MethodError, match=r"LearnedDirections: steps expected an integer >= 1 and <= 10,000,000"):
        get("learned", n_directions=2, steps=10**7 + 1)


def _weighted_layers(network: nn.Module) -> list[nn.Module]:
    """The layers with weights or statistics, in order (the port's and ours pair up one to one)."""
    kinds = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
    return [module for module in network.modules() if isinstance(module, kinds)]


class PortLeNetShiftPredictor(nn.Module):
    """Our port of the authors' `LeNetShiftPredictor` (latent_shift_predictor.py), as they lay it out."""

    def __init__(self, dim: int, channels: int = 1, width: int = 2) -> None:
        super().__init__()
        self.convnet = nn.Sequential(
            nn.Conv2d(channels * 2, 3 * width, kernel_size=(5, 5)),
            nn.BatchNorm2d(3 * width),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=(2, 2), stride=2),
            nn.Conv2d(3 * width, 8 * width, kernel_size=(5, 5)),
            nn.BatchNorm2d(8 * width),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=(2, 2), stride=2),
            nn.Conv2d(8 * width, 60 * width, kernel_size=(5, 5)),
            nn.BatchNorm2d(60 * width),
            nn.ReLU(),
        )
        self.fc_logits = nn.Sequential(
            nn.Linear(60 * width, 42 * width), nn.BatchNorm1d(42 * width), nn.ReLU(), nn.Linear(42 * width, dim)
        )
        self.fc_shift = nn.Sequential(
            nn.Linear(60 * width, 42 * width), nn.BatchNorm1d(42 * width), nn.ReLU(), nn.Linear(42 * width, 1)
        )

    def forward(self, x1, x2):
        batch_size = x1.shape[0]
        features = self.convnet(torch.cat([x1, x2], dim=1))
        features = features.mean(dim=[-1, -2])
        features = features.view(batch_size, -1)
        return self.fc_logits(features), self.fc_shift(features).squeeze()


@pytest.mark.parametrize("size", [32, 28])
def test_the_image_reconstructor_is_the_authors_lenet(size):
    """With the same weights, R and the port give the same outputs in training and eval mode: on 32 x 32 pairs as
    they are, on 28 x 28 (MNIST's) pairs padded to 32 by repeating their border pixels."""
    reconstructor = build_reconstructor(torch.zeros(1, 1, size, size), 5)
    port = PortLeNetShiftPredictor(5)
    ours, theirs = _weighted_layers(reconstructor), _weighted_layers(port)
    assert [type(module) for module in ours] == [type(module) for module in theirs]
    for mine, their in zip(ours, theirs):
        their.load_state_dict(mine.state_dict())
    before, after = torch.randn(2, 6, 1, size, size)
    padded = [torch.nn.functional.pad(x, [(32 - size) // 2] * 4, mode="replicate") for x in (before, after)]
    for mode in (True, False):
        reconstructor.train(mode), port.train(mode)
        for got, expected in zip(reconstructor(before, after), port(*padded)):
            torch.testing.assert_close(got, expected)


class PortOrthoDeformator(nn.Module):
    """Our port of the authors' `LatentDeformator(type=ORTHO)` for input_dim = out_dim = M (latent_deformator.py):
    a shift is the one-hot basis shift through the matrix exponential of log_mat_half - its transpose."""

    def __init__(self, log_mat_half: torch.Tensor) -> None:
        super().__init__()
        self.log_mat_half = nn.Parameter(log_mat_half.clone())

    def forward(self, input):
        mat = torch.linalg.matrix_exp(self.log_mat_half - self.log_mat_half.transpose(0, 1))
        return torch.nn.functional.linear(input, mat)


def port_train(generator, deformator, shift_predictor, draws, *, lr, shift_scale=6.0, min_shift=0.5):
    """Their `Trainer.train` loop for the given draws (z, target_indices, 2 rand - 1 per step): `make_shifts`, two
    Adam optimisers at one rate, the loss cross-entropy + 0.25 mean |shift error|."""
    deformator_opt = torch.optim.Adam(deformator.parameters(), lr=lr)
    shift_predictor_opt = torch.optim.Adam(shift_predictor.parameters(), lr=lr)
    shift_predictor.train()
    for z, target_indices, uniform in draws:
        shifts = shift_scale * uniform
        shifts[(shifts < min_shift) & (shifts > 0)] = min_shift
        shifts[(shifts > -min_shift) & (shifts < 0)] = -min_shift
        basis_shift = torch.zeros(len(z), z.shape[1])
        for i, (index, val) in enumerate(zip(target_indices, shifts)):
            basis_shift[i][index] += val
        deformator.zero_grad()
        shift_predictor.zero_grad()
        shift = deformator(basis_shift)
        imgs = generator(z)
        imgs_shifted = generator(z + shift)
        logits, shift_prediction = shift_predictor(imgs, imgs_shifted)
        logit_loss = torch.nn.functional.cross_entropy(logits, target_indices)
        shift_loss = 0.25 * torch.mean(torch.abs(shift_prediction - shifts))
        (logit_loss + shift_loss).backward()
        deformator_opt.step()
        shift_predictor_opt.step()


def test_training_steps_are_the_authors_trainer():
    """Six steps of `train_steps` with the "expm" deformator (their "ortho", K = M) and the LeNet reconstructor
    end where six steps of their Trainer loop (ported) end from the same matrix, weights and draws."""
    latent, batch, steps = 4, 8, 6
    torch.manual_seed(5)
    mixing = torch.randn(latent, 32 * 32)

    def generator(z):
        return torch.tanh(z @ mixing).view(-1, 1, 32, 32)

    free = torch.randn(latent, latent)
    reconstructor = build_reconstructor(torch.zeros(1, 1, 32, 32), latent)
    port = PortLeNetShiftPredictor(latent)
    for mine, their in zip(_weighted_layers(reconstructor), _weighted_layers(port)):
        their.load_state_dict(mine.state_dict())
    deformator = PortOrthoDeformator(free)
    ours, theirs = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    port_draws = []
    for _ in range(steps):
        z = torch.randn(batch, latent, generator=theirs)
        k = torch.randint(latent, (batch,), generator=theirs)
        port_draws.append((z, k, 2 * torch.rand(batch, generator=theirs) - 1))
    matrix = nn.Parameter(free.clone())
    train_steps(
        generator,
        reconstructor,
        lambda: direction_rows(matrix, "expm", latent),
        [matrix, *reconstructor.parameters()],
        lambda size: draw_shifts(ours, size, latent, latent, 0.5, 6.0, torch.device("cpu")),
        steps=steps,
        batch_size=batch,
        learning_rate=1e-3,
    )
    port_train(generator, deformator, port, port_draws, lr=1e-3)
    assert not torch.allclose(matrix, free)  # it trained
    torch.testing.assert_close(matrix.detach(), deformator.log_mat_half.detach())
    torch.testing.assert_close(
        direction_rows(matrix.detach(), "expm", latent),
        torch.linalg.matrix_exp(deformator.log_mat_half - deformator.log_mat_half.T).detach().T,
    )
    for mine, their in zip(_weighted_layers(reconstructor), _weighted_layers(port)):
        for name, value in mine.state_dict().items():
            torch.testing.assert_close(value, their.state_dict()[name])
