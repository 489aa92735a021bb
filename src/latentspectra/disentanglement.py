"""Ground-truth disentanglement metrics: how well codes (N, K) (e.g. the projections of encoded images on K
directions) recover known factors of variation (N, F), as Locatello et al. (ICML 2019) compute them in
disentanglement_lib (their conventions, our code):

- **MIG** (Chen et al. 2018): each code discretised into 20 equal-width bins over its range (numpy's histogram
  edges, as their ``histogram_discretizer``); the mutual information (nats) of every code with every factor;
  per factor, the gap between its two most informative codes divided by the factor's entropy; averaged over
  the factors.
- **DCI** (Eastwood & Williams 2018): per factor, a gradient-boosted tree classifier (scikit-learn's
  ``GradientBoostingClassifier``; disentanglement_lib uses its defaults, 100 trees of depth 3) predicts the
  factor from all codes; the absolute feature importances form the importance matrix R (K, F).
  *Disentanglement*: per code, one minus the entropy (base F) of its row of R normalised, weighted by the row's
  share of R; *completeness*: per factor, one minus the entropy (base K) of its column normalised, weighted by
  the column's share; 1e-11 is added to R before the entropies, as they do. *Informativeness*: the classifiers'
  accuracy on the held-out codes, averaged over the factors (their ``informativeness_test``).
- **FactorVAE score** (Kim & Mnih 2018): each code scaled by its standard deviation over all rows; a vote is
  a factor k drawn uniformly and a batch of ``factor_vae_batch`` (64) rows sharing one value of k, voting for
  the code of least variance in the batch (codes of zero variance over all rows left out); a majority-vote
  classifier (each code -> the factor it got most votes from) is read off ``factor_vae_train_votes`` (10,000)
  votes and its accuracy on ``factor_vae_eval_votes`` (5,000) fresh votes is the score (their
  ``eval_accuracy``).
- **SAP** (Kumar et al. 2018), discrete factors: for every code and factor, a linear SVM (``LinearSVC(C=0.01,
  class_weight="balanced")``) trained on that one code predicts the factor; its held-out accuracy fills a
  score matrix (K, F); per factor, the gap between the two best codes; averaged over the factors.

DCI and SAP train on the first ``train_share`` of the rows (rounded up) and score on the rest, as
disentanglement_lib's ``*_on_fixed_data`` do; MIG uses every row.

Factors are labels: each column's distinct values are its classes (sprites' grids, continuous-valued but
discrete by construction). Deviations from disentanglement_lib, whose factors are always discrete and never
constant:

- a factor with more than ``max_factor_classes`` distinct values (a user's truly continuous one) is discretised
  into ``bins`` equal-width bins, as the codes are;
- a factor with one value (no entropy, nothing to predict) is left out of MIG, and one with a single value on
  the training rows is left out of DCI and SAP;
- with a single code, MIG's and SAP's second-best code counts as zero information and zero accuracy gap, and an
  entropy in base 1 (DCI with one code or one factor) is taken as zero;
- the linear SVM is solved as scikit-learn chooses for more rows than features (``dual="auto"``: the primal;
  theirs predates the choice and solved the dual, for the same optimum), and one that does not converge within
  liblinear's 1,000 iterations is used as it stands without the warning (disentanglement_lib also uses it);
- the trees' and the SVMs' seed is ``seed`` (theirs come from the global random state);
- FactorVAE's votes draw rows of the given codes instead of sampling new observations from the factors: the
  value of k is that of a row drawn uniformly (theirs: of a fresh sample of the factors), the batch is drawn
  with replacement from the rows with that value, and the global variances are those of all rows (theirs: of
  10,000 fresh samples). Its votes are drawn from ``numpy.random.default_rng(seed)``.

`direction_scores` is what a study calls: K unit directions (K, d), encoded latents (N, d) and factors; it
returns the coordinates (N, K), each latent's projection on each direction, and `ground_truth_scores` of them.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SCORE_NAMES",
    "GroundTruthSettings",
    "dci",
    "dci_completeness",
    "dci_disentanglement",
    "dci_importances",
    "direction_coordinates",
    "direction_scores",
    "discretise_codes",
    "factor_labels",
    "factor_vae",
    "factor_vae_votes",
    "ground_truth_scores",
    "mig",
    "mutual_information",
    "sap",
    "sap_score_matrix",
]

#: The keys of `ground_truth_scores`' result, in order.
SCORE_NAMES = ("mig", "dci_disentanglement", "dci_completeness", "dci_informativeness", "sap", "factor_vae")
_IMPORTANCE_FLOOR = 1e-11  # added to the importance matrix before its entropies (disentanglement_lib's)
_UNIT_TOLERANCE = 1e-3


@dataclass(frozen=True)
class GroundTruthSettings:
    """The metrics' hyperparameters; the defaults are disentanglement_lib's (``dci_trees`` and ``dci_depth``
    can be lowered for speed: the importances then come from a smaller model, which the caller states)."""

    bins: int = 20  # equal-width bins of each code (MIG), and of a factor with too many values
    max_factor_classes: int = 64  # a factor with more distinct values is binned like a code
    train_share: float = 2 / 3  # rows DCI and SAP train on (disentanglement_lib: 10,000 train, 5,000 test)
    dci_trees: int = 100  # GradientBoostingClassifier's n_estimators
    dci_depth: int = 3  # and its max_depth
    sap_c: float = 0.01  # LinearSVC's C
    factor_vae_batch: int = 64  # rows sharing one value of the factor, per vote
    factor_vae_train_votes: int = 10_000  # votes the majority-vote classifier is read from
    factor_vae_eval_votes: int = 5_000  # votes it is scored on
    seed: int = 0  # the trees' random_state, and the FactorVAE votes' generator

    def __post_init__(self) -> None:
        for name in (
            "bins",
            "max_factor_classes",
            "dci_trees",
            "dci_depth",
            "factor_vae_batch",
            "factor_vae_train_votes",
            "factor_vae_eval_votes",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"GroundTruthSettings: {name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.train_share < 1:
            raise ValueError(f"GroundTruthSettings: train_share must lie in (0, 1), got {self.train_share}")
        if not self.sap_c > 0:
            raise ValueError(f"GroundTruthSettings: sap_c must be positive, got {self.sap_c}")


# --------------------------------------------------------------------------- inputs


def _as_matrix(values: Any, name: str) -> np.ndarray:
    """``values`` (numpy array, torch tensor or nested lists) as a finite float64 (N, M) array."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{name}: expected a 2-D array (N, M) with M >= 1, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _checked_pair(codes: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    codes, factors = _as_matrix(codes, "codes"), _as_matrix(factors, "factors")
    if len(codes) != len(factors):
        raise ValueError(f"codes hold {len(codes)} rows but factors {len(factors)}; expected one row per item")
    if len(codes) < 2:
        raise ValueError(f"codes: {len(codes)} rows, expected at least 2")
    return codes, factors


