"""The official VLoRA release layout (FeipengMa6/VLoRA, `feipengma/VLoRA-7b-v1`).

A LLaVA-style folder: `config.json` (Llama fields + `mm_*` / `vlora_*` fields), weights as `.bin`
or `.safetensors`, maybe sharded with an index; Llama keys as Vicuna's; the generator under
`model.mm_projector.` (`gen.{i}` = one query decoder per type in `vlora_type` order, `Bs` = all
W_s rows [1, T*k, h*r]). CLIP comes from a separate folder (`mm_vision_tower` or the user's).
`rotary_emb.inv_freq` and vision-tower copies are ignored. The generator's dimensions are read
from the tensors and checked against the config (the official scripts disagree on `vlora_dim`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from vlora.checkpoints.assemble import CheckpointReport
from vlora.checkpoints.files import read_json
from vlora.checkpoints.llava_style import (
    PROJECTOR,
    describe_layout,
    llava_config_json,
    load_layout,
    renamed_tensors,
    write_layout,
)
from vlora.config import GeneratorConfig, LLMConfig, ModelConfig
from vlora.errors import CheckpointError, ConfigError

NAME = "official-vlora"
PREFIX = PROJECTOR  # the generator's keys
OFFICIAL_HEADS = 16  # hard-coded in the official generator; `vlora_heads` (ours) overrides it


def matches(folder: Path) -> bool:
    path = folder / "config.json"
    if not path.is_file():
        return False
    cfg = read_json(path)
    return cfg.get("model_type") == "llava_vlora" or cfg.get("mm_projector_type") == "vlora"


# --- key names -------------------------------------------------------------------------------------
def official_key(own: str, shared: bool) -> str:
    """Our key -> the official key (W_s rows live inside the single `Bs` tensor)."""
    if own.startswith("llm."):
        return own[len("llm."):]
    rest = own[len("connector."):]
    if rest.startswith("w_s."):
        return PREFIX + "Bs"
    match = re.match(r"type_decoders\.(\d+)\.(.*)", rest)
    if match:
        return PREFIX + ("gen." if shared else f"gen.{match[1]}.") + match[2]
    return PREFIX + rest


def own_key(key: str, shared: bool) -> str:
    """The official key -> ours (`Bs` excepted: it splits into `connector.w_s.{type}`)."""
    if not key.startswith(PREFIX):
        return "llm." + key
    rest = key[len(PREFIX):]
    match = re.match(r"gen\.(\d+)\.(.*)", rest)
    if match:
        return f"connector.type_decoders.{match[1]}.{match[2]}"
    if rest.startswith("gen."):
        return "connector.type_decoders.0." + rest[len("gen."):]
    return "connector." + rest


# --- configuration -----------------------------------------------------------------------------------
def _connector_from(cfg: dict, shapes: dict[str, tuple[int, ...]], llm: LLMConfig) -> tuple[GeneratorConfig, int, int, list[str]]:
    """GeneratorConfig, CLIP width and positions, read from the tensors and checked against config.json."""
    def shape(key: str) -> tuple[int, ...]:
        if PREFIX + key not in shapes:
            raise CheckpointError(f"missing key {PREFIX + key!r}: not an official VLoRA checkpoint")
        return shapes[PREFIX + key]

    shared = not cfg.get("weights_sep", True)
    head = "gen." if shared else "gen.0."
    dim, visual_dim = shape("visual_proj.weight")
    positions = shape("pos_embed")[1]
    blocks = len({m[1] for k in shapes if (m := re.match(re.escape(PREFIX + head) + r"decoders\.(\d+)\.", k))})
    rank = shape(head + "weights_head.weight")[0] // llm.hidden_size
    types = cfg.get("vlora_type", "qkvom")
    n_types = 1 if shared else len({m[1] for k in shapes if (m := re.match(re.escape(PREFIX) + r"gen\.(\d+)\.", k))})
    if not shared and n_types != len(types):
        raise CheckpointError(f"the checkpoint has {n_types} generators (gen.*) but vlora_type is {types!r}")
    try:
        generator = GeneratorConfig(
            types=types, rank=rank, alpha=cfg.get("vlora_alpha"), blocks=blocks, hidden=dim,
            heads=cfg.get("vlora_heads", OFFICIAL_HEADS), mlp_ratio=shape(head + "decoders.0.linear1.weight")[0] // dim,
            skip=cfg.get("skip_layers", 1), shared=shared)
        k = ModelConfig(llm=llm, connector=generator).k  # the vision tower does not matter for k
    except ConfigError as e:
        raise CheckpointError(f"inconsistent VLoRA configuration: {e}") from None
    queries = shape(head + "queries")[1]
    if queries != k * (len(types) if shared else 1):
        raise CheckpointError(f"{PREFIX + head}queries holds {queries} queries but skip_layers="
                              f"{generator.skip} over {llm.num_layers} layers gives k = {k} receiving layers")
    problems = [f"config.json says {field} = {cfg[field]} but the tensors give {value} (the tensors are used)"
                for field, value in (("vlora_dim", dim), ("vlora_depth", blocks), ("vlora_rank", rank),
                                     ("vlora_visual_dim", visual_dim), ("vlora_pos_num", positions),
                                     ("vlora_llm_dim", llm.hidden_size), ("vlora_llm_depth", llm.num_layers))
                if field in cfg and cfg[field] != value]
    return generator, visual_dim, positions, problems


def _own_tensors(files: list[Path], config: ModelConfig):
    """(our key, official key, tensor) for every tensor that is not ignored; `Bs` split per type."""
    generator, llm = config.connector, config.llm
    for own, key, tensor in renamed_tensors(files, lambda k: own_key(k, generator.shared)):
        if key == PREFIX + "Bs":
            rows = tensor.reshape(len(generator.types), config.k, llm.hidden_size, generator.rank)
            yield from ((f"connector.w_s.{t}", key, rows[i]) for i, t in enumerate(generator.types))
        else:
            yield own, key, tensor


# --- load / describe / export -------------------------------------------------------------------
def load(folder: Path, vision_tower: str | Path | None = None, dtype: torch.dtype | None = None):
    shared = not read_json(folder / "config.json").get("weights_sep", True)
    return load_layout(folder, vision_tower, dtype, _connector_from, to_official_state, _own_tensors,
                       checkpoint_name=lambda k: official_key(k, shared))


def describe(folder: Path, vision_tower: str | Path | None = None) -> CheckpointReport:
    return describe_layout(folder, vision_tower, NAME, "official VLoRA release layout (llava_vlora)",
                           _connector_from, to_official_state)


def to_official_state(model) -> dict[str, torch.Tensor]:
    """Our model's LLM and generator tensors under the official keys (CLIP is not part of the release)."""
    g, widths = model.config.connector, model.config.weight_widths
    if any(widths[t] != model.config.llm.hidden_size for t in g.types):
        raise CheckpointError("the official layout stores every W_s as [hidden, rank]; k/v under grouped-query "
                              "attention do not fit it")
    state = {}
    for key, tensor in model.state_dict().items():
        if key.startswith("vision.") or key.startswith("connector.w_s."):
            continue
        state[official_key(key, g.shared)] = tensor
    k = model.config.k
    state[PREFIX + "Bs"] = torch.cat([model.connector.w_s[t].reshape(k, -1) for t in g.types]).unsqueeze(0)
    return state


