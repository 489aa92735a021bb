"""The figures of `latentspectra sfvq` (Vali & Bäckström, arXiv 2410.20573, 2024), drawn from plain arrays.

The panoptic map is drawn here; the direction and augmentation rows use `figures.image_rows`. Images are
floats in [0, 1] of shape (N, H, W) or (N, C, H, W) with C = 1 or 3; nothing here computes results.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .figures import TILE_INCHES, annotate_tiles, label_name, new_figure, save_figure, show_images, tile_inches


def panoptic_map(
    images: np.ndarray, labels: Sequence[int], path: Path, columns: int = 32, label_names: Sequence[str] | None = None
) -> Path:
    """The decoded codewords G(c_1), ..., G(c_K) in curve order, read row by row, ``columns`` per row,
    each marked with its classified label (written as ``label_names``, default: the integers); a label that
    differs from the previous codeword's is red."""
    count = len(images)
    columns = min(columns, count)
    rows = -(-count // columns)
    figure = new_figure(0.5 + tile_inches(images) * columns, 0.8 + 1.1 * TILE_INCHES * rows)
    ax = figure.subplots()
    show_images(ax, images, columns, f"panoptic map: the {count} codewords in curve order, with their labels")
    colors = ["red" if index > 0 and label != labels[index - 1] else "yellow" for index, label in enumerate(labels)]
    annotate_tiles(
        ax, images, columns, [label_name(label, label_names) for label in labels], colors, fontsize=7, fontweight="bold"
    )
    return save_figure(figure, path)
