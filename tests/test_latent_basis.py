"""Quasi-eigenvectors: Gram-Schmidt (Eqs. 4-8) and the symmetric orthogonalisation, LSD (Eqs. 9-10),
classification, truncation, save / load."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import rewrite_pair
from latentspectra.errors import LatentspectraError
from latentspectra.latent import (
    UNLABELLED,
    UNLABELLED_SET,
    BasisError,
    LatentError,
    QuasiEigenBasis,
    gram_schmidt,
    load_basis,
    save_basis,
    symmetric_orthogonalisation,
)

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def eta_matrices(draw) -> torch.Tensor:
    """Square float64 matrices of independent rows: random, badly scaled, or nearly dependent."""
    dim = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    kind = draw(st.sampled_from(["random", "scaled", "nearly_dependent"]))
    rng = torch.Generator().manual_seed(seed)
    etas = torch.randn(dim, dim, generator=rng, dtype=torch.float64)
    if kind == "scaled":
        etas *= 10.0 ** torch.randint(-8, 9, (dim, 1), generator=rng)
    elif kind == "nearly_dependent":
        # row k = a combination of the rows before it plus a part orthogonal to them of 1e-6 its size
        k = draw(st.integers(1, dim - 1))
        combination = torch.randn(k, generator=rng, dtype=torch.float64) @ etas[:k]
        span = torch.linalg.qr(etas[:k].T).Q
        offset = torch.randn(dim, generator=rng, dtype=torch.float64)
        offset -= span @ (span.T @ offset)
        etas[k] = combination + 1e-6 * combination.norm() * offset / offset.norm()
    return etas


def _basis(etas: torch.Tensor, norm: float | None = None) -> QuasiEigenBasis:
    dim = etas.shape[0]
    labels = torch.arange(dim) % max(1, dim // 2)
    sets = torch.arange(dim) // max(1, dim // 2) + 1
    return QuasiEigenBasis.from_etas(etas, labels, sets, norm)


def _mnist_like(dim: int = 20, labels: int = 10, seed: int = 0) -> QuasiEigenBasis:
    etas = torch.randn(dim, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return QuasiEigenBasis.from_etas(
        etas, torch.arange(labels).repeat(dim // labels), torch.arange(1, dim // labels + 1).repeat_interleave(labels)
    )


@PROPERTY
@given(etas=eta_matrices(), norm=st.one_of(st.none(), st.floats(1e-3, 1e3)))
def test_quasi_eigenvectors_are_orthogonal_with_norm_c(etas, norm):
    basis = _basis(etas, norm)
    expected_norm = float(etas.shape[0]) if norm is None else norm
    assert basis.norm == expected_norm
    assert basis.vectors.dtype == torch.float64
    assert basis.orthogonality_error() <= 1e-10
    squared = (basis.vectors**2).sum(1)
    assert torch.allclose(squared, torch.full_like(squared, expected_norm), rtol=1e-10, atol=0)


@PROPERTY
@given(etas=eta_matrices())
def test_each_xi_keeps_its_eta_direction_and_spans_grow_together(etas):
    basis = _basis(etas)
    overlaps = (basis.vectors * etas).sum(1)
    assert (overlaps > 0).all()
    # eta_k = sum_{m <= k} c_m xi_m: the coefficients of eta_k beyond k vanish, so
    # span{eta_0..eta_k} is inside span{xi_0..xi_k}; both have dimension k + 1, so they are equal.
    coefficients = basis.decompose(etas) * basis.norm**0.5 / torch.linalg.vector_norm(etas, dim=1, keepdim=True)
    assert coefficients.triu(1).abs().max() <= 1e-8


@PROPERTY
@given(etas=eta_matrices(), count=st.integers(1, 5), seed=st.integers(0, 1000))
def test_reconstruction_from_all_coefficients_is_exact(etas, count, seed):
    basis = _basis(etas)
    z = 3 * torch.randn(count, basis.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    error = (basis.reconstruct(basis.decompose(z)) - z).abs().max()
    assert error <= 1e-10 * max(1.0, float(z.abs().max()))


@PROPERTY
@given(etas=eta_matrices())
def test_decompose_of_a_quasi_eigenvector_is_one_hot(etas):
    basis = _basis(etas)
    coefficients = basis.decompose(basis.vectors)
    assert torch.allclose(coefficients, torch.eye(basis.dim, dtype=torch.float64), atol=1e-10, rtol=0)


@st.composite
def grouped_etas(draw) -> tuple[torch.Tensor, list[int]]:
    """`eta_matrices` cut into consecutive groups of random sizes."""
    etas = draw(eta_matrices())
    sizes, left = [], etas.shape[0]
    while left:
        sizes.append(draw(st.integers(1, left)))
        left -= sizes[-1]
    return etas, sizes


@PROPERTY
@given(grouped=grouped_etas(), norm=st.floats(1e-3, 1e3))
def test_symmetric_orthogonalisation_is_orthogonal_keeps_directions_and_group_spans(grouped, norm):
    etas, sizes = grouped
    xi = symmetric_orthogonalisation(etas, norm, sizes)
    assert xi.dtype == torch.float64 and xi.shape == etas.shape
    assert (xi @ xi.T / norm - torch.eye(len(xi), dtype=torch.float64)).abs().max() <= 1e-10
    assert ((xi * etas).sum(1) > 0).all()
    # the span of the first g groups is Gram-Schmidt's: the same projector
    gs = gram_schmidt(etas, norm)
    for end in torch.tensor(sizes).cumsum(0).tolist():
        assert torch.allclose(xi[:end].T @ xi[:end], gs[:end].T @ gs[:end], atol=1e-8 * norm)


@PROPERTY
@given(etas=eta_matrices(), seed=st.integers(0, 1000))
def test_symmetric_orthogonalisation_privileges_no_row_of_a_group(etas, seed):
    """Permuting the rows inside a group permutes the quasi-eigenvectors the same way; Gram-Schmidt would
    change them. One row per group is Gram-Schmidt."""
    half = etas.shape[0] // 2
    sizes = [half, etas.shape[0] - half] if half else [etas.shape[0]]
    permutation = torch.cat(
        [torch.randperm(half, generator=torch.Generator().manual_seed(seed)), torch.arange(half, etas.shape[0])]
    )
    xi = symmetric_orthogonalisation(etas, 2.0, sizes)
    assert torch.allclose(symmetric_orthogonalisation(etas[permutation], 2.0, sizes), xi[permutation], atol=1e-8)
    assert torch.allclose(symmetric_orthogonalisation(etas, 2.0, [1] * len(etas)), gram_schmidt(etas, 2.0), atol=1e-8)


def test_symmetric_orthogonalisation_of_equally_overlapping_etas_known_answer():
    """Ten unit class offsets plus a common offset m (every pair at the same cosine): the symmetric
    quasi-eigenvectors keep the same share of every eta, Gram-Schmidt leaves the last one least of all.
    Known answer: with E = I + m 1^T (rows e_a + m), the polar factor of E is I + b m 1^T-like, and each
    overlap <xi_a|eta_a>/|eta_a| equals the mean overlap."""
    dim, labels = 12, 10
    m = torch.zeros(dim, dtype=torch.float64)
    m[labels:] = 0.8  # the common offset lies outside the span of the class offsets
    etas = torch.eye(dim, dtype=torch.float64)[:labels] + m
    shares = {}
    for name, xi in (("symmetric", symmetric_orthogonalisation(etas, 1.0, [labels])), ("gs", gram_schmidt(etas, 1.0))):
        shares[name] = (xi * etas).sum(1) / etas.norm(dim=1)
    assert torch.allclose(shares["symmetric"], shares["symmetric"].mean().expand(labels), atol=1e-12)
    assert shares["gs"][0] > shares["symmetric"][0] > shares["gs"][-1]
    assert (shares["gs"].diff() < 0).all()


def test_symmetric_orthogonalisation_names_a_dependent_row_and_rejects_bad_groups():
    etas = torch.randn(20, 20, dtype=torch.float64)
    etas[13] = 2 * etas[2] - etas[7]
    labels, sets = torch.arange(10).repeat(2), torch.arange(1, 3).repeat_interleave(10)
    with pytest.raises(
        BasisError,
        match=r"symmetric_orthogonalisation: row 13 \(label 3, set 2\) is \(nearly\) "
        r"linearly dependent on the rows before it: its residual norm is .* of its own",
    ):
        QuasiEigenBasis.from_etas(etas, labels, sets, orthogonalisation="symmetric")
    etas[13] = torch.randn(20, dtype=torch.float64)
    etas[15] = etas[12] + etas[2]  # independent of set 1 alone, but its residual is row 12's
    with pytest.raises(BasisError, match=r"row 15 \(label 5, set 2\) is \(nearly\) linearly dependent"):
        QuasiEigenBasis.from_etas(etas, labels, sets, orthogonalisation="symmetric")
    with pytest.raises(ValueError, match=r"group sizes \[3, 3\] must be positive and sum to the 5 rows"):
        symmetric_orthogonalisation(torch.randn(5, 5), 1.0, [3, 3])
    with pytest.raises(ValueError, match="norm C must be a finite number > 0"):
        symmetric_orthogonalisation(torch.randn(5, 5), -1.0, [5])
    with pytest.raises(ValueError, match="orthogonalisation must be one of"):
        QuasiEigenBasis.from_etas(etas, labels, sets, orthogonalisation="qr")


def test_from_etas_records_its_orthogonalisation_and_groups_by_set():
    etas = torch.randn(20, 20, dtype=torch.float64)
    labels, sets = torch.arange(10).repeat(2), torch.arange(1, 3).repeat_interleave(10)
    basis = QuasiEigenBasis.from_etas(etas, labels, sets, orthogonalisation="symmetric", provenance={"seed": 1})
    assert basis.provenance == {"seed": 1, "orthogonalisation": "symmetric", "unlabelled_directions": 0}
    assert torch.allclose(basis.vectors, symmetric_orthogonalisation(etas, 20.0, [10, 10]))
    assert QuasiEigenBasis.from_etas(etas, labels, sets).provenance == {
        "orthogonalisation": "gram-schmidt",
        "unlabelled_directions": 0,
    }


def test_decompose_accepts_float32_and_single_vectors_and_returns_float64():
    basis = _mnist_like()
    z = torch.randn(4, 20)
    batch = basis.decompose(z)
    assert batch.dtype == torch.float64 and batch.shape == (4, 20)
    assert torch.allclose(basis.decompose(z[1]), batch[1])
    assert basis.reconstruct(batch[1]).shape == (20,)


def test_gram_schmidt_of_fewer_rows_than_dimensions():
    etas = torch.randn(3, 7, dtype=torch.float64)
    xi = gram_schmidt(etas, 2.0)
    assert xi.shape == (3, 7)
    assert torch.allclose(xi @ xi.T, 2.0 * torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_dependent_eta_is_named_with_its_label_set_and_residual():
    etas = torch.randn(20, 20, dtype=torch.float64)
    etas[13] = 2 * etas[2] - etas[7]
    labels = torch.arange(10).repeat(2)
    sets = torch.arange(1, 3).repeat_interleave(10)
    with pytest.raises(BasisError, match=r"row 13 \(label 3, set 2\).*residual norm is .* of its own norm") as info:
        QuasiEigenBasis.from_etas(etas, labels, sets)
    assert isinstance(info.value, LatentspectraError) and isinstance(info.value, ValueError)


def test_nearly_dependent_eta_below_rtol_raises_and_above_passes():
    etas = torch.randn(6, 6, dtype=torch.float64)
    etas[4] = etas[1] + 1e-10 * torch.randn(6, dtype=torch.float64)
    with pytest.raises(BasisError, match="row 4"):
        gram_schmidt(etas, 6.0)
    assert gram_schmidt(etas, 6.0, rtol=1e-12).shape == (6, 6)


def test_zero_row_and_too_many_rows_raise():
    etas = torch.randn(5, 5, dtype=torch.float64)
    etas[0] = 0
    with pytest.raises(BasisError, match="row 0"):
        gram_schmidt(etas, 5.0)
    with pytest.raises(BasisError, match="6 rows in 5 dimensions"):
        gram_schmidt(torch.randn(6, 5), 5.0)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (
            torch.randn(5),
            r"gram_schmidt: vectors must be a finite floating-point tensor of shape \(N, M\), got shape \(5,\)",
        ),
        (torch.ones(3, 3, dtype=torch.int64), "got torch.int64"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), "got NaN or infinite values"),
        ([[1.0, 0.0], [0.0, 1.0]], "got list"),
    ],
)
def test_gram_schmidt_rejects_bad_input(vectors, message):
    with pytest.raises(LatentError, match=message):
        gram_schmidt(vectors, 1.0)


def test_gram_schmidt_rejects_non_positive_norm():
    with pytest.raises(ValueError, match="norm C must be a finite number > 0"):
        gram_schmidt(torch.eye(3), 0.0)


def test_from_etas_rejects_bad_shapes_and_dtypes():
    with pytest.raises(ValueError, match=r"^from_etas: etas must have K <= M rows of dimension M .* got \(5, 4\)$"):
        QuasiEigenBasis.from_etas(torch.randn(5, 4), range(5), [1] * 5)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\), got \(3,\)"):
        QuasiEigenBasis.from_etas(torch.randn(4, 4), range(3), [1] * 4)
    with pytest.raises(ValueError, match="sets must be an integer tensor"):
        QuasiEigenBasis.from_etas(torch.randn(4, 4), range(4), torch.ones(4))


@pytest.mark.parametrize(
    ("method", "argument", "message"),
    [
        (
            "decompose",
            torch.randn(3, 7),
            r"decompose: z must be a finite floating-point tensor of shape \(N, 20\) or \(20,\), got shape \(3, 7\)",
        ),
        ("decompose", torch.randn(2, 3, 20), r"got shape \(2, 3, 20\)"),
        ("decompose", torch.ones(3, 20, dtype=torch.int64), "decompose: z must be .*, got torch.int64"),
        ("reconstruct", torch.randn(20, 3), r"reconstruct: c must be .* \(N, 20\) or \(20,\), got shape \(20, 3\)"),
        ("classify", [0.0] * 20, "decompose: z must be .*, got list"),
        ("classify", torch.full((2, 20), float("nan")), "decompose: z must be .*, got NaN or infinite values"),
        ("truncate", torch.full((20,), float("inf")), "got NaN or infinite values"),
    ],
)
def test_shape_and_dtype_errors_are_clear(method, argument, message):
    arguments = (argument, 3) if method == "truncate" else (argument,)
    with pytest.raises(LatentError, match=message):
        getattr(_mnist_like(), method)(*arguments)


def test_classify_returns_labels_of_largest_coefficients():
    basis = _mnist_like()
    k_first, k_second = basis.index_of(4, 2), basis.index_of(7, 1)
    z = -5 * basis.vectors[k_first] + 2 * basis.vectors[k_second] + 0.01 * basis.vectors.sum(0)
    assert basis.classify(z).tolist() == [4]
    assert basis.classify(z, top=2).tolist() == [4, 7]
    batch = torch.stack([z, basis.vectors[basis.index_of(0, 1)]])
    labels = basis.classify(batch, top=3)
    assert labels.shape == (2, 3) and labels.dtype == torch.int64
    assert labels[:, 0].tolist() == [4, 0]
    with pytest.raises(ValueError, match="top must be in 1..20"):
        basis.classify(z, top=0)


def test_truncate_keeps_the_largest_coefficients():
    basis = _mnist_like()
    z = torch.randn(3, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(basis.truncate(z, 20), z, atol=1e-12)
    assert torch.equal(basis.truncate(z, 0), torch.zeros_like(z))
    c = basis.decompose(z)
    kept = basis.decompose(basis.truncate(z, 2))
    assert ((kept.abs() > 1e-12).sum(1) == 2).all()
    top = c.abs().topk(2, dim=1).indices
    assert torch.allclose(kept.gather(1, top), c.gather(1, top), atol=1e-12)
    with pytest.raises(ValueError, match="n must be in 0..20"):
        basis.truncate(z, 21)


def test_index_of_finds_label_and_set():
    basis = _mnist_like()
    assert basis.index_of(3) == 3 and basis.index_of(3, 2) == 13
    assert torch.equal(basis.projection(torch.tensor(3), 13), basis.projection(3, 13))
    with pytest.raises(ValueError, match="label 10, set 1"):
        basis.index_of(10)


def test_constructor_rejects_bad_vectors():
    with pytest.raises(ValueError, match="square"):
        QuasiEigenBasis(torch.eye(3, 4, dtype=torch.float64), torch.arange(3), torch.ones(3, dtype=torch.int64), 3.0)
    with pytest.raises(ValueError, match="float64"):
        QuasiEigenBasis(torch.eye(3), torch.arange(3), torch.ones(3, dtype=torch.int64), 3.0)


def test_save_load_round_trip(tmp_path):
    basis = _mnist_like()
    basis.provenance["seed"] = 7
    path = save_basis(basis, tmp_path / "out" / "basis.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["norm"] == 20.0 and meta["dim"] == 20
    assert meta["provenance"] == {"orthogonalisation": "gram-schmidt", "unlabelled_directions": 0, "seed": 7}
    loaded = load_basis(path)
    assert torch.equal(loaded.vectors, basis.vectors)
    assert torch.equal(loaded.labels, basis.labels) and torch.equal(loaded.sets, basis.sets)
    assert loaded.norm == basis.norm and loaded.provenance == basis.provenance
    assert sorted(p.name for p in path.parent.iterdir()) == ["basis.json", "basis.safetensors"]
    with pytest.raises(ValueError, match="use a .safetensors path"):
        save_basis(basis, tmp_path / "basis.json")


def test_load_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(BasisError, match="JSON record not found"):
        load_basis(tmp_path / "none.safetensors")
    path = save_basis(_mnist_like(), tmp_path / "basis.safetensors")
    path.write_bytes(b"not safetensors")
    with pytest.raises(BasisError, match="not a readable safetensors file"):
        load_basis(path)
    path = save_basis(_mnist_like(), tmp_path / "basis.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**meta, "dim": 30}))
    with pytest.raises(BasisError, match="were not written together"):
        load_basis(path)
    rewrite_pair(path, lambda record: {**record, "dim": 30})
    with pytest.raises(BasisError, match="dimension 20 but"):
        load_basis(path)


# --- fewer etas than dimensions (l does not divide M): the unlabelled completion ----------------------------


def test_mnist_case_n_l_equal_to_m_is_the_orthogonalised_etas_bit_for_bit():
    """M = 100, l = 10: no completion; the basis, classify and label_ranks are exactly what they were before the
    completion existed (reference: the orthogonalisation itself, and top-|c_k| over all rows)."""
    etas = torch.randn(100, 100, generator=torch.Generator().manual_seed(1234), dtype=torch.float64)
    labels, sets = torch.arange(10).repeat(10), torch.arange(1, 11).repeat_interleave(10)
    z = torch.randn(50, 100, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    truth = torch.arange(50) % 10
    expected = {
        "gram-schmidt": gram_schmidt(etas, 100.0),
        "symmetric": symmetric_orthogonalisation(etas, 100.0, [10] * 10),
    }
    for orthogonalisation, vectors in expected.items():
        basis = QuasiEigenBasis.from_etas(etas, labels, sets, orthogonalisation=orthogonalisation)
        assert torch.equal(basis.vectors, vectors)
        assert torch.equal(basis.labels, labels) and torch.equal(basis.sets, sets) and bool(basis.labelled.all())
        amplitudes = (z @ vectors.T / 100.0).abs()
        order = amplitudes.argsort(dim=1, descending=True)
        assert torch.equal(basis.classify(z, top=5), labels[amplitudes.topk(5, dim=1).indices])
        assert torch.equal(basis.label_ranks(z, truth), (labels[order] == truth[:, None]).long().argmax(dim=1) + 1)


@pytest.mark.parametrize("orthogonalisation", ["gram-schmidt", "symmetric"])
@pytest.mark.parametrize(("count", "dim"), [(1, 5), (6, 7), (24, 25), (9, 10), (40, 52)])
def test_fewer_etas_than_dimensions_are_completed_orthogonally_without_a_label(count, dim, orthogonalisation):
    etas = torch.randn(count, dim, generator=torch.Generator().manual_seed(count), dtype=torch.float64)
    labels, sets = torch.arange(count) % 4, torch.arange(count) // 4 + 1
    basis = QuasiEigenBasis.from_etas(etas, labels, sets, 3.0, orthogonalisation=orthogonalisation)
    again = QuasiEigenBasis.from_etas(etas.clone(), labels, sets, 3.0, orthogonalisation=orthogonalisation)
    assert torch.equal(basis.vectors, again.vectors)  # deterministic, completion included
    orthogonalised = {
        "gram-schmidt": gram_schmidt(etas, 3.0),
        "symmetric": symmetric_orthogonalisation(etas, 3.0, torch.unique_consecutive(sets, return_counts=True)[1]),
    }
    assert torch.equal(basis.vectors[:count], orthogonalised[orthogonalisation])  # the etas' rows are untouched
    completion = basis.vectors[count:]
    assert basis.orthogonality_error() <= 1e-10 and basis.norm == 3.0
    assert (completion @ etas.T).abs().max() <= 1e-10 * float(etas.norm(dim=1).max())
    largest = completion.gather(1, completion.abs().argmax(dim=1, keepdim=True))
    assert (largest > 0).all()  # the sign convention
    assert basis.labels[count:].tolist() == [UNLABELLED] * (dim - count)
    assert basis.sets[count:].tolist() == [UNLABELLED_SET] * (dim - count)
    assert basis.provenance["unlabelled_directions"] == dim - count


def test_a_completed_basis_round_trips_through_files(tmp_path):
    etas = torch.randn(6, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    basis = QuasiEigenBasis.from_etas(etas, [0, 1, 2] * 2, [1, 1, 1, 2, 2, 2])
    loaded = load_basis(save_basis(basis, tmp_path / "basis.safetensors"))
    assert torch.equal(loaded.vectors, basis.vectors) and loaded.labels.tolist() == [0, 1, 2, 0, 1, 2, UNLABELLED]
    assert loaded.sets.tolist() == [1, 1, 1, 2, 2, 2, UNLABELLED_SET] and loaded.labelled.sum() == 6
    assert loaded.provenance == {"orthogonalisation": "gram-schmidt", "unlabelled_directions": 1}


def test_labels_and_sets_must_say_labelled_or_unlabelled():
    etas = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"^from_etas: the etas' labels must be >= 0 and their sets >= 1, got labels "
        r"\[-1, 0, 1\] and sets \[1\]$",
    ):
        QuasiEigenBasis.from_etas(etas, [0, 1, UNLABELLED], [1, 1, 1])
    with pytest.raises(ValueError, match=r"sets >= 1, got labels \[0, 1, 2\] and sets \[0, 1\]$"):
        QuasiEigenBasis.from_etas(etas, [0, 1, 2], [1, 1, UNLABELLED_SET])
    vectors = torch.eye(3, dtype=torch.float64)
    with pytest.raises(
        ValueError,
        match=r"^QuasiEigenBasis: row 2 has label -1 and set 1; expected a label >= 0 with "
        r"a set >= 1, or label -1 with set 0 \(unlabelled\)$",
    ):
        QuasiEigenBasis(vectors, [0, 1, UNLABELLED], [1, 1, 1], 1.0)
    with pytest.raises(ValueError, match=r"row 0 has label -2 and set 0"):
        QuasiEigenBasis(vectors, [-2, 1, 2], [0, 1, 1], 1.0)
    assert QuasiEigenBasis(vectors, [0, 1, UNLABELLED], [1, 1, UNLABELLED_SET], 1.0).labelled.tolist() == [
        True,
        True,
        False,
    ]