def config_json(config: ModelConfig, vision_tower: str) -> dict:
    """config.json as the official release writes it (Llama fields + mm_* / vlora_* fields)."""
    llm, g = config.llm, config.connector
    if g.layers is not None:
        raise CheckpointError("the official layout places weights by skip_layers only; explicit layers do not fit")
    hf = llava_config_json(
        config, vision_tower, architectures=["LlavaLlamaVLoRAForCausalLM"], model_type="llava_vlora",
        pretraining_tp=1, mm_projector_type="vlora", use_mm_proj=True, tokenizer_padding_side="right",
        tokenizer_model_max_length=2048, vlora_dim=g.hidden, vlora_depth=g.blocks,
        vlora_visual_dim=config.vision.hidden_size, vlora_pos_num=config.vision.num_patches,
        vlora_llm_dim=llm.hidden_size, vlora_llm_depth=llm.num_layers, vlora_rank=g.rank, vlora_alpha=g.alpha,
        vlora_type=g.types, weights_sep=not g.shared, skip_layers=g.skip)
    if g.heads != OFFICIAL_HEADS:
        hf["vlora_heads"] = g.heads
    return hf


def export(model, folder: str | Path, clip_folder: str | Path, safe_serialization: bool = True,
           max_shard_size: str | int = "5GB") -> None:
    """Write `model` in the official layout (+ its CLIP to `clip_folder`, named by mm_vision_tower)."""
    write_layout(model, folder, clip_folder, lambda clip: config_json(model.config, clip), to_official_state(model),
                 safe_serialization, max_shard_size)
