"""The latent sets of a run (experiments/sharded_sets.py): the plain loop's etas exactly in one process, the
finished sets of a resumed run taken as they are, and progress told of every accepted vector. Two ranks giving
the one-process etas is checked in test_distributed.py."""

from __future__ import annotations

from dataclasses import replace

import torch

from conftest import linear_label_toy
from latentspectra.experiments.sharded_sets import run_collector, sharded_label_means
from latentspectra.latent import build_latent_sets, collect_label_means, sample_blocks

DIM, LABELS = 20, 10


class _Recorder:
    """A progress sink that remembers what it was told."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def update(self, n: int = 1) -> None:
        self.steps.append(n)


def test_one_rank_averages_exactly_what_the_plain_loop_averages():
    generator, classifier, _ = linear_label_toy(0, DIM, LABELS)
    for per_label, block in ((7, 16), (30, 5)):
        plain = collect_label_means(generator, classifier, sample_blocks(DIM, block, seed=3), LABELS, per_label)
        sharded = sharded_label_means(generator, classifier, sample_blocks(DIM, block, seed=3), LABELS, per_label)
        assert torch.equal(plain.means, sharded.means) and torch.equal(plain.counts, sharded.counts)
        assert plain.draws == sharded.draws


def test_the_collector_resumes_after_finished_sets_and_tells_progress():
    generator, classifier, _ = linear_label_toy(0, DIM, LABELS)
    arguments = {"latent_dim": DIM, "num_labels": LABELS, "per_set": 7, "batch_size": 16}
    plain = build_latent_sets(generator, classifier, **arguments)
    saved, recorder = [], _Recorder()
    collect = run_collector(
        generator, classifier, LABELS, 7, progress=recorder, on_set=lambda *kept: saved.append(kept)
    )
    built = build_latent_sets(generator, classifier, collect=collect, **arguments)
    assert torch.equal(built.etas, plain.etas) and built.draws == plain.draws
    assert [index for index, _ in saved] == [1, 2] and sum(recorder.steps) == 2 * LABELS * 7
    assert len(recorder.steps) > 2 and all(step >= 0 for step in recorder.steps)

    def refused(*args):
        raise AssertionError("a finished set is not drawn again")

    first = saved[0][1]
    first = replace(first, means=first.means + 1)  # tell it apart
    resumed = build_latent_sets(
        refused,
        classifier,
        **arguments,
        collect=run_collector(refused, classifier, LABELS, 7, finished=[first, saved[1][1]]),
    )
    assert torch.equal(resumed.etas[:LABELS], plain.etas[:LABELS] + 1)
    assert torch.equal(resumed.etas[LABELS:], plain.etas[LABELS:])
