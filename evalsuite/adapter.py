"""The model contract every benchmark, sweep and cost count uses (in the spirit of lm-eval's `LM`).

    Request      one benchmark row ready for any model: text with `<image>` where images go
    Failure      the result of a request that could not be run, and why
    ModelCard    what a model is: name, typed configuration (kind, space, visual tokens derive from
                 it), parameters, prompt style, limits
    Adapter      card + generate(requests) + loglikelihood(requests)

The contract imports no torch: a harness can hold it without a model. A request that cannot be run
(a missing image, placeholders that do not match the images) yields a `Failure` in its place; the
other requests of the batch still get their results. The implementation over the project's
`MultimodalLM` is evalsuite/multimodal.py; VLMEvalKit-style messages become requests in
evalsuite/messages.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from vlora.config import ModelConfig, Space


@dataclass(frozen=True)
class Request:
    id: str
    text: str  # the user's turn; "<image>" marks where images go (prepended, one per image, if absent)
    images: tuple[Any, ...] = ()  # PIL images, paths or ImageSources (vlora/image_sources.py), in placeholder order
    choices: tuple[str, ...] = ()  # candidate continuations for log-likelihood scoring
    max_new_tokens: int = 32


@dataclass(frozen=True)
class Failure:
    """The result of a request that could not be run, and why."""

    request_id: str
    message: str


@dataclass(frozen=True)
class ModelCard:
    name: str
    config: ModelConfig  # the typed configuration: kind, space, visual tokens and positions derive from it
    parameters: dict[str, int]  # llm / vision / connector
    template: str = "vicuna_v1"
    custom_prompt_types: tuple[str, ...] = ("MCQ",)  # dataset types where LLaVA's own MCQ prompt is used
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:  # "vlora" | "llava" | "llava-qformer"
        return self.config.kind

    @property
    def space(self) -> Space:
        return self.config.space

    @property
    def visual_tokens(self) -> int:  # per image, as the LLM sees them
        return self.config.visual_tokens

    @property
    def max_images(self) -> int | None:
        """Images one request may carry: VLoRA takes one; input-space models any number."""
        return 1 if self.space is Space.PARAMETER else None

    @property
    def max_positions(self) -> int:
        """Prompt + new tokens the model can take (its max_position_embeddings)."""
        return self.config.llm.max_position_embeddings

    def prompt_style(self, dataset_type: str | None) -> str:
        """"llava_mcq" (the model's own multiple-choice prompt) or "dataset" (VLMEvalKit's)."""
        return "llava_mcq" if dataset_type in self.custom_prompt_types else "dataset"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (what run.json and manifests record), derived facts included for readers."""
        data = {k: v for k, v in asdict(self).items() if k != "config"}
        return {**data, "kind": self.kind, "space": self.space.value, "visual_tokens": self.visual_tokens,
                "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        return cls(name=data["name"], config=ModelConfig.from_dict(data["config"]), parameters=data["parameters"],
                   template=data.get("template", "vicuna_v1"),
                   custom_prompt_types=tuple(data.get("custom_prompt_types", ("MCQ",))),
                   extras=data.get("extras", {}))


class Adapter(Protocol):
    card: ModelCard

    def generate(self, requests: Sequence[Request]) -> list[str | Failure]: ...

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float] | Failure]: ...
