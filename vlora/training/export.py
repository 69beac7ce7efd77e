"""A trained VLoRA model -> the official release layout (FeipengMa6/VLoRA), which
`vlora.checkpoints.load_model` (and the official code) read back."""

from __future__ import annotations

from pathlib import Path

from vlora.errors import ConfigError


def export_official_vlora(model, folder: str | Path, clip_folder: str | Path | None = None) -> Path:
    """Write `model` (a VLoRA MultimodalLM, e.g. `train`'s result or `load_model(out / "model")`) in
    the official layout; its CLIP goes to `clip_folder` (default: `<folder>-clip` beside it), which
    config.json names as `mm_vision_tower`."""
    from vlora.checkpoints import official_vlora

    if model.config.kind != "vlora":
        raise ConfigError(f"only VLoRA models have an official release layout; this is a {model.config.kind} model")
    folder = Path(folder)
    clip = Path(clip_folder) if clip_folder is not None else folder.with_name(folder.name + "-clip")
    official_vlora.export(model, folder, clip)
    return folder
