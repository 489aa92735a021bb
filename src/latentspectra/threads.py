"""Thread control for small linear algebra on a few shared cores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block, then restore the previous count.

    For work made of many small operations (100 x 100 eigenproblems, a quantizer's updates on batches of
    64): on a CPU shared with other processes, the threads of a 2-thread pool wait on each other (measured
    here: 0.6 s instead of 0.7 ms for one 100 x 100 eigh under load).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run NumPy's and SciPy's BLAS / LAPACK on one thread inside the block.

    For small matrices (a 128 x 128 eigendecomposition) between torch calls: torch's OpenMP threads keep
    spinning after their work, and a multi-threaded BLAS call waits for them (measured on 2 cores: a
    128-dimensional Frechet distance between torch matmuls, 46 ms median on two BLAS threads, 5.5 ms on one).
    """
    with threadpool_limits(1, user_api="blas"):
        yield
