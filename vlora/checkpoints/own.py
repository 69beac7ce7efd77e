"""The project's own checkpoint layout: self-contained, safetensors + a typed config.

    vlora_eval.json      {"format": "vlora-eval", "version": 1, "config": ModelConfig, "template": ...}
    model.safetensors    every tensor (llm.*, vision.*, connector.*), sharded with an index if large
    tokenizer files      as the tokenizer saves them
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vlora.checkpoints.assemble import CheckpointReport, count_by_part, fill, shape_problems
from vlora.checkpoints.files import iter_tensors, read_json, save_state_dict, tensor_shapes, weight_files
from vlora.config import ModelConfig
from vlora.errors import CheckpointError, ConfigError
from vlora.prompting import TEMPLATES

NAME = "own"
MANIFEST = "vlora_eval.json"
FORMAT_VERSION = 1


def matches(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def save(model, folder: str | Path, max_shard_size: str | int = "5GB") -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    template = next((name for name, t in TEMPLATES.items() if t == model.template), "vicuna_v1")
    manifest = {"format": "vlora-eval", "version": FORMAT_VERSION, "config": model.config.to_dict(),
                "template": template}
    save_state_dict(model.state_dict(), folder, max_shard_size)
    model.tokenizer.save_pretrained(folder)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def _manifest(folder: Path) -> tuple[dict, ModelConfig]:
    manifest = read_json(folder / MANIFEST)
    if manifest.get("format") != "vlora-eval" or manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder / MANIFEST}: unsupported format {manifest.get('format')!r} "
                              f"version {manifest.get('version')!r} (expected vlora-eval {FORMAT_VERSION})")
    try:
        return manifest, ModelConfig.from_dict(manifest["config"])
    except (KeyError, ConfigError) as e:
        raise CheckpointError(f"{folder / MANIFEST}: bad config ({e})") from None


def load(folder: Path, vision_tower: str | Path | None = None, dtype: torch.dtype | None = None):
    from vlora.model import MultimodalLM
    from vlora.tokenizer import load_tokenizer

    manifest, config = _manifest(folder)
    model = MultimodalLM.from_config(config, tokenizer=load_tokenizer(folder))
    model.template = TEMPLATES[manifest.get("template", "vicuna_v1")]
    tensors = ((key, key, tensor) for path in weight_files(folder) for key, tensor in iter_tensors(path))
    fill(model, tensors, str(folder), dtype)
    return model


def describe(folder: Path, vision_tower: str | Path | None = None) -> CheckpointReport:
    from vlora.checkpoints.llava_style import dims
    from vlora.connector_kinds import connector_kind
    from vlora.model import MultimodalLM

    _, config = _manifest(folder)
    shapes = {k: s for f in weight_files(folder) for k, (s, _) in tensor_shapes(f).items()}
    skeleton = MultimodalLM.from_config(config, tokenizer=object())
    problems = shape_problems(shapes, {k: tuple(v.shape) for k, v in skeleton.state_dict().items()})
    return CheckpointReport(path=str(folder), kind=NAME,
                            summary=f"vlora-eval checkpoint of a {connector_kind(config.kind).display_name} model (safetensors + {MANIFEST})",
                            dims=dims(config, "in the checkpoint"), parameters=count_by_part(shapes, lambda k: k.split(".")[0]),
                            problems=problems)
