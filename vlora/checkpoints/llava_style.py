"""What the LLaVA-family folders share (the original LLaVA-v1.5 layout and the official VLoRA
release): `config.json` with Llama + `mm_*` fields, Vicuna's LLM keys (`model.*`, `lm_head.*`), the
connector under `model.mm_projector.`, CLIP in a separate folder, keys the loaders ignore."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from vlora.checkpoints.assemble import fill, raise_problems, shape_problems
from vlora.checkpoints.files import iter_tensors, read_json, tensor_shapes, weight_files
from vlora.config import LLMConfig, ModelConfig, Space, VisionConfig
from vlora.connector_kinds import connector_kind
from vlora.errors import CheckpointError, ConfigError
from vlora.tokenizer import NO_TOKENIZER, has_tokenizer

PROJECTOR = "model.mm_projector."
CLIP_TYPES = ("clip", "clip_vision_model")


def ignored(key: str) -> bool:
    """Keys the official loaders never use: RoPE buffers and DeepSpeed's vision-tower copies."""
    return key.endswith("rotary_emb.inv_freq") or key.startswith("model.vision_tower.")


def read_folder(folder: Path) -> tuple[dict, list[Path], dict[str, tuple[int, ...]], LLMConfig]:
    """config.json, weight files, tensor shapes (lazily) and the LLM config of a folder."""
    cfg = read_json(folder / "config.json")
    files = weight_files(folder)
    shapes = {k: s for f in files for k, (s, _) in tensor_shapes(f).items()}
    try:
        llm = LLMConfig.from_hf_dict(cfg)
    except ConfigError as e:
        raise CheckpointError(f"{folder / 'config.json'}: {e}") from None
    if cfg.get("mm_vision_select_feature", "patch") != "patch":
        raise CheckpointError(f"{folder / 'config.json'}: mm_vision_select_feature "
                              f"{cfg['mm_vision_select_feature']!r} is not supported (only 'patch')")
    return cfg, files, shapes, llm


def _clip_folder(path: Path) -> bool:
    """Whether `path` holds a CLIP (vision) model: a config.json of model_type clip / clip_vision_model."""
    if not (path / "config.json").is_file():
        return False
    return read_json(path / "config.json").get("model_type") in CLIP_TYPES


def resolve_vision_tower(folder: Path, cfg: dict, override: str | Path | None) -> Path | None:
    """The CLIP folder: the user's, else `mm_vision_tower` if it names a local folder."""
    if override is not None:
        path = Path(override)
        if not _clip_folder(path):
            found = (f"its config.json has model_type {read_json(path / 'config.json').get('model_type')!r}"
                     if (path / "config.json").is_file() else "no config.json")
            raise CheckpointError(f"vision tower {path} is not a CLIP folder ({found})")
        return path
    name = cfg.get("mm_vision_tower")
    for path in ([Path(name), folder / name] if isinstance(name, str) and name else []):
        if _clip_folder(path):
            return path
    return None


def load_vision(folder: Path, cfg: dict, override: str | Path | None, dtype: torch.dtype | None):
    from vlora.vision import VisionTower

    clip = resolve_vision_tower(folder, cfg, override)
    if clip is None:
        raise CheckpointError(f"{folder}: vision tower {cfg.get('mm_vision_tower')!r} is not a local folder; "
                              "pass the CLIP folder with --vision-tower")
    return VisionTower.from_pretrained(clip, select_layer=cfg.get("mm_vision_select_layer", -2), dtype=dtype)


def vision_config(folder: Path, cfg: dict, override: str | Path | None) -> tuple[VisionConfig | None, Path | None]:
    """The CLIP folder's configuration without loading its weights (None when not found)."""
    from transformers import AutoConfig

    from vlora.hf_quiet import quiet_transformers

    clip = resolve_vision_tower(folder, cfg, override)
    if clip is None:
        return None, None
    with quiet_transformers():
        hf = AutoConfig.from_pretrained(clip)
    return VisionConfig.from_hf(hf, cfg.get("mm_vision_select_layer", -2)), clip


