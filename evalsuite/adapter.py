"""The model contract every benchmark, sweep and cost count uses (in the spirit of lm-eval's `LM`).

    Request      one benchmark row ready for any model: text with `<image>` where images go
    ModelCard    what a model is: name, kind, visual tokens, parameters, config, prompt style
    Adapter      card + generate(requests) + loglikelihood(requests)

A request that cannot be run (a missing image, placeholders that do not match the images) yields a
`Failure` in its place; the other requests of the batch still get their results.
`MultimodalAdapter` serves all three models: the connector is the only difference between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from PIL import Image

from vlora.batch import check_images
from vlora.errors import InputError, VLoRAEvalError
from vlora.images import open_image
from vlora.perceptual_weights import ExecutionMode
from vlora.prompting import IMAGE_PLACEHOLDER, IMAGE_TOKEN_INDEX, tokenize_with_placeholder

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    id: str
    text: str  # the user's turn; "<image>" marks where images go (prepended, one per image, if absent)
    images: tuple[Image.Image | str | Path, ...] = ()
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
    kind: str  # "vlora" | "llava" | "llava-qformer"
    space: str  # "weights" (perceptual weights) | "tokens" (visual tokens)
    visual_tokens: int  # per image, as the LLM sees them
    parameters: dict[str, int]  # llm / vision / connector
    config: dict[str, Any]  # ModelConfig.to_dict(): what the FLOPs code needs
    template: str = "vicuna_v1"
    custom_prompt_types: tuple[str, ...] = ("MCQ",)  # dataset types where LLaVA's own MCQ prompt is used
    max_images: int | None = None  # images one request may carry (VLoRA: 1); None = any number
    max_positions: int | None = None  # prompt + new tokens the model can take; None = unbounded
    extras: dict[str, Any] = field(default_factory=dict)

    def prompt_style(self, dataset_type: str | None) -> str:
        """"llava_mcq" (the model's own multiple-choice prompt) or "dataset" (VLMEvalKit's)."""
        return "llava_mcq" if dataset_type in self.custom_prompt_types else "dataset"


def message_to_request(message: Sequence[dict[str, Any]], request_id: str = "0", max_new_tokens: int = 32,
                       choices: tuple[str, ...] = ()) -> Request:
    """VLMEvalKit-style interleaved messages -> one request: each image becomes `<image>\\n` where it
    stands (LLaVA's form)."""
    text, images = "", []
    for item in message:
        if item["type"] == "image":
            images.append(item["value"])
            text += f"{IMAGE_PLACEHOLDER}\n"
        else:
            text += item["value"]
    return Request(id=request_id, text=text, images=tuple(images), choices=choices, max_new_tokens=max_new_tokens)


class Adapter(Protocol):
    card: ModelCard

    def generate(self, requests: Sequence[Request]) -> list[str | Failure]: ...

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float] | Failure]: ...


