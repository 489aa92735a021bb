"""InterFaceGAN linear boundaries: Shen, Gu, Tang & Zhou, "Interpreting the Latent Space of GANs for Semantic
Face Editing", CVPR 2020 (https://arxiv.org/abs/1907.10786); the authors' code is github.com/genforce/interfacegan.

For a binary attribute, a hyperplane n.z + b = 0 separates the latents whose images have it from those that do
not, and moving along the unit normal n changes it (paper, Sec. 3.1). The normal is found by a linear SVM on
latents labelled by an attribute predictor (Sec. 4): the latents are ranked by their score, the top and bottom
``ratio`` of them (2% as the authors) are the positives and negatives, and a part of each (``validation_split``,
30% as the authors) is held out to measure the boundary's accuracy. Conditional manipulation (Sec. 3.2): to
change attribute 1 without attribute 2, move along n1 - (n1.n2) n2, normalised; for several conditions, along
n1 projected off their span.

Followed from the authors' code (`utils/manipulator.py`: `train_boundary`, `project_boundary`): the stable
ranking of scores, the count int(N ratio) per side (at most N / 2), the training count int(count (1 -
validation_split)) per side, each side shuffled before the split, scikit-learn's ``SVC(kernel="linear")`` with
its defaults (C = 1), and the SVM's weight vector normalised. SVC (libsvm) rather than LinearSVC (liblinear):
it minimises the plain hinge loss with an unpenalised intercept, the textbook maximum-margin boundary the paper
describes, whereas LinearSVC's default squared hinge and penalised intercept give a (slightly) different normal;
the training sets are small (2 x 70% of 2% of the latents), where libsvm is fast. Where this differs: the
shuffles come from ``seed`` (the code uses NumPy's global state); the intercept is kept (divided by |w|, so that
n.z + b is the signed distance to the boundary); a classifier's labels are scored one-vs-rest by their
log-probability (which ranks as the probability does, without ties where it saturates) or by their logit; one
projection (least squares off the span of the conditions) serves any number of conditions, where the code has
formulas for one and two.

Editing: `edit` moves z by t along normal k, z + t n_k, as every direction method's edit and as `compare`
measures every method. With ``edit_mode="distance"`` it is the authors' `linear_interpolate` instead: z placed at
signed distance t from the boundary, z + (t - z.n_k) n_k, its distance read as z.n_k as their code reads it (the
intercept, which their edit ignores, is not added).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from .directions import (
    DirectionMethod,
    FitInputs,
    LabelEdit,
    MethodError,
    Network,
    check_count,
    check_fraction,
    check_whole,
    is_index,
    network_device,
    register,
    standard_normal_draws,
)

SCORES = ("probability", "logit")  # how a classifier's label is scored: log-softmax (one-vs-rest) or raw logit
EDIT_MODES = ("shift", "distance")  # z + t n, or z placed at signed distance t (the authors' linear_interpolate)
SPAN_TOLERANCE = 1e-6  # a boundary whose part off the conditions' span is shorter than this lies in the span


class Boundary(NamedTuple):
    """One attribute's separating hyperplane n.z + b = 0: unit ``normal`` (M,) float64 pointing to high scores,
    ``intercept`` b, and the SVM's ``accuracy`` on the held-out latents."""

    normal: torch.Tensor
    intercept: float
    accuracy: float


