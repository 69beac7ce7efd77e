"""Typed, validated configurations: the LLM, the vision tower, the perceptual weights generator.

Configs are frozen dataclasses checked at construction; JSON becomes these at the edge (`from_dict`),
and `vlora.overrides.apply_overrides` is the one way to change one (dotted keys, as `--set` and sweep files give them).
Facts derived from a configuration (k, the receiving layers, output widths, positions per image, the
input / parameter space fork) are defined once on `ModelConfig` and read everywhere. Presets:
vlora/presets.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from vlora.errors import ConfigError

WEIGHT_TYPES = "qkvom"  # the five weight types of a decoder block (paper Sect. 3): q, k, v, o and m = MLP
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Space(str, Enum):
    """The paper's Fig. 1 fork: where visual features enter the LLM."""

    INPUT = "input"  # input-space alignment: visual tokens in the input (LLaVA's projector, the Q-Former)
    PARAMETER = "parameter"  # parameter-space alignment: perceptual weights in the blocks (VLoRA)


class ExecutionMode(str, Enum):
    """How perceptual weights enter the LLM (vlora/perceptual_weights.py): equal numbers, different cost.
    AUTO picks factorized or merged per call from the measured crossover (vlora/dispatch.py)."""

    FACTORIZED = "factorized"
    MERGED = "merged"
    DELTA = "delta"
    AUTO = "auto"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class LLMConfig:
    """A Llama-family decoder (Vicuna-7B-v1.5 by default)."""

    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_layers: int = 32
    num_heads: int = 32
    num_kv_heads: int = 32
    vocab_size: int = 32000
    max_position_embeddings: int = 4096
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        _check(self.hidden_size % self.num_heads == 0,
               f"llm.hidden_size {self.hidden_size} is not a multiple of llm.num_heads {self.num_heads}")
        _check(self.num_heads % self.num_kv_heads == 0,
               f"llm.num_heads {self.num_heads} is not a multiple of llm.num_kv_heads {self.num_kv_heads}")
        _check(self.num_layers > 0 and self.vocab_size > 0, "llm.num_layers and llm.vocab_size must be positive")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_size(self) -> int:
        """Output width of k_proj / v_proj (smaller than hidden_size under grouped-query attention)."""
        return self.num_kv_heads * self.head_dim

    def to_hf(self, attn_implementation: str = "sdpa"):
        from transformers import LlamaConfig

        return LlamaConfig(
            hidden_size=self.hidden_size, intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads, vocab_size=self.vocab_size,
            max_position_embeddings=self.max_position_embeddings, rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta, bos_token_id=self.bos_token_id, eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id, hidden_act="silu", tie_word_embeddings=False,
            attn_implementation=attn_implementation,
        )

    @classmethod
    def from_hf_dict(cls, d: dict[str, Any]) -> LLMConfig:
        """From a Llama `config.json` (as Vicuna, LLaVA and the official VLoRA release write it)."""
        try:
            return cls(
                hidden_size=d["hidden_size"], intermediate_size=d["intermediate_size"],
                num_layers=d["num_hidden_layers"], num_heads=d["num_attention_heads"],
                num_kv_heads=d.get("num_key_value_heads") or d["num_attention_heads"],
                vocab_size=d["vocab_size"], max_position_embeddings=d.get("max_position_embeddings", 4096),
                rms_norm_eps=d.get("rms_norm_eps", 1e-5),
                rope_theta=(d.get("rope_parameters") or {}).get("rope_theta", d.get("rope_theta", 10000.0)),
                bos_token_id=d.get("bos_token_id", 1), eos_token_id=d.get("eos_token_id", 2),
                pad_token_id=d.get("pad_token_id") if d.get("pad_token_id") is not None else 0,
            )
        except KeyError as e:
            raise ConfigError(f"LLM config lacks the field {e.args[0]!r}") from None
        except (TypeError, ValueError, ZeroDivisionError, AttributeError) as e:
            raise ConfigError(f"LLM config has a field of the wrong type or value ({e})") from None


