"""Opening images safely: a file, bytes or a PIL image -> a decoded RGB image, or one clear error.

Decompression bombs (more pixels than PIL's `MAX_IMAGE_PIXELS`, about 89 M) are refused before any
pixel is decoded, instead of PIL's warning-then-allocate; truncated or unknown data is refused too.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from vlora.errors import InputError


def decode_image(source: str | Path | BinaryIO, label: str | None = None, rgb: bool = True) -> Image.Image:
    """Decode an image file (path or file object) fully (as RGB with `rgb`, else in its own mode);
    an InputError names `label` (default: "image <path>")."""
    label = label or (f"image {source}" if isinstance(source, (str, Path)) else "the image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                return image.convert("RGB") if rgb and image.mode != "RGB" else image.copy()
    except FileNotFoundError:
        raise InputError(f"{label} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{label} is a folder, not an image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"{label} is too large to decode safely ({e})") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises these for unknown, cut or broken data
        detail = type(e).__name__ if str(source) in str(e) or not str(e) else f"{type(e).__name__}: {e}"
        raise InputError(f"{label} cannot be decoded ({detail})") from None


def open_image(source: Image.Image | str | Path) -> Image.Image:
    """A PIL image as given, or the decoded file at a path."""
    return source if isinstance(source, Image.Image) else decode_image(source)
