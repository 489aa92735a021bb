"""Rayleigh EigenDirections (REDs): latent directions and paths that change one set of features and
hold another.

Balakrishnan, Gadde, Martinez & Perona, "Rayleigh EigenDirections (REDs): GAN latent space traversals
for multidimensional features", Caltech, 2022 (arXiv:2201.10423); the authors' code is
github.com/balakg/rayleigh-eigendirections.

At a latent point z, with f(G(z)) the features to change and g(G(z)) the features to hold, and their
Jacobians J_f (d_f, M) and J_g (d_g, M) with respect to z, the paper's best direction maximises the
Rayleigh quotient

    R(v) = |J_f v|^2 / (|J_g v|^2 + eps |v|^2),

solved in closed form by the top generalized eigenvector of (J_f^T J_f, J_g^T J_g + eps I). Walking a
small step along it and recomputing it there gives a curved path. Two variants (``method``):

- ``"generalized"`` (the paper): the generalized eigenproblem, by Cholesky J_g^T J_g + eps I = L L^T
  and the ordinary symmetric eigenproblem of L^-1 J_f^T J_f L^-T (what `scipy.linalg.eigh(A, B)`
  does, batched in torch, float64). Here ``eps`` is relative: the eps of the quotient is ``eps`` times
  the largest eigenvalue of J_g^T J_g at that latent (times 1 where J_g = 0), so that one value suits
  held features of any scale (pixels, logits, a stroke width); directions that change g by less than
  about that count as holding it.
- ``"nullspace"`` (the authors' code, ``utils.get_REDs``): the eigenvectors of J_g^T J_g that explain
  ``held_share`` (0.99) of its spectrum span the held subspace; J_f^T J_f projected onto its orthogonal
  complement gives the directions, of which those explaining ``change_share`` (0.999) span the
  subspace a path follows. As in the code, the share of eigenvalue lambda_i is lambda_i^2 / sum lambda^2
  and the rank is the number of leading eigenvalues whose cumulative share is <= the threshold, plus one.

Jacobians are exact (reds_jacobians.py), in the dtype the networks take (float64 for the package's own
networks prepared by `jacobian_networks`, float32 for a user's float32 networks; the eigenproblems are
float64 either way); the authors' code takes finite differences, which `central_difference_jacobians`
computes for comparison.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from ..config import REDS_CHANGE_SHARE, REDS_EPS, REDS_HELD_SHARE, REDS_METHODS
from ..latent.checks import check_latents
from ..progress import Progress
from ..threads import single_thread
from .reds_jacobians import Network, RedsError, as_batch, feature_jacobians


class RayleighDirections(NamedTuple):
    """What `rayleigh_directions` and `solve_rayleigh` return (float64).

    directions: (B, k, M), or (k, M) for one latent: unit vectors, best first; each one's sign makes
        its largest-magnitude component positive.
    eigenvalues: (B, k) or (k,): the Rayleigh quotient R(v) of each direction ("generalized"), or
        |J_f v|^2 within the complement of the held subspace ("nullspace").
    held_dims, change_dims: (B,) or (): "nullspace" only (None otherwise): dimension of the held
        subspace and number of directions that explain ``change_share`` of the projected spectrum.
    """

    directions: torch.Tensor
    eigenvalues: torch.Tensor
    held_dims: torch.Tensor | None = None
    change_dims: torch.Tensor | None = None


class _Solution(NamedTuple):
    """Every direction (B, M, M) as columns, best first, their eigenvalues (B, M), the number of
    leading columns whose span a path follows (B,), whether the columns are orthonormal, and the
    nullspace dimensions."""

    vectors: torch.Tensor
    values: torch.Tensor
    span: torch.Tensor
    orthonormal: bool
    held_dims: torch.Tensor | None
    change_dims: torch.Tensor | None


# --- Checks ------------------------------------------------------------------------------------------


def _check_parameters(
    function: str, method: str, k: int, eps: float, held_share: float, change_share: float, dim: int
) -> None:
    if method not in REDS_METHODS:
        raise RedsError(f"{function}: method must be one of {REDS_METHODS}, got {method!r}")
    if not isinstance(k, int) or not 1 <= k <= dim:
        raise RedsError(f"{function}: k must be an integer from 1 to M = {dim}, got {k!r}")
    if not eps >= 0:
        raise RedsError(f"{function}: eps must be >= 0, got {eps}")
    for name, share in (("held_share", held_share), ("change_share", change_share)):
        if not 0 < share <= 1:
            raise RedsError(f"{function}: {name} must be in (0, 1], got {share}")


# --- The eigenproblems -------------------------------------------------------------------------------


def _gram(jacobian: torch.Tensor) -> torch.Tensor:
    """J^T J in float64: (B, d, M) -> (B, M, M)."""
    jacobian = jacobian.to(torch.float64)
    return jacobian.transpose(1, 2) @ jacobian


def _descending_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (B, M) and eigenvector columns (B, M, M) of symmetric matrices, largest first."""
    values, vectors = torch.linalg.eigh((matrix + matrix.transpose(1, 2)) / 2)
    return values.flip(-1), vectors.flip(-1)


