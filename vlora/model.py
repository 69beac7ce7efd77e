"""One multimodal model: vision tower -> connector -> LLM (an unmodified HF `LlamaForCausalLM`).

The connector is the only fork. VLoRA's `PerceptualWeightsGenerator` works in parameter space: the
`<image>` placeholder stays one masked slot in the text and the image reaches the LLM as
perceptual weights, so the LLM's input carries zero visual tokens.

Batches are left-padded; positions are explicit (content index, the placeholder counted as in the
official prefill), so batched and single-sample runs give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from vlora.config import ModelConfig
from vlora.errors import InputError
from vlora.generator import PerceptualWeightsGenerator
from vlora.perceptual_weights import ExecutionMode, PerceptualWeights, perceptual_weights_applied
from vlora.prompting import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    VICUNA_V1,
    ConversationTemplate,
    tokenize_with_placeholder,
)
from vlora.vision import VisionTower, preprocess_images


@dataclass
class MultimodalBatch:
    """Left-padded token ids with their images, ready for `MultimodalLM`."""

    input_ids: torch.Tensor  # [B, L], placeholder slots hold the pad id
    attention_mask: torch.Tensor  # [B, L], 0 at padding and at placeholder slots
    position_ids: torch.Tensor  # [B, L], content index (placeholders counted)
    placeholders: torch.Tensor  # [B, L] bool, where IMAGE_TOKEN_INDEX was
    pixel_values: torch.Tensor | None  # [B, 3, S, S], zeros where a sample has no image
    has_image: torch.Tensor  # [B] bool: an image was given and the prompt places it
    labels: torch.Tensor | None = None  # [B, L], IGNORE_INDEX where nothing is learned

    def to(self, device: torch.device) -> MultimodalBatch:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return MultimodalBatch(**moved)


@dataclass(frozen=True)
class Sampling:
    """Sampling settings; `generate` is greedy when none are given."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


