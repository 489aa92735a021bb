"""SeFa: Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021
(https://arxiv.org/abs/2007.06600); the authors' code is github.com/genforce/sefa.

The first layer that takes the latent is an affine map y = A z + b, A of shape (out, M). A unit direction n
changes its output by A n, so the directions that change it most maximise |A n|^2 (paper, section "Unsupervised
Semantic Factorization"): the eigenvectors of A^T A, by decreasing eigenvalue.

Followed from the authors' code (`utils.factorize_weight`): each output unit's weights over the latent, i.e.
each row of a torch ``nn.Linear`` weight (out, M), is scaled to unit length before factorising (the code
normalises axis 0 of its (M, out) weight, the transposed style weight), so that no output unit counts for more
because its weights are larger; a batch norm folded into the layer (which scales rows) changes no direction.

Where this differs from the code: the code calls `np.linalg.eig` on the symmetric matrix and takes the first
k vectors by index, which `eig` does not sort; here `torch.linalg.eigh` solves it in float64 and the vectors
are sorted by decreasing eigenvalue, each signed so that its largest component is positive. One layer is
factorised (the code concatenates the style layers of StyleGAN, which the package's generators do not have).
"""

from __future__ import annotations

import torch
from torch import nn

from .directions import (
    DirectionMethod,
    FitInputs,
    MethodError,
    as_unit_directions,
    canonical_signs,
    check_count,
    layer_root,
    named_layer,
    register,
    unit_rows,
)


def factorize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The eigenvalues (M,) and eigenvectors (M, M) as rows of A^T A, A = ``weight`` (out, M) with unit rows,
    by decreasing eigenvalue; float64."""
    rows = unit_rows(weight.detach().to("cpu", torch.float64))
    values, vectors = torch.linalg.eigh(rows.T @ rows)
    return values.flip(0), vectors.flip(1).T


def _layer_weight(layer: nn.Module) -> torch.Tensor | None:
    weight = getattr(layer, "weight", None)
    return weight if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None


def first_linear(generator: nn.Module) -> tuple[str, nn.Module] | None:
    """The (dotted name, module) of the first ``nn.Linear`` in the module order of ``generator`` (its `layer_root`), or
    None."""
    return next(
        ((name, module) for name, module in layer_root(generator).named_modules() if isinstance(module, nn.Linear)),
        None,
    )


@register("sefa")
class SeFa(DirectionMethod):
    """The top K eigenvectors of A^T A for the weight A of the generator's layer that takes the latent
    (module docstring). Fit uses ``generator`` (a torch module); M comes from ``latent_dim``, the latents, the
    generator's ``latent_dim`` or, failing all, the layer's input width.

    The layer: ``layer`` names a submodule (dotted, as in ``named_modules``: "project.0") with a 2-D ``weight``
    of shape (out, M); by default it is the first ``nn.Linear`` of the generator (for the package's Generator,
    the first layer of ``project``), which must take M inputs.

    Args:
        n_directions: K <= M.
        layer: the submodule to factorise, or None for the first ``nn.Linear``.
        latent_dim: M, checked against the layer's input width.

    Attributes (after `fit`):
        directions_: (K, M) float32 unit eigenvectors by decreasing eigenvalue.
        eigenvalues_: (K,) float32, their eigenvalues (of A^T A with unit rows of A: they sum to ``out`` over
            all M).
        layer_: the dotted name of the layer factorised.
    """

    inputs = ("generator",)
    n_directions: int  # required by this method: check_params refuses None (count_from_data is False)

    def __init__(self, n_directions: int, *, layer: str | None = None, latent_dim: int | None = None) -> None:
        super().__init__(n_directions, latent_dim=latent_dim)
        self.layer = layer

    def check_params(self) -> None:
        super().check_params()
        if not (self.layer is None or (isinstance(self.layer, str) and self.layer)):
            raise MethodError(f"{self.title}: layer expected None or a submodule name, got {self.layer!r}")

    def _fit(self, inputs: FitInputs) -> None:
        generator = inputs.require("generator")
        if not isinstance(generator, nn.Module):
            raise MethodError(f"{self.title}: generator expected a torch module, got {type(generator).__name__}")
        name, weight = self._find_weight(generator, inputs.latent_dim)
        check_count(self.title, self.n_directions, weight.shape[1])
        values, vectors = factorize_weight(weight)
        self.directions_ = as_unit_directions(canonical_signs(vectors[: self.n_directions]))
        self.eigenvalues_ = values[: self.n_directions].float()
        self.layer_ = name

    def _find_weight(self, generator: nn.Module, dim: int | None) -> tuple[str, torch.Tensor]:
        """(name, weight (out, M)) of the layer to factorise, its input width checked against M where known."""
        if self.layer is None:
            found = first_linear(generator)
            if found is None:
                raise MethodError(f"{self.title}: layer expected (the generator has no nn.Linear), got None")
        else:
            found = (self.layer, named_layer(self.title, generator, self.layer))
        name, module = found
        weight = _layer_weight(module)
        if weight is None:
            raise MethodError(
                f"{self.title}: layer expected a module with a 2-D weight (out, M), got {name!r} "
                f"({type(module).__name__})"
            )
        if dim is not None and weight.shape[1] != dim:
            raise MethodError(
                f"{self.title}: layer expected one that takes latent_dim {dim} inputs, got {name!r} "
                f"with {weight.shape[1]}"
            )
        return name, weight