@dataclass(frozen=True)
class VisionConfig:
    """A CLIP ViT vision tower (CLIP-ViT-L/14 at 336 px by default) and its preprocessing."""

    image_size: int = 336
    patch_size: int = 14
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_layers: int = 24
    num_heads: int = 16
    select_layer: int = -2  # LLaVA/VLoRA use hidden_states[-2] (the second-to-last block's output)
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        _check(self.image_size % self.patch_size == 0,
               f"vision.image_size {self.image_size} is not a multiple of vision.patch_size {self.patch_size}")
        _check(-self.num_layers - 1 <= self.select_layer <= self.num_layers,
               f"vision.select_layer {self.select_layer} is outside the {self.num_layers + 1} hidden states")

    @property
    def num_patches(self) -> int:
        """c in the paper: patch tokens after the CLS token is dropped (576 for CLIP-L/14 at 336 px)."""
        return (self.image_size // self.patch_size) ** 2

    def to_hf(self):
        from transformers import CLIPVisionConfig

        return CLIPVisionConfig(
            image_size=self.image_size, patch_size=self.patch_size, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, hidden_act="quick_gelu",
        )

    @classmethod
    def from_hf(cls, hf_config, select_layer: int = -2, image_mean=CLIP_MEAN, image_std=CLIP_STD) -> VisionConfig:
        c = getattr(hf_config, "vision_config", hf_config)  # a whole CLIPConfig or a CLIPVisionConfig
        return cls(image_size=c.image_size, patch_size=c.patch_size, hidden_size=c.hidden_size,
                   intermediate_size=c.intermediate_size, num_layers=c.num_hidden_layers,
                   num_heads=c.num_attention_heads, select_layer=select_layer,
                   image_mean=tuple(image_mean), image_std=tuple(image_std))


@dataclass(frozen=True)
class ConnectorConfig:
    """What every connector's configuration has: its kind (the name configs and checkpoints record; the
    kind's registration, vlora/connector_kinds.py, says the rest), its space, and the visual tokens one
    image adds to the LLM's input. A subclass is found by its kind when a config is read from data."""

    kind: ClassVar[str]
    space: ClassVar[Space]
    _by_kind: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        ConnectorConfig._by_kind[cls.kind] = cls

    def visual_tokens(self, vision: VisionConfig) -> int:
        raise NotImplementedError

    @classmethod
    def variant_for(cls, data: dict[str, Any], where: str) -> tuple[type, dict[str, Any]]:
        """The config class that `data["kind"]` names (VLoRA's when absent), for vlora.schema."""
        kind = data.pop("kind", "vlora")
        if kind not in cls._by_kind:
            raise ConfigError(f"{where.rstrip(chr(0))}: unknown connector kind {kind!r}; known: "
                              f"{', '.join(cls._by_kind)}")
        return cls._by_kind[kind], data


@dataclass(frozen=True)
class GeneratorConfig(ConnectorConfig):
    """The perceptual weights generator (paper Fig. 3; official `LoRAGenerater` conventions).

    k, the number of perceptual queries per type, equals the number of LLM blocks that receive
    weights: one query per receiving block (official: k = num_layers // skip).
    """

    kind: ClassVar[str] = "vlora"
    space: ClassVar[Space] = Space.PARAMETER
    types: str = "qkvom"  # which weights get perceptual weights, in generator order (gen.{i} = types[i])
    rank: int = 64  # r
    alpha: float | None = 64.0  # B is scaled by alpha / rank; None = scale 1 (official)
    blocks: int = 8  # N decoder blocks
    hidden: int = 512  # h_p
    heads: int = 16  # attention heads of the generator (hard-coded 16 in the official code)
    mlp_ratio: int = 4
    skip: int = 4  # official placement: layer l receives query l // skip when (l + 1) % skip == 0
    layers: tuple[int, ...] | None = None  # explicit receiving layers (overrides skip), in query order
    shared: bool = False  # one generator (with k * len(types) queries) for all types

    def __post_init__(self) -> None:
        _check(len(self.types) > 0 and set(self.types) <= set(WEIGHT_TYPES),
               f"generator.types {self.types!r} must be a non-empty subset of {WEIGHT_TYPES!r}")
        _check(len(set(self.types)) == len(self.types), f"generator.types {self.types!r} repeats a type")
        _check(self.rank > 0 and self.blocks > 0 and self.hidden > 0 and self.skip > 0,
               "generator.rank, blocks, hidden and skip must be positive")
        _check(self.hidden % self.heads == 0,
               f"generator.hidden {self.hidden} is not a multiple of generator.heads {self.heads}")
        if self.layers is not None:
            _check(len(self.layers) > 0 and len(set(self.layers)) == len(self.layers),
                   f"generator.layers {self.layers} must be non-empty and without repeats")

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None else self.alpha / self.rank

    def visual_tokens(self, vision: VisionConfig) -> int:
        return 0  # the image arrives as weights

    def target_layers(self, num_layers: int) -> tuple[int, ...]:
        """The placement rule (read it through `ModelConfig.receiving_layers`): the LLM blocks that
        receive perceptual weights; query j of each type goes to block target_layers[j]."""
        if self.layers is not None:
            bad = [layer for layer in self.layers if not 0 <= layer < num_layers]
            _check(not bad, f"generator.layers {bad} lie outside the LLM's {num_layers} layers")
            return tuple(self.layers)
        chosen = tuple(layer for layer in range(num_layers) if (layer + 1) % self.skip == 0)
        _check(len(chosen) > 0, f"generator.skip {self.skip} exceeds the LLM's {num_layers} layers")
        return chosen


@dataclass(frozen=True)
class ProjectorConfig(ConnectorConfig):
    """LLaVA-v1.5's connector (`mlp2x_gelu`): Linear(d_v, h) -> GELU -> Linear(h, h), one token per patch."""

    kind: ClassVar[str] = "llava"
    space: ClassVar[Space] = Space.INPUT

    def visual_tokens(self, vision: VisionConfig) -> int:
        return vision.num_patches


@dataclass(frozen=True)
class QFormerConfig(ConnectorConfig):
    """The paper's Table 2 baseline: a randomly initialised Q-Former (transformers' Blip2QFormerModel)
    with the generator's blocks and hidden size, `queries` learnable queries, then a linear to h."""

    kind: ClassVar[str] = "llava-qformer"
    space: ClassVar[Space] = Space.INPUT
    queries: int = 128
    blocks: int = 8
    hidden: int = 512
    heads: int = 16
    mlp_ratio: int = 4
    cross_attention_frequency: int = 1

    def __post_init__(self) -> None:
        _check(self.queries > 0 and self.blocks > 0, "qformer.queries and qformer.blocks must be positive")
        _check(self.hidden % self.heads == 0,
               f"qformer.hidden {self.hidden} is not a multiple of qformer.heads {self.heads}")

    def visual_tokens(self, vision: VisionConfig) -> int:
        return self.queries


@dataclass(frozen=True)
class ModelConfig:
    """One multimodal model: vision tower -> connector -> LLM. The connector is the only fork."""

    llm: LLMConfig = field(default_factory=LLMConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    connector: ConnectorConfig = field(default_factory=GeneratorConfig)

    def __post_init__(self) -> None:
        if isinstance(self.connector, GeneratorConfig):
            self.connector.target_layers(self.llm.num_layers)  # validates placement against the LLM
            widths = {self.llm.hidden_size} | {w for t, w in self.weight_widths.items() if t in self.connector.types}
            _check(self.connector.rank <= min(widths),
                   f"connector.rank {self.connector.rank} exceeds the rank the LLM's weights allow ({min(widths)}: "
                   f"ΔW = B·Aᵀ of a {self.llm.hidden_size}-wide input and {'/'.join(map(str, sorted(widths)))}-wide "
                   "outputs)")

    # --- derived facts: defined here once, read everywhere (generator, loaders, batch, FLOPs) ------
    @property
    def kind(self) -> str:
        """"vlora", "llava" or "llava-qformer": which connector the model has."""
        return self.connector.kind

    @property
    def space(self) -> Space:
        """Input-space (visual tokens) or parameter-space (perceptual weights) alignment."""
        return self.connector.space

    @property
    def receiving_layers(self) -> tuple[int, ...]:
        """LLM blocks that receive perceptual weights, in query order (empty without a generator)."""
        if not isinstance(self.connector, GeneratorConfig):
            return ()
        return self.connector.target_layers(self.llm.num_layers)

    @property
    def k(self) -> int:
        """k: perceptual queries per weight type = LLM blocks that receive weights (8 for VLoRA-7B)."""
        return len(self.receiving_layers)

    @property
    def weight_widths(self) -> dict[str, int]:
        """Output width of the weight each type modifies (k_proj / v_proj shrink under grouped-query
        attention; m is a parallel h x h branch around the MLP)."""
        h, kv = self.llm.hidden_size, self.llm.kv_size
        return {"q": h, "k": kv, "v": kv, "o": h, "m": h}

    @property
    def query_layout(self) -> tuple[int, int]:
        """(query decoders, queries per decoder) of the generator: one decoder of k queries per type,
        or one shared decoder of k * types queries."""
        g = self.connector
        if not isinstance(g, GeneratorConfig):
            raise ConfigError(f"a {self.kind} model has no perceptual weights generator")
        return (1, self.k * len(g.types)) if g.shared else (len(g.types), self.k)

    @property
    def visual_tokens(self) -> int:
        """Visual tokens one image adds to the LLM's input: L (576 / 128 at paper scale), 0 for VLoRA."""
        return self.connector.visual_tokens(self.vision)

    @property
    def positions_per_image(self) -> int:
        """Input positions one `<image>` placeholder takes: its L visual tokens, or VLoRA's one masked
        position (the official model keeps the placeholder as a masked `<unk>`)."""
        return self.visual_tokens if self.space is Space.INPUT else 1

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["connector"] = {"kind": self.kind, **data["connector"]}
        return data

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "model config") -> ModelConfig:
        """From plain data (a checkpoint's vlora_eval.json, a card): strict, through vlora.schema."""
        from vlora.schema import ROOT, from_data

        return from_data(cls, d, where + ROOT)
