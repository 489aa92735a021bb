"""What the page computes, without HTTP: one `ExploreSession` per server holds the networks, the LSD basis, the test
images and the direction methods, and turns latents into what the page shows (`View`: the decoded image, the
classifier's probabilities, the LSD spectrum, the truncated image) and moves them (directions, Algorithm 1's
rotation, a strip along one direction).

The networks are frozen inference copies; every call that runs them holds one lock, so concurrent requests queue
for the two cores instead of splitting them, and nothing a request can reach is mutated. Every input a request can
send that the networks cannot answer is an `ExploreInputError` (a 4xx), never another exception; what the session
says names the networks, never their path (`names.PublicNames`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import torch

from ..config import ExploreConfig
from ..data import images_to_tensor
from ..errors import LatentspectraError
from ..experiments.image_latents import resolve_inversion, study_latents
from ..experiments.networks import Networks
from ..latent.basis import QuasiEigenBasis
from ..latent.paths import rotation_path
from .fitting import LSD, MethodStore
from .images import ConvertedImage, convert_image, dark_background, open_image, png_bytes
from .names import PublicNames

TOP_LABELS = 4  # labels of the largest amplitudes named under the spectrum (the paper's top-4)


class Encoded(NamedTuple):
    """An image's latent (M,) and how it was made (`image_latents.ImageLatents.record`)."""

    latent: torch.Tensor
    inversion: dict[str, Any]


class ExploreInputError(LatentspectraError, ValueError):
    """A request the networks cannot answer: a latent of the wrong size, a test index past the set, a direction
    or label that does not exist, a zero latent to rotate, an input the networks turn into non-finite numbers."""


def check_finite(values: torch.Tensor, what: str) -> torch.Tensor:
    """``values`` when every one is finite (JSON has no NaN or infinity).

    Raises:
        ExploreInputError: naming ``what``: the networks overflowed on this input (low-precision networks can, far
            from the prior).
    """
    if not bool(torch.isfinite(values).all()):
        raise ExploreInputError(f"{what}: the networks give NaN or infinite values for this input")
    return values


@dataclass(frozen=True)
class View:
    """One latent as the page shows it: its PNG, the classifier's label probabilities (summing to 1), the LSD
    amplitudes c_k of Eq. 10 (M, in the basis' order), the labels of the largest |c_k| (most important first),
    and the latent with only its ``top_n`` largest components kept, its PNG and probabilities."""

    latent: list[float]
    image: bytes
    probabilities: list[float]
    spectrum: list[float]
    top_labels: list[int]
    truncated_latent: list[float]
    truncated_image: bytes
    truncated_probabilities: list[float]