class MultimodalAdapter:
    """The contract over a `MultimodalLM` (VLoRA, LLaVA-v1.5 or LLaVA-v1.5-QFormer)."""

    def __init__(self, model, name: str, batch_size: int = 8, mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                 official_positions: bool = False):
        self.model = model.eval()
        self.mode = ExecutionMode(mode)
        self.batch_size = 1 if self.mode is ExecutionMode.MERGED else batch_size  # merging folds one image
        self.official_positions = official_positions
        config = model.config
        self.card = ModelCard(name=name, kind=config.kind, space=model.space, visual_tokens=config.visual_tokens,
                              parameters=model.parameter_counts(), config=config.to_dict(),
                              max_images=1 if model.space == "weights" else None,
                              max_positions=config.llm.max_position_embeddings,
                              extras={"mode": self.mode.value, "official_positions": official_positions})

    # --- the two verbs -------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[str | Failure]:
        """Greedy completions, batched; each request stops at EOS or its own max_new_tokens."""
        def run(items: list[tuple[Request, list[int], list[Image.Image]]]) -> list[str]:
            batch = self.model.collate([ids for _, ids, _ in items], [images for _, _, images in items])
            longest = max(r.max_new_tokens for r, _, _ in items)
            tokens = self.model.decode(batch, longest, official_positions=self.official_positions, mode=self.mode)
            return [self.model.tokenizer.decode(t[:r.max_new_tokens], skip_special_tokens=True).strip()
                    for t, (r, _, _) in zip(tokens, items, strict=True)]

        return self._batched(requests, run)

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[float] | Failure]:
        """Sum of log-probabilities of each choice as the assistant's answer, per request."""
        expanded = [(r, choice) for r in requests for choice in r.choices]

        def run(items: list[tuple[tuple[Request, str], list[int], list[Image.Image]]]) -> list[float]:
            full, spans = [], []
            for (request, choice), context, _ in items:
                ids = tokenize_with_placeholder(self._prompt(request) + " " + choice, self.model.tokenizer)
                self._check_length(request, ids, 0)
                common = next((i for i, (a, b) in enumerate(zip(ids, context, strict=False)) if a != b),
                              min(len(ids), len(context)))
                full.append(ids)
                spans.append(len(ids) - common)  # the choice's tokens, scored
            batch = self.model.collate(full, [images for _, _, images in items])
            with torch.no_grad():
                logits = self.model(batch, mode=self.mode).logits.float()  # [B, L, V]
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = batch.input_ids[:, 1:].to(logprobs.device)
            picked = logprobs.gather(-1, targets[..., None])[..., 0]  # [B, L-1]
            return [float(picked[i, -n:].sum()) for i, n in enumerate(spans)]

        flat = self._batched(expanded, run, request_of=lambda pair: pair[0])
        out, i = [], 0
        for request in requests:
            if not request.choices:
                out.append(Failure(request.id, "log-likelihood scoring needs choices"))
                continue
            scores = flat[i:i + len(request.choices)]
            i += len(request.choices)
            failure = next((s for s in scores if isinstance(s, Failure)), None)
            out.append(failure if failure is not None else scores)
        return out

    # --- batching with isolation of bad requests --------------------------------------------------
    def _prompt(self, request: Request) -> str:
        text = request.text
        if request.images and IMAGE_PLACEHOLDER not in text:
            text = f"{IMAGE_PLACEHOLDER}\n" * len(request.images) + text
        return self.model.template.prompt(text)

    def _positions(self, ids: list[int]) -> int:
        """Positions a prompt takes in the LLM: each placeholder becomes the connector's image slots."""
        return len(ids) + ids.count(IMAGE_TOKEN_INDEX) * (max(1, self.model.connector.visual_tokens) - 1)

    def _check_length(self, request: Request, ids: list[int], new_tokens: int) -> None:
        limit = self.model.config.llm.max_position_embeddings
        if self._positions(ids) + new_tokens > limit:
            raise InputError(f"request {request.id}: the prompt takes {self._positions(ids)} positions"
                             + (f" and {new_tokens} new tokens" if new_tokens else "")
                             + f", more than the model's {limit} (max_position_embeddings)")

    def _prepare(self, request: Request) -> tuple[list[int], list[Image.Image]]:
        """Token ids and opened images of one request, checked on its own (errors name the request)."""
        text = self._prompt(request)
        limit = self.model.config.llm.max_position_embeddings
        if len(text) > 64 * limit:  # no tokenizer gives fewer than one token per 64 characters
            raise InputError(f"request {request.id}: a prompt of {len(text)} characters cannot fit the model's "
                             f"{limit} positions")
        ids = tokenize_with_placeholder(text, self.model.tokenizer)
        self._check_length(request, ids, 0 if request.choices else request.max_new_tokens)
        check_images(f"request {request.id}", ids.count(IMAGE_TOKEN_INDEX), len(request.images), self.model.space)
        return ids, [open_image(source) for source in request.images]

    def _batched(self, items: Sequence[T], run: Callable[[list], list],
                 request_of: Callable[[T], Request] = lambda r: r) -> list:
        """Run `items` in batches; a failing batch is retried item by item so one bad request
        becomes a `Failure` without costing the others their results."""
        results: list = [None] * len(items)
        ready = []
        for i, item in enumerate(items):
            try:
                ids, images = self._prepare(request_of(item))
                ready.append((i, (item, ids, images)))
            except VLoRAEvalError as e:
                results[i] = Failure(request_of(item).id, str(e))
        for start in range(0, len(ready), self.batch_size):
            chunk = ready[start:start + self.batch_size]
            try:
                for (i, _), value in zip(chunk, run([entry for _, entry in chunk]), strict=True):
                    results[i] = value
            except VLoRAEvalError:
                for i, entry in chunk:
                    try:
                        results[i] = run([entry])[0]
                    except VLoRAEvalError as e:
                        results[i] = Failure(request_of(entry[0]).id, str(e))
        return results