class MultimodalLM(nn.Module):
    def __init__(self, config: ModelConfig, llm: nn.Module, vision: VisionTower, connector: nn.Module,
                 tokenizer, template: ConversationTemplate = VICUNA_V1):
        super().__init__()
        self.config, self.llm, self.vision, self.connector = config, llm, vision, connector
        self.tokenizer, self.template = tokenizer, template
        self.llm.config.use_cache = False

    @classmethod
    def from_config(cls, config: ModelConfig, tokenizer=None, seed: int | None = None,
                    vision: VisionTower | None = None, empty: bool = False) -> MultimodalLM:
        """A randomly initialised model (tiny configs for tests and demos); `empty=True` gives a
        skeleton whose parameters live on the meta device (buffers stay real) for loaders to fill."""
        from transformers import LlamaForCausalLM

        from vlora.tokenizer import build_tiny_tokenizer

        if seed is not None:
            torch.manual_seed(seed)
        tokenizer = tokenizer if tokenizer is not None else build_tiny_tokenizer(config.llm.vocab_size)
        from accelerate import init_empty_weights

        with init_empty_weights(include_buffers=False) if empty else nullcontext():
            llm = LlamaForCausalLM(config.llm.to_hf())
            connector = PerceptualWeightsGenerator(config)
            vision = vision if vision is not None else VisionTower(config.vision)
        return cls(config, llm, vision, connector, tokenizer)

    @property
    def device(self) -> torch.device:
        return next(self.llm.parameters()).device

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in part.parameters())
                for name, part in (("llm", self.llm), ("vision", self.vision), ("connector", self.connector))}

    def set_trainable(self, stage: str = "pretrain") -> None:
        """Pre-training trains the connector only; fine-tuning also the LLM. CLIP stays frozen."""
        if stage not in ("pretrain", "finetune"):
            raise InputError(f"unknown training stage {stage!r}; expected 'pretrain' or 'finetune'")
        self.requires_grad_(False)
        self.connector.requires_grad_(True)
        self.llm.requires_grad_(stage == "finetune")

    # --- inputs ------------------------------------------------------------------------------------
    def prompt(self, question: str, with_image: bool = True) -> str:
        from vlora.prompting import image_question

        return self.template.prompt(image_question(question, with_image))

    def prepare(self, prompts: Sequence[str], images: Sequence[Image.Image | None]) -> MultimodalBatch:
        """Prompts (with `<image>` where the image goes) and one image or None per prompt -> a batch."""
        if len(prompts) != len(images):
            raise InputError(f"got {len(prompts)} prompts but {len(images)} images")
        return self.collate([tokenize_with_placeholder(p, self.tokenizer) for p in prompts], images)

    def collate(self, sequences: Sequence[Sequence[int]], images: Sequence[Image.Image | None],
                labels: Sequence[Sequence[int]] | None = None) -> MultimodalBatch:
        """Token-id lists (IMAGE_TOKEN_INDEX marks the image) -> a left-padded batch."""
        length = max(len(s) for s in sequences)
        batch = len(sequences)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((batch, length), pad, dtype=torch.long)
        content = torch.zeros(batch, length, dtype=torch.bool)
        label_ids = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
        for row, seq in enumerate(sequences):
            start = length - len(seq)
            ids[row, start:] = torch.tensor(seq, dtype=torch.long)
            content[row, start:] = True
            if labels is not None:
                label_ids[row, start:] = torch.tensor(labels[row], dtype=torch.long)
        placeholders = ids == IMAGE_TOKEN_INDEX
        for row, image in enumerate(images):
            if placeholders[row].any() and image is None:
                raise InputError(f"sample {row}: the prompt has an <image> placeholder but no image was given")
        ids[placeholders] = pad  # the official model embeds the slot as <unk> (id 0) and masks it
        return MultimodalBatch(
            input_ids=ids,
            attention_mask=(content & ~placeholders).long(),
            position_ids=(content.long().cumsum(-1) - 1).clamp(min=0),
            placeholders=placeholders,
            pixel_values=self._pixels(images),
            has_image=placeholders.any(-1) & torch.tensor([im is not None for im in images]),
            labels=label_ids if labels is not None else None,
        )

    def _pixels(self, images: Sequence[Image.Image | None]) -> torch.Tensor | None:
        present = [im for im in images if im is not None]
        if not present:
            return None
        values = preprocess_images(present, self.vision.config)
        out = torch.zeros(len(images), *values.shape[1:])
        out[[i for i, im in enumerate(images) if im is not None]] = values
        return out

    # --- the connector -----------------------------------------------------------------------------
    def perceptual_weights(self, batch: MultimodalBatch) -> PerceptualWeights | None:
        """The generator's (A, B) for each sample; None when no sample of the batch has an image."""
        if batch.pixel_values is None or not batch.has_image.any():
            return None
        features = self.vision(batch.pixel_values.to(self.device))  # [B, c, d_v]
        dtype = next(self.connector.parameters()).dtype
        return self.connector(features.to(dtype), batch.has_image.to(self.device))

    @contextmanager
    def conditioned(self, batch: MultimodalBatch, mode: ExecutionMode | str = ExecutionMode.FACTORIZED) -> Iterator[None]:
        """Within the block the LLM computes with each sample's perceptual weights."""
        weights = self.perceptual_weights(batch)
        with nullcontext() if weights is None else perceptual_weights_applied(self.llm, weights, mode):
            yield

    # --- forward, loss, generation -----------------------------------------------------------------
    def forward(self, batch: MultimodalBatch, mode: ExecutionMode | str = ExecutionMode.FACTORIZED,
                logits_to_keep: int = 0):
        """Logits [B, L, V] (and the mean token cross-entropy when the batch has labels)."""
        batch = batch.to(self.device)
        with self.conditioned(batch, mode):
            return self.llm(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                            position_ids=batch.position_ids, labels=batch.labels, use_cache=False,
                            logits_to_keep=logits_to_keep)

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], images: Sequence[Image.Image | None], max_new_tokens: int = 32,
                 mode: ExecutionMode | str = ExecutionMode.FACTORIZED, sampling: Sampling | None = None,
                 official_positions: bool = False) -> list[str]:
        """Greedy (or sampled) completions of full prompts, one image or None per prompt."""
        batch = self.prepare(prompts, images).to(self.device)
        with self.conditioned(batch, mode):
            tokens = self.decode(batch, max_new_tokens, sampling, official_positions)
        return [self.tokenizer.decode(t, skip_special_tokens=True).strip() for t in tokens]

    def decode(self, batch: MultimodalBatch, max_new_tokens: int, sampling: Sampling | None = None,
               official_positions: bool = False, stop_at_eos: bool = True) -> list[list[int]]:
        """KV-cached decoding of an already conditioned LLM; new token ids per sample, EOS excluded.

        official_positions: decoded tokens take the official release's cached-decoding positions,
        one less per placeholder than their index (the first new token shares the last prompt
        token's RoPE position), for token-exact parity with the release.
        """
        from transformers import DynamicCache

        eos = self.tokenizer.eos_token_id
        pick = _token_picker(sampling, self.device)
        cache = DynamicCache(config=self.llm.config)
        mask = batch.attention_mask
        out = self.llm(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids,
                       past_key_values=cache, use_cache=True, logits_to_keep=1)
        position = batch.position_ids[:, -1] + 1  # [B]
        if official_positions:
            position = position - batch.placeholders.sum(-1)
        finished = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)
        steps = []
        for step in range(max_new_tokens):
            token = pick(out.logits[:, -1].float()).masked_fill(finished, eos)  # [B]
            steps.append(token)
            finished |= (token == eos) & stop_at_eos
            if finished.all() or step == max_new_tokens - 1:
                break
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            out = self.llm(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None],
                           past_key_values=cache, use_cache=True)
            position = position + 1
        new = torch.stack(steps, dim=1).tolist()  # [B, T]
        return [row[:row.index(eos)] if stop_at_eos and eos in row else row for row in new]


def _token_picker(sampling: Sampling | None, device: torch.device):
    """logits [B, V] -> next token [B]: argmax, or a sample after temperature / top-k / top-p."""
    if sampling is None:
        return lambda logits: logits.argmax(-1)
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        warpers.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(sampling.top_p))
    generator = torch.Generator(device=device)
    if sampling.seed is not None:
        generator.manual_seed(sampling.seed)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(warpers(None, logits), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return pick


def build_vlora(config: ModelConfig, tokenizer=None, seed: int | None = None) -> MultimodalLM:
    """A randomly initialised VLoRA (generator connector) from a config."""
    return MultimodalLM.from_config(config, tokenizer=tokenizer, seed=seed)