def _explained_rank(values: torch.Tensor, share: float) -> torch.Tensor:
    """The authors' rank rule: 1 + the number of leading eigenvalues (largest first) whose cumulative
    share of sum lambda^2 is <= ``share``, at most M; 0 where every eigenvalue is 0. (B, M) -> (B,)."""
    squares = values.clamp(min=0) ** 2
    total = squares.sum(-1, keepdim=True)
    cumulative = squares.cumsum(-1) / total.clamp(min=torch.finfo(values.dtype).tiny)
    rank = ((cumulative <= share).sum(-1) + 1).clamp(max=values.shape[-1])
    return torch.where(total[:, 0] > 0, rank, torch.zeros_like(rank))


def _generalized_solution(gram_f: torch.Tensor, gram_g: torch.Tensor, eps: float, k: int) -> _Solution:
    """Top generalized eigenvectors of (A, B) = (J_f^T J_f, J_g^T J_g + eps s I), with s the largest
    eigenvalue of J_g^T J_g (1 where J_g = 0), via B = L L^T: A u = lambda B u <=> (L^-1 A L^-T) w =
    lambda w with u = L^-T w."""
    dim = gram_f.shape[-1]
    scale = torch.linalg.eigvalsh(gram_g)[:, -1]
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    held = gram_g + (eps * scale)[:, None, None] * torch.eye(dim, dtype=gram_g.dtype, device=gram_g.device)
    factor, info = torch.linalg.cholesky_ex(held)
    if (info != 0).any():
        raise RedsError(
            f"J_g^T J_g + eps I is not positive definite (eps = {eps}): the held features g "
            "leave latent directions free; use eps > 0 or method='nullspace'"
        )
    left = torch.linalg.solve_triangular(factor, gram_f, upper=False)  # L^-1 A
    whitened = torch.linalg.solve_triangular(factor, left.transpose(1, 2), upper=False)  # L^-1 A L^-T
    values, vectors = _descending_eigh(whitened)
    directions = torch.linalg.solve_triangular(factor.transpose(1, 2), vectors, upper=True)  # L^-T W
    directions = directions / torch.linalg.vector_norm(directions, dim=1, keepdim=True)
    span = torch.full(values.shape[:1], k, dtype=torch.long, device=values.device)
    return _Solution(directions, values, span, False, None, None)


def _nullspace_solution(
    gram_f: torch.Tensor, gram_g: torch.Tensor, held_share: float, change_share: float
) -> _Solution:
    """The authors' variant: hold the eigenvectors of J_g^T J_g that explain ``held_share`` of its
    spectrum; take the eigenvectors of J_f^T J_f projected onto their orthogonal complement P, i.e. of
    P J_f^T J_f P (P = I - U_held U_held^T), best first."""
    dim = gram_f.shape[-1]
    held_values, held_vectors = _descending_eigh(gram_g)
    held_dims = _explained_rank(held_values, held_share)
    kept = (torch.arange(dim, device=gram_g.device) < held_dims[:, None]).to(gram_g.dtype)  # (B, M): 1 for held
    identity = torch.eye(dim, dtype=gram_g.dtype, device=gram_g.device)
    complement = identity - (held_vectors * kept[:, None, :]) @ held_vectors.transpose(1, 2)
    values, vectors = _descending_eigh(complement @ gram_f @ complement)
    change_dims = _explained_rank(values, change_share)
    return _Solution(vectors, values, change_dims.clamp(min=1), True, held_dims, change_dims)


def _fix_signs(directions: torch.Tensor) -> torch.Tensor:
    """Flip each column (B, M, n) so that its largest-magnitude component is positive."""
    largest = directions.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(directions.gather(1, largest))
    return directions * torch.where(signs == 0, torch.ones_like(signs), signs)


