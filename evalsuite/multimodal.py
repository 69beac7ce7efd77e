"""The adapter contract over the project's `MultimodalLM` (VLoRA, LLaVA-v1.5, LLaVA-v1.5-QFormer):
one implementation for the three, since the connector is the only difference between them.

Requests are prepared one by one (tokens, image check, position budget), then run in batches; a batch
that fails is retried request by request so one bad request becomes a `Failure` without costing the
others their results.

Throughput (docs/architecture.md, "Throughput"):
  vision cache   the adapter owns a `VisionCache`: each distinct image (by content) is decoded, passed
                 through CLIP and the connector once, and every request that shows it reuses the result
                 (`vision_cache=False`: every request decodes and encodes its images, as before);
  likelihood     all choices of a request run in its batch after one prefill of the shared prompt;
  decoding       rows that reach EOS leave the loop;
  mode `auto`    VLoRA's factorized or merged execution per call, from the measured crossover.
`run_stats()` says what ran: LLM calls per execution mode, decodes, CLIP and connector passes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from evalsuite.adapter import Failure, ModelCard, Request
from vlora.batch import MultimodalBatch, check_images
from vlora.config import ExecutionMode, Space
from vlora.dispatch import Crossover, crossover_for
from vlora.errors import InputError, VLoRAEvalError
from vlora.image_sources import image_source, load_image
from vlora.likelihood import Choice
from vlora.prompting import IMAGE_PLACEHOLDER, IMAGE_TOKEN_INDEX, tokenize_with_placeholder
from vlora.vision_cache import VisionCache, VisionPasses


class MultimodalAdapter:
    """The contract over a `MultimodalLM` (VLoRA, LLaVA-v1.5 or LLaVA-v1.5-QFormer).

    vision_cache: True (a `VisionCache` of the default budget), a cache of one's own, or False (none).
    crossover: the merge crossover `auto` uses (default: vlora/crossover.yaml's for this device)."""

    takes_image_sources = True  # requests may carry keyed sources (vlora/image_sources.py), decoded on demand

    def __init__(self, model, name: str, batch_size: int = 8, mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                 official_positions: bool = False, vision_cache: VisionCache | bool = True,
                 crossover: Crossover | None = None):
        self.model = model.eval()
        self.mode = ExecutionMode(mode)
        self.batch_size = 1 if self.mode is ExecutionMode.MERGED else batch_size  # merging folds one image
        self.notes = [f"--mode merged folds one image into the weights at a time: batches of 1, not {batch_size}"
                      ] if self.batch_size != batch_size else []
        self.official_positions = official_positions
        self.cache = VisionCache() if vision_cache is True else (vision_cache or None)
        self.passes = self.cache.passes if self.cache is not None else VisionPasses()
        if crossover is None and self._dispatches:
            crossover = crossover_for(model.config.llm.hidden_size, model.config.connector.rank, model.device,
                                      model.dtype)
        self.crossover = crossover
        self.calls: Counter[str] = Counter()  # LLM calls per concrete execution mode
        self.card = ModelCard(name=name, config=model.config, parameters=model.parameter_counts(),
                              extras={"mode": self.mode.value, "official_positions": official_positions,
                                      "batch_size": self.batch_size})

    @property
    def _dispatches(self) -> bool:
        return self.mode is ExecutionMode.AUTO and self.model.space is Space.PARAMETER

    def run_stats(self) -> dict[str, Any]:
        """What ran so far: the execution mode (and the crossover `auto` used), the vision cache, and
        counts (`counts`: plain integers, so a caller can subtract two snapshots)."""
        counts = {f"llm_calls_{mode}": n for mode, n in sorted(self.calls.items())}
        counts.update({f"vision_{k}": v for k, v in self.passes.to_dict().items()})
        return {"mode": self.mode.value, "crossover": self.crossover.to_dict() if self._dispatches else None,
                "vision_cache": None if self.cache is None else {"max_bytes": self.cache.max_bytes,
                                                                 "entries": len(self.cache), "bytes": self.cache.nbytes},
                "counts": counts}

    # --- the two verbs -------------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request]) -> list[str | Failure]:
        """Greedy completions, batched; each request stops at EOS or its own max_new_tokens."""
        def run(items: list[tuple[Request, list[int], list]]) -> list[str]:
            batch = self._collate([ids for _, ids, _ in items], [images for _, _, images in items])
            longest = max(r.max_new_tokens for r, _, _ in items)
            tokens = self.model.decode(batch, longest, official_positions=self.official_positions,
                                       mode=self._mode(batch, longest), cache=self.cache)
            return [self.model.tokenizer.decode(t[:r.max_new_tokens], skip_special_tokens=True).strip()
                    for t, (r, _, _) in zip(tokens, items, strict=True)]

        return self._batched(requests, run)

    def loglikelihood(self, requests: Sequence[Request], greedy: bool = False) -> list[list | Failure]:
        """Sum of log-probabilities of each choice as the assistant's answer, per request. A request's
        choices share its batch and one prefill of its prompt (vlora/likelihood.py). With `greedy`, each
        choice's score is a pair (sum, whether greedy decoding after the prompt gives the choice's tokens):
        lm-eval's (logprob, is_greedy), for the lmms-eval plugin."""
        def run(items: list[tuple[Request, list[int], list]]) -> list[list[float]]:
            prefixes, choices = [], []
            for request, context, _ in items:
                prefix, row = self._choices(request, context)
                prefixes.append(prefix)
                choices.append(row)
            batch = self._collate(prefixes, [images for _, _, images in items])
            after = max(sum(len(c.tokens) for c in row) for row in choices)
            return self.model.score_choices(batch, choices, self._mode(batch, after), self.cache, greedy)

        asked = [r for r in requests if r.choices]
        scores = iter(self._batched(asked, run))
        return [next(scores) if r.choices else Failure(r.id, "log-likelihood scoring needs choices") for r in requests]

    # --- one call's pieces ---------------------------------------------------------------------------
    def _collate(self, sequences: list[list[int]], images: list[list]) -> MultimodalBatch:
        batch = self.model.collate(sequences, images, pixels=self.cache is None)
        if self.cache is None and batch.uses_images:  # the cache counts its own passes
            self.passes.clip += len(batch.images)
            self.passes.connector += len(batch.images)
            self.passes.encoder_calls += 1
        return batch

    def _mode(self, batch: MultimodalBatch, after: int) -> ExecutionMode:
        """The concrete execution mode of one LLM call (`after`: tokens it runs after the prompt)."""
        mode = self.model.resolve_mode(self.mode, batch, after, self.crossover)
        self.calls[mode.value] += 1
        return mode

    def _choices(self, request: Request, context: list[int]) -> tuple[list[int], list[Choice]]:
        """The prompt's ids shared by every choice, and each choice's ids after them with the number of
        its own tokens (scored): those after where `prompt + " " + choice` stops matching the prompt."""
        fulls = [tokenize_with_placeholder(self._prompt(request) + " " + c, self.model.tokenizer) for c in request.choices]
        commons = []
        for ids in fulls:
            self._check_length(request, ids, 0)
            commons.append(next((i for i, (a, b) in enumerate(zip(ids, context, strict=False)) if a != b),
                                min(len(ids), len(context))))
        shared = min(commons)
        if IMAGE_TOKEN_INDEX in context[shared:]:
            raise InputError(f"request {request.id}: a choice changes the prompt before its image")
        return context[:shared], [Choice(tuple(ids[shared:]), len(ids) - common)
                                  for ids, common in zip(fulls, commons, strict=True)]

    # --- requests, checked one by one --------------------------------------------------------------
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

    def _prepare(self, request: Request) -> tuple[list[int], list]:
        """Token ids and images of one request, checked on its own (errors name the request): keyed
        sources for the vision cache (decoded only if not cached), else the decoded images."""
        text = self._prompt(request)
        limit = self.model.config.llm.max_position_embeddings
        if len(text) > 64 * limit:  # no tokenizer gives fewer than one token per 64 characters
            raise InputError(f"request {request.id}: a prompt of {len(text)} characters cannot fit the model's "
                             f"{limit} positions")
        ids = tokenize_with_placeholder(text, self.model.tokenizer)
        self._check_length(request, ids, 0 if request.choices else request.max_new_tokens)
        check_images(f"request {request.id}", ids.count(IMAGE_TOKEN_INDEX), len(request.images), self.model.space)
        if self.cache is not None:
            return ids, [image_source(item) for item in request.images]
        self.passes.decodes += len(request.images)
        return ids, [load_image(item) for item in request.images]

    def _batched(self, items: Sequence[Request], run: Callable[[list], list]) -> list:
        """Run `items` (requests) in batches; a failing batch is retried request by request so one bad
        request becomes a `Failure` without costing the others their results."""
        results: list = [None] * len(items)
        ready = []
        for i, request in enumerate(items):
            try:
                ids, images = self._prepare(request)
                ready.append((i, (request, ids, images)))
            except VLoRAEvalError as e:
                results[i] = Failure(request.id, str(e))
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
                        results[i] = Failure(entry[0].id, str(e))
        return results
