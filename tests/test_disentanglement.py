"""Ground-truth disentanglement metrics: MIG, DCI, SAP and the FactorVAE score agree with a by-hand port of
disentanglement_lib's procedure on small arrays; codes that are the factors score near 1, a random rotation of
them clearly lower; the importance aggregation gives the known answers; bad inputs are one clear error."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mutual_info_score
from sklearn.svm import LinearSVC

from latentspectra.disentanglement import (
    SCORE_NAMES,
    GroundTruthSettings,
    dci,
    dci_completeness,
    dci_disentanglement,
    direction_coordinates,
    direction_scores,
    factor_vae,
    factor_vae_votes,
    ground_truth_scores,
    mig,
    sap,
)

FAST = GroundTruthSettings(dci_trees=15, dci_depth=2)

# --------------------------------------------------------------------------- a port of disentanglement_lib
# Their procedure, written out as they lay it out: codes and factors as (num, N) arrays, loops per code and
# factor, the split by the first ceil(N * share) points; with the tree ensemble's size and the seeds as
# parameters (theirs: sklearn's defaults and the global random state).


def port_discretise(target, num_bins):
    discretized = np.zeros_like(target)
    for i in range(target.shape[0]):
        discretized[i, :] = np.digitize(target[i, :], np.histogram(target[i, :], num_bins)[1][:-1])
    return discretized


def port_mig(mus, ys, num_bins):
    discretized = port_discretise(mus, num_bins)
    m = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = mutual_info_score(ys[j, :], discretized[i, :])
    entropy = np.zeros(ys.shape[0])
    for j in range(ys.shape[0]):
        entropy[j] = mutual_info_score(ys[j, :], ys[j, :])
    sorted_m = np.sort(m, axis=0)[::-1]
    return np.mean(np.divide(sorted_m[0, :] - sorted_m[1, :], entropy[:]))


def port_split(observations, share):
    count = int(np.ceil(observations.shape[1] * share))
    return observations[:, :count], observations[:, count:]


def port_dci(mus, ys, share, trees, depth, seed):
    x_train, x_test = port_split(mus, share)
    y_train, y_test = port_split(ys, share)
    importance = np.zeros([mus.shape[0], ys.shape[0]])
    test_accuracy = []
    for i in range(ys.shape[0]):
        model = GradientBoostingClassifier(n_estimators=trees, max_depth=depth, random_state=seed)
        model.fit(x_train.T, y_train[i, :])
        importance[:, i] = np.abs(model.feature_importances_)
        test_accuracy.append(np.mean(model.predict(x_test.T) == y_test[i, :]))
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    code_weight = importance.sum(axis=1) / importance.sum()
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    factor_weight = importance.sum(axis=0) / importance.sum()
    return np.sum(per_code * code_weight), np.sum(per_factor * factor_weight), np.mean(test_accuracy)


def port_sap(mus, ys, share, seed):
    mus_train, mus_test = port_split(mus, share)
    ys_train, ys_test = port_split(ys, share)
    score = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            classifier = LinearSVC(C=0.01, class_weight="balanced", dual="auto", random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                classifier.fit(mus_train[i, :][:, np.newaxis], ys_train[j, :])
            prediction = classifier.predict(mus_test[i, :][:, np.newaxis])
            score[i, j] = np.mean(prediction == ys_test[j, :])
    ordered = np.sort(score, axis=0)
    return np.mean(ordered[-1, :] - ordered[-2, :])


def port_factor_vae(mus, ys, batch_size, num_train, num_eval, seed):
    """Their ``compute_factor_vae`` on ground-truth data made of given rows (``ys`` label columns). The data's
    random streams are drawn up front in the order our rows-based data draws them (each batch of votes: its
    factors, its anchor rows, its uniforms); their procedure consumes them vote by vote: the factor, its value
    from the anchor row, the batch from the rows with that value; variances with ddof 1."""
    random_state = np.random.default_rng(seed)
    global_variances = np.var(mus, axis=0, ddof=1)
    active_dims = np.sqrt(global_variances) > 0

    def generate_training_batch(num_points):
        factor_indices = random_state.integers(ys.shape[1], size=num_points)
        anchors = random_state.integers(ys.shape[0], size=num_points)
        uniforms = random_state.random((num_points, batch_size))
        votes = np.zeros((ys.shape[1], global_variances.shape[0]), dtype=np.int64)
        for point in range(num_points):
            factor_index = factor_indices[point]
            value = ys[anchors[point], factor_index]
            candidates = np.flatnonzero(ys[:, factor_index] == value)
            representations = mus[candidates[(uniforms[point] * len(candidates)).astype(np.int64)]]
            local_variances = np.var(representations, axis=0, ddof=1)
            argmin = np.argmin(local_variances[active_dims] / global_variances[active_dims])
            votes[factor_index, argmin] += 1
        return votes

    training_votes = generate_training_batch(num_train)
    classifier = np.argmax(training_votes, axis=0)
    other_index = np.arange(training_votes.shape[1])
    eval_votes = generate_training_batch(num_eval)
    return np.sum(eval_votes[classifier, other_index]) * 1.0 / np.sum(eval_votes)


# --------------------------------------------------------------------------- data


def grid_factors(count: int, levels: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """``count`` rows of independent factors, factor f uniform over 0..levels[f]-1."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, n, count) for n in levels], axis=1).astype(np.float64)


