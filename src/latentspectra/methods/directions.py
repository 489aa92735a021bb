"""The contract every latent direction finder follows, its files, and the registry that names them.

A `DirectionMethod` is built from its hyperparameters alone (scikit-learn style: `__init__` stores them,
`fit` checks them and returns self, learned attributes end in ``_``, all randomness comes from the ``seed``
parameter and is resolved inside `fit`, so the same seed gives the same directions bit for bit). A linear
method learns ``directions_`` (K, M): K unit rows in the latent space of dimension M; `edit` moves latents
along one of them and `transform` gives the coordinates of latents along all of them.

`fit` takes keyword arguments from one common set, so that one call can serve every method (each uses
those it names in ``inputs`` and ignores the others):

- ``generator``: a callable latents (N, M) -> images (a torch module where the method looks inside it);
- ``latents``: (N, M) latent vectors;
- ``scores``: (N,) or (N, A) attribute scores of those latents;
- ``classifier``: a callable images -> logits (N, L).

M comes from the ``latent_dim`` constructor parameter, else from the latents, else from the generator's
``latent_dim`` attribute (the package's networks carry one); the number of directions K is the
``n_directions`` constructor parameter and may not exceed M.

The registry names each method (`register`, `get`, `available`), and `save_method` / `load_method` write
and read a fitted one as ``NAME.safetensors`` (its learned tensors) with ``NAME.json`` beside it (the method's
name, its parameters and its other learned values), each written atomically.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import torch

from ..compute import ComputeError, Network, check_fits_memory
from ..errors import LatentspectraError
from ..io import json_text, load_tensors_with_record, record_path, save_tensors_with_record
from ..latent.checks import check_latents

METHOD_FORMAT = "latentspectra.DirectionMethod"
LARGEST_WHOLE = 2**63 - 1  # the largest integer parameter: what torch and numpy hold in int64
UNIT_TOLERANCE = 1e-4  # a stored direction counts as a unit vector when | |d| - 1 | stays below this (float32)

# A label edit: latents of label a (N, M), a, b, strength s (1: the approach's own step) -> the edited latents, or
# None where the approach cannot make that edit (`DirectionMethod.label_edits`).
LabelEdit = Callable[[torch.Tensor, int, int, float], torch.Tensor | None]


class MethodError(LatentspectraError, ValueError):
    """Bad parameters or inputs of a direction method, its use before fit, an unknown method name, or a
    missing / inconsistent method file."""


# --- Parameter checks: one line "<Method>: <parameter> expected ..., got ..." ------------------------


def _is_whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_index(value: Any, count: int) -> bool:
    """``value`` is an integer in 0..``count``-1 (a bool is not)."""
    return _is_whole(value) and 0 <= value < count


def check_whole(
    method: str, name: str, value: Any, least: int, optional: bool = False, most: int = LARGEST_WHOLE
) -> None:
    """``value`` is an integer from ``least`` to ``most`` (or None when ``optional``); ``most`` defaults to the
    largest int64, so that no parameter overflows where torch or numpy take it.

    Raises:
        MethodError: "``method``: ``name`` expected an integer >= ``least``, got ..." (with "and <= ``most``"
            for a value above it).
    """
    if optional and value is None:
        return
    if not (_is_whole(value) and least <= value <= most):
        kind = "None or an integer" if optional else "an integer"
        bound = f" and <= {most:,}" if _is_whole(value) and value > most else ""
        raise MethodError(f"{method}: {name} expected {kind} >= {least}{bound}, got {value!r}")


def standard_normal_draws(method: str, count: int, latent_dim: int, rng: torch.Generator) -> torch.Tensor:
    """``count`` latents z ~ N(0, I_M), M = ``latent_dim``, from ``rng`` on the CPU, after checking that they
    fit in memory.

    Raises:
        MethodError: "``method``: n_samples ... needs about X GiB, Y GiB are available".
    """
    try:
        check_fits_memory(count * latent_dim * 4, f"{method}: n_samples {count:,} latents of dimension {latent_dim}")
    except ComputeError as error:
        raise MethodError(str(error)) from None
    return torch.randn(count, latent_dim, generator=rng)


def check_number(method: str, name: str, value: Any, least: float, strict: bool) -> None:
    """``value`` is a finite number > ``least`` (``strict``) or >= ``least``.

    Raises:
        MethodError: "``method``: ``name`` expected a finite number > ``least``, got ...".
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (number and (value > least if strict else value >= least)):
        raise MethodError(
            f"{method}: {name} expected a finite number {'>' if strict else '>='} {least:g}, got {value!r}"
        )


