"""The direction methods of the page: fitted on first use in one background worker, with their stage shown, and
cached on disk (`save_method` / `load_method`, written atomically) so that the next server loads them at once.

Every registered method is fitted as `latentspectra compare` fits it (`experiments.compare.method_params` and
`fit_inputs`: the same parameters, seed, K and latents), so the page shows the directions that compare measures.
LSD is the exception: its directions are the quasi-eigenvectors of the page's own basis (built at start as
`latentspectra basis` builds it, set 1 from the encoder where there is one, or read from a file), ready from the
start. The latents the others fit on are compare's (`methods_config`): the training codes of
`image_latents.training_codes` and the test latents as `compare --inversion` makes them (auto: the encoder's means
where there is an encoder), whatever the page's own ``--inversion`` does with the images a user picks.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..config import CompareConfig, ExploreConfig
from ..data import images_to_tensor
from ..errors import LatentspectraError
from ..experiments.compare import fit_inputs, method_params
from ..experiments.image_latents import study_latents, training_codes
from ..experiments.networks import Networks
from ..methods.directions import DirectionMethod, MethodError, available, get, load_method, save_method

LSD = "lsd"
COMPARE_TEST_LATENTS = CompareConfig.latents  # the test codes REDs is fitted on, as compare has them


class NotFitted(LatentspectraError):
    """A method asked for before its fit has finished (or after it failed)."""


@dataclass(frozen=True)
class MethodStatus:
    """Where one method stands: ``state`` is "idle" (not fitted), "fitting", "ready" or "failed"; ``stage`` says
    what the fit is doing, ``seconds`` how long it has run or took, ``error`` why it failed."""

    name: str
    state: Literal["idle", "fitting", "ready", "failed"] = "idle"
    stage: str = ""
    seconds: float | None = None
    error: str | None = None
    directions: int = 0
    cached: bool = False


class MethodStore:
    """The fitted methods of one server, each fitted at most once, in one worker thread; safe to call from many
    request threads (one lock guards the statuses and the fitted methods).

    Files: ``directory``/NAME.safetensors and NAME.json per fitted method.
    """

    def __init__(
        self,
        networks: Networks,
        config: ExploreConfig,
        directory: Path,
        train_images: np.ndarray,
        test_images: np.ndarray,
    ) -> None:
        self.networks = networks
        self.config = config
        self.directory = directory
        self._images = {"train": train_images, "test": test_images[:COMPARE_TEST_LATENTS]}
        self._codes: dict[str, torch.Tensor] = {}
        self._fitted: dict[str, DirectionMethod] = {}
        self._status = {name: MethodStatus(name) for name in self.names()}
        self._started: dict[str, float] = {}  # monotonic start of each running fit
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        # a daemon thread: Ctrl-C ends the server at once, not after a minute of fitting
        threading.Thread(target=self._work, name="explore-fit", daemon=True).start()

    @staticmethod
    def names() -> list[str]:
        """LSD first, then every other registered method."""
        return [LSD, *(name for name in available() if name != LSD)]

    def path(self, name: str) -> Path:
        """The cache file of method ``name`` (its record is beside it, NAME.json)."""
        return self.directory / f"{name}.safetensors"

    def add(self, name: str, method: DirectionMethod, seconds: float | None = None, cached: bool = False) -> None:
        """Make ``method`` the fitted ``name``, saving it to the cache unless it came from there."""
        if not cached:
            save_method(method, self.path(name))
        with self._lock:
            self._fitted[name] = method
            self._status[name] = MethodStatus(
                name, "ready", seconds=seconds, directions=int(method.directions_.shape[0]), cached=cached
            )

    def load_cached(self) -> list[str]:
        """Load every method the cache holds (a damaged or stale file is left to be refitted); their names."""
        loaded = []
        for name in self.names():
            path = self.path(name)
            if not path.is_file() or name in self._fitted:
                continue
            try:
                self.add(name, load_method(path), cached=True)
                loaded.append(name)
            except MethodError:
                continue
        return loaded

    def status(self, name: str) -> MethodStatus:
        """The status of ``name``, with the seconds so far of a running fit.

        Raises:
            MethodError: an unknown method, listing the known ones.
        """
        self.check_name(name)
        with self._lock:
            status, started = self._status[name], self._started.get(name)
        if status.state == "fitting" and started is not None:
            return replace(status, seconds=time.monotonic() - started)
        return status

    def check_name(self, name: str) -> None:
        """Raises MethodError unless ``name`` is a registered method."""
        if name not in self._status:
            raise MethodError(f"method: expected one of {', '.join(self.names())}, got {name!r}")

    def request_fit(self, name: str) -> MethodStatus:
        """Start fitting ``name`` in the worker unless it is ready or already queued; its status.

        Raises:
            MethodError: an unknown method.
        """
        self.check_name(name)
        with self._lock:
            if self._status[name].state in ("idle", "failed"):
                self._status[name] = MethodStatus(name, "fitting", "waiting for the worker")
                self._queue.put(name)
        return self.status(name)

    def get(self, name: str) -> DirectionMethod:
        """The fitted method ``name``.

        Raises:
            MethodError: an unknown method.
            NotFitted: not fitted yet, or its fit failed.
        """
        self.check_name(name)
        with self._lock:
            method, status = self._fitted.get(name), self._status[name]
        if method is None:
            reason = (
                f"its fit failed: {status.error}"
                if status.state == "failed"
                else f"it is {status.state}; POST /api/methods/{name}/fit starts it"
            )
            raise NotFitted(f"method {name} is not fitted yet: {reason}")
        return method

    def close(self) -> None:
        """Stop the worker once the fits already asked for are done (it dies with the process before that)."""
        self._queue.put(None)

    def _work(self) -> None:
        """The worker: fit the methods asked for, one at a time, until `close`."""
        while (name := self._queue.get()) is not None:
            self._fit(name)

    def _stage(self, name: str, stage: str) -> None:
        with self._lock:
            self._status[name] = replace(self._status[name], stage=stage)

    def _fit(self, name: str) -> None:
        """The worker's job: fit ``name`` as compare does, record it, or record why it failed."""
        began = time.monotonic()
        with self._lock:
            self._started[name] = began
        try:
            params = method_params(name, methods_config(self.config), self.networks.latent_dim)
            method = get(name, **params)
            which = method.fit_latents if "latents" in method.inputs else None
            codes = {which: self._encoded(name, which)} if which else {}
            self._stage(name, "fitting")
            method.fit(**fit_inputs(method, self.networks, codes.get("train"), codes.get("test")))
            self._stage(name, "saving")
            self.add(name, method, seconds=time.monotonic() - began)
        except Exception as error:
            reason = str(error) if isinstance(error, LatentspectraError) else f"{type(error).__name__}: {error}"
            with self._lock:
                self._status[name] = MethodStatus(
                    name, "failed", seconds=time.monotonic() - began, error=" ".join(reason.split())
                )

    def _encoded(self, name: str, which: str) -> torch.Tensor:
        """The training codes or test latents compare fits on (`methods_config`), computed once."""
        if which not in self._codes:
            images, seed = self._images[which], self.config.seed
            self._stage(name, f"{'coding' if which == 'train' else 'inverting'} the {which} images ({len(images)})")
            self._codes[which] = (
                training_codes(self.networks, images, seed).latents
                if which == "train"
                else study_latents(images_to_tensor(images), self.networks, methods_config(self.config), seed).latents
            )
        return self._codes[which]


def methods_config(config: ExploreConfig) -> CompareConfig:
    """The compare config the page's methods are fitted with: its seed, K and inversion, the learned directions at
    compare's quick budget (a page waits seconds, not minutes, for a slider)."""
    return replace(
        CompareConfig(),
        seed=config.seed,
        budget="quick",
        directions=config.directions,
        inversion=config.inversion,
        inversion_steps=config.inversion_steps,
    )
