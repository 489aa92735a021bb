"""single_thread: one intra-op thread inside the block, the previous count restored even after an error."""

from __future__ import annotations

import pytest
import torch

from latentspectra.threads import single_thread


def test_single_thread_sets_one_and_restores_after_an_error():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError), single_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("interrupted")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
