"""The vision side shared by every model: LLaVA-1.5 preprocessing and the CLIP tower.

Preprocessing (LLaVA-1.5, `image_aspect_ratio="pad"`): paste the image centred on a square canvas
filled with the CLIP mean colour, resize the shortest edge (bicubic), centre-crop, scale to [0, 1],
normalise with the CLIP mean / std. Features: CLIP `hidden_states[-2]` without the CLS token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from vlora.config import VisionConfig
from vlora.errors import CheckpointError


def expand_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """LLaVA's `expand2square`: centre the image on a square canvas of colour `fill`."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def _resize_shortest_edge(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(size * long / short)  # as transformers' get_resize_output_image_size
    new_size = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new_size, resample=Image.BICUBIC)


def _center_crop(array: np.ndarray, size: int) -> np.ndarray:
    height, width = array.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return array[top:top + size, left:left + size]


def preprocess_images(images: Sequence[Image.Image], config: VisionConfig, pad_to_square: bool = True) -> torch.Tensor:
    """PIL images -> pixel values [B, 3, S, S] (float32), LLaVA-1.5 style."""
    mean = np.asarray(config.image_mean, dtype=np.float32)
    std = np.asarray(config.image_std, dtype=np.float32)
    fill = tuple(int(m * 255) for m in config.image_mean)  # (122, 116, 104) for CLIP
    batch = []
    for image in images:
        image = image.convert("RGB")
        if pad_to_square:
            image = expand_to_square(image, fill)
        image = _resize_shortest_edge(image, config.image_size)
        array = _center_crop(np.asarray(image, dtype=np.float32) / 255.0, config.image_size)
        batch.append(((array - mean) / std).transpose(2, 0, 1))  # [3, S, S]
    return torch.from_numpy(np.stack(batch))


class VisionTower(nn.Module):
    """Frozen CLIP vision model -> patch features [B, c, d_v] (hidden_states[select_layer], CLS dropped)."""

    def __init__(self, config: VisionConfig, clip: nn.Module | None = None):
        super().__init__()
        from transformers import CLIPVisionModel

        self.config = config
        self.clip = clip if clip is not None else CLIPVisionModel(config.to_hf())
        self.clip.requires_grad_(False)

    @classmethod
    def from_pretrained(cls, folder: str | Path, select_layer: int = -2, dtype: torch.dtype | None = None) -> VisionTower:
        """Load CLIP from a local folder (a whole CLIP model or a CLIP vision model)."""
        from transformers import CLIPVisionModel

        from vlora.hf_quiet import quiet_transformers

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"vision tower folder {folder} has no config.json (expected a local CLIP folder)")
        try:
            with quiet_transformers():  # a whole CLIP folder holds text-tower keys that are not needed
                clip = CLIPVisionModel.from_pretrained(folder, dtype=dtype)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # transformers' load errors
            raise CheckpointError(f"vision tower {folder}: cannot load a CLIP model ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0] if str(e) else ''})") from None
        mean, std = _preprocessor_stats(folder)
        return cls(VisionConfig.from_hf(clip.config, select_layer, mean, std), clip)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.clip.parameters()).dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.clip(pixel_values.to(self.dtype), output_hidden_states=True)
        return out.hidden_states[self.config.select_layer][:, 1:]  # [B, c, d_v], CLS dropped


def _preprocessor_stats(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    from vlora.checkpoints.files import read_json
    from vlora.config import CLIP_MEAN, CLIP_STD

    path = folder / "preprocessor_config.json"
    if not path.is_file():
        return CLIP_MEAN, CLIP_STD
    data = read_json(path)
    try:
        return tuple(float(x) for x in data.get("image_mean", CLIP_MEAN)), tuple(float(x) for x in data.get("image_std", CLIP_STD))
    except (TypeError, ValueError):
        raise CheckpointError(f"{path}: image_mean / image_std must be lists of numbers") from None