def entangled_codes(factors: np.ndarray, seed: int = 1) -> np.ndarray:
    """Three codes that mix the factors unevenly, with noise: no score is 0 or 1."""
    rng = np.random.default_rng(seed)
    mixing = np.array([[1.0, 0.3], [0.2, 1.0], [0.6, 0.6]])
    return factors @ mixing.T + 0.4 * rng.standard_normal((len(factors), 3))


def standardised(factors: np.ndarray) -> np.ndarray:
    return (factors - factors.mean(0)) / factors.std(0)


def random_rotation(size: int, seed: int = 2) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((size, size)))
    return q * np.sign(np.diag(r))


# --------------------------------------------------------------------------- against the port


@pytest.fixture(scope="module")
def small():
    factors = grid_factors(240, (3, 5))
    return entangled_codes(factors), factors


def test_mig_matches_the_port(small):
    codes, factors = small
    ours = mig(codes, factors, FAST)
    assert ours == pytest.approx(port_mig(codes.T, factors.T, 20), abs=1e-12)
    assert 0.02 < ours < 0.9


def test_dci_matches_the_port(small):
    codes, factors = small
    ours = dci(codes, factors, FAST)
    expected = port_dci(codes.T, factors.T, FAST.train_share, FAST.dci_trees, FAST.dci_depth, FAST.seed)
    got = (ours["disentanglement"], ours["completeness"], ours["informativeness"])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert all(0.05 < value < 0.99 for value in got)


def test_sap_matches_the_port(small):
    codes, factors = small
    ours = sap(codes, factors, FAST)
    assert ours == pytest.approx(port_sap(codes.T, factors.T, FAST.train_share, FAST.seed), abs=1e-12)
    assert ours > 0.01


def test_factor_vae_matches_the_port():
    factors = grid_factors(400, (3, 6, 8, 5))
    codes = standardised(factors) @ random_rotation(4, 1)  # every code mixes every factor
    settings = GroundTruthSettings(factor_vae_train_votes=400, factor_vae_eval_votes=300, seed=5)
    labels = np.stack([np.unique(column, return_inverse=True)[1] for column in factors.T], axis=1)
    expected = port_factor_vae(codes, labels, 64, 400, 300, seed=5)
    assert 0.3 < expected < 1.0  # neither chance nor perfect
    assert factor_vae(codes, factors, settings) == expected


def test_factor_vae_counts_votes_for_the_code_that_holds_the_fixed_factor():
    """Two factors, each held by one code: every vote goes to the fixed factor's own code; a third, constant,
    code gets none."""
    factors = grid_factors(300, (4, 5))
    codes = np.concatenate([standardised(factors), np.ones((300, 1))], axis=1)
    votes = factor_vae_votes(codes, factors.astype(np.int64), 200, 64, np.random.default_rng(0))
    assert votes[:, 2].sum() == 0 and votes[0, 1] == votes[1, 0] == 0 and votes.sum() == 200
    assert factor_vae(codes, factors) == 1.0


def test_factor_values_are_labels_whatever_their_values(small):
    """Continuous-valued but discrete factors (a grid of scales, say) score as their class indices do."""
    codes, factors = small
    relabelled = np.stack([0.5 + factors[:, 0] / 10, np.linspace(0, 2 * math.pi, 5)[factors[:, 1].astype(int)]], 1)
    assert ground_truth_scores(codes, relabelled, FAST) == ground_truth_scores(codes, factors, FAST)


# --------------------------------------------------------------------------- known answers


@pytest.fixture(scope="module")
def factors4():
    return grid_factors(600, (3, 6, 8, 5))


def test_codes_that_are_the_factors_score_near_one(factors4):
    codes = standardised(factors4) + 1e-3 * np.random.default_rng(3).standard_normal(factors4.shape)
    scores = ground_truth_scores(codes, factors4, FAST)
    assert scores["mig"] > 0.9 and scores["dci_disentanglement"] > 0.9 and scores["dci_completeness"] > 0.9
    assert scores["dci_informativeness"] > 0.95 and scores["factor_vae"] == 1.0


