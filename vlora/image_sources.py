"""Images named by their content: a key that says what the image is, and the decoding done only on demand.

A `ImageSource` carries a content key and a loader. Two sources with the same key decode to the same
pixels, so whatever is computed from one image (CLIP features, visual tokens, perceptual weights) can be
computed once per key (vlora/vision_cache.py) and the decoding skipped when the result is known.

    bytes       sha256 of the encoded file (a path, a TSV's base64 cell), plus the conversions the loader
                applies on top of the common decode (`+jpeg`: VLMEvalKit's JPEG re-encoding)
    pixels      sha256 of an in-memory PIL image's mode, size and pixel bytes

Every loader gives an RGB image decoded as `vlora.images.decode_image` decodes, so a path and a base64
cell holding the same bytes share a key.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from vlora.errors import InputError
from vlora.images import decode_image, open_image


@dataclass(frozen=True, eq=False)
class ImageSource:
    """An image known by its content `key`, decoded by `load()` only when its pixels are needed."""

    key: str
    load: Callable[[], Image.Image]


def bytes_key(data: bytes, conversion: str = "") -> str:
    """The key of an encoded image: the hash of its bytes, plus the conversion applied after decoding."""
    digest = hashlib.sha256(data).hexdigest()[:40]
    return f"bytes:{digest}{'+' + conversion if conversion else ''}"


def pixels_key(image: Image.Image) -> str:
    """The key of a decoded image: the hash of its mode, size and pixels (RGB as the models see them)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.size}".encode())
    digest.update(rgb.tobytes())
    return f"pixels:{digest.hexdigest()[:40]}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"image {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"image {path} is a folder, not an image file") from None
    except OSError as e:
        raise InputError(f"image {path} cannot be read ({type(e).__name__})") from None


def image_source(item: ImageSource | Image.Image | str | Path) -> ImageSource:
    """A request's image (a source, a PIL image or a path) as a keyed source. A path is read now (its
    bytes give the key; a missing file is an InputError here), decoded only by `load()`."""
    if isinstance(item, ImageSource):
        return item
    if isinstance(item, Image.Image):
        return ImageSource(pixels_key(item), lambda: item)
    path = Path(item)
    data = _read(path)
    return ImageSource(bytes_key(data), lambda: decode_image(io.BytesIO(data), label=f"image {path}"))


def load_image(item: ImageSource | Image.Image | str | Path) -> Image.Image:
    """The decoded image of a request's image, whatever form it was given in."""
    return item.load() if isinstance(item, ImageSource) else open_image(item)
