"""Image features for Rayleigh EigenDirections (`methods.reds`): composable callables images -> (B, d).

The features that Balakrishnan, Gadde, Martinez & Perona ("Rayleigh EigenDirections (REDs): GAN latent
space traversals for multidimensional features", Caltech, 2022) change or hold: the pixels inside a region
(a box or any mask) and outside it, all pixels, a classifier's logits (the image's identity), the total ink
and a stroke-thickness measure; `concat_features` joins several into one.

Every feature takes a batch of images (B, C, H, W) with pixels in [-1, 1] (the generator's tanh range)
and returns a (B, d) tensor. All are plain differentiable torch functions without data-dependent
control flow, so `torch.func.jacfwd` and `torch.func.vmap` can run through them.

Which features fit which images: the region features (halves, boxes), all pixels and the identity work on
images of any shape (C, H, W), their regions taken from the H and W given. The stroke features
(`STROKE_FEATURES`: ink and thickness, built on `ink_map`) assume digit-like images, single-channel strokes
on a dark background, and refuse images with C != 1. `features_for_shape` names the features of
`NAMED_FEATURES` that fit an image shape, and `unfit_features` the parts of a spec that do not, so that a
study can skip (and note) stroke-feature examples on RGB images; `feature_from_spec` refuses them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..errors import LatentspectraError

Feature = Callable[[torch.Tensor], torch.Tensor]

TV_SMOOTHING = 1e-3  # delta of the smoothed gradient magnitude sqrt(|grad|^2 + delta^2) - delta


class FeatureError(LatentspectraError, ValueError):
    """A feature definition (mask, box, list of features) or a feature's input that does not fit."""