def train_boundary(
    latents: torch.Tensor,
    scores: torch.Tensor,
    ratio: float,
    validation_split: float,
    rng: torch.Generator,
    attribute: int = 0,
) -> Boundary:
    """The linear SVM boundary between the top and bottom ``ratio`` of ``latents`` (N, M) ranked by ``scores``
    (N,) of ``attribute`` (module docstring), a ``validation_split`` of each side held out, the sides shuffled by
    ``rng``.

    Raises:
        MethodError: too few latents for a training and a validation latent on each side, top and bottom
            scores that do not differ, or an SVM that finds no normal.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    chosen = min(int(len(latents) * ratio), len(latents) // 2)
    train = int(chosen * (1 - validation_split))
    if not 1 <= train < chosen:
        raise MethodError(
            f"InterFaceGAN: latents expected enough rows for ratio {ratio:g} to keep a training and a "
            f"validation latent on each side, got {len(latents)}"
        )
    if scores[order[chosen - 1]] <= scores[order[-chosen]]:
        raise MethodError(
            f"InterFaceGAN: scores expected the top and bottom {chosen} of attribute {attribute} to "
            "differ, got equal scores"
        )
    from sklearn.svm import SVC  # imported here: `import latentspectra` stays light

    positives = order[:chosen][torch.randperm(chosen, generator=rng)]
    negatives = order[-chosen:][torch.randperm(chosen, generator=rng)]
    data = latents.to(torch.float64).numpy()
    fit_rows = torch.cat([positives[:train], negatives[:train]]).numpy()
    held_rows = torch.cat([positives[train:], negatives[train:]]).numpy()
    svm = SVC(kernel="linear").fit(data[fit_rows], _side_labels(train))
    accuracy = float((svm.predict(data[held_rows]) == _side_labels(chosen - train)).mean())
    weights = torch.from_numpy(svm.coef_[0].copy())
    norm = torch.linalg.vector_norm(weights)
    if norm == 0:
        raise MethodError(
            f"InterFaceGAN: scores expected top and bottom latents that a hyperplane separates, got a "
            f"zero SVM normal for attribute {attribute}"
        )
    return Boundary(weights / norm, float(svm.intercept_[0] / norm), accuracy)


def _side_labels(count: int) -> np.ndarray:
    """Labels 1 for ``count`` positives followed by 0 for ``count`` negatives."""
    return np.repeat([1, 0], count)


def classifier_logits(generator: Network, classifier: Network, batch: torch.Tensor) -> torch.Tensor:
    """(B, L) float64 on the CPU: the classifier's logits of the images G(z) of the latents ``batch`` (B, M).

    Raises:
        MethodError: a classifier that does not return (B, L) logits for a batch of B images.
    """
    logits = classifier(generator(batch.to(network_device(generator))))
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or len(logits) != len(batch):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise MethodError(f"InterFaceGAN: classifier expected logits of shape ({len(batch)}, L), got {got}")
    return logits.detach().to("cpu", torch.float64)


def as_scores(logits: torch.Tensor, score: str) -> torch.Tensor:
    """Each label's score from float64 ``logits`` (N, L): its log-probability (``score`` "probability") or the
    logit itself ("logit")."""
    return torch.log_softmax(logits, 1) if score == "probability" else logits


def classifier_scores(
    generator: Network, classifier: Network, latents: torch.Tensor, batch_size: int, score: str
) -> torch.Tensor:
    """(N, L) float64: each label's log-probability (``score`` "probability") or logit ("logit") for the images
    G(z) of ``latents`` (N, M), in batches (`classifier_logits`).

    Raises:
        MethodError: a classifier that does not return (B, L) logits for a batch of B images.
    """
    logits = torch.cat([classifier_logits(generator, classifier, batch) for batch in latents.split(batch_size)])
    return as_scores(logits, score)


@register("interfacegan")
class InterFaceGAN(DirectionMethod):
    """One boundary normal per attribute (module docstring).

    Fit uses either ``latents`` (N, M) with ``scores`` (N,) or (N, A), one column per attribute; or
    ``generator`` and ``classifier``, scoring each classifier label one-vs-rest on G(z) for the given
    ``latents`` or, without them, ``n_samples`` draws z ~ N(0, I_M) (M from ``latent_dim`` or the generator);
    both run in the mode they are in (eval mode for networks with batch norm). ``scores`` without ``latents``
    are those of the latents it draws (`sampled_latents`: scored elsewhere, as a sharded run does).

    Args:
        n_directions: K: the first K attributes (score columns or labels), or None for all of them; K <= M.
        ratio: the share of latents taken from each end of the ranking (authors: 0.02).
        validation_split: the share of each side held out for the accuracy (authors: 0.3).
        score: "probability" (a label's log-softmax: the label against the rest) or "logit".
        n_samples: latents drawn for a classifier when fit is given none (authors: 500 000 for 512-dimensional
            latents). The default is the count at which two seeds give every normal of the shipped MNIST networks'
            ten labels at |cos| >= 0.95 (measured: 0.963 at the least, 0.975 median; 0.907 at 100 000, 0.774 at
            20 000; docs/compare.md); the cost is G + C on every sample, the SVMs take about a second a label.
        batch_size: latents per generator and classifier pass.
        latent_dim: M, where fit is given neither latents nor a generator that says it.
        seed: seeds the drawn latents and the shuffles before the split.
        edit_mode: what `edit`'s t is: "shift" (z + t n_k) or "distance" (z placed at signed distance t along
            n_k, the authors' `linear_interpolate`).

    Attributes (after `fit`):
        directions_: (K, M) float32 unit normals, pointing to higher scores.
        intercepts_: (K,) float32 b, so that z.d_k + b_k is the signed distance to boundary k.
        validation_accuracy_: (K,) float32, each boundary's accuracy on its held-out latents.
    """

    inputs = ("latents", "scores", "generator", "classifier")
    count_from_data = True
    fit_latents = None
    scores_own_draws = True
    one_per_label = True

    def __init__(
        self,
        n_directions: int | None = None,
        *,
        ratio: float = 0.02,
        validation_split: float = 0.3,
        score: str = "probability",
        n_samples: int = 200_000,
        batch_size: int = 500,
        latent_dim: int | None = None,
        seed: int = 0,
        edit_mode: str = "shift",
    ) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.ratio = ratio
        self.validation_split = validation_split
        self.score = score
        self.n_samples = n_samples
        self.batch_size = batch_size
        self.seed = seed
        self.edit_mode = edit_mode

    def check_params(self) -> None:
        super().check_params()
        if self.edit_mode not in EDIT_MODES:
            raise MethodError(
                f"{self.title}: edit_mode expected one of {', '.join(EDIT_MODES)}, got {self.edit_mode!r}"
            )
        check_fraction(self.title, "ratio", self.ratio, 0.5)
        check_fraction(self.title, "validation_split", self.validation_split)
        if self.score not in SCORES:
            raise MethodError(f"{self.title}: score expected one of {', '.join(SCORES)}, got {self.score!r}")
        check_whole(self.title, "n_samples", self.n_samples, 2)
        check_whole(self.title, "batch_size", self.batch_size, 1)
        check_whole(self.title, "seed", self.seed, 0)

    def _fit(self, inputs: FitInputs) -> None:
        rng = torch.Generator().manual_seed(self.seed)
        latents, scores = self._scored_latents(inputs, rng)
        count = scores.shape[1] if self.n_directions is None else self.n_directions
        if count > scores.shape[1]:
            raise MethodError(
                f"{self.title}: n_directions expected <= the {scores.shape[1]} attributes scored, got {count}"
            )
        check_count(self.title, count, latents.shape[1])
        boundaries = [
            train_boundary(latents, scores[:, column], self.ratio, self.validation_split, rng, column)
            for column in range(count)
        ]
        self.directions_ = torch.stack([boundary.normal for boundary in boundaries]).float()
        self.intercepts_ = torch.tensor([boundary.intercept for boundary in boundaries], dtype=torch.float32)
        self.validation_accuracy_ = torch.tensor([boundary.accuracy for boundary in boundaries], dtype=torch.float32)

    def edit(self, z: torch.Tensor, k: int, t: float | torch.Tensor) -> torch.Tensor:
        """``z`` (N, M) edited along normal ``k`` by ``t`` (one number or one per row): z + t n_k, or, with
        ``edit_mode="distance"``, z placed at signed distance t from the boundary, z + (t - z.n_k) n_k (the
        authors' `linear_interpolate`; module docstring).

        Raises:
            MethodError: not fitted, ``k`` outside 0..K-1, or ``t`` neither a number nor an (N,) tensor.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        moved = super().edit(z, k, t)  # z + t n_k, after every check
        if self.edit_mode == "shift":
            return moved
        normal = self.directions_[k].to(moved)
        return moved - (z.to(moved) @ normal)[:, None] * normal

    def draws_to_score(self, latent_dim: int) -> tuple[torch.Tensor, int]:
        """The latents fit draws when given none (`sampled_latents`) and its ``batch_size``."""
        return self.sampled_latents(latent_dim), self.batch_size

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The scores fit takes from the logits of C(G(z)): by the ``score`` parameter (`as_scores`)."""
        return as_scores(logits, self.score)

    def label_edits(self, class_means: dict[int, torch.Tensor], num_labels: int) -> dict[str, LabelEdit]:
        """With one normal per label: "interfacegan", a step along (n_b - n_a) / |n_b - n_a| as long as the class
        means' difference |mu_b - mu_a| times the strength s (None where a class has no mean), so that it differs
        from the class-mean edit in direction only."""
        self.check_is_fitted()
        if len(self.directions_) != num_labels:
            return {}
        normals = self.directions_.double()

        def boundary_step(z: torch.Tensor, a: int, b: int, s: float) -> torch.Tensor | None:
            if a not in class_means or b not in class_means:
                return None
            step = normals[b] - normals[a]
            length = torch.linalg.vector_norm(class_means[b] - class_means[a])
            return z + (s * length * step / torch.linalg.vector_norm(step).clamp_min(1e-12)).to(z)

        return {"interfacegan": boundary_step}

    def sampled_latents(self, latent_dim: int) -> torch.Tensor:
        """The ``n_samples`` latents z ~ N(0, I_M), M = ``latent_dim``, that fit draws when given none (the first
        draw of its ``seed``'s stream): score them elsewhere, a sharded run's ranks each a share, and give fit
        the scores alone to fit on the very latents and shuffles of an unsharded fit.

        Raises:
            MethodError: bad parameters.
        """
        self.check_params()
        return self._draw(latent_dim, torch.Generator().manual_seed(self.seed))

    def _draw(self, latent_dim: int, rng: torch.Generator) -> torch.Tensor:
        return standard_normal_draws(self.title, self.n_samples, latent_dim, rng)

    def _scored_latents(self, inputs: FitInputs, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents (N, M), scores (N, A) float64): the given latents, or ``n_samples`` drawn from ``rng``
        (`_latents`); scored by the given scores, or by the classifier on G(z)."""
        if inputs.scores is not None:
            latents = self._latents(inputs, rng)
            return latents, self._checked_scores(inputs.scores, len(latents))
        generator, classifier = inputs.require("generator"), inputs.require("classifier")
        latents = self._latents(inputs, rng)
        return latents, classifier_scores(generator, classifier, latents, self.batch_size, self.score)

    def _latents(self, inputs: FitInputs, rng: torch.Generator) -> torch.Tensor:
        """The given latents on the CPU, or ``n_samples`` draws from ``rng``."""
        latents = inputs.latents if inputs.latents is not None else self._draw(inputs.require_latent_dim(), rng)
        return latents.detach().cpu()

    def _checked_scores(self, scores: object, rows: int) -> torch.Tensor:
        """``scores`` as a float64 (N, A) tensor, checked to be finite floating-point (N,) or (N, A), N = ``rows``."""
        expected = f"{self.title}: scores expected a finite floating-point tensor of shape ({rows},) or ({rows}, A)"
        if not isinstance(scores, torch.Tensor):
            raise MethodError(f"{expected}, got {type(scores).__name__}")
        if scores.ndim not in (1, 2) or len(scores) != rows or (scores.ndim == 2 and scores.shape[1] < 1):
            raise MethodError(f"{expected}, got shape {tuple(scores.shape)}")
        if not scores.is_floating_point():
            raise MethodError(f"{expected}, got {scores.dtype}")
        if not bool(scores.isfinite().all()):
            raise MethodError(f"{expected}, got NaN or infinite values")
        return scores.detach().cpu().to(torch.float64).reshape(rows, -1)

    def conditional_direction(self, k: int, others: Sequence[int]) -> torch.Tensor:
        """Boundary ``k``'s normal projected off the span of the boundaries ``others`` and normalised (the
        authors' conditional manipulation, module docstring): (M,) float32 unit vector, orthogonal to each of
        ``others``; the normal itself when ``others`` is empty.

        Raises:
            MethodError: not fitted, an index outside 0..K-1, or ``others`` whose span holds boundary k.
        """
        self.check_is_fitted()
        count = len(self.directions_)
        for name, values in (("k", [k]), ("others", list(others))):
            if not all(is_index(value, count) for value in values):
                raise MethodError(f"{self.title}: {name} expected integers in 0..{count - 1}, got {values!r}")
        if not others:
            return self.directions_[k].clone()
        primal = self.directions_[k].to(torch.float64)
        conditions = self.directions_[list(others)].to(torch.float64).T  # (M, C)
        along = conditions @ torch.linalg.lstsq(conditions, primal[:, None], driver="gelsd").solution
        residual = primal - along[:, 0]
        norm = torch.linalg.vector_norm(residual)
        if norm < SPAN_TOLERANCE:
            raise MethodError(
                f"{self.title}: others expected boundaries whose span leaves part of boundary {k}, got {list(others)}"
            )
        return (residual / norm).float()