class ExploreSession:
    """The networks, basis, test images and methods of one server (module docstring); ``names`` says what the page
    may call the networks and which paths it must not show."""

    def __init__(
        self,
        networks: Networks,
        basis: QuasiEigenBasis,
        test_images: np.ndarray,
        methods: MethodStore,
        config: ExploreConfig = ExploreConfig(),
        *,
        names: PublicNames,
    ) -> None:
        self.networks = networks
        self.names = names
        self.basis = basis
        self.test_images = test_images
        self.methods = methods
        self.config = config
        self.dark_background = dark_background(test_images[:1000])
        self.inversion = resolve_inversion(config.inversion, networks, config.inversion_auto)
        self._lock = threading.Lock()

    # --- Facts ---------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What the page needs to lay itself out: sizes, labels, the networks' name, the basis' rows (and its
        provenance without paths), limits and the methods."""
        basis = self.basis
        return {
            "latent_dim": self.networks.latent_dim,
            "image_shape": list(self.networks.image_shape),
            "labels": list(self.networks.labels),
            "test_images": len(self.test_images),
            "networks": self.names.networks,
            "basis": {
                "labels": basis.labels.tolist(),
                "sets": basis.sets.tolist(),
                "norm": basis.norm,
                "provenance": self.names.provenance(basis.provenance),
            },
            "directions": self.config.directions,
            "slider_range": self.config.slider_range,
            "strip_images": self.config.strip_images,
            "rotation_steps": self.config.rotation_steps,
            "upload_bytes": self.config.upload_bytes,
            "upload_pixels": self.config.upload_pixels,
            "methods": self.methods.names(),
            "inversion": {"inversion": self.inversion, "requested": self.config.inversion},
        }

    # --- Latents to start from -----------------------------------------------------------------------

    def sample(self, seed: int) -> torch.Tensor:
        """z ~ N(0, I_M) drawn with ``seed`` (the networks' prior), (M,) float32 on the CPU."""
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(self.networks.latent_dim, generator=generator)

    def test_image(self, index: int) -> np.ndarray:
        """Test image ``index``, uint8 (1, C, H, W).

        Raises:
            ExploreInputError: an index outside the test set.
        """
        if not 0 <= index < len(self.test_images):
            raise ExploreInputError(f"index: expected 0..{len(self.test_images) - 1} (the test images), got {index}")
        return self.test_images[index : index + 1]

    def encode(self, images: np.ndarray) -> Encoded:
        """The latent of a uint8 image (1, C, H, W) as ``--inversion`` says (`image_latents.study_latents`: the
        encoder's mean, or the descent's latent, hybrid by default where there is an encoder), (M,) float32 on the
        CPU, with the record of how it was made.

        Raises:
            ExploreInputError: a latent that is not finite.
        """
        with self._lock:
            pixels = images_to_tensor(images).to(self.networks.compute.device)
            found = study_latents(pixels, self.networks, self.config, self.config.seed)
        return Encoded(check_finite(found.latents[0].float(), "image"), found.record())

    def read_upload(self, data: bytes) -> ConvertedImage:
        """An uploaded image file in the networks' image shape (`images.open_image`, `convert_image`).

        Raises:
            ImageInputError: not an image, too large, or damaged.
        """
        image = open_image(data, self.config.upload_pixels)
        return convert_image(image, self.networks.image_shape, self.dark_background)

    # --- What a latent is made of --------------------------------------------------------------------

    def check_latent(self, values: list[float]) -> torch.Tensor:
        """``values`` as an (M,) float32 latent.

        Raises:
            ExploreInputError: not M values.
        """
        if len(values) != self.networks.latent_dim:
            raise ExploreInputError(f"latent: expected {self.networks.latent_dim} numbers, got {len(values)}")
        return torch.tensor(values, dtype=torch.float32)

    def views(self, latents: torch.Tensor, top_n: int) -> list[View]:
        """Each row of ``latents`` (N, M) as the page shows it, with its top ``top_n`` components kept.

        Raises:
            ExploreInputError: ``top_n`` outside 1..M.
        """
        if not 1 <= top_n <= self.basis.dim:
            raise ExploreInputError(f"top_n: expected 1..{self.basis.dim}, got {top_n}")
        z = latents.double()
        truncated = self.basis.truncate(z, top_n)
        images, probabilities = self.decode(torch.cat([z, truncated]))
        spectrum = self.basis.decompose(z)
        top = self.basis.classify(z, top=min(TOP_LABELS, int(self.basis.labelled.sum())))
        count = len(z)
        return [
            View(
                z[i].tolist(),
                png_bytes(images[i]),
                probabilities[i].tolist(),
                spectrum[i].tolist(),
                top[i].tolist(),
                truncated[i].tolist(),
                png_bytes(images[count + i]),
                probabilities[count + i].tolist(),
            )
            for i in range(count)
        ]

    def decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """G(z) on the CPU and softmax C(G(z)) in float64 (rows summing to 1) for latents (N, M).

        Raises:
            ExploreInputError: images or probabilities that are not finite.
        """
        # `open_session` required them
        assert self.networks.generator is not None and self.networks.classifier is not None
        with self._lock, torch.inference_mode():
            z = latents.float().to(self.networks.compute.device)
            images = self.networks.generator(z)
            logits = self.networks.classifier(images)
        return check_finite(images.float().cpu(), "latent"), check_finite(logits.double().softmax(1).cpu(), "latent")

    def images(self, latents: torch.Tensor) -> list[bytes]:
        """The PNGs of G(z) for latents (N, M)."""
        images, _ = self.decode(latents)
        return [png_bytes(image) for image in images]

    # --- Moving ---------------------------------------------------------------------------------------

    def directions(self, method: str) -> torch.Tensor:
        """The first K (``config.directions``) unit directions of the fitted ``method``, (K, M) float32.

        Raises:
            MethodError: an unknown method. NotFitted: not fitted yet.
        """
        return self.methods.get(method).directions_[: self.config.directions].float().cpu()

    def direction_names(self, method: str) -> list[str]:
        """A name per slider of the fitted ``method``: LSD's say the label and set of each quasi-eigenvector.

        Raises:
            MethodError, NotFitted: see `directions`.
        """
        count = len(self.directions(method))
        if method != LSD:
            return [f"d{k}" for k in range(count)]
        labels, sets = self.basis.labels.tolist(), self.basis.sets.tolist()
        return [
            f"xi{k}: {self.networks.labels[labels[k]]} (set {sets[k]})" if labels[k] >= 0 else f"xi{k}"
            for k in range(count)
        ]

    def move(self, z: torch.Tensor, method: str, offsets: list[float]) -> torch.Tensor:
        """z + sum_k t_k d_k with the amounts ``offsets`` t_k along ``method``'s directions (at most K of them;
        the contract's `edit` applied for every k at once).

        Raises:
            ExploreInputError: more offsets than directions. MethodError, NotFitted: see `directions`.
        """
        directions = self.directions(method)
        if len(offsets) > len(directions):
            raise ExploreInputError(
                f"offsets: expected at most {len(directions)} (the directions of {method}), got {len(offsets)}"
            )
        amounts = torch.tensor(offsets, dtype=torch.float64)
        return (z.double() + amounts @ directions[: len(offsets)].double()).float()

    def strip(self, z: torch.Tensor, method: str, k: int) -> tuple[list[float], list[bytes]]:
        """G(z + s d_k) for ``config.strip_images`` amounts s evenly over the sliders' range: (amounts, PNGs).

        Raises:
            ExploreInputError: no direction ``k``. MethodError, NotFitted: see `directions`.
        """
        directions = self.directions(method)
        if not 0 <= k < len(directions):
            raise ExploreInputError(
                f"direction: expected 0..{len(directions) - 1} (the directions of {method}), got {k}"
            )
        amounts = torch.linspace(-self.config.slider_range, self.config.slider_range, self.config.strip_images)
        return amounts.tolist(), self.images(z[None] + amounts[:, None] * directions[k][None])

    def rotation(self, z: torch.Tensor, labels: list[int] | None) -> torch.Tensor:
        """Algorithm 1's path of ``z`` through the quasi-eigenvectors of ``labels`` (default: every label in order;
        `latent.paths.rotation_path`, plane rotations of pi / (2 ``rotation_steps``)): (frames, M) float64.

        Raises:
            ExploreInputError: fewer than two labels, a label the basis does not have, a zero latent (each step
                rescales to <z|z> = M), or any other refusal of `rotation_path`.
        """
        known = sorted(set(self.basis.labels[self.basis.labelled].tolist()))
        chosen = known if labels is None else labels
        unknown = [label for label in chosen if label not in known]
        if len(chosen) < 2 or unknown or any(a == b for a, b in pairwise(chosen)):
            raise ExploreInputError(f"labels: expected at least two of {known}, no two neighbours equal, got {chosen}")
        if not bool(z.any()):
            raise ExploreInputError(
                "latent: all zeros; the rotation rescales the latent to <z|z> = M after each step, "
                "which a zero latent cannot be"
            )
        steps = self.config.rotation_steps
        try:
            return rotation_path(z.double(), self.basis, chosen, dtheta=math.pi / (2 * steps), steps=steps)
        except ValueError as error:  # LatentError, and the plain ValueErrors of latent/ (a latent mapped to 0, ...)
            raise ExploreInputError(f"rotation: {error}") from None