def discretise_codes(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each column's bin index (1..bins) among ``bins`` equal-width bins over its range: ``np.digitize`` on all
    but the last of ``np.histogram``'s edges (disentanglement_lib's histogram discretiser)."""
    return np.stack([np.digitize(column, np.histogram(column, bins)[1][:-1]) for column in codes.T], axis=1).astype(
        np.int64
    )


def factor_labels(factors: np.ndarray, bins: int = 20, max_classes: int = 64) -> np.ndarray:
    """Each factor column as class indices 0..n-1 of its distinct values, or, when it has more than
    ``max_classes`` of them, its `discretise_codes` bin."""
    columns = []
    for column in factors.T:
        values, labels = np.unique(column, return_inverse=True)
        if len(values) > max_classes:
            labels = discretise_codes(column[:, None], bins)[:, 0]
        columns.append(labels)
    return np.stack(columns, axis=1).astype(np.int64)


def _varying(labels: np.ndarray, rows: str) -> np.ndarray:
    """Which factor columns take at least two classes (a constant factor has nothing to score), or ValueError
    when none does on these ``rows``."""
    varying = np.array([len(np.unique(column)) > 1 for column in labels.T])
    if not varying.any():
        raise ValueError(f"factors: every factor takes a single value on the {rows}; nothing to score")
    return varying


@dataclass(frozen=True)
class _Prepared:
    """Checked codes and factor labels, and the split DCI and SAP train and score on (the first
    ``ceil(N * train_share)`` rows, at least one row left to score; factors constant there left out)."""

    codes: np.ndarray
    labels: np.ndarray
    train_codes: np.ndarray
    train_labels: np.ndarray
    test_codes: np.ndarray
    test_labels: np.ndarray

    @classmethod
    def of(cls, codes: Any, factors: Any, settings: GroundTruthSettings) -> _Prepared:
        codes, factors = _checked_pair(codes, factors)
        labels = factor_labels(factors, settings.bins, settings.max_factor_classes)
        cut = min(max(math.ceil(len(codes) * settings.train_share), 1), len(codes) - 1)
        kept = _varying(labels[:cut], "training rows")
        return cls(codes, labels, codes[:cut], labels[:cut, kept], codes[cut:], labels[cut:, kept])


# --------------------------------------------------------------------------- MIG


def mutual_information(discrete_codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mutual information (nats) of every discrete code with every factor: (K, F)."""
    from sklearn.metrics import mutual_info_score  # imported here: the studies without factors skip scikit-learn

    return np.array(
        [[mutual_info_score(factor, code) for factor in labels.T] for code in discrete_codes.T], dtype=np.float64
    )


