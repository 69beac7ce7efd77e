"""A batch for the multimodal model: left-padded ids, image positions, explicit position ids, pixels.

Each `<image>` placeholder (IMAGE_TOKEN_INDEX) becomes `config.positions_per_image` input positions:
the L visual tokens of an input-space connector (attended, filled with projected features), or one
masked position for VLoRA (the official release embeds it as `<unk>` and masks it out of attention).
Position ids are the content index, so a left-padded row computes exactly as it would alone.
Images are PIL images (preprocessed into pixel values here) or keyed sources (vlora/image_sources.py)
whose pixels the model fetches through its vision cache only when they are not cached (`pixels=False`).
Shapes: n samples, s positions, N used images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from vlora.config import ModelConfig, Space
from vlora.errors import InputError
from vlora.image_sources import ImageSource, load_image
from vlora.prompting import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from vlora.vision import preprocess_images

Picture = Image.Image | ImageSource
ImageInput = Picture | Sequence[Picture] | None  # the images of one sample, in placeholder order


@dataclass
class MultimodalBatch:
    input_ids: torch.Tensor  # [n, s], image positions hold the pad id
    attention_mask: torch.Tensor  # [n, s], 0 at padding (and at VLoRA's masked placeholder)
    position_ids: torch.Tensor  # [n, s], content index
    image_positions: torch.Tensor  # [n, s] bool, where the placeholders were expanded
    pixel_values: torch.Tensor | None  # [N, 3, S, S] of the N used images (None: none used, or pixels=False)
    image_owner: torch.Tensor  # [N], the sample each image belongs to
    has_image: torch.Tensor  # [n] bool: the sample uses an image
    labels: torch.Tensor | None = None  # [n, s], IGNORE_INDEX where nothing is learned
    images: tuple[Picture, ...] = ()  # the N used images as given, sample by sample

    @property
    def uses_images(self) -> bool:
        return bool(self.images)

    def to(self, device: torch.device) -> MultimodalBatch:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return MultimodalBatch(**moved)


def _as_list(images: ImageInput) -> list[Picture]:
    if images is None:
        return []
    return [images] if isinstance(images, (Image.Image, ImageSource)) else list(images)


def check_images(label: str, placeholders: int, images: int, space: Space) -> bool:
    """Whether a sample uses its images; a clear error (naming `label`) when placeholders and images
    disagree for the connector's space."""
    if space is Space.PARAMETER:
        if images > 1:
            raise InputError(f"{label}: VLoRA takes one image per sample, got {images}")
        if placeholders and not images:
            raise InputError(f"{label}: the prompt has an <image> placeholder but no image was given")
        return bool(placeholders and images)  # an image without a placeholder is ignored (A = 0)
    if placeholders != images:
        raise InputError(f"{label}: the prompt has {placeholders} <image> placeholder(s) "
                         f"but {images} image(s) were given")
    return bool(images)


def collate(sequences: Sequence[Sequence[int]], images: Sequence[ImageInput], *, pad_id: int, config: ModelConfig,
            labels: Sequence[Sequence[int]] | None = None, pixels: bool = True) -> MultimodalBatch:
    """Token-id lists (IMAGE_TOKEN_INDEX marks each image) and their images -> a left-padded batch;
    `pixels`: preprocess the used images (PIL) into pixel values now, else leave them to the vision cache."""
    if len(sequences) != len(images):
        raise InputError(f"got {len(sequences)} prompts but {len(images)} image entries")
    per_image, space = config.positions_per_image, config.space
    rows, row_labels, used, owner, has_image = [], [], [], [], []
    for row, seq in enumerate(sequences):
        pictures = _as_list(images[row])
        uses = check_images(f"sample {row}", sum(1 for t in seq if t == IMAGE_TOKEN_INDEX), len(pictures), space)
        has_image.append(uses)
        if uses:
            used += pictures
            owner += [row] * len(pictures)
        lab = labels[row] if labels is not None else [IGNORE_INDEX] * len(seq)
        expanded, expanded_labels = [], []
        for token, target in zip(seq, lab, strict=True):
            width = per_image if token == IMAGE_TOKEN_INDEX else 1
            expanded += [token] * width
            expanded_labels += [IGNORE_INDEX if token == IMAGE_TOKEN_INDEX else target] * width
        rows.append(expanded)
        row_labels.append(expanded_labels)

    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    content = torch.zeros(len(rows), length, dtype=torch.bool)
    label_ids = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    for row, (seq, lab) in enumerate(zip(rows, row_labels, strict=True)):
        start = length - len(seq)
        ids[row, start:] = torch.tensor(seq, dtype=torch.long)
        label_ids[row, start:] = torch.tensor(lab, dtype=torch.long)
        content[row, start:] = True
    image_positions = ids == IMAGE_TOKEN_INDEX
    ids[image_positions] = pad_id
    attended = content & ~image_positions if space is Space.PARAMETER else content
    return MultimodalBatch(
        input_ids=ids,
        attention_mask=attended.long(),
        position_ids=(content.long().cumsum(-1) - 1).clamp(min=0),
        image_positions=image_positions,
        pixel_values=preprocess_images([load_image(p) for p in used], config.vision) if used and pixels else None,
        image_owner=torch.tensor(owner, dtype=torch.long),
        has_image=torch.tensor(has_image, dtype=torch.bool),
        labels=label_ids if labels is not None else None,
        images=tuple(used),
    )
