"""The package's own methods behind the direction contract (`directions`): thin adapters that call the existing
code and change none of its numbers, registered as "lsd", "sfvq" and "reds".

- `LSDDirections` ("lsd"): Latent Spectral Decomposition (Toledo-Marin & Glazier, PLOS ONE 18(6): e0287736,
  2023): the latent sets (Methods steps 4-5, Eq. 3; `latent.build_latent_sets`) and their quasi-eigenvectors
  (step 6, Eqs. 4-8; `latent.QuasiEigenBasis.from_etas`), built with the arguments `experiments.basis.build_basis`
  passes, every set sampled (fit has no encoder).
- `SFVQDirections` ("sfvq"): the curve of `SFVQ` (Vali & Bäckström 2023, 2024), its segments as directions.
- `REDsDirections` ("reds"): Rayleigh EigenDirections (Balakrishnan et al. 2022; `rayleigh_directions`) at the
  mean of the given latents, and the curved REDs path (`rayleigh_path`) as an edit.

Each keeps the contract's `edit` (z + t d_k) and `transform` (z d_k^T) and adds the method's own operations
beside them: `LSDDirections.coefficients` (Eq. 10) and `LSDDirections.label_edit` (Algorithm 1's rotation),
`SFVQDirections.quantize` / `curve_coordinate`, and `REDsDirections.edit(..., path=True)`. Errors of the wrapped
code (ValueErrors) come out as one-line `MethodError`s naming the adapter.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

import torch

from ..config import INFERENCE_BATCH_SIZE, ORTHOGONALISATION, REDS_CHANGE_SHARE, REDS_EPS, REDS_HELD_SHARE, REDS_METHODS
from ..latent.basis import ORTHOGONALISATIONS, QuasiEigenBasis
from ..latent.checks import check_latents
from ..latent.sets import build_latent_sets
from .directions import (
    DirectionMethod,
    FitInputs,
    LabelEdit,
    MethodError,
    Network,
    as_unit_directions,
    check_count,
    check_whole,
    network_device,
    register,
)
from .features import Feature, FeatureError, feature_from_spec
from .reds import rayleigh_directions, rayleigh_path
from .reds_jacobians import input_dtype
from .sfvq import SFVQ, SFVQ_CANDIDATES, SFVQ_GROWTH, CurveQuantization, project_onto_curve


@contextmanager
def _method_errors(method: str) -> Iterator[None]:
    """Turn a ValueError of the wrapped code (BasisError, SFVQError, RedsError, ...) into a one-line MethodError
    naming ``method``; a MethodError passes unchanged."""
    try:
        yield
    except MethodError:
        raise
    except ValueError as error:
        raise MethodError(f"{method}: {error}") from None


def _is_real(value: Any) -> bool:
    """``value`` is a finite real number (a bool is not)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


# --- LSD ----------------------------------------------------------------------------------------------


def _label_count(method: str, generator: Network, classifier: Network, dim: int, device: torch.device) -> int:
    """l, the width of the classifier's logits on one decoded probe latent (z = 0).

    Raises:
        MethodError: logits that are not a (1, L) tensor.
    """
    logits = classifier(generator(torch.zeros(1, dim, device=device)))
    if not (isinstance(logits, torch.Tensor) and logits.ndim == 2 and len(logits) == 1):
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise MethodError(f"{method}: classifier expected logits of shape (1, L) for one latent, got {got}")
    return logits.shape[1]


