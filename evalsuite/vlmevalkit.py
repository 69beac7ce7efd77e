"""Our models behind VLMEvalKit's model contract, importable without VLMEvalKit.

VLMEvalKit calls `model.generate(message, dataset=name)` with message = a list of
{"type": "image" | "text", "value": path-or-text}; it asks `use_custom_prompt(name)` and, if true,
`build_prompt(line, dataset)` for a TSV row, after `set_dump_image(dataset.dump_image)`.
Register it in VLMEvalKit's `vlmeval/config.py` (see the README):

    from functools import partial
    from evalsuite.vlmevalkit import VLMEvalKitModel
    supported_VLM["vlora_7b"] = partial(VLMEvalKitModel, model="vlora", checkpoint="/models/VLoRA-7b-v1",
                                        vision_tower="/models/clip-vit-large-patch14-336")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from evalsuite.adapter import Failure
from evalsuite.messages import message_to_request, normalise_message
from evalsuite.prompts import dataset_type, is_missing, llava_mcq_prompt, options_of
from vlora.errors import InputError


class VLMEvalKitModel:
    """A VLMEvalKit model (`generate(message, dataset)`, `use_custom_prompt`, `build_prompt`)."""

    INTERLEAVE = True
    allowed_types = ["text", "image"]

    def __init__(self, model: str = "vlora", checkpoint: str | None = None, max_new_tokens: int = 512, **kwargs: Any):
        from evalsuite.registry import create_model

        self.adapter = create_model(model, checkpoint, **kwargs)
        self.max_new_tokens = max_new_tokens
        self.dump_image_func: Callable | None = None

    # --- VLMEvalKit's BaseModel surface ---------------------------------------------------------------
    def set_dump_image(self, dump_image_func: Callable) -> None:
        self.dump_image_func = dump_image_func

    def dump_image(self, line: Mapping[str, Any], dataset: str | None = None) -> list[str]:
        if self.dump_image_func is None:
            raise InputError("no dump_image function: VLMEvalKit sets one with set_dump_image before build_prompt")
        paths = self.dump_image_func(line)
        return [paths] if isinstance(paths, str) else list(paths)

    def use_custom_prompt(self, dataset: str | None) -> bool:
        return self.adapter.card.prompt_style(dataset_type(dataset)) == "llava_mcq"

    def build_prompt(self, line: Mapping[str, Any], dataset: str | None = None) -> list[dict[str, str]]:
        """LLaVA's multiple-choice prompt for a TSV row: all images first, then the text."""
        hint = None if "hint" not in line or is_missing(line["hint"]) else str(line["hint"])
        prompt = llava_mcq_prompt(str(line["question"]), options_of(line), hint)
        return [{"type": "image", "value": p} for p in self.dump_image(line, dataset)] + [{"type": "text", "value": prompt}]

    def generate(self, message: Any, dataset: str | None = None) -> str:
        request = message_to_request(normalise_message(message), max_new_tokens=self.max_new_tokens)
        (result,) = self.adapter.generate([request])
        if isinstance(result, Failure):
            raise InputError(result.message)
        return result

    generate_inner = generate  # VLMEvalKit's BaseModel subclasses implement generate_inner