def _top_two_gaps(matrix: np.ndarray) -> np.ndarray:
    """Per column of ``matrix`` (K, F), its largest value minus its second largest (zero if K = 1)."""
    ordered = np.sort(matrix, axis=0)[::-1]
    second = ordered[1] if len(ordered) > 1 else np.zeros(matrix.shape[1])
    return ordered[0] - second


def _mig(codes: np.ndarray, labels: np.ndarray, bins: int) -> float:
    from sklearn.metrics import mutual_info_score  # imported here, as in `mutual_information`

    labels = labels[:, _varying(labels, "rows")]
    information = mutual_information(discretise_codes(codes, bins), labels)
    entropy = np.array([mutual_info_score(column, column) for column in labels.T])
    return float(np.mean(_top_two_gaps(information) / entropy))


def mig(codes: Any, factors: Any, settings: GroundTruthSettings | None = None) -> float:
    """Mutual information gap (Chen et al. 2018, as disentanglement_lib): per factor, the gap between the two
    codes of most mutual information with it, over its entropy; averaged over the factors."""
    settings = settings or GroundTruthSettings()
    prepared = _Prepared.of(codes, factors, settings)
    return _mig(prepared.codes, prepared.labels, settings.bins)


# --------------------------------------------------------------------------- DCI


def dci_importances(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    settings: GroundTruthSettings | None = None,
) -> tuple[np.ndarray, float, float]:
    """Importance matrix R (K, F) of gradient-boosted trees predicting each factor from all codes, and their
    mean accuracy on the training and on the held-out rows."""
    from sklearn.ensemble import GradientBoostingClassifier  # imported here, as in `mutual_information`

    settings = settings or GroundTruthSettings()
    importance = np.zeros((train_codes.shape[1], train_labels.shape[1]))
    train_accuracy, test_accuracy = [], []
    for factor in range(train_labels.shape[1]):
        model = GradientBoostingClassifier(
            n_estimators=settings.dci_trees, max_depth=settings.dci_depth, random_state=settings.seed
        )
        model.fit(train_codes, train_labels[:, factor])
        importance[:, factor] = np.abs(model.feature_importances_)
        train_accuracy.append(np.mean(model.predict(train_codes) == train_labels[:, factor]))
        test_accuracy.append(np.mean(model.predict(test_codes) == test_labels[:, factor]))
    return importance, float(np.mean(train_accuracy)), float(np.mean(test_accuracy))


def _normalised_entropy(weights: np.ndarray, axis: int) -> np.ndarray:
    """Entropy of ``weights`` normalised to sum 1 along ``axis``, in base (its length along ``axis``); zero
    when that length is 1."""
    count = weights.shape[axis]
    if count == 1:
        return np.zeros(weights.shape[1 - axis])
    p = weights / weights.sum(axis=axis, keepdims=True)
    return -(p * np.log(p)).sum(axis=axis) / math.log(count)


def _weighted_purity(importance: np.ndarray, axis: int) -> float:
    """One minus the normalised entropy of each row (axis 1) or column (axis 0) of R, weighted by its share."""
    purity = 1.0 - _normalised_entropy(importance + _IMPORTANCE_FLOOR, axis)
    total = importance.sum()
    weights = importance.sum(axis=axis) / total if total > 0 else np.full(len(purity), 1.0 / len(purity))
    return float(np.sum(purity * weights))