@register("lsd")
class LSDDirections(DirectionMethod):
    """The quasi-eigenvectors xi_k of Latent Spectral Decomposition as directions (module docstring).

    Fit uses ``generator`` and ``classifier``; M comes from ``latent_dim`` or the generator's ``latent_dim``, l
    from the classifier's logits on one probe latent. It calls `build_latent_sets` (n = floor(M / l) sets, all
    sampled: fit takes no encoder) and `QuasiEigenBasis.from_etas` with the arguments of
    `experiments.basis.build_basis` (C = M, the same provenance), on the generator's device: the same seed and
    networks give the same basis bit for bit.

    Directions and coordinates: ``directions_`` are the first K rows of the basis, in its order (every label of
    set 1, then set 2, ..., the unlabelled completion last), each scaled to unit length, xi_k / sqrt(C). So
    `transform` (the contract's z d_k^T) is sqrt(C) c_k, not the LSD coefficient c_k = <xi_k|z> / C of Eq. 10;
    `coefficients` gives those, from the basis itself.

    Args:
        n_directions: K <= M, or None for all M.
        per_set: V, latent vectors averaged per label and set (Eq. 3).
        orthogonalisation: "symmetric" (the experiments' default, `config.ORTHOGONALISATION`) or
            "gram-schmidt" (the paper's Eqs. 4-7).
        seed: seeds the sampling of the latent sets.
        batch_size: latents decoded and classified per batch.
        max_draws: per-set cap on drawn latents (None: 50 V l).
        latent_dim: M, where the generator has no ``latent_dim`` attribute.

    Attributes (after `fit`):
        directions_: (K, M) float32 unit rows xi_k / sqrt(C).
        basis_vectors_, basis_labels_, basis_sets_, basis_norm_, basis_provenance_: the fields of the whole basis
            (M rows), which `basis_` rebuilds.
    """

    inputs = ("generator", "classifier")
    count_from_data = True

    def __init__(
        self,
        n_directions: int | None = None,
        *,
        per_set: int = 5000,
        orthogonalisation: str = ORTHOGONALISATION,
        seed: int = 0,
        batch_size: int = INFERENCE_BATCH_SIZE,
        max_draws: int | None = None,
        latent_dim: int | None = None,
    ) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.per_set = per_set
        self.orthogonalisation = orthogonalisation
        self.seed = seed
        self.batch_size = batch_size
        self.max_draws = max_draws

    def check_params(self) -> None:
        super().check_params()
        check_whole(self.title, "per_set", self.per_set, 1)
        if self.orthogonalisation not in ORTHOGONALISATIONS:
            raise MethodError(
                f"{self.title}: orthogonalisation expected one of {', '.join(ORTHOGONALISATIONS)}, "
                f"got {self.orthogonalisation!r}"
            )
        check_whole(self.title, "seed", self.seed, 0)
        check_whole(self.title, "batch_size", self.batch_size, 1)
        check_whole(self.title, "max_draws", self.max_draws, 1, optional=True)

    def _fit(self, inputs: FitInputs) -> None:
        generator, classifier = inputs.require("generator"), inputs.require("classifier")
        dim = inputs.require_latent_dim()
        device = network_device(generator)
        labels = _label_count(self.title, generator, classifier, dim, device)
        with _method_errors(self.title):
            sets = build_latent_sets(
                generator,
                classifier,
                latent_dim=dim,
                num_labels=labels,
                per_set=self.per_set,
                seed=self.seed,
                batch_size=self.batch_size,
                max_draws=self.max_draws,
                device=device,
            )
            basis = QuasiEigenBasis.from_etas(
                sets.etas,
                sets.labels,
                sets.sets,
                orthogonalisation=self.orthogonalisation,
                provenance={"seed": self.seed, "per_set": sets.per_set, "sources": list(sets.sources)},
            )
        self._learn(basis)

    def _learn(self, basis: QuasiEigenBasis) -> None:
        """Set the learned fields from ``basis``: its ``basis_*_`` fields and the first K rows as ``directions_``."""
        for field in fields(QuasiEigenBasis):
            setattr(self, f"basis_{field.name}_", getattr(basis, field.name))
        count = basis.dim if self.n_directions is None else self.n_directions
        self.directions_ = as_unit_directions(basis.vectors[:count])

    @classmethod
    def from_basis(cls, basis: QuasiEigenBasis, n_directions: int | None = None, **params: Any) -> LSDDirections:
        """The method fitted without sampling, on a basis built elsewhere (`experiments.basis.build_basis`, a
        `latentspectra basis` file: set 1 encoded, as the paper's): ``basis`` as its learned basis and its first
        ``n_directions`` rows as ``directions_``, ``params`` kept as its parameters (M is the basis').

        Raises:
            MethodError: a bad parameter, or K > M.
        """
        method = cls(n_directions, latent_dim=basis.dim, **params)
        method.check_params()
        check_count(method.title, basis.dim if n_directions is None else n_directions, basis.dim)
        method._learn(basis)
        return method

    @property
    def basis_(self) -> QuasiEigenBasis:
        """The whole quasi-eigenvector basis (M rows), rebuilt from the learned ``basis_*_`` fields.

        Raises:
            MethodError: not fitted.
        """
        self.check_is_fitted()
        return QuasiEigenBasis(
            **{field.name: getattr(self, f"basis_{field.name}_") for field in fields(QuasiEigenBasis)}
        )

    def coefficients(self, z: torch.Tensor) -> torch.Tensor:
        """The LSD coefficients c_k = <xi_k|z> / C of ``z`` (N, M) on all M quasi-eigenvectors (Eq. 10;
        `QuasiEigenBasis.decompose`): (N, M) float64 on ``z``'s device. For k < K, `transform` gives
        sqrt(C) c_k (in float32 directions).

        Raises:
            MethodError: not fitted.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        self.check_is_fitted()
        z = check_latents(z, f"{self.title}.coefficients", "z", dim=self.directions_.shape[1])
        return self.basis_.decompose(z)

    def label_edit(self, z: torch.Tensor, source_label: int, target_label: int, t: float) -> torch.Tensor:
        """Algorithm 1's rotation: ``z`` (N, M) rotated by the angle ``t`` (radians) in the plane of xi of
        ``source_label`` and xi of ``target_label`` (both of set 1), from the source towards the target, the
        identity on the rest of the space (`QuasiEigenBasis.rotation`, mode "plane", applied as z R^T in
        float64). t = pi / 2 carries the source's coefficient to the target (Eq. 10). In ``z``'s dtype and on
        its device.

        Raises:
            MethodError: not fitted, a label without a set-1 quasi-eigenvector, equal labels, or ``t`` not a
                finite number.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        self.check_is_fitted()
        z = check_latents(z, f"{self.title}.label_edit", "z", dim=self.directions_.shape[1])
        if not _is_real(t):
            raise MethodError(f"{self.title}: t expected a finite number (an angle in radians), got {t!r}")
        basis = self.basis_
        with _method_errors(self.title):
            rotation = basis.rotation(
                basis.index_of(source_label), basis.index_of(target_label), float(t), mode="plane"
            )
        return (z.double() @ rotation.to(z.device).T).to(z.dtype)

    def projection_edit(
        self, z: torch.Tensor, source_label: int, target_label: int, strength: float = 1.0
    ) -> torch.Tensor:
        """z + s (B_ba - B_aa) z for ``z`` (N, M), with the projection operators B_ij = |xi_i><xi_j| / C of Eq. 11
        (set 1; a = ``source_label``, b = ``target_label``) and s the ``strength``: at s = 1 the amplitude c_a of
        label a's quasi-eigenvector moved onto label b's, every other component kept. In ``z``'s dtype."""
        basis = self.basis_
        source = basis.vectors[basis.index_of(source_label)]
        target = basis.vectors[basis.index_of(target_label)]
        amplitude = z.double() @ source / basis.norm
        return (z.double() + strength * amplitude[:, None] * (target - source)).to(z)

    def label_edits(self, class_means: dict[int, torch.Tensor], num_labels: int) -> dict[str, LabelEdit]:
        """ "lsd_rotation", Algorithm 1's rotation by s pi / 2 (`label_edit`), and "lsd_projection", the projection
        operators' edit at strength s (`projection_edit`)."""
        self.check_is_fitted()
        return {
            "lsd_rotation": lambda z, a, b, s: self.label_edit(z, a, b, s * math.pi / 2),
            "lsd_projection": lambda z, a, b, s: self.projection_edit(z, a, b, s),
        }


