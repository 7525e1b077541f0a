"""Decoding images of any size and colour into the uint8 (N, C, H, W) form.

Images are resized to a square ``size`` x ``size`` (face crops are square or
close to it in every supported dataset, so no cropping) and converted to
grayscale (C=1) or RGB (C=3). Whole sets of files decode through
:mod:`fer_bench.data.decoding` (35k 48x48 PNGs take about 5 s in one process).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class ImageRef:
    # A str where a loader names hundreds of thousands of files: building a Path each
    # costs AffectNet's cached load several seconds.
    path: str | Path
    origin: str  # where the image was named ("FER2013Train/label.csv:12"), for errors


def check_format(size: int, channels: int) -> None:
    if size < 8:
        raise ValueError(f"image size must be at least 8 (got {size})")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB) (got {channels})")


def to_chw(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """One PIL image -> uint8 (C, size, size)."""
    mode = "L" if channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    arr = np.asarray(image, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def array_to_chw(arr: np.ndarray, size: int, channels: int) -> np.ndarray:
    """A decoded (H, W) or (H, W, C) uint8 array -> (C, size, size); no PIL round trip when
    the array is already in the target form."""
    if arr.ndim == 2 and channels == 1 and arr.shape == (size, size):
        return arr[None]
    return to_chw(Image.fromarray(arr), size, channels)


def decode_bytes(data: bytes, where: str, size: int, channels: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return to_chw(image, size, channels)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{where}: cannot decode image: {err}") from None


def decode_file(ref: ImageRef, size: int, channels: int) -> np.ndarray:
    try:
        with Image.open(ref.path) as image:
            image.load()  # decode now so a truncated file fails here, not later
            return to_chw(image, size, channels)
    except FileNotFoundError:
        raise FileNotFoundError(f"{ref.origin}: image not found: {ref.path}") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"{ref.origin}: cannot decode image {ref.path}: {err}") from None
