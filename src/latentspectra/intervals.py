"""Numbers measured over several seeds: the mean with its 95% t-interval, which of several such numbers is
ahead of the rest, and how alike the directions two seeds found are.

A study that repeats everything random once per seed (draws, fits, reconstructors) reports each headline
number as ``{"mean", "ci95": [low, high], "values": [...]}``: the mean over the seeds and Student's t-interval
mean +- t(0.975, n - 1) s / sqrt(n), s the sample standard deviation (no interval from one seed). One method
is called ahead of another only where their intervals do not overlap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

CONFIDENCE = 0.95


def interval(values: Sequence[float | None]) -> dict[str, Any]:
    """``{"mean", "ci95", "values"}`` of the per-seed ``values`` (a None, a number that could not be measured in
    one seed, is kept in ``values`` and left out of the mean and interval; ``ci95`` is None below two numbers,
    ``mean`` None without any)."""
    from scipy import stats  # imported here: `import latentspectra` stays light

    numbers = [float(value) for value in values if value is not None and math.isfinite(value)]
    mean = float(np.mean(numbers)) if numbers else None
    ci95 = None
    if len(numbers) >= 2:
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, len(numbers) - 1) * np.std(numbers, ddof=1) / math.sqrt(len(numbers))
        ci95 = [mean - half, mean + half]
    return {"mean": mean, "ci95": ci95, "values": list(values)}


def bounds(found: Mapping[str, Any]) -> tuple[float, float] | None:
    """(low, high) of an `interval` record: its ci95, or the single mean of one seed; None where unmeasured."""
    if found.get("ci95") is not None:
        return found["ci95"][0], found["ci95"][1]
    return None if found.get("mean") is None else (found["mean"], found["mean"])


def overlap(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two `interval` records overlap (or either is unmeasured)."""
    one, other = bounds(first), bounds(second)
    return one is None or other is None or (one[0] <= other[1] and other[0] <= one[1])


def against(found: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """ "above", "below" or "within" ``reference``'s interval (the random baseline's, say): "within" wherever the
    two intervals overlap."""
    if overlap(found, reference):
        return "within"
    return "above" if found["mean"] > reference["mean"] else "below"


def leaders(found: Mapping[str, Mapping[str, Any]], higher_is_better: bool = True) -> dict[str, list[str]]:
    """Who leads among ``found`` (name -> `interval`): ``best``, the names whose interval overlaps that of the
    best mean (one name alone where its interval clears every other), and ``behind``, the rest, by mean."""
    measured = {name: value for name, value in found.items() if value.get("mean") is not None}
    if not measured:
        return {"best": [], "behind": []}
    order = sorted(measured, key=lambda name: measured[name]["mean"], reverse=higher_is_better)
    top = measured[order[0]]
    best = [name for name in order if name == order[0] or overlap(measured[name], top)]
    return {"best": best, "behind": [name for name in order if name not in best]}


def matched_cosine(first: torch.Tensor, second: torch.Tensor) -> float:
    """How alike two sets of K directions (K, M) are whatever their order and signs: the mean |cos| of the
    one-to-one matching of the rows that maximises it (the Hungarian method, scipy's linear_sum_assignment)."""
    from scipy.optimize import linear_sum_assignment

    a = torch.nn.functional.normalize(first.double(), dim=1)
    b = torch.nn.functional.normalize(second.double(), dim=1)
    cosines = (a @ b.T).abs().numpy()
    rows, columns = linear_sum_assignment(cosines, maximize=True)
    return float(cosines[rows, columns].mean())


def pairwise_stability(directions: Sequence[torch.Tensor]) -> dict[str, Any]:
    """`interval` of `matched_cosine` over every pair of the seeds' ``directions`` (1 = the same directions)."""
    values = [
        matched_cosine(directions[i], directions[j])
        for i in range(len(directions))
        for j in range(i + 1, len(directions))
    ]
    return interval(values)
