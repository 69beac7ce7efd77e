"""One multimodal model: vision tower -> connector -> LLM (an unmodified HF `LlamaForCausalLM`).

The connector is the only fork (paper Fig. 1, `config.space`):
  input      (LLaVA-v1.5's MLP projector, the Q-Former): visual tokens [N, L, h] fill the image
             positions of the input embeddings (input-space alignment);
  parameter  (VLoRA's generator): perceptual weights enter the LLM's blocks while the placeholder
             stays one masked position, so the input carries zero visual tokens.
Everything else (prompting, batching, loss, decoding, checkpoints) is written once.
Shapes: n samples, s positions, N images, L visual tokens per image, h hidden.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from vlora.batch import ImageInput, MultimodalBatch, collate
from vlora.config import ModelConfig, Space
from vlora.connectors import build_connector
from vlora.decoding import Sampling, decode
from vlora.dispatch import Crossover, choose_mode, crossover_for
from vlora.errors import InputError
from vlora.likelihood import Choice, choice_logprobs
from vlora.perceptual_weights import ExecutionMode, PerceptualWeights, perceptual_weights_applied
from vlora.prompting import VICUNA_V1, ConversationTemplate, image_question, tokenize_with_placeholder
from vlora.vision import VisionTower, preprocess_images
from vlora.vision_cache import VisionCache


def _no_rows_to_narrow(rows: torch.Tensor) -> None:
    """Input-space models and samples without images hold no per-row state outside the KV cache."""


@dataclass(frozen=True)
class LLMInputs:
    """What `conditioned` yields: the LLM's prefill inputs, and `keep_rows(rows)` for a decoding loop
    that drops finished rows (it narrows VLoRA's branches to the rows still running)."""

    prefill: dict[str, torch.Tensor]
    keep_rows: Callable[[torch.Tensor], None] = _no_rows_to_narrow


class MultimodalLM(nn.Module):
    def __init__(self, config: ModelConfig, llm: nn.Module, vision: VisionTower, connector: nn.Module,
                 tokenizer, template: ConversationTemplate = VICUNA_V1):
        super().__init__()
        self.config, self.llm, self.vision, self.connector = config, llm, vision, connector
        self.tokenizer, self.template = tokenizer, template
        self.llm.config.use_cache = False

    @classmethod
    def from_config(cls, config: ModelConfig, tokenizer=None, vision: VisionTower | None = None) -> MultimodalLM:
        """A weightless skeleton: parameters on the meta device (buffers real, on the CPU), for loaders
        to fill or `build_model` to initialise. Building it touches no random number generator."""
        from accelerate import init_empty_weights
        from transformers import LlamaForCausalLM

        from vlora.tokenizer import build_tiny_tokenizer

        tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer(config.llm.vocab_size)
        # fork_rng: some library constructors draw from the global RNG before their tensors reach meta
        with torch.random.fork_rng(devices=[]), init_empty_weights(include_buffers=False):
            llm = LlamaForCausalLM(config.llm.to_hf())
            connector = build_connector(config)
            vision = vision if vision is not None else VisionTower(config.vision)
        return cls(config, llm, vision, connector, tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.llm.parameters()).dtype

    @property
    def space(self) -> Space:
        return self.config.space

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in part.parameters())
                for name, part in (("llm", self.llm), ("vision", self.vision), ("connector", self.connector))}

    def set_trainable(self, parts: Sequence[str]) -> None:
        """What trains: the named parts ("connector", "llm", "vision"; a stage's `trains`); the rest is frozen."""
        self.requires_grad_(False)
        for part in parts:
            getattr(self, part).requires_grad_(True)

    # --- inputs ------------------------------------------------------------------------------------
    def prompt(self, question: str, with_image: bool = True) -> str:
        """The full prompt for one user question (the image placeholder first, as LLaVA does)."""
        return self.template.prompt(image_question(question, with_image))

    def prepare(self, prompts: Sequence[str], images: Sequence[ImageInput]) -> MultimodalBatch:
        """Full prompts (with `<image>` where each image goes) and their images -> a batch."""
        if len(prompts) != len(images):
            raise InputError(f"got {len(prompts)} prompts but {len(images)} image entries")
        return self.collate([tokenize_with_placeholder(p, self.tokenizer) for p in prompts], images)

    def collate(self, sequences: Sequence[Sequence[int]], images: Sequence[ImageInput],
                labels: Sequence[Sequence[int]] | None = None, pixels: bool = True) -> MultimodalBatch:
        """Token-id lists (IMAGE_TOKEN_INDEX marks each image) -> a left-padded batch (`pixels=False`:
        images left to a vision cache, see vlora/batch.py)."""
        return collate(sequences, images, pad_id=self.tokenizer.pad_token_id, config=self.config, labels=labels,
                       pixels=pixels)

    # --- the vision side: CLIP -> connector, per image --------------------------------------------
    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """N images' pixel values [N, 3, S, S] -> what the connector makes of each image: visual tokens
        [N, L, h] (input space) or VLoRA's A matrices stacked in the generator's `weight_keys()` order [N, K, h, r]."""
        features = self.vision(pixel_values.to(self.device))  # [N, c, d_v], in CLIP's dtype
        features = features.to(next(self.connector.parameters()).dtype)
        if self.space is Space.INPUT:
            return self.connector(features)
        weights = self.connector(features, torch.ones(features.shape[0], dtype=torch.bool, device=self.device))
        return torch.stack([weights.a[key] for key in self.connector.weight_keys()], dim=1)

    def encode_decoded(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Decoded images -> per-image outputs (as `encode_images`), preprocessed LLaVA-style first."""
        return self.encode_images(preprocess_images(images, self.config.vision))

    def image_outputs(self, batch: MultimodalBatch, cache: VisionCache | None = None) -> torch.Tensor | None:
        """Per-image outputs [N, ...] of the batch's used images, in order (None when none is used):
        through `cache` (each distinct image encoded once) or, without one, from the batch's pixels."""
        if not batch.uses_images:
            return None
        if cache is not None:
            return cache.outputs(batch.images, self.encode_decoded)
        if batch.pixel_values is None:
            raise InputError("the batch was collated without pixel values (pixels=False): give a vision cache")
        return self.encode_images(batch.pixel_values)

    def perceptual_weights(self, batch: MultimodalBatch, cache: VisionCache | None = None) -> PerceptualWeights | None:
        """VLoRA: the generator's (A, B) for each sample (A = 0 where a sample uses no image); None when
        no sample uses an image."""
        if self.space is not Space.PARAMETER:
            raise InputError(f"a {self.config.kind} model has no perceptual weights")
        per_image = self.image_outputs(batch, cache)  # [N, K, h, r]
        if per_image is None:
            return None
        owner, n = batch.image_owner.to(self.device), batch.has_image.shape[0]
        a = {}
        for i, key in enumerate(self.connector.weight_keys()):
            rows = per_image.new_zeros(n, *per_image.shape[2:])  # [n, h, r]
            rows[owner] = per_image[:, i]
            a[key] = rows
        return PerceptualWeights(a=a, b=self.connector.b_matrices())

    def visual_tokens(self, batch: MultimodalBatch, cache: VisionCache | None = None) -> torch.Tensor | None:
        """Input-space connectors: the visual tokens [N, L, h] of every used image, in input order."""
        if self.space is not Space.INPUT:
            raise InputError(f"a {self.config.kind} model adds no visual tokens")
        return self.image_outputs(batch, cache)

    # --- execution mode ----------------------------------------------------------------------------
    def resolve_mode(self, mode: ExecutionMode | str, batch: MultimodalBatch, new_tokens: int = 0,
                     crossover: Crossover | None = None) -> ExecutionMode:
        """The concrete mode of a call: `mode`, or for auto the dispatch rule (vlora/dispatch.py) at the
        batch's positions + `new_tokens`, with `crossover` (default: the measured table's)."""
        mode = ExecutionMode(mode)
        if mode is not ExecutionMode.AUTO:
            return mode
        if self.space is not Space.PARAMETER:
            return ExecutionMode.FACTORIZED  # no perceptual weights: the mode changes nothing
        if crossover is None:
            crossover = crossover_for(self.config.llm.hidden_size, self.config.connector.rank, self.device, self.dtype)
        return choose_mode(mode, crossover, batch.input_ids.shape[0], batch.uses_images,
                           batch.input_ids.shape[1] + new_tokens)

    @contextmanager
    def conditioned(self, batch: MultimodalBatch, mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                    cache: VisionCache | None = None) -> Iterator[LLMInputs]:
        """Yields the LLM's prefill inputs (input_ids or inputs_embeds); within the block the LLM
        carries each sample's perceptual weights (weight-space connectors). `mode` is concrete."""
        if self.space is Space.INPUT:
            tokens = self.visual_tokens(batch, cache)
            if tokens is None:
                yield LLMInputs({"input_ids": batch.input_ids})
                return
            embeds = self.llm.get_input_embeddings()(batch.input_ids)  # [n, s, h]
            embeds = embeds.masked_scatter(batch.image_positions[..., None], tokens.to(embeds.dtype))
            yield LLMInputs({"inputs_embeds": embeds})
            return
        weights = self.perceptual_weights(batch, cache)
        if weights is None:
            yield LLMInputs({"input_ids": batch.input_ids})
            return
        with perceptual_weights_applied(self.llm, weights, mode) as applied:
            yield LLMInputs({"input_ids": batch.input_ids}, applied.keep_rows)

    # --- forward, loss, generation, scoring --------------------------------------------------------
    def forward(self, batch: MultimodalBatch, mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                logits_to_keep: int = 0, cache: VisionCache | None = None):
        """Logits [n, s, V] (and the mean token cross-entropy when the batch has labels)."""
        batch = batch.to(self.device)
        with self.conditioned(batch, self.resolve_mode(mode, batch), cache) as inputs:
            return self.llm(**inputs.prefill, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                            labels=batch.labels, use_cache=False, logits_to_keep=logits_to_keep)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], images: Sequence[ImageInput], max_new_tokens: int = 32,
                 mode: ExecutionMode | str = ExecutionMode.FACTORIZED, sampling: Sampling | None = None,
                 official_positions: bool = False) -> list[str]:
        """Greedy (or sampled) completions of full prompts."""
        batch = self.prepare(prompts, images).to(self.device)
        tokens = self.decode(batch, max_new_tokens, sampling, official_positions, mode=mode)
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]

    @torch.inference_mode()
    def decode(self, batch: MultimodalBatch, max_new_tokens: int, sampling: Sampling | None = None,
               official_positions: bool = False, stop_at_eos: bool = True,
               mode: ExecutionMode | str = ExecutionMode.FACTORIZED, cache: VisionCache | None = None,
               drop_finished: bool = True) -> list[list[int]]:
        """New token ids per sample (EOS excluded); rows that reach EOS leave the loop (`drop_finished`).

        official_positions: decoded tokens take the official VLoRA release's cached-decoding
        positions, one less per masked placeholder than their index (the first new token shares the
        last prompt token's RoPE position), for token-exact parity with the release.
        """
        batch = batch.to(self.device)
        shift = (batch.image_positions & (batch.attention_mask == 0)).sum(-1) if official_positions else None
        mode = self.resolve_mode(mode, batch, max_new_tokens)
        with self.conditioned(batch, mode, cache) as inputs:
            return decode(self.llm, inputs.prefill, batch.attention_mask, batch.position_ids,
                          self.tokenizer.eos_token_id, max_new_tokens, sampling, shift, stop_at_eos,
                          inputs.keep_rows, drop_finished)

    @torch.inference_mode()
    def score_choices(self, batch: MultimodalBatch, choices: Sequence[Sequence[Choice]],
                      mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                      cache: VisionCache | None = None, greedy: bool = False) -> list[list]:
        """Per sample and choice, the summed log-probabilities of the choice's scored tokens after the
        sample's prompt (the batch: the shared prefixes; vlora/likelihood.py); with `greedy`, pairs
        (sum, whether greedy decoding gives the choice)."""
        batch = batch.to(self.device)
        after = max((sum(len(c.tokens) for c in row) for row in choices), default=0)  # tokens after the prefix
        mode = self.resolve_mode(mode, batch, after)
        with self.conditioned(batch, mode, cache) as inputs:
            return choice_logprobs(self.llm, inputs.prefill, batch.attention_mask, batch.position_ids, choices,
                                   greedy)


def build_model(config: ModelConfig, tokenizer=None, seed: int = 0, device: torch.device | str = "cpu",
                dtype: torch.dtype | None = None) -> MultimodalLM:
    """A randomly initialised model of any kind (VLoRA, LLaVA-v1.5, Q-Former) from its config, built on
    `device` in `dtype` from a local generator seeded with `seed` (the global RNG is not touched)."""
    from vlora.initialization import initialize, materialize
    from vlora.memory import check_fits, config_parameter_bytes

    check_fits(config_parameter_bytes(config, dtype), device, "the model's parameters")
    model = materialize(MultimodalLM.from_config(config, tokenizer=tokenizer), device, dtype)
    return initialize(model, torch.Generator(device=device).manual_seed(seed))