def _check_images(name: str, images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise FeatureError(f"{name}: expected images of shape (B, C, H, W), got {shape}")
    return images


def _stroke_refusal(name: str, channels: int) -> str:
    """The one-line reason why the stroke feature ``name`` does not fit images of ``channels`` channels."""
    return (
        f"{name} is a stroke feature: it only applies to single-channel (grey stroke) images, "
        f"not to images of {channels} channels"
    )


def box_mask(height: int, width: int, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Boolean (height, width) mask that is True on rows top..bottom-1 and columns left..right-1.

    Raises:
        FeatureError: an empty box or one that leaves the image.
    """
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise FeatureError(
            f"box_mask: rows {top}:{bottom} and columns {left}:{right} must be a non-empty box "
            f"inside a {height} x {width} image"
        )
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def region_pixels(mask: torch.Tensor, outside: bool = False) -> Feature:
    """The pixels of every channel where ``mask`` (H, W) is True (``outside``: where it is False).

    Returns a feature images (B, C, H, W) -> (B, C * n) with n the number of selected pixels, in
    row-major order. The pixels are picked by index, not boolean masking, so the feature vmaps.

    Raises:
        FeatureError: ``mask`` is not a 2-D boolean tensor, or selects no pixel; the returned feature
            raises it for images whose height and width differ from the mask's.
    """
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.dtype != torch.bool:
        raise FeatureError(
            f"region_pixels: mask must be a 2-D boolean tensor (H, W), got "
            f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}"
        )
    selected = ~mask if outside else mask
    indices = torch.nonzero(selected.flatten()).flatten()
    if len(indices) == 0:
        raise FeatureError(f"region_pixels: the mask selects no pixel {'outside' if outside else 'inside'} it")
    shape = tuple(mask.shape)

    def pixels(images: torch.Tensor) -> torch.Tensor:
        _check_images("region_pixels", images)
        if tuple(images.shape[-2:]) != shape:
            raise FeatureError(
                f"region_pixels: mask is {shape[0]} x {shape[1]}, images are {images.shape[-2]} x {images.shape[-1]}"
            )
        return images.flatten(2).index_select(2, indices.to(images.device)).flatten(1)

    return pixels


def all_pixels(images: torch.Tensor) -> torch.Tensor:
    """Every pixel: (B, C, H, W) -> (B, C * H * W)."""
    return _check_images("all_pixels", images).flatten(1)


def classifier_logits(classifier: Callable[[torch.Tensor], torch.Tensor]) -> Feature:
    """The image's identity as the classifier's logits: images (B, C, H, W) -> (B, num_labels)."""

    def logits(images: torch.Tensor) -> torch.Tensor:
        return classifier(_check_images("classifier_logits", images))

    return logits


def ink_map(images: torch.Tensor) -> torch.Tensor:
    """Pixels mapped from [-1, 1] to ink in [0, 1] (background -1 -> 0, full stroke 1 -> 1).

    Raises:
        FeatureError: images that are not (B, 1, H, W): ink is a stroke measure of single-channel images.
    """
    channels = _check_images("ink", images).shape[1]
    if channels != 1:
        raise FeatureError(_stroke_refusal("ink", channels))
    return (images + 1) / 2


def total_ink(images: torch.Tensor) -> torch.Tensor:
    """Total ink: the sum of `ink_map` over all pixels and channels, in pixels; (B, C, H, W) -> (B, 1)."""
    return ink_map(images).flatten(1).sum(1, keepdim=True)


def ink_perimeter(images: torch.Tensor) -> torch.Tensor:
    """Length of the ink's outline, in pixels: the isotropic total variation of `ink_map`,
    sum over pixels of sqrt(dx^2 + dy^2 + delta^2) - delta with forward differences dx, dy and
    delta = TV_SMOOTHING (smooth at flat regions, where the plain |grad| has no derivative).

    For a binary shape this is its perimeter; blurring an edge leaves it unchanged. (B, C, H, W) -> (B, 1).
    """
    ink = ink_map(images)
    dx = ink[..., :-1, 1:] - ink[..., :-1, :-1]
    dy = ink[..., 1:, :-1] - ink[..., :-1, :-1]
    magnitude = torch.sqrt(dx**2 + dy**2 + TV_SMOOTHING**2) - TV_SMOOTHING
    return magnitude.flatten(1).sum(1, keepdim=True)


def stroke_thickness(images: torch.Tensor) -> torch.Tensor:
    """Mean stroke width in pixels, 2 x area / perimeter: `total_ink` over half the `ink_perimeter`.

    A stroke of width w and length l has area w l and perimeter 2 (w + l), so the measure is
    w l / (w + l), close to w for the long thin strokes of a digit (and below it for short blobs).
    (B, C, H, W) -> (B, 1); 0 for an empty image.
    """
    return 2 * total_ink(images) / (ink_perimeter(images) + 1e-6)


def concat_features(*features: Feature) -> Feature:
    """One feature that concatenates the outputs of ``features`` along dim 1: (B, d_1 + ... + d_n).

    Raises:
        FeatureError: no features, or one that is not callable.
    """
    if not features:
        raise FeatureError("concat_features: give at least one feature")
    for position, feature in enumerate(features):
        if not callable(feature):
            raise FeatureError(f"concat_features: feature {position} is a {type(feature).__name__}, not a callable")

    def concatenated(images: torch.Tensor) -> torch.Tensor:
        return torch.cat([feature(images) for feature in features], dim=1)

    return concatenated


GENERIC_FEATURES = ("upper", "lower", "left", "right", "identity", "all")
STROKE_FEATURES = ("ink", "thickness")  # single-channel stroke images only (digit-like: strokes on dark)
NAMED_FEATURES = GENERIC_FEATURES + STROKE_FEATURES
BOX_FEATURES = ("box", "outside")


def _channels_height_width(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """(C, H, W) from an image shape (C, H, W), or (1, H, W) from (H, W) (a single-channel image)."""
    shape = tuple(int(size) for size in image_shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise FeatureError(f"expected an image shape (C, H, W) or (H, W) of positive sizes, got {shape}")
    channels, height, width = shape if len(shape) == 3 else (1, *shape)
    return channels, height, width


def features_for_shape(image_shape: Sequence[int]) -> tuple[str, ...]:
    """The names of `NAMED_FEATURES` that fit images of ``image_shape`` ((C, H, W), or (H, W) for one channel):
    all of them for single-channel images, the generic ones (not `STROKE_FEATURES`) otherwise. Boxes
    (``box:...``, ``outside:...``) fit every shape they lie inside.

    Raises:
        FeatureError: a shape that is not (C, H, W) or (H, W) of positive sizes.
    """
    channels, _, _ = _channels_height_width(image_shape)
    return NAMED_FEATURES if channels == 1 else GENERIC_FEATURES


def unfit_features(spec: str, image_shape: Sequence[int]) -> tuple[str, ...]:
    """The named features of ``spec`` (names joined by "+") that do not fit images of ``image_shape``
    (see `features_for_shape`), in spec order; empty when all fit. Unknown names and boxes are not judged here.

    Raises:
        FeatureError: a shape that is not (C, H, W) or (H, W) of positive sizes.
    """
    fitting = features_for_shape(image_shape)
    parts = (part.strip() for part in spec.split("+"))
    return tuple(part for part in parts if part in NAMED_FEATURES and part not in fitting)


def feature_from_spec(
    spec: str, classifier: Callable[[torch.Tensor], torch.Tensor], image_shape: Sequence[int]
) -> Feature:
    """The feature named by ``spec`` for images of ``image_shape`` ((C, H, W), or (H, W) for single-channel
    images): one of NAMED_FEATURES, ``box:TOP:BOTTOM:LEFT:RIGHT`` (pixels in rows TOP..BOTTOM-1, columns
    LEFT..RIGHT-1), ``outside:TOP:BOTTOM:LEFT:RIGHT`` (the other pixels), or several joined by "+"
    (concatenated). upper / lower / left / right are the halves of the H x W image (lower = outside the upper
    box, so the middle row of an odd H is lower's); identity is the classifier's logits; ink and thickness
    (`STROKE_FEATURES`) only for single-channel images.

    Raises:
        FeatureError: an unknown name, a bad box or shape, or a stroke feature for images with C != 1.
    """
    channels, height, width = _channels_height_width(image_shape)
    unfit = unfit_features(spec, image_shape)
    if unfit:
        raise FeatureError(_stroke_refusal(unfit[0], channels))
    try:
        features = [_single_feature(part.strip(), classifier, (height, width)) for part in spec.split("+")]
    except ValueError as error:
        if isinstance(error, FeatureError):
            raise
        names = ", ".join(features_for_shape(image_shape))
        raise FeatureError(
            f"expected names from {names} or box:TOP:BOTTOM:LEFT:RIGHT / outside:TOP:BOTTOM:LEFT:RIGHT, joined by '+'"
        ) from None
    return features[0] if len(features) == 1 else concat_features(*features)


def _single_feature(
    name: str, classifier: Callable[[torch.Tensor], torch.Tensor], image_size: tuple[int, int]
) -> Feature:
    height, width = image_size
    halves = {"upper": (0, height // 2, 0, width), "left": (0, height, 0, width // 2)}
    if name in ("upper", "lower"):
        return region_pixels(box_mask(height, width, *halves["upper"]), outside=name == "lower")
    if name in ("left", "right"):
        return region_pixels(box_mask(height, width, *halves["left"]), outside=name == "right")
    simple = {
        "identity": classifier_logits(classifier),
        "ink": total_ink,
        "thickness": stroke_thickness,
        "all": all_pixels,
    }
    if name in simple:
        return simple[name]
    kind, *bounds = name.split(":")
    if kind not in BOX_FEATURES or len(bounds) != 4:
        raise ValueError(name)
    return region_pixels(box_mask(height, width, *map(int, bounds)), outside=kind == "outside")
