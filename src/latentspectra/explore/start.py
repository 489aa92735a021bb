"""Everything a server loads once, before it answers: the networks, the dataset's images, the LSD basis (read from a
file, from the cache, or built as `latentspectra basis` builds it), the methods already in the cache, and the names the
page may use for the networks instead of their paths."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..compute import Compute
from ..config import AUTO, ORTHOGONALISATION, TOLERANCE, ExploreConfig, per_set_rule
from ..data import images_to_tensor, load_dataset
from ..errors import LatentspectraError
from ..experiments.basis import build_basis
from ..experiments.image_latents import resolve_inversion
from ..experiments.networks import Networks, check_dataset_fits, load_study_networks, networks_spec
from ..io import json_text, tensors_digest, user_cache_dir, versions
from ..latent.basis import QuasiEigenBasis
from ..latent.files import load_basis, save_basis
from ..methods.ours import LSDDirections
from .fitting import LSD, MethodStore, methods_config
from .names import public_names
from .session import ExploreSession

Say = Callable[[str], None]  # where start-up progress lines go (the command prints them; tests drop them)


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/latentspectra/explore, else ~/.cache/latentspectra/explore."""
    return user_cache_dir() / "explore"


def networks_digest(networks: Networks) -> str:
    """SHA-256 of every weight of the generator, classifier and encoder: the cache's key to the networks."""
    description = networks.description
    tensors = {
        f"{piece}.{key}": value
        for piece in ("generator", "classifier", "encoder")
        if getattr(description, piece) is not None
        for key, value in getattr(description, piece).state_dict().items()
    }
    return tensors_digest(tensors)


def cache_directory(root: Path, networks: Networks, config: ExploreConfig, basis_file: Path | None) -> Path:
    """root/<key>: one directory per networks, dataset, seed, V, K, basis file and, where the methods' test codes are
    not the encoder's means, their inversion (`fitting.methods_config`), so no file of other settings is reused
    (and the caches of servers that knew no inversion stay valid)."""
    basis = None if basis_file is None else hashlib.sha256(basis_file.read_bytes()).hexdigest()
    fitted = methods_config(config)
    inversion = resolve_inversion(fitted.inversion, networks, fitted.inversion_auto)
    key = json_text(
        {
            "networks": networks_digest(networks),
            "dataset": config.dataset,
            "seed": config.seed,
            "per_set": config.per_set,
            "directions": config.directions,
            "basis_file": basis,
            "orthogonalisation": ORTHOGONALISATION,
            **({} if inversion == "encoder" else {"test_codes": [inversion, fitted.inversion_steps]}),
        },
        indent=None,
    )
    return root / hashlib.sha256(key.encode()).hexdigest()[:16]


def lsd_basis(
    networks: Networks,
    train_images,
    config: ExploreConfig,
    directory: Path,
    basis_file: Path | None,
    progress: bool,
    say: Say,
) -> QuasiEigenBasis:
    """The basis of ``basis_file``, else the cached one, else built (set 1 from the encoded ``train_images`` where
    the networks have an encoder, else sampled like the other sets, as `latentspectra basis --per-set V --seed S`
    builds it) and cached.

    Raises:
        LatentspectraError: a basis file that cannot be read or is not of the networks' latent dimension.
    """
    cached = directory / "basis.safetensors"
    if basis_file is None and cached.is_file():
        basis_file = cached
        say(f"LSD basis: {cached} (cached)")
    if basis_file is not None:
        basis = load_basis(basis_file)
        if basis.dim != networks.latent_dim:
            raise LatentspectraError(
                f"--basis {basis_file}: dimension {basis.dim}, the networks' latents have {networks.latent_dim}"
            )
        return basis
    say(f"LSD basis: building the latent sets (V = {config.per_set}, seed {config.seed})")
    # `open_session` required them
    assert networks.generator is not None and networks.classifier is not None
    per_set, tolerance = per_set_rule(config.per_set, TOLERANCE)
    built = build_basis(
        networks.generator,
        networks.classifier,
        None if networks.encoder is None else networks.encoder.sample,
        images_to_tensor(train_images).to(networks.compute.device),
        per_set=per_set,
        tolerance=tolerance,
        seed=config.seed,
        batch_size=networks.batch_size,
        progress=progress,
        latent_dim=networks.latent_dim,
        num_labels=networks.num_labels,
        orthogonalisation=ORTHOGONALISATION,
        device=networks.compute.device,
        provenance={"models": networks.source, "dataset": config.dataset, "versions": versions()},
    )
    save_basis(built.basis, cached)
    say(f"LSD basis: {built.stats['total_seconds']:.1f} s, saved to {cached}")
    return built.basis


def basis_vectors(basis: QuasiEigenBasis, config: ExploreConfig) -> int:
    """The V the LSD method records: the config's number, or with ``auto`` the V its basis settled at (its
    provenance, `build_basis`; without a record the most auto draws)."""
    if config.per_set != AUTO:
        return int(config.per_set)
    recorded = basis.provenance.get("per_set")
    return int(recorded) if recorded is not None else per_set_rule(config.per_set, TOLERANCE)[0]


def open_session(
    config: ExploreConfig,
    *,
    basis_file: str | Path | None = None,
    cache_root: str | Path | None = None,
    progress: bool = False,
    say: Say = lambda line: None,
) -> ExploreSession:
    """Load the networks ``config`` names (`load_study_networks`, once for the server), the dataset, the basis and
    the cached methods.

    The basis' provenance is kept without paths (`PublicNames.provenance`), and LSD's directions are made from that
    basis at every start, even where the cache holds them (a copy cached by an older server names the networks'
    path), so that no answer of the page, its exports included, holds a path of the server.

    Raises:
        LatentspectraError: networks without a generator or classifier, or without what ``config.inversion`` needs
            (an encoder for encoder or hybrid), a dataset not of their image shape, a bad basis file, or a cache
            directory that cannot be written.
    """
    compute = Compute.select(config.device, config.precision)
    loaded = load_study_networks(config, compute)
    loaded.require("explore", "generator", "classifier")
    resolve_inversion(config.inversion, loaded, config.inversion_auto)  # one line before anything is built
    dataset = load_dataset(config.dataset)
    check_dataset_fits(loaded.image_shape, dataset, loaded.source, loaded.num_labels)
    basis_path = None if basis_file is None else Path(basis_file)
    if basis_path is not None and not basis_path.is_file():
        raise LatentspectraError(f"--basis {basis_file}: no such file (a .safetensors from `latentspectra basis`)")
    directory = cache_directory(Path(cache_root) if cache_root else default_cache_dir(), loaded, config, basis_path)
    say(f"networks: {loaded.source}; cache: {directory}")
    names = public_names(
        networks_spec(config), loaded, config.dataset, directory, overrides=config.network_files, basis_file=basis_path
    )
    basis = lsd_basis(loaded, dataset.train.images, config, directory, basis_path, progress, say)
    basis = replace(basis, provenance=names.provenance(basis.provenance))
    store = MethodStore(loaded, config, directory, dataset.train.images, dataset.test.images)
    cached = store.load_cached()
    store.add(
        LSD,
        LSDDirections.from_basis(
            basis, min(config.directions, basis.dim), per_set=basis_vectors(basis, config), seed=config.seed
        ),
        cached=LSD in cached,
    )  # the cache has these directions
    say(
        f"methods cached: {', '.join(name for name in cached if name != LSD) or 'none'}; the others are fitted on "
        "first use"
    )
    return ExploreSession(loaded, basis, dataset.test.images, store, config, names=names)
