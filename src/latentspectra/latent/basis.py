"""Quasi-eigenvectors and Latent Spectral Decomposition (paper, Methods step 6, Eqs. 4-10).

The n l averages eta of the latent sets (Eq. 3; n = floor(M / l) sets per label, see `build_latent_sets`),
taken in the order of Eq. 5 (every label of set 1, then every label of set 2, ...), are orthogonalised by
Gram-Schmidt (Eqs. 4-7) and scaled so that <xi_k|xi_k> = C (Eq. 8; C = M by default, the expected squared
norm of z ~ N(0, I_M)). A latent vector then expands as z = sum_k c_k xi_k (Eq. 9) with c_k = <xi_k|z> / C
(Eq. 10).

Besides the paper's Gram-Schmidt, a symmetric (Löwdin) orthogonalisation within each set keeps the sets'
order but privileges no label of a set; `QuasiEigenBasis.from_etas` takes either.

Any M and l with M >= l: when l does not divide M (the paper has M = 100, l = 10), the r = M - n l
directions that no eta spans are completed orthogonally. They are an orthonormal basis of the orthogonal
complement of the etas' span (the last r columns of a complete Householder QR in float64, each signed so
that its largest-magnitude entry is positive: same etas, same vectors bit for bit), scaled to
<xi|xi> = C like the rest, and come last in the basis. They carry no label: label `UNLABELLED` (-1) and
set `UNLABELLED_SET` (0). `classify` and `label_ranks` rank only the labelled quasi-eigenvectors, so an
unlabelled direction is never predicted; `decompose`, `reconstruct` and `truncate` use all M. The basis'
provenance records r as "unlabelled_directions". With n l = M nothing is completed and the basis is the
paper's.

Everything here is float64 and works on plain tensors: nothing depends on a particular generator.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import ORTHOGONALISATIONS
from ..errors import LatentspectraError
from .checks import check_latents
from .operators import ROTATION_MODES, literal_rotation, plane_rotation, projection_operator

UNLABELLED = -1  # the label of a direction completed beyond the n l etas (M not a multiple of l)
UNLABELLED_SET = 0  # its set index: the sets of the etas are 1-based
# A basis whose max |<xi_a|xi_b> / C - delta_ab| exceeds this is refused: the float64 bases built here are
# orthogonal to about 1e-15; a file edited, truncated to float32 and back, or built from other vectors is not.
ORTHOGONALITY_TOLERANCE = 1e-6


def check_orthogonalisation(orthogonalisation: str, caller: str) -> None:
    """Raise ValueError, naming ``caller``, unless ``orthogonalisation`` is one of `ORTHOGONALISATIONS`."""
    if orthogonalisation not in ORTHOGONALISATIONS:
        raise ValueError(f"{caller}: orthogonalisation must be one of {ORTHOGONALISATIONS}, got {orthogonalisation!r}")


class BasisError(LatentspectraError, ValueError):
    """Dependent latent averages, or a basis file that is missing, corrupt or inconsistent."""


def gram_schmidt(
    vectors: torch.Tensor, norm: float, *, rtol: float = 1e-8, row_names: Sequence[str] | None = None
) -> torch.Tensor:
    """Orthogonalise the rows of ``vectors`` in order (Eqs. 4-7) and scale each to <xi|xi> = ``norm`` (Eq. 8).

    Computed in float64 as a Householder QR of the transposed rows (backward stable, so the result is
    orthogonal to rounding), with the signs fixed so that diag(R) > 0: row k of the result is the part
    of row k orthogonal to rows 0..k-1, in its direction, exactly what classical Gram-Schmidt gives in
    exact arithmetic. Hence <xi_k|eta_k> > 0 and span{xi_0..xi_k} = span{eta_0..eta_k} for every k.

    Args:
        vectors: (K, M) real floating tensor, K <= M rows eta_k.
        norm: C > 0, the squared norm of every output row.
        rtol: a row whose residual (its norm after removing rows 0..k-1) is below ``rtol`` times its own
            norm counts as linearly dependent.
        row_names: optional description of each row for error messages, e.g. "label 3, set 2".

    Returns:
        (K, M) float64 tensor of orthogonal rows xi_k.

    Raises:
        LatentError: ``vectors`` not a finite floating-point (K, M) tensor.
        ValueError: ``norm`` <= 0.
        BasisError: a (nearly) linearly dependent row; the message names the row and its relative residual.
    """
    return _orthonormal_rows("gram_schmidt", vectors, norm, rtol, row_names) * float(norm) ** 0.5


def _orthonormal_rows(
    caller: str, vectors: torch.Tensor, norm: float, rtol: float, row_names: Sequence[str] | None
) -> torch.Tensor:
    """Gram-Schmidt's orthonormal rows q_k (row k: the part of row k orthogonal to rows 0..k-1, in its
    direction), after checking the arguments and that no row is (nearly) dependent on those before it."""
    etas = check_latents(vectors, caller, "vectors").double()
    count, dim = etas.shape
    _check_norm(caller, norm)
    if row_names is not None and len(row_names) != count:
        raise ValueError(f"{caller}: {len(row_names)} row names for {count} rows")
    if count > dim:
        raise BasisError(
            f"{caller}: {count} rows in {dim} dimensions cannot be independent: "
            f"{_describe_row(dim, row_names)} lies in the span of the rows before it"
        )
    q, r = torch.linalg.qr(etas.T, mode="reduced")
    diagonal = r.diagonal()
    relative = diagonal.abs() / torch.linalg.vector_norm(etas, dim=1)
    bad = torch.nonzero(~(relative >= rtol)).flatten()  # ~(x >= rtol) also catches 0/0 = NaN for a zero row
    if len(bad):
        k = int(bad[0])
        residual = float(relative[k]) if torch.isfinite(relative[k]) else 0.0
        raise BasisError(
            f"{caller}: {_describe_row(k, row_names)} is (nearly) linearly dependent on the rows "
            f"before it: its residual norm is {residual:.3g} of its own norm (rtol={rtol:g})"
        )
    return (q * torch.sign(diagonal)).T


def symmetric_orthogonalisation(
    vectors: torch.Tensor,
    norm: float,
    groups: Sequence[int] | torch.Tensor,
    *,
    rtol: float = 1e-8,
    row_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Orthogonalise the rows group by group, treating the rows of a group alike, and scale to <xi|xi> = ``norm``.

    The groups (consecutive rows; ``groups[g]`` rows in group g) are taken in order, as Gram-Schmidt
    takes rows (Eq. 5 with a group per set): the rows of group g lose their parts in the span of the
    groups before it, the residuals are scaled to unit length, and those rows R are replaced by the
    orthonormal rows closest to them in the least-squares sense, the polar factor U V^T of R = U S V^T
    (Löwdin's symmetric orthogonalisation). With one row per group this is `gram_schmidt`. Within a
    group no row is privileged (permuting its rows permutes the result) and the rows' lengths do not
    matter, whereas Gram-Schmidt leaves the last row of a group only what the earlier ones did not take
    (docs/networks.md measures what that costs the late labels). The span of the first g groups is
    Gram-Schmidt's, and <xi_k|eta_k> > 0 for every row.

    Computed on Gram-Schmidt's orthonormal rows: each group's residuals are taken in the coordinates of
    the group's own Gram-Schmidt rows, and the polar factor of those few coordinates is mapped back, so
    the groups stay orthogonal to rounding however nearly dependent a group's rows are.

    Args:
        vectors: (K, M) real floating tensor, K <= M.
        norm: C > 0, the squared norm of every output row.
        groups: sizes of the consecutive groups, summing to K.
        rtol / row_names: as for `gram_schmidt`, which decides, in the same row order, whether a row is
            (nearly) dependent on the rows before it.

    Returns:
        (K, M) float64 tensor of orthogonal rows.

    Raises:
        LatentError: ``vectors`` not a finite floating-point (K, M) tensor.
        ValueError: bad group sizes or ``norm`` <= 0.
        BasisError: a (nearly) dependent row, naming it and its relative residual.
    """
    etas = check_latents(vectors, "symmetric_orthogonalisation", "vectors").double()
    sizes = [int(size) for size in torch.as_tensor(groups).flatten()]
    if any(size < 1 for size in sizes) or sum(sizes) != len(etas):
        raise ValueError(
            f"symmetric_orthogonalisation: group sizes {sizes} must be positive and sum to the {len(etas)} rows"
        )
    gram_schmidt_rows = _orthonormal_rows("symmetric_orthogonalisation", etas, norm, rtol, row_names)
    symmetric = []
    for group_rows, q in zip(etas.split(sizes), gram_schmidt_rows.split(sizes)):
        residuals = group_rows @ q.T  # the rows less their parts in the earlier groups' span, in q's coordinates
        symmetric.append(_polar_factor(residuals / torch.linalg.vector_norm(residuals, dim=1, keepdim=True)) @ q)
    return torch.cat(symmetric) * float(norm) ** 0.5