def dci_disentanglement(importance: np.ndarray) -> float:
    """DCI disentanglement of an importance matrix R (K codes, F factors): per code, one minus the entropy
    (base F) of its importances, weighted by its share of R."""
    return _weighted_purity(importance, axis=1)


def dci_completeness(importance: np.ndarray) -> float:
    """DCI completeness of R (K, F): per factor, one minus the entropy (base K) of its importances over the
    codes, weighted by its share of R."""
    return _weighted_purity(importance, axis=0)


def _dci(prepared: _Prepared, settings: GroundTruthSettings) -> dict[str, float]:
    importance, _, test_accuracy = dci_importances(
        prepared.train_codes, prepared.train_labels, prepared.test_codes, prepared.test_labels, settings
    )
    return {
        "disentanglement": dci_disentanglement(importance),
        "completeness": dci_completeness(importance),
        "informativeness": test_accuracy,
    }


def dci(codes: Any, factors: Any, settings: GroundTruthSettings | None = None) -> dict[str, float]:
    """DCI disentanglement, completeness and informativeness (held-out accuracy) of ``codes`` for ``factors``,
    training on the first ``train_share`` of the rows."""
    settings = settings or GroundTruthSettings()
    return _dci(_Prepared.of(codes, factors, settings), settings)


# --------------------------------------------------------------------------- SAP