def missing_vision_problem(cfg: dict) -> str:
    return f"vision tower {cfg.get('mm_vision_tower')!r} is not a local folder: loading needs --vision-tower PATH"


def llm_checkpoint_key(own: str) -> str:
    return own[len("llm."):]


def checkpoint_shapes(config: ModelConfig, to_checkpoint_state: Callable) -> dict[str, tuple[int, ...]]:
    """Checkpoint key -> shape for a model of this configuration (from a weightless skeleton)."""
    from vlora.model import MultimodalLM

    skeleton = MultimodalLM.from_config(config, tokenizer=object())
    return {k: tuple(v.shape) for k, v in to_checkpoint_state(skeleton).items()}


def assemble(folder: Path, config: ModelConfig, vision, shapes: dict[str, tuple[int, ...]],
             expected: dict[str, tuple[int, ...]], tensors: Iterator[tuple[str, str, torch.Tensor]],
             dtype: torch.dtype | None, checkpoint_name: Callable[[str], str]):
    """Check every key against the expected shapes, then fill a skeleton with the loaded vision tower."""
    from vlora.model import MultimodalLM
    from vlora.tokenizer import load_tokenizer

    raise_problems(str(folder), shape_problems(shapes, expected, ignored))
    model = MultimodalLM.from_config(config, tokenizer=load_tokenizer(folder), vision=vision)
    fill(model, tensors, str(folder), dtype, checkpoint_name=checkpoint_name)
    return model


def renamed_tensors(files: list[Path], own_key: Callable[[str], str]) -> Iterator[tuple[str, str, torch.Tensor]]:
    """(our key, checkpoint key, tensor) for every tensor that is not ignored."""
    for path in files:
        for key, tensor in iter_tensors(path):
            if not ignored(key):
                yield own_key(key), key, tensor