def check_fraction(method: str, name: str, value: Any, high: float = 1.0) -> None:
    """``value`` is a number in the open interval (0, ``high``), or exactly ``high`` when ``high`` < 1.

    Raises:
        MethodError: naming ``method`` and ``name``.
    """
    number = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (number and value > 0 and (value < high or (high < 1 and value == high))):
        interval = f"(0, {high:g}]" if high < 1 else f"(0, {high:g})"
        raise MethodError(f"{method}: {name} expected a number in {interval}, got {value!r}")


def check_count(method: str, count: int, latent_dim: int) -> None:
    """K = ``count`` directions fit in a latent space of dimension ``latent_dim``.

    Raises:
        MethodError: K > M.
    """
    if count > latent_dim:
        raise MethodError(f"{method}: n_directions expected <= latent_dim {latent_dim}, got {count}")


# --- What fit is given --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FitInputs:
    """The keyword arguments of `DirectionMethod.fit`, the latents checked, and M where it is known."""

    method: str
    latent_dim: int | None
    generator: Network | None = None
    latents: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    classifier: Network | None = None

    def require(self, name: str) -> Any:
        """The input ``name``, or MethodError when fit was not given it."""
        value = getattr(self, name)
        if value is None:
            raise MethodError(f"{self.method}: {name} expected (fit({name}=...)), got None")
        return value

    def require_latent_dim(self) -> int:
        """M, or MethodError when neither the constructor, the latents nor the generator says it."""
        if self.latent_dim is None:
            raise MethodError(
                f"{self.method}: latent_dim expected (a constructor parameter, latents given to fit, "
                "or a generator with a latent_dim attribute), got None"
            )
        return self.latent_dim


def _generator_latent_dim(generator: Any) -> int | None:
    dim: Any = getattr(generator, "latent_dim", None)  # whatever the generator holds there, checked here
    return int(dim) if _is_whole(dim) and dim >= 1 else None


def _resolve_latent_dim(
    method: str, latent_dim: int | None, latents: torch.Tensor | None, generator: Any
) -> int | None:
    """M from the first of: the constructor's ``latent_dim``, the latents' columns, the generator's
    ``latent_dim``; any two of them that disagree raise MethodError."""
    sources = [
        ("latent_dim", latent_dim),
        ("latents", None if latents is None else latents.shape[1]),
        ("generator.latent_dim", _generator_latent_dim(generator)),
    ]
    known = [(name, dim) for name, dim in sources if dim is not None]
    for name, dim in known[1:]:
        if dim != known[0][1]:
            raise MethodError(f"{method}: {name} expected {known[0][1]} (from {known[0][0]}), got {dim}")
    return known[0][1] if known else None


# --- Helpers the methods share ------------------------------------------------------------------------


def network_device(network: Any) -> torch.device:
    """The device of a torch module's first parameter or buffer, where its inputs must go; the CPU for any
    other callable."""
    if isinstance(network, torch.nn.Module):
        for tensor in (*network.parameters(), *network.buffers()):
            return tensor.device
    return torch.device("cpu")