def _solve(
    j_f: torch.Tensor, j_g: torch.Tensor, method: str, k: int, eps: float, held_share: float, change_share: float
) -> _Solution:
    with single_thread():
        gram_f, gram_g = _gram(j_f), _gram(j_g)
        if method == "generalized":
            solution = _generalized_solution(gram_f, gram_g, eps, k)
        else:
            solution = _nullspace_solution(gram_f, gram_g, held_share, change_share)
        return solution._replace(vectors=_fix_signs(solution.vectors))


def solve_rayleigh(
    j_f: torch.Tensor,
    j_g: torch.Tensor,
    k: int = 1,
    eps: float = REDS_EPS,
    method: str = REDS_METHODS[0],
    held_share: float = REDS_HELD_SHARE,
    change_share: float = REDS_CHANGE_SHARE,
) -> RayleighDirections:
    """The top-k REDs from given Jacobians (see the module docstring for the two methods).

    Args:
        j_f: (B, d_f, M) or (d_f, M) Jacobian of the features to change.
        j_g: (B, d_g, M) or (d_g, M) Jacobian of the features to hold.

    Returns:
        `RayleighDirections`, with a leading batch dimension when the Jacobians have one.

    Raises:
        RedsError: Jacobians of mismatched shapes or non-finite values, bad parameters, or (method
            "generalized") J_g^T J_g + eps I not positive definite, e.g. eps = 0 with d_g < M.
    """
    for name, jacobian in (("j_f", j_f), ("j_g", j_g)):
        if not isinstance(jacobian, torch.Tensor) or jacobian.ndim not in (2, 3) or not jacobian.is_floating_point():
            raise RedsError(f"solve_rayleigh: {name} must be a floating tensor (B, d, M) or (d, M)")
        if not torch.isfinite(jacobian).all():
            raise RedsError(f"solve_rayleigh: {name} has non-finite values")
    if j_f.ndim != j_g.ndim or j_f.shape[-1] != j_g.shape[-1] or (j_f.ndim == 3 and j_f.shape[0] != j_g.shape[0]):
        raise RedsError(
            f"solve_rayleigh: j_f {tuple(j_f.shape)} and j_g {tuple(j_g.shape)} must share the batch "
            "and latent dimensions"
        )
    _check_parameters("solve_rayleigh", method, k, eps, held_share, change_share, j_f.shape[-1])
    single = j_f.ndim == 2
    solution = _solve(
        j_f.reshape(-1, *j_f.shape[-2:]), j_g.reshape(-1, *j_g.shape[-2:]), method, k, eps, held_share, change_share
    )
    result = RayleighDirections(
        solution.vectors[:, :, :k].transpose(1, 2), solution.values[:, :k], solution.held_dims, solution.change_dims
    )
    return RayleighDirections._make(None if part is None else part[0] for part in result) if single else result


def rayleigh_directions(
    generator: Network,
    f: Network,
    g: Network,
    z: torch.Tensor,
    k: int = 1,
    eps: float = REDS_EPS,
    method: str = REDS_METHODS[0],
    held_share: float = REDS_HELD_SHARE,
    change_share: float = REDS_CHANGE_SHARE,
    batch_size: int = 64,
) -> RayleighDirections:
    """The top-k Rayleigh EigenDirections at ``z``: `solve_rayleigh` on the exact `feature_jacobians`.

    Args:
        generator: latents (N, M) -> outputs (N, ...), each latent on its own (an eval-mode network).
        f: outputs -> (N, d_f), the features to change.
        g: outputs -> (N, d_g), the features to hold.
        z: (B, M) or (M,) latents.
        k: number of directions.
        eps: the regulariser of the quotient (method "generalized"), relative to the largest eigenvalue
            of J_g^T J_g (see the module docstring).
        method: "generalized" (the paper) or "nullspace" (the authors' code).
        held_share, change_share: spectrum shares of the "nullspace" method.

    Returns:
        `RayleighDirections`: directions (B, k, M) or (k, M), eigenvalues (B, k) or (k,).

    Raises:
        RedsError: see `feature_jacobians` and `solve_rayleigh`.
    """
    batch = as_batch(check_latents(z, "rayleigh_directions", vector=True))
    _check_parameters("rayleigh_directions", method, k, eps, held_share, change_share, batch.shape[-1])
    j_f, j_g = feature_jacobians(generator, f, g, z, batch_size)
    return solve_rayleigh(j_f, j_g, k, eps, method, held_share, change_share)