def _polar_factor(rows: torch.Tensor) -> torch.Tensor:
    """The orthonormal rows closest to ``rows`` in the least-squares sense: U V^T of rows = U S V^T."""
    u, _, vh = torch.linalg.svd(rows, full_matrices=False)
    return u @ vh


def _check_norm(caller: str, norm: Any) -> float:
    """C as a float: a finite number > 0.

    Raises:
        ValueError: naming ``caller`` and the value.
    """
    try:
        value = float(norm)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{caller}: norm C must be a finite number > 0, got {norm!r}")
    return value


def _describe_row(index: int, row_names: Sequence[str] | None) -> str:
    return f"row {index}" + (f" ({row_names[index]})" if row_names is not None else "")


def _check_index_vector(name: str, value: Any, dim: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        value = torch.as_tensor(value)
    if value.shape != (dim,):
        raise ValueError(f"QuasiEigenBasis: {name} must have shape ({dim},), got {tuple(value.shape)}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise ValueError(f"QuasiEigenBasis: {name} must be an integer tensor, got {value.dtype}")
    return value.to(torch.int64)


def _check_unlabelled_rows(labels: torch.Tensor, sets: torch.Tensor) -> None:
    """Every row is labelled (label >= 0, set >= 1) or unlabelled (label `UNLABELLED`, set `UNLABELLED_SET`).

    Raises:
        ValueError: naming the first row that is neither, with its label and set.
    """
    labelled = (labels >= 0) & (sets > UNLABELLED_SET)
    unlabelled = (labels == UNLABELLED) & (sets == UNLABELLED_SET)
    bad = torch.nonzero(~(labelled | unlabelled)).flatten()
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"QuasiEigenBasis: row {k} has label {int(labels[k])} and set {int(sets[k])}; expected a "
            f"label >= 0 with a set >= 1, or label {UNLABELLED} with set {UNLABELLED_SET} (unlabelled)"
        )


def _orthogonal_complement(rows: torch.Tensor, norm: float) -> torch.Tensor:
    """The M - K rows that complete the K orthogonal rows ``rows`` (K, M) to an orthogonal basis of R^M, each
    with <v|v> = ``norm`` (Eq. 8's C): the unlabelled directions when l does not divide M.

    An orthonormal basis of the orthogonal complement of span(rows): the last M - K columns of the
    complete Householder QR of rows^T in float64 (orthogonal to the rows to rounding), each signed so that
    its largest-magnitude entry is positive (the first such entry on a tie). Deterministic: same rows,
    same bits. (0, M) when K = M.
    """
    complement = torch.linalg.qr(rows.T, mode="complete").Q[:, len(rows) :].T
    largest = complement.abs().argmax(dim=1, keepdim=True)
    return complement * torch.sign(complement.gather(1, largest)) * norm**0.5


def _orthogonalise(
    etas: torch.Tensor, norm: float, sets: torch.Tensor, orthogonalisation: str, rtol: float, row_names: Sequence[str]
) -> torch.Tensor:
    """The quasi-eigenvectors of the etas (Eqs. 4-8): `gram_schmidt`, or `symmetric_orthogonalisation` with one
    group per run of equal ``sets``."""
    if orthogonalisation == "gram-schmidt":
        return gram_schmidt(etas, norm, rtol=rtol, row_names=row_names)
    _, sizes = torch.unique_consecutive(sets, return_counts=True)
    return symmetric_orthogonalisation(etas, norm, sizes, rtol=rtol, row_names=row_names)


@dataclass(frozen=True, eq=False)
class QuasiEigenBasis:
    """The M quasi-eigenvectors xi_k (rows of ``vectors``), with the label and set of the eta each came from.

    Attributes:
        vectors: (M, M) float64, row k is xi_k, <xi_a|xi_b> = C delta_ab (Eq. 8).
        labels: (M,) int64, the label alpha of row k; `UNLABELLED` (-1) for a direction completed beyond
            the n l etas when l does not divide M (see the module docstring).
        sets: (M,) int64, the set index i (1-based, as in the paper) of row k; `UNLABELLED_SET` (0) for
            an unlabelled row.
        norm: C.
        provenance: free-form JSON-serialisable record of how the basis was built.

    Indices i, j, k in the methods are row indices 0..M-1 of ``vectors``; `index_of` finds the row
    of a (label, set) pair, `labelled` the rows that carry a label.
    """

    vectors: torch.Tensor
    labels: torch.Tensor
    sets: torch.Tensor
    norm: float
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vectors = self.vectors
        if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or vectors.shape[0] != vectors.shape[1]:
            shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
            raise ValueError(f"QuasiEigenBasis: vectors must be a square (M, M) tensor, got {shape}")
        if vectors.dtype != torch.float64:
            raise ValueError(f"QuasiEigenBasis: vectors must be float64, got {vectors.dtype}")
        dim = vectors.shape[0]
        object.__setattr__(self, "labels", _check_index_vector("labels", self.labels, dim))
        object.__setattr__(self, "sets", _check_index_vector("sets", self.sets, dim))
        _check_unlabelled_rows(self.labels, self.sets)
        object.__setattr__(self, "norm", _check_norm("QuasiEigenBasis", self.norm))
        if not bool(torch.isfinite(vectors).all()):
            raise ValueError("QuasiEigenBasis: vectors hold NaN or infinite values")
        error = self.orthogonality_error()
        if error > ORTHOGONALITY_TOLERANCE:
            raise ValueError(
                f"QuasiEigenBasis: vectors are not orthogonal with <xi|xi> = C = {self.norm:g}: "
                f"max |<xi_a|xi_b> / C - delta_ab| is {error:.3g}, more than {ORTHOGONALITY_TOLERANCE:g}"
            )

    @classmethod
    def from_etas(
        cls,
        etas: torch.Tensor,
        labels: Sequence[int] | torch.Tensor,
        sets: Sequence[int] | torch.Tensor,
        norm: float | None = None,
        *,
        orthogonalisation: str = "gram-schmidt",
        rtol: float = 1e-8,
        provenance: dict[str, Any] | None = None,
    ) -> QuasiEigenBasis:
        """Quasi-eigenvectors (Eqs. 4-8) of the (K, M) averages ``etas`` (K = n l <= M), rows already in the
        order of Eq. 5, completed to M when K < M.

        ``labels[k]`` (>= 0) and ``sets[k]`` (>= 1) describe row k; ``norm`` (C) defaults to M.
        ``orthogonalisation="gram-schmidt"`` is the paper's (`gram_schmidt`, row by row);
        ``"symmetric"`` takes the sets in order and the labels of a set alike
        (`symmetric_orthogonalisation` with one group per run of equal ``sets``). The choice is recorded
        in ``provenance["orthogonalisation"]``.

        When K < M (l does not divide M) the r = M - K remaining directions are completed orthogonally: an
        orthonormal basis of the orthogonal complement of the etas' span, deterministic (same etas, same
        bits) and scaled to <xi|xi> = C, appended after the K quasi-eigenvectors with label `UNLABELLED`
        (-1) and set `UNLABELLED_SET` (0). ``provenance["unlabelled_directions"]`` records r (0 when K = M,
        where the basis is the K orthogonalised etas alone).

        Raises:
            ValueError: ``etas`` with more rows than columns, labels / sets of the wrong shape or dtype, a
                negative label or a set < 1, an unknown ``orthogonalisation``.
            BasisError: dependent etas, naming the row with its label and set.
        """
        check_orthogonalisation(orthogonalisation, "from_etas")
        etas = check_latents(etas, "from_etas", "etas").double()
        count, dim = etas.shape
        if count > dim:
            raise ValueError(
                f"from_etas: etas must have K <= M rows of dimension M (K = n l latent averages), "
                f"got {tuple(etas.shape)}"
            )
        labels = _check_index_vector("labels", labels, count)
        sets = _check_index_vector("sets", sets, count)
        if bool((labels < 0).any()) or bool((sets <= UNLABELLED_SET).any()):
            raise ValueError(
                f"from_etas: the etas' labels must be >= 0 and their sets >= 1, got labels "
                f"{_distinct(labels)} and sets {_distinct(sets)}"
            )
        names = [f"label {int(a)}, set {int(i)}" for a, i in zip(labels, sets)]
        norm = float(dim) if norm is None else _check_norm("from_etas", norm)
        vectors = _orthogonalise(etas, norm, sets, orthogonalisation, rtol, names)
        unlabelled = dim - count
        return cls(
            torch.cat([vectors, _orthogonal_complement(vectors, norm)]),
            torch.cat([labels, labels.new_full((unlabelled,), UNLABELLED)]),
            torch.cat([sets, sets.new_full((unlabelled,), UNLABELLED_SET)]),
            norm,
            {**(provenance or {}), "orthogonalisation": orthogonalisation, "unlabelled_directions": unlabelled},
        )

    @property
    def dim(self) -> int:
        """M, the latent dimension."""
        return self.vectors.shape[0]

    @property
    def labelled(self) -> torch.Tensor:
        """(M,) bool: True for the rows built from an eta (label >= 0), False for the unlabelled completion."""
        return self.labels != UNLABELLED

    def index_of(self, label: int, set: int = 1) -> int:
        """Row k of the quasi-eigenvector built from the eta of (``label``, ``set``)."""
        matches = torch.nonzero((self.labels == label) & (self.sets == set)).flatten()
        if len(matches) != 1:
            raise ValueError(
                f"index_of: no unique quasi-eigenvector for label {label}, set {set} ({len(matches)} "
                f"found; labels {_distinct(self.labels)}, sets {_distinct(self.sets)})"
            )
        return int(matches[0])

    def decompose(self, z: torch.Tensor) -> torch.Tensor:
        """LSD coefficients c_k = <xi_k|z> / C (Eq. 10) of ``z`` (N, M) or (M,); float64, same shape and device."""
        z = check_latents(z, "decompose", dim=self.dim, vector=True).double()
        return z @ self.vectors.to(z.device).T / self.norm

    def reconstruct(self, c: torch.Tensor) -> torch.Tensor:
        """z = sum_k c_k xi_k (Eq. 9) from coefficients ``c`` (N, M) or (M,); float64, same shape and device."""
        c = check_latents(c, "reconstruct", "c", dim=self.dim, vector=True).double()
        return c @ self.vectors.to(c.device)

    def classify(self, z: torch.Tensor, top: int = 1) -> torch.Tensor:
        """Labels of the ``top`` labelled quasi-eigenvectors with the largest |c_k| (Eq. 10), most important
        first; unlabelled directions are never predicted.

        Returns int64 of shape (N, top) for z of shape (N, M), or (top,) for z of shape (M,): the trailing
        ``top`` axis is kept even for top=1 (take ``[..., 0]`` for the LSD prediction).
        """
        count = int(self.labelled.sum())
        if not 1 <= top <= count:
            raise ValueError(f"classify: top must be in 1..{count} (the labelled quasi-eigenvectors), got {top}")
        amplitudes, row_labels = self._labelled_amplitudes(z)
        return row_labels[amplitudes.topk(top, dim=-1).indices]

    def label_ranks(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """1-based rank, among the |c_k| of the labelled quasi-eigenvectors of each row of ``z`` (N, M) sorted in
        decreasing order, of the first one whose label is ``labels[n]``: 1 when `classify` gets it right, r
        when the true label is first among the labels of the r largest amplitudes (the cumulative top-n
        curve of Fig. 5). Unlabelled directions are left out of the ranking.

        Returns int64 (N,): 1..K for K labelled quasi-eigenvectors, M + 1 for a label that none of them carries.
        """
        z = check_latents(z, "label_ranks", dim=self.dim, vector=True).double()
        labels = torch.as_tensor(labels, dtype=torch.int64, device=z.device)
        if z.ndim != 2 or labels.shape != (len(z),):
            raise ValueError(
                f"label_ranks: need z of shape (N, {self.dim}) and N labels, "
                f"got {tuple(z.shape)} and {tuple(labels.shape)}"
            )
        amplitudes, row_labels = self._labelled_amplitudes(z)
        matches = row_labels[amplitudes.argsort(dim=1, descending=True)] == labels[:, None]
        first = matches.to(torch.int64).argmax(dim=1) + 1
        return torch.where(matches.any(dim=1), first, self.dim + 1)

    def _labelled_amplitudes(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """|c_k| (Eq. 10) of ``z`` on the labelled quasi-eigenvectors only (last axis: those rows, in order) and
        their labels, on the device of ``z``: what `classify` and `label_ranks` rank."""
        amplitudes = self.decompose(z).abs()
        rows = torch.nonzero(self.labelled).flatten().to(amplitudes.device)
        return amplitudes[..., rows], self.labels.to(amplitudes.device)[rows]

    def truncate(self, z: torch.Tensor, n: int) -> torch.Tensor:
        """Keep the ``n`` coefficients of largest |c_k| of each row of ``z`` among all M directions (unlabelled
        ones included), zero the rest, reconstruct (Eq. 9)."""
        if not 0 <= n <= self.dim:
            raise ValueError(f"truncate: n must be in 0..{self.dim}, got {n}")
        c = self.decompose(z)
        kept = torch.zeros_like(c).scatter(-1, c.abs().topk(n, dim=-1).indices, 1.0)
        return (c * kept) @ self.vectors.to(c.device)

    def projection(self, i: int, j: int) -> torch.Tensor:
        """The operator B_ij = |xi_i><xi_j| / C of Eq. 11 as an (M, M) matrix; see `projection_operator`."""
        return projection_operator(self.vectors[self._check_index(i)], self.vectors[self._check_index(j)], self.norm)

    def rotation(self, i: int, j: int, dtheta: float, theta: float = 0.0, mode: str = "literal") -> torch.Tensor:
        """Rotation by ``dtheta`` from xi_i towards xi_j as an (M, M) matrix acting on column vectors.

        mode="literal": Eq. 12 as printed, R = |u(theta + dtheta)><u(theta)| / C with
            u(phi) = cos(phi) xi_i + sin(phi) xi_j. Rank one: it maps u(theta) to u(theta + dtheta) and
            annihilates everything orthogonal to u(theta), including the other M - 2 coefficients of z.
        mode="plane": a true rotation by ``dtheta`` in span{xi_i, xi_j}, the identity on its orthogonal
            complement (orthogonal, determinant 1); ``theta`` plays no role. It agrees with the literal
            operator on u(theta): literal = plane @ (|u(theta)><u(theta)| / C).
        """
        if mode not in ROTATION_MODES:
            raise ValueError(f"rotation: mode must be one of {ROTATION_MODES}, got {mode!r}")
        i, j = self._check_index(i), self._check_index(j)
        if i == j:
            raise ValueError(f"rotation: i and j must differ to span a plane, got i = j = {i}")
        if mode == "literal":
            return literal_rotation(self.vectors[i], self.vectors[j], self.norm, dtheta, theta)
        return plane_rotation(self.vectors[i], self.vectors[j], self.norm, dtheta)

    def orthogonality_error(self) -> float:
        """max_ab |<xi_a|xi_b> / C - delta_ab| (0 up to rounding for a valid basis)."""
        gram = self.vectors @ self.vectors.T / self.norm
        return float((gram - torch.eye(self.dim, dtype=torch.float64)).abs().max())

    def _check_index(self, k: int) -> int:
        index = operator.index(k) if hasattr(k, "__index__") and not isinstance(k, bool) else None
        if index is None or not 0 <= index < self.dim:
            raise ValueError(f"quasi-eigenvector index must be an int in 0..{self.dim - 1}, got {k!r}")
        return index


def _distinct(values: torch.Tensor) -> list[int]:
    return [int(v) for v in values.unique()]