def test_random_rotations_of_the_factors_score_clearly_lower():
    """Six factors, their codes turned by three random rotations: each code mixes all factors. MIG falls to
    near its chance level; DCI disentanglement stays around 0.4 (the trees' importances are sparse even on
    mixed codes), far below the unrotated 1."""
    factors = grid_factors(800, (3, 6, 8, 5, 4, 7))
    identity = ground_truth_scores(standardised(factors), factors, FAST)
    assert identity["mig"] > 0.9 and identity["dci_disentanglement"] > 0.9
    rotated = [
        ground_truth_scores(standardised(factors) @ random_rotation(6, seed), factors, FAST) for seed in range(3)
    ]
    assert max(r["mig"] for r in rotated) < 0.35 and np.mean([r["mig"] for r in rotated]) < 0.25
    assert max(r["dci_disentanglement"] for r in rotated) < 0.55
    assert max(r["sap"] for r in rotated) < identity["sap"]
    # FactorVAE is the most lenient: a rotation keeps some code least variable for most factors
    assert identity["factor_vae"] == 1.0 and np.mean([r["factor_vae"] for r in rotated]) < 0.9


def test_the_coordinate_axes_of_a_latent_space_made_of_the_factors_beat_random_directions(factors4):
    """Latents whose coordinates are the factors (and two of noise): the axes on the factors score near 1,
    random orthonormal directions clearly lower; the coordinates are the projections."""
    rng = np.random.default_rng(4)
    latents = np.concatenate([standardised(factors4), rng.standard_normal((len(factors4), 2))], axis=1)
    axes = np.eye(6)[:4]
    coordinates, on_axes = direction_scores(axes, latents, factors4, FAST)
    np.testing.assert_array_equal(coordinates, latents[:, :4])
    random_directions = random_rotation(6)[:4]
    _, at_random = direction_scores(random_directions, latents, factors4, FAST)
    assert list(on_axes) == list(SCORE_NAMES)
    assert on_axes["mig"] > 0.9 and on_axes["dci_disentanglement"] > 0.9
    assert at_random["mig"] < 0.5 and at_random["dci_disentanglement"] < 0.6
    np.testing.assert_allclose(direction_coordinates(random_directions, latents), latents @ random_directions.T)


def test_the_importance_aggregation_gives_the_known_answers():
    diagonal = np.diag([5.0, 5.0, 5.0])
    assert dci_disentanglement(diagonal) == pytest.approx(1.0) and dci_completeness(diagonal) == pytest.approx(1.0)
    assert dci_disentanglement(np.vstack([diagonal, diagonal])) == pytest.approx(1.0)  # redundant codes
    assert dci_completeness(np.vstack([diagonal, diagonal])) == pytest.approx(1 - math.log(2) / math.log(6))
    one_code_two_factors = np.hstack([np.diag([5.0] * 5)] * 2)
    assert dci_disentanglement(one_code_two_factors) == pytest.approx(1 - math.log(2) / math.log(10))
    assert dci_disentanglement(np.zeros((4, 4))) == pytest.approx(0.0, abs=1e-9)
    assert dci_disentanglement(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-9)


def test_a_constant_factor_is_left_out(small):
    codes, factors = small
    with_constant = np.concatenate([factors, np.full((len(factors), 1), 7.0)], axis=1)
    assert ground_truth_scores(codes, with_constant, FAST) == ground_truth_scores(codes, factors, FAST)


def test_a_factor_with_many_values_is_binned(small):
    codes, factors = small
    continuous = factors[:, :1] + np.random.default_rng(5).random((len(factors), 1))  # 240 distinct values
    scores = ground_truth_scores(codes, continuous, FAST)
    assert all(np.isfinite(list(scores.values())))


def test_one_code_is_scored_against_nothing(small):
    """With one code the second best is zero information and zero accuracy."""
    codes, factors = small
    scores = ground_truth_scores(codes[:, :1], factors, FAST)
    assert scores["dci_disentanglement"] == pytest.approx(dci(codes[:, :1], factors, FAST)["disentanglement"])
    assert scores["dci_completeness"] == pytest.approx(1.0)
    assert scores["mig"] > 0


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "call, expected",
    [
        (lambda: mig(np.zeros((4, 2)), np.zeros((5, 1))), "codes hold 4 rows but factors 5"),
        (lambda: mig(np.zeros(4), np.zeros((4, 1))), "codes: expected a 2-D array"),
        (lambda: sap(np.full((4, 1), np.nan), np.zeros((4, 1))), "codes: contains NaN"),
        (lambda: dci(np.zeros((4, 1)), np.ones((4, 2))), "every factor takes a single value"),
        (lambda: direction_coordinates(np.ones((1, 3)), np.zeros((4, 3))), "row 0 has length 1.73205"),
        (lambda: direction_coordinates(np.eye(3), np.zeros((4, 2))), "directions have 3 dimensions but latents 2"),
        (lambda: GroundTruthSettings(train_share=1.0), "train_share must lie in (0, 1)"),
        (lambda: GroundTruthSettings(bins=0), "bins must be at least 1"),
    ],
)
def test_bad_inputs_are_one_clear_error(call, expected):
    with pytest.raises(ValueError) as failure:
        call()
    assert expected in str(failure.value) and "\n" not in str(failure.value)