# --- Paths -------------------------------------------------------------------------------------------


def _span_basis(solution: _Solution) -> torch.Tensor:
    """Orthonormal columns (B, M, n) spanning the first ``solution.span`` directions at each point
    (zero columns beyond a point's span)."""
    if not solution.orthonormal:  # generalized eigenvectors (a fixed k of them) are not orthogonal
        return torch.linalg.qr(solution.vectors[:, :, : int(solution.span[0])]).Q
    columns = torch.arange(solution.vectors.shape[-1], device=solution.vectors.device)
    used = (columns < solution.span[:, None]).to(solution.vectors.dtype)
    return solution.vectors * used[:, None, :]


def _follow(previous: torch.Tensor, solution: _Solution) -> torch.Tensor:
    """The previous unit directions (B, M) projected onto the span of the new point's directions
    (`_span_basis`), normalised, with the sign that keeps <new, previous> > 0 (the authors'
    ``project_onto_subspace`` and sign rule). Where the projection vanishes: the best direction."""
    basis = _span_basis(solution)
    projected = (basis @ (basis.transpose(1, 2) @ previous[:, :, None]))[:, :, 0]
    norms = torch.linalg.vector_norm(projected, dim=1, keepdim=True)
    new = torch.where(norms > 1e-12, projected / norms.clamp(min=1e-300), solution.vectors[:, :, 0])
    signs = torch.sign((new * previous).sum(1, keepdim=True))
    return new * torch.where(signs == 0, torch.ones_like(signs), signs)


def rayleigh_path(
    generator: Network,
    f: Network,
    g: Network,
    z: torch.Tensor,
    steps: int,
    step_size: float,
    index: int = 0,
    k: int = 1,
    eps: float = REDS_EPS,
    method: str = REDS_METHODS[0],
    held_share: float = REDS_HELD_SHARE,
    change_share: float = REDS_CHANGE_SHARE,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> torch.Tensor:
    """A curved path that follows the REDs: ``steps`` steps of length |step_size| from ``z``.

    The first step goes along direction ``index`` (0: the best) at z, times the sign of ``step_size``
    (a negative step_size walks the other way). At each later point the directions are recomputed and
    the previous direction is projected onto the span of the first k of them ("generalized"; with k = 1
    this is the paper's path along the top RED) or of those explaining ``change_share`` ("nullspace", as
    the authors' code), normalised, and its sign kept (positive dot product with the previous one).

    Args:
        z: (B, M) or (M,) starting latents.
        steps: number of steps (>= 1).
        step_size: length of every step in latent units (nonzero).
        index: which direction at z starts the path, 0 <= index < M.
        progress: given the number of steps and told of each.

    Returns:
        (steps + 1, B, M) or (steps + 1, M) float64 latents: the input first, then after every step. The
        path length (sum of step norms) is steps * |step_size|.

    Raises:
        LatentError: latents that are not a finite floating-point (B, M) or (M,) tensor.
        RedsError: bad features or parameters; see also `rayleigh_directions`.
    """
    batch = as_batch(check_latents(z, "rayleigh_path", vector=True))
    dim = batch.shape[-1]
    _check_parameters("rayleigh_path", method, k, eps, held_share, change_share, dim)
    if not isinstance(steps, int) or steps < 1:
        raise RedsError(f"rayleigh_path: steps must be an integer >= 1, got {steps!r}")
    if not (isinstance(step_size, (int, float)) and step_size != 0 and abs(step_size) < float("inf")):
        raise RedsError(f"rayleigh_path: step_size must be a finite nonzero number, got {step_size!r}")
    if not isinstance(index, int) or not 0 <= index < dim:
        raise RedsError(f"rayleigh_path: index must be an integer from 0 to M - 1 = {dim - 1}, got {index!r}")
    current = batch.to(torch.float64)
    path = [current]
    direction = None
    if progress is not None:
        progress.reset(total=steps)
    for _ in range(steps):
        j_f, j_g = feature_jacobians(generator, f, g, current, batch_size)
        solution = _solve(j_f, j_g, method, k, eps, held_share, change_share)
        if direction is None:
            direction = solution.vectors[:, :, index] * (1.0 if step_size > 0 else -1.0)
        else:
            with single_thread():
                direction = _follow(direction, solution)
        current = current + abs(step_size) * direction
        path.append(current)
        if progress is not None:
            progress.update()
    stacked = torch.stack(path)
    return stacked if z.ndim == 2 else stacked[:, 0]
