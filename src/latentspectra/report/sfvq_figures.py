"""The figures of `latentspectra sfvq` (Vali & Bäckström, arXiv 2410.20573, 2024), drawn from plain arrays.

The panoptic map is drawn here; the direction and augmentation rows use `figures.image_rows`. Images are
floats in [0, 1] of shape (N, H, W); nothing here computes results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .figures import TILE_INCHES, new_figure, save_figure, show_images


def panoptic_map(images: np.ndarray, labels: Sequence[int], path: Path, columns: int = 32) -> Path:
    """The decoded codewords G(c_1), ..., G(c_K) in curve order, read row by row, ``columns`` per row,
    each marked with its classified label; a label that differs from the previous codeword's is red."""
    images = np.asarray(images, dtype=float)
    count, height, width = images.shape
    columns = min(columns, count)
    rows = -(-count // columns)
    figure = new_figure(0.5 + TILE_INCHES * columns, 0.8 + 1.1 * TILE_INCHES * rows)
    ax = figure.subplots()
    show_images(ax, images, columns, f"panoptic map: the {count} codewords in curve order, with their labels")
    for index, label in enumerate(labels):
        row, column = divmod(index, columns)
        changed = index > 0 and label != labels[index - 1]
        ax.text(column * (width + 1) + 1, row * (height + 1) + 1, str(label), ha="left", va="top", fontsize=7,
                fontweight="bold", color="red" if changed else "yellow")
    return save_figure(figure, path)
