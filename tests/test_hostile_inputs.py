"""Careless and hostile inputs a user can give to the commands: sizes no machine holds, budgets and integers past
any limit. Each is one line naming the argument and what was expected, exit code 2, nothing left behind (the
cases on a user's own networks are in test_own_networks.py)."""

from __future__ import annotations

import pytest
from torch import nn

from conftest import one_error_line, run_cli
from latentspectra.methods.directions import MethodError
from latentspectra.methods.interfacegan import InterFaceGAN
from test_own_networks import LATENT


@pytest.mark.parametrize(
    "args, message",
    [
        (("train", "gan", "--latent-dim", str(10**12), "--epochs", "1"), "a generator of config"),
        (("compare", "--param", "learned.steps=1000000000000"), "steps expected an integer >= 1 and <= 10,000,000"),
        (("compare", "--param", f"learned.steps={2**70}"), "steps expected an integer >= 1 and <= 10,000,000"),
        (
            ("compare", "--param", f"interfacegan.batch_size={2**70}"),
            "batch_size expected an integer >= 1 and <= 9,223,372,036,854,775,807",
        ),
        (("compare", "--reconstructor-steps", str(10**12)), "--reconstructor-steps"),
    ],
)
@pytest.mark.slow
def test_sizes_and_budgets_past_any_machine_areone_error_line(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, *args, "--out", str(out), "--quiet")
    assert code == 2 and message in one_error_line(err), err
    assert not out.exists()


def test_a_sample_count_no_memory_holds_is_refused_before_it_is_drawn():
    generator = nn.Linear(LATENT, 3 * 32 * 32)
    with pytest.raises(MethodError, match=r"n_samples 1,000,000,000,000,000 latents of dimension 24: needs about"):
        InterFaceGAN(n_directions=1, n_samples=10**15, latent_dim=LATENT).fit(
            generator=generator, classifier=nn.Identity()
        )
