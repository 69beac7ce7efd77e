"""The llava-hf layout (`llava-hf/llava-1.5-7b-hf`, transformers' `LlavaForConditionalGeneration`).

One folder holds everything: `config.json` with `text_config` / `vision_config`, the CLIP tower
inside the weights, the vocabulary padded to 32064 (`<image>` = 32000, `<pad>` = 32001). Keys come
in three spellings, all accepted: the hub's (`language_model.model.*`, `multi_modal_projector.*`,
`vision_tower.vision_model.*`), what `save_pretrained` writes today (`vision_tower.*` without
`vision_model.`), and the in-memory one (`model.language_model.*`, `lm_head.*`, ...).
Note: llava-hf's own processor does not pad images to square; this loader keeps LLaVA-1.5's
padding, as the original model was trained.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vlora.checkpoints.assemble import CheckpointReport, count_by_part, fill, raise_problems, shape_problems
from vlora.checkpoints.files import iter_tensors, read_json, tensor_shapes, weight_files
from vlora.checkpoints.llava_style import dims
from vlora.config import LLMConfig, ModelConfig, ProjectorConfig, VisionConfig
from vlora.errors import CheckpointError, ConfigError
from vlora.tokenizer import NO_TOKENIZER, has_tokenizer

NAME = "llava-hf"
_PREFIXES = (  # checkpoint prefix -> ours, longest first
    ("model.language_model.", "llm.model."), ("language_model.model.", "llm.model."),
    ("language_model.lm_head.", "llm.lm_head."), ("lm_head.", "llm.lm_head."),
    ("model.multi_modal_projector.", "connector."), ("multi_modal_projector.", "connector."),
    ("model.vision_tower.vision_model.", "vision.clip."), ("vision_tower.vision_model.", "vision.clip."),
    ("model.vision_tower.", "vision.clip."), ("vision_tower.", "vision.clip."),
)


def matches(folder: Path) -> bool:
    path = folder / "config.json"
    return path.is_file() and "text_config" in (cfg := read_json(path)) and cfg.get("model_type") == "llava"


def own_key(key: str) -> str | None:
    for theirs, ours in _PREFIXES:
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return None


def checkpoint_key(own: str) -> str:
    """Ours -> the hub's spelling (used to name missing keys)."""
    for theirs, ours in (("language_model.model.", "llm.model."), ("language_model.lm_head.", "llm.lm_head."),
                         ("multi_modal_projector.", "connector."), ("vision_tower.vision_model.", "vision.clip.")):
        if own.startswith(ours):
            return theirs + own[len(ours):]
    return own


def _config(folder: Path) -> ModelConfig:
    from transformers import CLIPVisionConfig

    path = folder / "config.json"
    cfg = read_json(path)
    if cfg.get("vision_feature_select_strategy", "default") != "default":
        raise CheckpointError(f"{path}: vision_feature_select_strategy "
                              f"{cfg['vision_feature_select_strategy']!r} is not supported (only 'default')")
    if cfg.get("projector_hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"{path}: projector_hidden_act {cfg['projector_hidden_act']!r} is not supported")
    layer = cfg.get("vision_feature_layer", -2)
    if not isinstance(layer, int):
        raise CheckpointError(f"{path}: vision_feature_layer {layer!r} must be one layer")
    try:
        vision = VisionConfig.from_hf(CLIPVisionConfig(**cfg["vision_config"]), select_layer=layer)
        return ModelConfig(llm=LLMConfig.from_hf_dict(cfg["text_config"]), vision=vision, connector=ProjectorConfig())
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"{path}: bad text_config / vision_config ({e})") from None


def _found(folder: Path, expected: dict[str, tuple[int, ...]]) -> tuple[dict, dict, list[Path]]:
    """Our key -> shape and -> checkpoint key, for the folder's tensors (unknown keys kept as they are)."""
    files = weight_files(folder)
    shapes, names = {}, {}
    for path in files:
        for key, (shape, _) in tensor_shapes(path).items():
            own = _own(key, expected)
            shapes[own], names[own] = shape, key
    return shapes, names, files


def _own(key: str, expected) -> str:
    own = own_key(key)
    if own is None:
        return key
    if own not in expected and own.startswith("vision.clip.") and "vision.clip.vision_model." + own[12:] in expected:
        own = "vision.clip.vision_model." + own[12:]  # CLIP classes that keep the vision_model prefix
    return own


def _skeleton(config: ModelConfig, tokenizer):
    from vlora.model import MultimodalLM

    return MultimodalLM.from_config(config, tokenizer=tokenizer)


def load(folder: Path, vision_tower: str | Path | None = None, dtype: torch.dtype | None = None):
    from vlora.tokenizer import load_tokenizer

    config = _config(folder)
    model = _skeleton(config, load_tokenizer(folder))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    shapes, names, files = _found(folder, expected)
    raise_problems(str(folder), shape_problems(shapes, expected))
    tensors = ((_own(k, expected), k, t) for path in files for k, t in iter_tensors(path))
    fill(model, tensors, str(folder), dtype, checkpoint_name=checkpoint_key)
    return model


def describe(folder: Path, vision_tower: str | Path | None = None) -> CheckpointReport:
    config = _config(folder)
    expected = {k: tuple(v.shape) for k, v in _skeleton(config, object()).state_dict().items()}
    shapes, _, _ = _found(folder, expected)
    problems = shape_problems(shapes, expected)
    if not has_tokenizer(folder):
        problems.append(NO_TOKENIZER)
    return CheckpointReport(path=str(folder), kind=NAME, summary="LLaVA-v1.5 llava-hf layout (LlavaForConditionalGeneration)",
                            dims=dims(config, "in the checkpoint"), problems=problems,
                            parameters=count_by_part(shapes, lambda k: k.split(".")[0] if k.split(".")[0] in
                                                     ("llm", "vision", "connector") else None))