def sap_score_matrix(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    settings: GroundTruthSettings | None = None,
) -> np.ndarray:
    """(K, F): the held-out accuracy of a linear SVM trained on code k alone to predict factor f."""
    from sklearn.exceptions import ConvergenceWarning  # imported here, as in `mutual_information`
    from sklearn.svm import LinearSVC

    settings = settings or GroundTruthSettings()
    scores = np.zeros((train_codes.shape[1], train_labels.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for code in range(train_codes.shape[1]):
            for factor in range(train_labels.shape[1]):
                classifier = LinearSVC(
                    C=settings.sap_c, class_weight="balanced", dual="auto", random_state=settings.seed
                )
                classifier.fit(train_codes[:, code : code + 1], train_labels[:, factor])
                predicted = classifier.predict(test_codes[:, code : code + 1])
                scores[code, factor] = np.mean(predicted == test_labels[:, factor])
    return scores


def sap(codes: Any, factors: Any, settings: GroundTruthSettings | None = None) -> float:
    """SAP score (Kumar et al. 2018, discrete factors, as disentanglement_lib): per factor, the accuracy gap
    between the two codes that predict it best alone; averaged over the factors."""
    settings = settings or GroundTruthSettings()
    return _sap(_Prepared.of(codes, factors, settings), settings)


def _sap(prepared: _Prepared, settings: GroundTruthSettings) -> float:
    scores = sap_score_matrix(
        prepared.train_codes, prepared.train_labels, prepared.test_codes, prepared.test_labels, settings
    )
    return float(np.mean(_top_two_gaps(scores)))


# --------------------------------------------------------------------------- FactorVAE score


def factor_vae_votes(
    codes: np.ndarray, labels: np.ndarray, count: int, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` votes (Kim & Mnih 2018) as a (F, K) count matrix: per vote, a factor k uniform over the columns of
    ``labels``, a row drawn uniformly fixing its value, ``batch`` rows with that value (drawn with replacement),
    and the code of least variance (ddof 1) over them relative to its variance over all rows of ``codes`` (N, K);
    a code constant over all rows never gets a vote. The draws, in this order: the ``count`` factors, the
    ``count`` rows, and a (count, batch) array of uniforms u, the batch's rows being the floor(u n)-th of the n
    rows with the value (in row order)."""
    spread = np.var(codes, axis=0, ddof=1)
    active = spread > 0
    factors = rng.integers(labels.shape[1], size=count)
    anchors = rng.integers(len(labels), size=count)
    uniforms = rng.random((count, batch))
    rows = np.empty((count, batch), dtype=np.int64)
    for factor in range(labels.shape[1]):
        voting = factors == factor
        order = np.argsort(labels[:, factor], kind="stable")
        values, starts, sizes = np.unique(labels[order, factor], return_index=True, return_counts=True)
        value = np.searchsorted(values, labels[anchors[voting], factor])
        offsets = (uniforms[voting] * sizes[value][:, None]).astype(np.int64)
        rows[voting] = order[starts[value][:, None] + offsets]
    votes = np.zeros((labels.shape[1], codes.shape[1]), dtype=np.int64)
    for chunk in np.array_split(np.arange(count), max(1, count // 1000)):  # about 1,000 batches of codes at once
        relative = np.full((len(chunk), codes.shape[1]), np.inf)
        relative[:, active] = np.var(codes[rows[chunk]][:, :, active], axis=1, ddof=1) / spread[active]
        np.add.at(votes, (factors[chunk], np.argmin(relative, axis=1)), 1)
    return votes


def _factor_vae(codes: np.ndarray, labels: np.ndarray, settings: GroundTruthSettings) -> float:
    if not (np.var(codes, axis=0) > 0).any():
        return 0.0  # no code varies, so none can tell a factor (disentanglement_lib's answer too)
    labels = labels[:, _varying(labels, "rows")]
    rng = np.random.default_rng(settings.seed)
    batch = settings.factor_vae_batch
    training = factor_vae_votes(codes, labels, settings.factor_vae_train_votes, batch, rng)
    classifier = np.argmax(training, axis=0)  # each code -> the factor that gave it most votes
    evaluation = factor_vae_votes(codes, labels, settings.factor_vae_eval_votes, batch, rng)
    return float(evaluation[classifier, np.arange(len(classifier))].sum() / evaluation.sum())


def factor_vae(codes: Any, factors: Any, settings: GroundTruthSettings | None = None) -> float:
    """FactorVAE score (Kim & Mnih 2018, as disentanglement_lib): the accuracy of the majority-vote classifier
    from the least-varying code to the factor held fixed (module docstring)."""
    settings = settings or GroundTruthSettings()
    codes, factors = _checked_pair(codes, factors)
    return _factor_vae(codes, factor_labels(factors, settings.bins, settings.max_factor_classes), settings)


# --------------------------------------------------------------------------- what studies call


def ground_truth_scores(codes: Any, factors: Any, settings: GroundTruthSettings | None = None) -> dict[str, float]:
    """MIG, DCI disentanglement / completeness / informativeness, SAP and the FactorVAE score of ``codes`` (N, K)
    for ``factors`` (N, F), keyed by `SCORE_NAMES`."""
    settings = settings or GroundTruthSettings()
    prepared = _Prepared.of(codes, factors, settings)
    scores = _dci(prepared, settings)
    return {
        "mig": _mig(prepared.codes, prepared.labels, settings.bins),
        "dci_disentanglement": scores["disentanglement"],
        "dci_completeness": scores["completeness"],
        "dci_informativeness": scores["informativeness"],
        "sap": _sap(prepared, settings),
        "factor_vae": _factor_vae(prepared.codes, prepared.labels, settings),
    }


def direction_coordinates(directions: Any, latents: Any) -> np.ndarray:
    """Each latent's projection on each unit direction: ``latents @ directions.T``, (N, K) float64.

    Raises:
        ValueError: the shapes do not match, a value is not finite, or a direction is not of unit length.
    """
    directions, latents = _as_matrix(directions, "directions"), _as_matrix(latents, "latents")
    if directions.shape[1] != latents.shape[1]:
        raise ValueError(
            f"directions have {directions.shape[1]} dimensions but latents {latents.shape[1]}; expected the same"
        )
    norms = np.linalg.norm(directions, axis=1)
    if np.any(np.abs(norms - 1.0) > _UNIT_TOLERANCE):
        worst = int(np.argmax(np.abs(norms - 1.0)))
        raise ValueError(f"directions: row {worst} has length {norms[worst]:.6g}, expected unit rows")
    return latents @ directions.T


def direction_scores(
    directions: Any, latents: Any, factors: Any, settings: GroundTruthSettings | None = None
) -> tuple[np.ndarray, dict[str, float]]:
    """The coordinates (N, K) of ``latents`` (N, d) on K unit ``directions`` (K, d), and their
    `ground_truth_scores` for ``factors`` (N, F) (one row per latent)."""
    coordinates = direction_coordinates(directions, latents)
    return coordinates, ground_truth_scores(coordinates, factors, settings)