def count_parts(shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    from vlora.checkpoints.assemble import count_by_part

    return count_by_part(shapes, lambda k: None if ignored(k) else ("connector" if k.startswith(PROJECTOR) else "llm"))


def ignored_note(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    n = sum(1 for k in shapes if ignored(k))
    return [f"{n} key(s) ignored as the official loaders do (rotary_emb.inv_freq, vision-tower copies)"] if n else []


def dims(config: ModelConfig, vision_source: str | None) -> dict[str, dict]:
    """The dimensions `inspect` prints, by part."""
    llm, c = config.llm, config.connector
    out = {"llm": {"hidden": llm.hidden_size, "layers": llm.num_layers, "heads": llm.num_heads,
                   "kv_heads": llm.num_kv_heads, "intermediate": llm.intermediate_size, "vocab": llm.vocab_size}}
    section = {"vlora": "generator", "llava": "projector", "llava-qformer": "qformer"}.get(config.kind, config.kind)
    out[section] = {"type": connector_kind(config.kind).display_name, **dataclasses.asdict(c),
                    "visual tokens": config.visual_tokens}
    if config.space is Space.PARAMETER:
        out[section] |= {"blocks (N)": c.blocks, "hidden (h_p)": c.hidden, "queries (k)": config.k,
                         "layers": list(config.receiving_layers)}
        del out[section]["hidden"], out[section]["blocks"]
    out["vision"] = {"weights": vision_source or "not found", "image": config.vision.image_size,
                     "patch": config.vision.patch_size, "width": config.vision.hidden_size,
                     "patches (c)": config.vision.num_patches, "visual tokens": config.visual_tokens}
    return out


# --- the two verbs, for any connector ------------------------------------------------------------
# `connector_from(cfg, shapes, llm) -> (connector config, CLIP width, CLIP positions, problems)` reads
# the connector's dimensions from the tensors; `to_checkpoint_state(model)` names a model's tensors as
# the layout does (the export direction, which also gives the expected shapes).

def _check_vision(vision: VisionConfig, clip: Path, visual_dim: int, positions: int | None) -> str | None:
    if vision.hidden_size != visual_dim or (positions is not None and vision.num_patches != positions):
        return (f"CLIP at {clip} gives {vision.num_patches} x {vision.hidden_size} features; the connector "
                f"expects {positions if positions is not None else 'any number'} x {visual_dim}")
    return None


def load_layout(folder: Path, vision_tower, dtype, connector_from: Callable, to_checkpoint_state: Callable,
                tensors: Callable, checkpoint_name: Callable[[str], str]):
    cfg, files, shapes, llm = read_folder(folder)
    connector, visual_dim, positions, _ = connector_from(cfg, shapes, llm)
    vision = load_vision(folder, cfg, vision_tower, dtype)
    problem = _check_vision(vision.config, resolve_vision_tower(folder, cfg, vision_tower), visual_dim, positions)
    if problem:
        raise CheckpointError(problem)
    config = ModelConfig(llm=llm, vision=vision.config, connector=connector)
    expected = checkpoint_shapes(config, to_checkpoint_state)
    return assemble(folder, config, vision, shapes, expected, tensors(files, config), dtype, checkpoint_name)


def describe_layout(folder: Path, vision_tower, name: str, summary: str, connector_from: Callable,
                    to_checkpoint_state: Callable):
    from accelerate import init_empty_weights

    from vlora.checkpoints.assemble import CheckpointReport
    from vlora.vision import VisionTower

    cfg, files, shapes, llm = read_folder(folder)
    connector, visual_dim, positions, problems = connector_from(cfg, shapes, llm)
    vision, clip = vision_config(folder, cfg, vision_tower)
    if vision is None:
        problems.append(missing_vision_problem(cfg))
        side = int(round((positions or 576) ** 0.5))  # a stand-in, only to size the connector
        vision = VisionConfig(image_size=side * 14, patch_size=14, hidden_size=visual_dim, num_heads=1)
    elif problem := _check_vision(vision, clip, visual_dim, positions):
        problems.append(problem)
    config = ModelConfig(llm=llm, vision=vision, connector=connector)
    problems += shape_problems(shapes, checkpoint_shapes(config, to_checkpoint_state), ignored)
    if not has_tokenizer(folder):
        problems.append(NO_TOKENIZER)
    counts = count_parts(shapes)
    if clip is not None:
        with init_empty_weights():
            counts["vision"] = sum(p.numel() for p in VisionTower(vision).parameters())
    return CheckpointReport(path=str(folder), kind=name, summary=summary, dims=dims(config, str(clip) if clip else None),
                            parameters=counts, problems=problems, notes=ignored_note(shapes))


# --- writing ------------------------------------------------------------------------------------------
def llava_config_json(config: ModelConfig, vision_tower: str, **fields) -> dict:
    """config.json of a LLaVA-family folder: the Llama fields, the shared mm_* fields, then `fields`."""
    hf = config.llm.to_hf().to_dict()
    hf.update(mm_vision_tower=vision_tower, mm_hidden_size=config.vision.hidden_size,
              mm_vision_select_layer=config.vision.select_layer, mm_vision_select_feature="patch",
              mm_use_im_start_end=False, mm_use_im_patch_token=False, image_aspect_ratio="pad", **fields)
    return hf


def write_layout(model, folder: str | Path, clip_folder: str | Path, config_json: Callable[[str], dict],
                 state: dict[str, torch.Tensor], safe_serialization: bool = True,
                 max_shard_size: str | int = "5GB") -> None:
    """A LLaVA-family folder: config.json (given the CLIP folder's path), weights, tokenizer; CLIP apart."""
    import json

    from vlora.checkpoints.files import save_state_dict
    from vlora.hf_quiet import quiet_transformers

    folder, clip_folder = Path(folder), Path(clip_folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_json(str(clip_folder.resolve())), indent=2))
    save_state_dict(state, folder, max_shard_size, safe_serialization)
    model.tokenizer.save_pretrained(folder)
    with quiet_transformers():
        model.vision.clip.save_pretrained(clip_folder)
