"""single_thread / single_blas_thread: one torch intra-op thread or one BLAS thread inside the block, the
previous count restored even after an error."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info

from latentspectra.threads import single_blas_thread, single_thread


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


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_single_blas_thread_sets_one_and_restores_after_an_error():
    before = _blas_threads()
    assert before, "NumPy's BLAS is loaded"
    with pytest.raises(RuntimeError), single_blas_thread():
        assert set(_blas_threads()) == {1}
        raise RuntimeError("interrupted")
    assert _blas_threads() == before
