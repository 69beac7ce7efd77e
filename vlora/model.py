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

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from vlora.batch import ImageInput, MultimodalBatch, collate
from vlora.config import ModelConfig, Space
from vlora.connectors import build_connector
from vlora.decoding import Sampling, decode
from vlora.errors import InputError
from vlora.perceptual_weights import ExecutionMode, PerceptualWeights, perceptual_weights_applied
from vlora.prompting import VICUNA_V1, ConversationTemplate, image_question, tokenize_with_placeholder
from vlora.vision import VisionTower


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

    def set_trainable(self, llm: bool) -> None:
        """What trains: the connector always, the LLM when `llm` (fine-tuning; pre-training keeps it
        frozen), the CLIP tower never."""
        self.requires_grad_(False)
        self.connector.requires_grad_(True)
        self.llm.requires_grad_(llm)

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
                labels: Sequence[Sequence[int]] | None = None) -> MultimodalBatch:
        """Token-id lists (IMAGE_TOKEN_INDEX marks each image) -> a left-padded batch."""
        return collate(sequences, images, pad_id=self.tokenizer.pad_token_id, config=self.config, labels=labels)

    # --- the connector -----------------------------------------------------------------------------
    def _features(self, batch: MultimodalBatch) -> torch.Tensor:
        features = self.vision(batch.pixel_values.to(self.device))  # [N, c, d_v], in CLIP's dtype
        return features.to(next(self.connector.parameters()).dtype)

    def perceptual_weights(self, batch: MultimodalBatch) -> PerceptualWeights | None:
        """VLoRA: the generator's (A, B) for each sample; None when no sample uses an image."""
        if self.space is not Space.PARAMETER:
            raise InputError(f"a {self.config.kind} model has no perceptual weights")
        if batch.pixel_values is None:
            return None
        used = self._features(batch)
        features = used.new_zeros(batch.has_image.shape[0], *used.shape[1:])  # [n, c, d_v]
        features[batch.image_owner.to(self.device)] = used
        return self.connector(features, batch.has_image.to(self.device))

    def visual_tokens(self, batch: MultimodalBatch) -> torch.Tensor | None:
        """Input-space connectors: the visual tokens [N, L, h] of every used image, in input order."""
        if self.space is not Space.INPUT:
            raise InputError(f"a {self.config.kind} model adds no visual tokens")
        return None if batch.pixel_values is None else self.connector(self._features(batch))

    @contextmanager
    def conditioned(self, batch: MultimodalBatch, mode: ExecutionMode | str = ExecutionMode.FACTORIZED
                    ) -> Iterator[dict[str, torch.Tensor]]:
        """Yields the LLM's prefill inputs (input_ids or inputs_embeds); within the block the LLM
        carries each sample's perceptual weights (weight-space connectors)."""
        if self.space is Space.INPUT:
            tokens = self.visual_tokens(batch)
            if tokens is None:
                yield {"input_ids": batch.input_ids}
                return
            embeds = self.llm.get_input_embeddings()(batch.input_ids)  # [n, s, h]
            embeds = embeds.masked_scatter(batch.image_positions[..., None], tokens.to(embeds.dtype))
            yield {"inputs_embeds": embeds}
            return
        weights = self.perceptual_weights(batch)
        with nullcontext() if weights is None else perceptual_weights_applied(self.llm, weights, mode):
            yield {"input_ids": batch.input_ids}

    # --- forward, loss, generation -----------------------------------------------------------------
    def forward(self, batch: MultimodalBatch, mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                logits_to_keep: int = 0):
        """Logits [n, s, V] (and the mean token cross-entropy when the batch has labels)."""
        batch = batch.to(self.device)
        with self.conditioned(batch, mode) as inputs:
            return self.llm(**inputs, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                            labels=batch.labels, use_cache=False, logits_to_keep=logits_to_keep)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], images: Sequence[ImageInput], max_new_tokens: int = 32,
                 mode: ExecutionMode | str = ExecutionMode.FACTORIZED, sampling: Sampling | None = None,
                 official_positions: bool = False) -> list[str]:
        """Greedy (or sampled) completions of full prompts."""
        batch = self.prepare(prompts, images).to(self.device)
        tokens = self.decode(batch, max_new_tokens, sampling, official_positions, mode=mode)
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]

    @torch.no_grad()
    def decode(self, batch: MultimodalBatch, max_new_tokens: int, sampling: Sampling | None = None,
               official_positions: bool = False, stop_at_eos: bool = True,
               mode: ExecutionMode | str = ExecutionMode.FACTORIZED) -> list[list[int]]:
        """New token ids per sample (EOS excluded).

        official_positions: decoded tokens take the official VLoRA release's cached-decoding
        positions, one less per masked placeholder than their index (the first new token shares the
        last prompt token's RoPE position), for token-exact parity with the release.
        """
        batch = batch.to(self.device)
        shift = (batch.image_positions & (batch.attention_mask == 0)).sum(-1) if official_positions else None
        with self.conditioned(batch, mode) as inputs:
            return decode(self.llm, inputs, batch.attention_mask, batch.position_ids,
                          self.tokenizer.eos_token_id, max_new_tokens, sampling, shift, stop_at_eos)


def build_model(config: ModelConfig, tokenizer=None, seed: int = 0, device: torch.device | str = "cpu",
                dtype: torch.dtype | None = None) -> MultimodalLM:
    """A randomly initialised model of any kind (VLoRA, LLaVA-v1.5, Q-Former) from its config, built on
    `device` in `dtype` from a local generator seeded with `seed` (the global RNG is not touched)."""
    from vlora.initialization import initialize, materialize

    model = materialize(MultimodalLM.from_config(config, tokenizer=tokenizer), device, dtype)
    return initialize(model, torch.Generator(device=device).manual_seed(seed))
