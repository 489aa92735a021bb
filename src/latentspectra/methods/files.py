"""A fitted SFVQ curve as files: ``NAME.safetensors`` (the codebook) with ``NAME.json`` beside it (the
parameters and the fit's history), each written atomically."""

from __future__ import annotations

from pathlib import Path

from ..io import load_tensors_with_record, record_path, save_tensors_with_record
from ..latent.checks import check_latents
from .sfvq import SFVQ, SFVQError

SFVQ_FORMAT = "latentspectra.SFVQ"


def save_sfvq(model: SFVQ, path: str | Path) -> Path:
    """Write ``model.codebook_`` to ``path`` (safetensors) and the parameters and history to ``path`` with suffix
    .json, each atomically; returns ``path``.

    Raises:
        SFVQError: not fitted, or ``path`` ends in .json.
    """
    codebook = model.fitted_codebook()
    return save_tensors_with_record(
        path,
        {"codebook": codebook},
        {
            "format": SFVQ_FORMAT,
            "params": model.get_params(),
            "n_features_in": model.n_features_in_,
            "history": model.history_,
        },
        SFVQError,
    )


def load_sfvq(path: str | Path) -> SFVQ:
    """A fitted SFVQ from the files written by `save_sfvq`.

    Raises:
        SFVQError: a missing, unreadable or inconsistent file, naming it.
    """
    path = Path(path)
    tensors, meta = load_tensors_with_record(path, SFVQError, "SFVQ codebook", SFVQ_FORMAT)
    if not isinstance(meta.get("params"), dict):
        raise SFVQError(f"{record_path(path)}: no 'params' object in the {SFVQ_FORMAT} record")
    try:  # a curve saved before the growth rule was a parameter grew by midpoints
        model = SFVQ(**{"growth": "midpoint", **meta["params"]})
        model.check_params()
    except (TypeError, SFVQError) as error:
        raise SFVQError(f"{record_path(path)}: bad parameters ({error})") from None
    codebook = tensors.get("codebook")
    expected = (model.num_codewords, meta.get("n_features_in"))
    if codebook is None or tuple(codebook.shape) != expected:
        shape = None if codebook is None else tuple(codebook.shape)
        raise SFVQError(f"{path}: expected a 'codebook' tensor of shape {expected}, got {shape}")
    model.codebook_ = check_latents(codebook, f"load_sfvq {path}", "codebook")
    model.n_features_in_ = codebook.shape[1]
    model.history_ = list(meta.get("history", []))
    return model