# --- SFVQ ---------------------------------------------------------------------------------------------


@register("sfvq")
class SFVQDirections(DirectionMethod):
    """The K segments of an `SFVQ` curve through K + 1 codewords as directions (module docstring).

    ``n_directions`` counts segments, not codewords: the curve has n_directions + 1 codewords, so that K
    directions are K rows as the contract has them (and K <= M bounds the segments). Fit uses ``latents`` and
    runs ``SFVQ(n_directions + 1, ...).fit(latents)`` with the other parameters as given (their defaults are
    `SFVQ`'s): the same codebook bit for bit.

    Directions and coordinates: ``directions_[k]`` is the unit vector of segment k, c_k+1 - c_k (in float64,
    then float32); `edit` moves straight along it (leaving the curve beyond the segment's ends) and `transform`
    is the contract's z d_k^T. The position on the curve itself is `curve_coordinate` (segment + position), and
    the nearest curve point `quantize`.

    Args:
        n_directions: K >= 1 segments (K + 1 codewords), K <= M.
        initial_codewords, epochs_per_stage, batch_size, learning_rate, decay_at, decay_factor, seed, candidates,
            growth: `SFVQ`'s (``decay_at`` is kept as a list, its JSON form).
        latent_dim: M, checked against the latents.

    Attributes (after `fit`):
        directions_: (K, M) float32 unit segment directions, in curve order.
        codebook_: (K + 1, M) float32, the codewords in curve order (`SFVQ.codebook_`).
        history_: `SFVQ.history_`, per stage {"codewords", "steps", "loss"}.
    """

    inputs = ("latents",)
    n_directions: int  # required by this method: check_params refuses None (count_from_data is False)

    def __init__(
        self,
        n_directions: int,
        *,
        initial_codewords: int = 4,
        epochs_per_stage: int = 5,
        batch_size: int = 64,
        learning_rate: float = 1e-3,
        decay_at: Sequence[float] = (0.6, 0.8),
        decay_factor: float = 0.5,
        seed: int = 0,
        candidates: str = SFVQ_CANDIDATES[0],
        growth: str = SFVQ_GROWTH[0],
        latent_dim: int | None = None,
    ) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.initial_codewords = initial_codewords
        self.epochs_per_stage = epochs_per_stage
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.decay_at = list(decay_at)
        self.decay_factor = decay_factor
        self.seed = seed
        self.candidates = candidates
        self.growth = growth

    def quantizer(self) -> SFVQ:
        """The unfitted `SFVQ` of these parameters, with n_directions + 1 codewords."""
        return SFVQ(
            self.n_directions + 1,
            initial_codewords=self.initial_codewords,
            epochs_per_stage=self.epochs_per_stage,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            decay_at=self.decay_at,
            decay_factor=self.decay_factor,
            seed=self.seed,
            candidates=self.candidates,
            growth=self.growth,
        )

    def check_params(self) -> None:
        super().check_params()
        with _method_errors(self.title):
            self.quantizer().check_params()

    def _fit(self, inputs: FitInputs) -> None:
        latents = inputs.require("latents")
        with _method_errors(self.title), torch.enable_grad():  # SFVQ trains by gradient descent
            quantizer = self.quantizer().fit(latents)
        self.codebook_ = quantizer.codebook_
        self.history_ = quantizer.history_
        steps = self.codebook_.double().diff(dim=0)
        if not bool(steps.any(dim=1).all()):
            raise MethodError(
                f"{self.title}: codebook expected distinct consecutive codewords, got a segment of length 0"
            )
        self.directions_ = as_unit_directions(steps)

    def quantize(self, z: torch.Tensor) -> CurveQuantization:
        """The nearest curve point of each row of ``z`` (N, M), its segment and its position on it
        (`project_onto_curve` with ``codebook_``, as `SFVQ.quantize`).

        Raises:
            MethodError: not fitted.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        self.check_is_fitted()
        z = check_latents(z, f"{self.title}.quantize", "z", dim=self.directions_.shape[1])
        return project_onto_curve(z, self.codebook_)

    def curve_coordinate(self, z: torch.Tensor) -> torch.Tensor:
        """The position along the curve of each row of ``z`` (N, M): k + t for its nearest point
        c_k + t (c_k+1 - c_k) (`quantize`), from 0 (the first codeword) to K (the last); (N,) in ``z``'s dtype.

        Raises:
            MethodError: not fitted.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        found = self.quantize(z)
        return found.segments.to(found.positions.dtype) + found.positions