def layer_root(generator: torch.nn.Module) -> torch.nn.Module:
    """The user's own module inside the package's wrappers (`InferenceNetwork`, which runs it at a device and
    precision, and `ForeignNetwork`, which converts its pixel range, each holding it as ``network``): the module
    whose submodule names a user gives as a layer."""
    from ..models.foreign import ForeignNetwork
    from ..models.inference import InferenceNetwork

    while isinstance(generator, (InferenceNetwork, ForeignNetwork)):
        generator = generator.network
    return generator


def named_layer(title: str, generator: Any, layer: str) -> torch.nn.Module:
    """The submodule ``layer`` (a dotted name, as the user's own module names it: `layer_root`) of ``generator``.

    Raises:
        MethodError: a generator that is not a torch module, or no submodule of that name.
    """
    if not isinstance(generator, torch.nn.Module):
        raise MethodError(
            f"{title}: generator expected a torch module (layer {layer!r} is set), got {type(generator).__name__}"
        )
    try:
        return layer_root(generator).get_submodule(layer)
    except AttributeError:
        raise MethodError(f"{title}: layer expected the name of a submodule of the generator, got {layer!r}") from None


def latent_batches(latents: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """``latents`` split into consecutive batches of (nearly) equal size, each of at least ``batch_size`` and
    fewer than 2 ``batch_size`` rows, so that no batch is short; one batch when there are fewer rows."""
    yield from latents.tensor_split(max(1, len(latents) // batch_size))


def canonical_signs(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` with each row's sign chosen so that its largest-magnitude component is positive: the sign of an
    eigenvector or principal component is arbitrary, and a fixed one lets results be compared."""
    largest = rows.gather(1, rows.abs().argmax(1, keepdim=True))
    return torch.where(largest < 0, -rows, rows)


def unit_rows(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` divided by their Euclidean norms (a zero row stays zero)."""
    return rows / torch.linalg.vector_norm(rows, dim=1, keepdim=True).clamp_min(torch.finfo(rows.dtype).tiny)


def as_unit_directions(rows: torch.Tensor) -> torch.Tensor:
    """The float32 ``directions_`` of computed (K, M) ``rows``: each row scaled to unit length (in float64)."""
    return unit_rows(rows.double()).float()


# --- The contract -------------------------------------------------------------------------------------


class DirectionMethod:
    """Base class of the direction finders (module docstring).

    Subclasses define ``__init__`` with their hyperparameters as named arguments stored under the same
    names (`get_params` reads them from the signature), list the fit inputs they use in ``inputs``, and
    implement `_fit`, which sets ``directions_`` (K, M) float32 unit rows and any other learned attribute.

    The rules a study (compare, explore) follows to fit a method are class attributes and hooks of the method,
    so that a new method needs no edit to the studies (the contract test checks each):

    Attributes:
        registry_name: the name `register` gave the class.
        inputs: the keyword arguments of `fit` that the method uses.
        count_from_data: True where ``n_directions=None`` means "as many as the data gives" (one per attribute);
            a study then asks for that.
        reads_activations: True where the fit reads a layer's activations, which a study then computes on the
            generator as the user made it (its layers as named and computed there) rather than on an inference
            copy whose batch norms are folded into the layers before them.
        fit_latents: where ``inputs`` has "latents", which a study gives: "train" (the encoded training codes),
            "test" (the encoded test latents) or None (none: the method draws its own).
        float64_jacobians: True where the fit differentiates G and C, which a study then gives as float64 copies
            of the package's networks (`methods.reds_jacobians.jacobian_networks`; a user's as they are).
        scores_own_draws: True where, given no latents, the fit scores latents it draws by C(G(z)); a study may
            score them itself (`draws_to_score`, `scores_from_logits`), sharded, and give the fit the scores.
        float32_gradients: True where the fit trains by backpropagating through G; a study then gives it G in
            float32 whatever the run's precision (bfloat16 gradients are noisier, and on a CPU no faster).
        one_per_label: True where a study fits one direction per label (``n_directions=None``; its label edits
            need them all) and measures the first K.
    """

    registry_name: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ()
    count_from_data: ClassVar[bool] = False
    reads_activations: ClassVar[bool] = False
    fit_latents: ClassVar[str | None] = "train"
    float64_jacobians: ClassVar[bool] = False
    scores_own_draws: ClassVar[bool] = False
    float32_gradients: ClassVar[bool] = False
    one_per_label: ClassVar[bool] = False

    directions_: torch.Tensor  # (K, M) float32 unit rows, set by `_fit` (or `load_method`); absent until then

    def __init__(self, n_directions: int | None, *, latent_dim: int | None = None) -> None:
        self.n_directions = n_directions
        self.latent_dim = latent_dim

    @property
    def title(self) -> str:
        """The method's name in messages: its class name."""
        return type(self).__name__

    def __repr__(self) -> str:
        return f"{self.title}({', '.join(f'{name}={value!r}' for name, value in self.get_params().items())})"

    def get_params(self) -> dict[str, Any]:
        """The constructor's arguments by name (JSON values, once `check_params` accepts them)."""
        names = [name for name in inspect.signature(type(self).__init__).parameters if name != "self"]
        return {name: getattr(self, name) for name in names}

    def check_params(self) -> None:
        """Check the hyperparameters; subclasses extend it with their own.

        Raises:
            MethodError: the first bad one, named.
        """
        check_whole(self.title, "n_directions", self.n_directions, 1, optional=self.count_from_data)
        check_whole(self.title, "latent_dim", self.latent_dim, 1, optional=True)
        if self.n_directions is not None and self.latent_dim is not None:
            check_count(self.title, self.n_directions, self.latent_dim)

    def fit(
        self,
        *,
        generator: Network | None = None,
        latents: torch.Tensor | None = None,
        scores: torch.Tensor | None = None,
        classifier: Network | None = None,
    ) -> Self:
        """Learn the directions from the inputs the method uses (``inputs``; the rest are ignored). Returns self.

        Raises:
            MethodError: bad parameters, a missing input, K > M, or inputs that do not fit together.
            LatentError: latents that are not a finite floating-point (N, M) tensor.
        """
        self.check_params()
        if latents is not None:
            latents = check_latents(latents, f"{self.title}.fit", "latents", dim=self.latent_dim)
        dim = _resolve_latent_dim(self.title, self.latent_dim, latents, generator)
        if dim is not None and self.n_directions is not None:
            check_count(self.title, self.n_directions, dim)
        with torch.no_grad():
            self._fit(FitInputs(self.title, dim, generator, latents, scores, classifier))
        return self

    def _fit(self, inputs: FitInputs) -> None:
        raise NotImplementedError

    def fit_record(self) -> dict[str, Any]:
        """What a study records about the fit beyond the directions (JSON-ready; none by default, a learned
        method's convergence curve, say)."""
        return {}

    def draws_to_score(self, latent_dim: int) -> tuple[torch.Tensor, int]:
        """Where `scores_own_draws`: the latents (N, M) the fit draws when given none, and the batch size in which
        it scores them (a study that scores them elsewhere uses the same batches, for the same numbers).

        Raises:
            MethodError: the method draws no latents to score, or bad parameters.
        """
        raise MethodError(f"{self.title}: draws no latents to score")

    def scores_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Where `scores_own_draws`: the scores the fit takes from the classifier's logits (N, L) of G(z).

        Raises:
            MethodError: the method scores no latents.
        """
        raise MethodError(f"{self.title}: scores no latents")

    def label_edits(self, class_means: dict[int, torch.Tensor], num_labels: int) -> dict[str, LabelEdit]:
        """The label edits a -> b this fitted method makes, by approach name (none by default): ``class_means``
        maps each label some training code has to the mean of those codes (float64), for approaches whose step
        is made as long as the class-mean difference; ``num_labels`` is the classifier's."""
        return {}

    def learned_attributes(self) -> dict[str, Any]:
        """Every attribute set by `fit` (names ending in ``_``), by name."""
        return {name: value for name, value in vars(self).items() if name.endswith("_") and not name.startswith("_")}

    def check_is_fitted(self) -> None:
        """Raises MethodError unless `fit` (or `load_method`) has set ``directions_``."""
        if not hasattr(self, "directions_"):
            raise MethodError(f"{self.title}: not fitted yet; call fit(...) or load_method(path) first")

    def edit(self, z: torch.Tensor, k: int, t: float | torch.Tensor) -> torch.Tensor:
        """``z`` (N, M) moved by ``t`` along direction ``k``: z + t d_k, with ``t`` one number or one per row
        (N,); in ``z``'s dtype and on its device (t = 0 gives ``z`` back).

        Raises:
            MethodError: not fitted, ``k`` outside 0..K-1, or ``t`` neither a number nor an (N,) tensor.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        self.check_is_fitted()
        count, dim = self.directions_.shape
        z = check_latents(z, f"{self.title}.edit", "z", dim=dim)
        if not is_index(k, count):
            raise MethodError(f"{self.title}: k expected an integer in 0..{count - 1}, got {k!r}")
        return z + _amounts(self.title, t, len(z)).to(z)[:, None] * self.directions_[k].to(z)

    def transform(self, z: torch.Tensor) -> torch.Tensor:
        """The coordinates z d_k of ``z`` (N, M) along every direction: (N, K), in ``z``'s dtype and on its device.

        Raises:
            MethodError: not fitted.
            LatentError: ``z`` not a finite floating-point (N, M) tensor.
        """
        self.check_is_fitted()
        z = check_latents(z, f"{self.title}.transform", "z", dim=self.directions_.shape[1])
        return z @ self.directions_.to(z).T


def _amounts(method: str, t: Any, rows: int) -> torch.Tensor:
    """``t`` as (``rows``,) float64 amounts: one finite number for every row, or a finite (rows,) tensor."""
    if isinstance(t, numbers.Real) and not isinstance(t, bool) and math.isfinite(t):
        return torch.full((rows,), float(t), dtype=torch.float64)
    if isinstance(t, torch.Tensor) and t.shape in ((), (rows,)) and t.is_floating_point() and bool(t.isfinite().all()):
        return t.detach().to(torch.float64).expand(rows)
    shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
    raise MethodError(
        f"{method}: t expected a finite number or a floating-point tensor of shape ({rows},), got {shape}"
    )


# --- The registry -------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[DirectionMethod]] = {}  # filled at import by the @register decorators
MethodClass = TypeVar("MethodClass", bound=DirectionMethod)


def register(name: str) -> Callable[[type[MethodClass]], type[MethodClass]]:
    """Class decorator: make the `DirectionMethod` subclass available as ``name`` to `get` and `load_method`.

    Raises:
        ValueError: ``name`` already names another class (a programming error, found at import).
    """

    def add(cls: type[MethodClass]) -> type[MethodClass]:
        if _REGISTRY.get(name, cls) is not cls:
            raise ValueError(f"register: {name!r} already names {_REGISTRY[name].__name__}")
        cls.registry_name = name
        _REGISTRY[name] = cls
        return cls

    return add


def available() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)


def method_class(name: str) -> type[DirectionMethod]:
    """The class registered as ``name`` (its rules are class attributes, `DirectionMethod`).

    Raises:
        MethodError: an unknown name, listing the known ones.
    """
    if name not in _REGISTRY:
        raise MethodError(f"method: expected one of {', '.join(available())}, got {name!r}")
    return _REGISTRY[name]


def get(name: str, **params: Any) -> DirectionMethod:
    """An unfitted instance of the method registered as ``name``, built from ``params`` and checked.

    Raises:
        MethodError: an unknown name (listing the known ones), an unknown parameter (listing the method's
            parameters), or a bad value.
    """
    cls = method_class(name)
    allowed = [key for key in inspect.signature(cls.__init__).parameters if key != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise MethodError(f"{cls.__name__}: parameters expected among {', '.join(allowed)}, got {', '.join(unknown)}")
    try:
        method = cls(**params)
    except TypeError as error:  # a required parameter left out
        raise MethodError(f"{cls.__name__}: {error}") from None
    method.check_params()
    return method


# --- Files --------------------------------------------------------------------------------------------


def save_method(method: DirectionMethod, path: str | Path) -> Path:
    """Write the fitted ``method``: its learned tensors to ``path`` (safetensors) and, to ``path`` with suffix
    .json, {"format", "method": its registry name, "params": `get_params`, "learned": its other learned values},
    each atomically. Returns ``path``.

    Raises:
        MethodError: not fitted, not registered, a learned value that is neither a tensor nor JSON, or ``path``
            ends in .json.
        OutputError: a file cannot be written.
    """
    method.check_is_fitted()
    if _REGISTRY.get(method.registry_name) is not type(method):
        raise MethodError(f"save_method: method expected a registered class, got {method.title}")
    tensors, learned = {}, {}
    for name, value in method.learned_attributes().items():
        if isinstance(value, torch.Tensor):
            tensors[name] = value
        else:
            learned[name] = _checked_json(method.title, name, value)
    record = {
        "format": METHOD_FORMAT,
        "method": method.registry_name,
        "params": method.get_params(),
        "learned": learned,
    }
    return save_tensors_with_record(path, tensors, record, MethodError)


def _checked_json(method: str, name: str, value: Any) -> Any:
    try:
        json_text(value)
    except (TypeError, ValueError):
        raise MethodError(
            f"save_method: {method}.{name} expected a tensor or a JSON value, got {type(value).__name__}"
        ) from None
    return value


def load_method(path: str | Path) -> DirectionMethod:
    """The fitted method written by `save_method`: rebuilt from its registry name and parameters, with its
    learned tensors and values restored.

    Raises:
        MethodError: a missing, unreadable or inconsistent file (an unknown method, bad parameters, directions
            that are not K unit rows of dimension M), naming it.
    """
    path = Path(path)
    tensors, record = load_tensors_with_record(path, MethodError, "direction method", METHOD_FORMAT)
    json_path = record_path(path)
    params, learned = record.get("params"), record.get("learned", {})
    if not isinstance(params, dict) or not isinstance(learned, dict):
        raise MethodError(f"{json_path}: expected 'params' and 'learned' objects in the {METHOD_FORMAT} record")
    try:
        method = get(str(record.get("method")), **params)
    except MethodError as error:
        raise MethodError(f"{json_path}: {error}") from None
    for name, value in {**learned, **tensors}.items():
        if not (name.isidentifier() and name.endswith("_") and not name.startswith("_")):
            raise MethodError(f"{path}: expected learned attributes (names ending in _), got {name!r}")
        setattr(method, name, value)
    _check_loaded_directions(method, path)
    return method


def _check_loaded_directions(method: DirectionMethod, path: Path) -> None:
    """``directions_`` of a loaded method: a finite (K, M) float tensor of unit rows, K = n_directions (where set)
    and K <= M."""
    directions = getattr(method, "directions_", None)
    try:
        directions = check_latents(directions, f"load_method {path}", "directions_")
    except LatentspectraError as error:
        raise MethodError(str(error)) from None
    count, dim = directions.shape
    if method.n_directions not in (None, count) or count > dim:
        raise MethodError(
            f"{path}: directions_ expected n_directions = {method.n_directions} rows of at least as "
            f"many columns, got shape {tuple(directions.shape)}"
        )
    norms = torch.linalg.vector_norm(directions.double(), dim=1)
    if not bool(((norms - 1).abs() < UNIT_TOLERANCE).all()):
        raise MethodError(f"{path}: directions_ expected unit rows, got norms {norms.min():.6g}..{norms.max():.6g}")
