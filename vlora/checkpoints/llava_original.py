"""The original LLaVA-v1.5 layout (`liuhaotian/llava-v1.5-7b`): Vicuna's keys plus
`model.mm_projector.0.*` / `.2.*` (Linear -> GELU -> Linear), `mm_projector_type: mlp2x_gelu`,
CLIP from the folder named by `mm_vision_tower` (or the user's)."""

from __future__ import annotations

from pathlib import Path

import torch

from vlora.checkpoints.assemble import CheckpointReport
from vlora.checkpoints.files import read_json
from vlora.checkpoints.llava_style import (
    PROJECTOR,
    describe_layout,
    llava_config_json,
    llm_checkpoint_key,
    load_layout,
    renamed_tensors,
    write_layout,
)
from vlora.config import LLMConfig, ProjectorConfig
from vlora.errors import CheckpointError

NAME = "llava"
PROJECTOR_TYPES = ("mlp2x_gelu",)
_RENAMES = {"0.": "linear_1.", "2.": "linear_2."}  # nn.Sequential indices -> our names


def matches(folder: Path) -> bool:
    path = folder / "config.json"
    if not path.is_file():
        return False
    cfg = read_json(path)
    return "mm_projector_type" in cfg and cfg.get("mm_projector_type") != "vlora" and "text_config" not in cfg


def own_key(key: str) -> str:
    if not key.startswith(PROJECTOR):
        return "llm." + key
    rest = key[len(PROJECTOR):]
    for theirs, ours in _RENAMES.items():
        if rest.startswith(theirs):
            return "connector." + ours + rest[len(theirs):]
    return "connector." + rest


def checkpoint_key(own: str) -> str:
    if own.startswith("llm."):
        return llm_checkpoint_key(own)
    rest = own[len("connector."):]
    for theirs, ours in _RENAMES.items():
        if rest.startswith(ours):
            return PROJECTOR + theirs + rest[len(ours):]
    return PROJECTOR + rest


def _connector_from(cfg: dict, shapes: dict[str, tuple[int, ...]], llm: LLMConfig):
    kind = cfg.get("mm_projector_type")
    if kind not in PROJECTOR_TYPES:
        raise CheckpointError(f"mm_projector_type {kind!r} is not supported (supported: {', '.join(PROJECTOR_TYPES)})")
    key = PROJECTOR + "0.weight"
    if key not in shapes:
        raise CheckpointError(f"missing key {key!r}: not a LLaVA-v1.5 checkpoint")
    visual_dim = shapes[key][1]
    problems = [f"config.json says mm_hidden_size = {cfg['mm_hidden_size']} but the projector takes {visual_dim}"
                ] if cfg.get("mm_hidden_size", visual_dim) != visual_dim else []
    return ProjectorConfig(), visual_dim, None, problems


def to_checkpoint_state(model) -> dict[str, torch.Tensor]:
    return {checkpoint_key(k): v for k, v in model.state_dict().items() if not k.startswith("vision.")}


def _tensors(files: list[Path], config):
    return renamed_tensors(files, own_key)


def load(folder: Path, vision_tower: str | Path | None = None, dtype: torch.dtype | None = None):
    return load_layout(folder, vision_tower, dtype, _connector_from, to_checkpoint_state, _tensors, checkpoint_key)


def describe(folder: Path, vision_tower: str | Path | None = None) -> CheckpointReport:
    return describe_layout(folder, vision_tower, NAME, "LLaVA-v1.5 original layout (mlp2x_gelu projector)",
                           _connector_from, to_checkpoint_state)


def export(model, folder: str | Path, clip_folder: str | Path, safe_serialization: bool = True) -> None:
    """Write a LLaVA-v1.5 model in the original layout (+ its CLIP to `clip_folder`)."""
    def config_json(clip: str) -> dict:
        return llava_config_json(model.config, clip, architectures=["LlavaLlamaForCausalLM"],
                                 model_type="llava_llama", mm_projector_type="mlp2x_gelu")

    write_layout(model, folder, clip_folder, config_json, to_checkpoint_state(model), safe_serialization)
