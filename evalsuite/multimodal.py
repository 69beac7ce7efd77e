"""The adapter contract over the project's `MultimodalLM` (VLoRA, LLaVA-v1.5, LLaVA-v1.5-QFormer):
one implementation for the three, since the connector is the only difference between them.

Requests are prepared one by one (tokens, image check, position budget), then run in batches; a batch
that fails is retried request by request so one bad request becomes a `Failure` without costing the
others their results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from PIL import Image

from evalsuite.adapter import Failure, ModelCard, Request
from vlora.batch import check_images
from vlora.config import ExecutionMode
from vlora.errors import InputError, VLoRAEvalError
from vlora.images import open_image
from vlora.prompting import IMAGE_PLACEHOLDER, IMAGE_TOKEN_INDEX, tokenize_with_placeholder

T = TypeVar("T")


class MultimodalAdapter:
    """The contract over a `MultimodalLM` (VLoRA, LLaVA-v1.5 or LLaVA-v1.5-QFormer)."""

    def __init__(self, model, name: str, batch_size: int = 8, mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                 official_positions: bool = False):
        self.model = model.eval()
        self.mode = ExecutionMode(mode)
        self.batch_size = 1 if self.mode is ExecutionMode.MERGED else batch_size  # merging folds one image
        self.official_positions = official_positions
        self.card = ModelCard(name=name, config=model.config, parameters=model.parameter_counts(),
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
                logits = self.model(batch, mode=self.mode).logits.float()  # [n, s, V]
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = batch.input_ids[:, 1:].to(logprobs.device)
            picked = logprobs.gather(-1, targets[..., None])[..., 0]  # [n, s-1]
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
        """Positions a prompt takes in the LLM: each placeholder becomes config.positions_per_image positions."""
        return len(ids) + ids.count(IMAGE_TOKEN_INDEX) * (self.model.config.positions_per_image - 1)

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
