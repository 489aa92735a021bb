"""Images in and out of the page: decoded latents as PNG bytes, and an uploaded or drawn image file read safely
(size limits checked from the header before any pixel is decoded) and converted to the networks' image shape."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
from PIL import Image

from ..errors import LatentspectraError

FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")  # what Pillow may open an upload as; no other decoder runs
# what Pillow's decoders raise on a damaged file: OSError mostly, but a broken PNG chunk is a SyntaxError, a truncated
# IHDR or APNG chunk a ValueError, a short header a struct.error, IndexError or TypeError
DAMAGED = (OSError, ValueError, EOFError, SyntaxError, IndexError, TypeError, struct.error)


class ImageInputError(LatentspectraError, ValueError):
    """An image file the page cannot take: not an image, too large, or damaged."""

    def __init__(self, message: str, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def png_bytes(image: torch.Tensor) -> bytes:
    """One (C, H, W) image in [-1, 1] (C = 1 or 3) as PNG bytes, grey or RGB, at its own size (the page scales it)."""
    unit = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    return uint8_png(unit.numpy())


def uint8_png(pixels: np.ndarray) -> bytes:
    """One uint8 (C, H, W) image (C = 1 or 3) as PNG bytes."""
    grey = pixels.shape[0] == 1
    buffer = io.BytesIO()
    Image.fromarray(pixels[0] if grey else pixels.transpose(1, 2, 0), "L" if grey else "RGB").save(
        buffer, format="PNG", compress_level=1
    )
    return buffer.getvalue()


@dataclass(frozen=True)
class ConvertedImage:
    """An uploaded image as the networks take it: uint8 (1, C, H, W), and what was changed to get there."""

    pixels: np.ndarray
    notes: tuple[str, ...]


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """The image in ``data``, read from its header only: its format among `FORMATS` and its size checked before any
    pixel is decoded; the first frame of an animation.

    Raises:
        ImageInputError: not an image of those formats, more than ``max_pixels`` pixels (``too_large``), or damaged.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # Pillow's own bomb check, as an error
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageInputError(
                f"image: more pixels than Pillow opens safely ({Image.MAX_IMAGE_PIXELS}), expected "
                f"at most {max_pixels}",
                too_large=True,
            ) from None
        except DAMAGED:  # UnidentifiedImageError is an OSError
            raise ImageInputError(
                f"expected an image file ({', '.join(FORMATS)}), got {len(data)} bytes that are not one"
            ) from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageInputError(
            f"image of {width} x {height} pixels: expected at most {max_pixels} pixels", too_large=True
        )
    try:
        image.seek(0)
        image.load()
    except (*DAMAGED, Image.DecompressionBombError):
        raise ImageInputError(f"{image.format} image of {width} x {height}: damaged or truncated") from None
    return image


def convert_image(image: Image.Image, shape: tuple[int, int, int], dark_background: bool) -> ConvertedImage:
    """``image`` as the networks' (C, H, W) ``shape``: transparent pixels laid on the background, converted to grey
    or RGB, resized to H x W (Lanczos), and for grey networks inverted when its border is light but the
    networks' images have a ``dark_background`` (or the other way round). Each change is named in the notes."""
    notes = []
    channels, height, width = shape
    if _is_transparent(image):
        background = Image.new("RGBA", image.size, (0, 0, 0, 255) if dark_background else (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
        notes.append(f"transparent pixels laid on {'black' if dark_background else 'white'}")
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        notes.append(f"converted from {image.mode} to {'grey' if mode == 'L' else 'RGB'}")
        image = image.convert(mode)
    if image.size != (width, height):
        notes.append(f"resized from {image.width} x {image.height} to {width} x {height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    if channels == 1 and _light_border(pixels) == dark_background:
        pixels = 255 - pixels
        notes.append(
            "inverted: its background is light, the networks' images have dark ones"
            if dark_background
            else "inverted: its background is dark, the networks' images have light ones"
        )
    return ConvertedImage(np.ascontiguousarray(pixels[None]), tuple(notes))


def _is_transparent(image: Image.Image) -> bool:
    """Whether any pixel of ``image`` is not fully opaque (a canvas' PNG has an alpha channel that is all 255)."""
    if image.mode not in ("RGBA", "LA", "PA") and not (image.mode == "P" and "transparency" in image.info):
        return False
    # a single band's extrema are (min, max), not one pair per band
    return cast(tuple[int, int], image.convert("RGBA").getchannel("A").getextrema())[0] < 255


def _light_border(pixels: np.ndarray) -> bool:
    """Whether the mean of the outermost pixels of a (C, H, W) uint8 image is above mid-grey."""
    border = np.concatenate(
        [pixels[:, 0].ravel(), pixels[:, -1].ravel(), pixels[:, :, 0].ravel(), pixels[:, :, -1].ravel()]
    )
    return float(border.mean()) > 127.5


def dark_background(images: np.ndarray) -> bool:
    """Whether uint8 images (N, C, H, W) have dark borders on average (MNIST's: black)."""
    return not _light_border(images.mean(0))