# --- REDs ---------------------------------------------------------------------------------------------


@register("reds")
class REDsDirections(DirectionMethod):
    """The top K Rayleigh EigenDirections at the mean of the given latents (module docstring).

    REDs depend on the latent: they are the top generalized eigenvectors of (J_f^T J_f, J_g^T J_g + eps I) at z.
    Fit computes them once, `rayleigh_directions` at the mean of ``latents`` (with ``generator``; the features
    named by ``change`` and ``hold``, `feature_from_spec` for the generator's images; ``classifier`` where a
    feature is "identity"), and keeps them as ``directions_``, the straight moves of the contract's `edit`.
    ``edit(z, k, t, path=True, generator=...)`` follows instead the curved REDs path from each z, recomputing
    the directions at every step (`rayleigh_path`).

    The "generalized" eigenvectors are unit vectors but not orthogonal: `transform`'s coordinates (the
    contract's z d_k^T) are not those of an expansion on them.

    Args:
        n_directions: K <= M.
        change, hold: feature specs (`feature_from_spec`: "upper", "lower", "identity", "box:0:14:0:28", joined
            by "+"): f, the features to change, and g, the features to hold.
        eps, method, held_share, change_share, batch_size: `rayleigh_directions`'s.
        path_steps: steps of the path edit (each of length |t| / path_steps).
        latent_dim: M, checked against the latents.

    Attributes (after `fit`):
        directions_: (K, M) float32 unit REDs at the mean latent, best first (`rayleigh_directions`' directions
            in float32).
        eigenvalues_: (K,) float64, their Rayleigh quotients ("generalized") or |J_f v|^2 ("nullspace").
    """

    inputs = ("generator", "latents", "classifier")
    fit_latents = "test"  # REDs are computed at the mean of the latents they are to edit
    float64_jacobians = True
    n_directions: int  # required by this method: check_params refuses None (count_from_data is False)

    def __init__(
        self,
        n_directions: int,
        *,
        change: str = "upper",
        hold: str = "lower",
        eps: float = REDS_EPS,
        method: str = REDS_METHODS[0],
        held_share: float = REDS_HELD_SHARE,
        change_share: float = REDS_CHANGE_SHARE,
        path_steps: int = 10,
        batch_size: int = 64,
        latent_dim: int | None = None,
    ) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.change = change
        self.hold = hold
        self.eps = eps
        self.method = method
        self.held_share = held_share
        self.change_share = change_share
        self.path_steps = path_steps
        self.batch_size = batch_size

    def check_params(self) -> None:
        super().check_params()
        for name in ("change", "hold"):
            if not (isinstance(getattr(self, name), str) and getattr(self, name)):
                raise MethodError(
                    f"{self.title}: {name} expected a feature spec (e.g. 'upper'), got {getattr(self, name)!r}"
                )
        if self.method not in REDS_METHODS:
            raise MethodError(f"{self.title}: method expected one of {', '.join(REDS_METHODS)}, got {self.method!r}")
        if not (_is_real(self.eps) and self.eps >= 0):
            raise MethodError(f"{self.title}: eps expected a finite number >= 0, got {self.eps!r}")
        for name in ("held_share", "change_share"):
            if not (_is_real(getattr(self, name)) and 0 < getattr(self, name) <= 1):
                raise MethodError(f"{self.title}: {name} expected a number in (0, 1], got {getattr(self, name)!r}")
        check_whole(self.title, "path_steps", self.path_steps, 1)
        check_whole(self.title, "batch_size", self.batch_size, 1)

    def features(self, generator: Network, classifier: Network | None, z: torch.Tensor) -> tuple[Feature, Feature]:
        """f and g: the features ``change`` and ``hold`` (`feature_from_spec`) for the images the generator makes
        of ``z`` (their shape read from the first one, made in the dtype the generator takes: `input_dtype`).

        Raises:
            MethodError: a bad spec, "identity" without a classifier, or a generator that fails on latents of
                every dtype `input_dtype` tries.
        """
        specs = {"change": self.change, "hold": self.hold}
        named = [part.strip() for spec in specs.values() for part in spec.split("+")]
        if classifier is None and "identity" in named:
            raise MethodError(f"{self.title}: classifier expected for the feature 'identity', got None")
        with _method_errors(self.title), torch.no_grad():
            image_shape = tuple(generator(z[:1].to(input_dtype(z, generator))).shape[1:])
        found = []
        for name, spec in specs.items():
            try:
                # None only where no feature is "identity" (refused above): no other feature calls the classifier
                found.append(feature_from_spec(spec, classifier, image_shape))  # type: ignore[arg-type]
            except FeatureError as error:
                raise MethodError(f"{self.title}: {name} {spec!r}: {error}") from None
        return found[0], found[1]

    def _rayleigh_options(self) -> dict[str, Any]:
        """The keyword arguments `rayleigh_directions` and `rayleigh_path` share."""
        return {
            "k": int(self.n_directions),
            "eps": self.eps,
            "method": self.method,
            "held_share": self.held_share,
            "change_share": self.change_share,
            "batch_size": self.batch_size,
        }

    def _fit(self, inputs: FitInputs) -> None:
        generator, latents = inputs.require("generator"), inputs.require("latents")
        f, g = self.features(generator, inputs.classifier, latents)
        with _method_errors(self.title):
            found = rayleigh_directions(generator, f, g, latents.mean(0), **self._rayleigh_options())
        self.directions_ = found.directions.float()
        self.eigenvalues_ = found.eigenvalues

    def edit(
        self,
        z: torch.Tensor,
        k: int,
        t: float | torch.Tensor,
        *,
        path: bool = False,
        generator: Network | None = None,
        classifier: Network | None = None,
    ) -> torch.Tensor:
        """``z`` (N, M) moved by ``t`` along direction ``k``.

        path=False: the contract's straight move z + t d_k along the direction fitted at the mean latent.
        path=True: the curved REDs path from each latent (`rayleigh_path`, with ``generator`` and, for an
        "identity" feature, ``classifier``): ``path_steps`` steps of length |t| / path_steps, the first along
        REDs k at z (towards -d for t < 0), each later one the previous direction projected onto the span of
        the K best REDs recomputed there (K = 1: the paper's path along the top RED); its end point. ``t`` is
        then one number. In ``z``'s dtype and on its device (t = 0 gives ``z`` back).

        Raises:
            MethodError: not fitted, a bad ``k`` or ``t``, path=True without a generator or with a ``t`` per row.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        moved = super().edit(z, k, t)  # checks z, k and t
        if not path:
            return moved
        if not _is_real(t):
            raise MethodError(f"{self.title}: t expected one finite number with path=True, got {type(t).__name__}")
        if t == 0:
            return moved
        if generator is None:
            raise MethodError(f"{self.title}: generator expected with path=True (edit(..., generator=...)), got None")
        f, g = self.features(generator, classifier, z)
        with _method_errors(self.title):
            walked = rayleigh_path(
                generator,
                f,
                g,
                z,
                self.path_steps,
                float(t) / self.path_steps,
                index=int(k),
                **self._rayleigh_options(),
            )
        return walked[-1].to(z)
