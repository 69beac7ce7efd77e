"""The contrastive stage: a small CLIP (transformers' CLIPModel: a vision tower and a text tower) trained on
image-caption pairs with CLIP's symmetric contrastive loss, so that its vision tower encodes what captions say
(the tiny CLIP the foundations ship; vlora/foundations.py).

    image [N, 3, S, S] -> vision tower -> pooled CLS -> visual_projection -> e_img [N, p]  (L2-normalised)
    caption + </s>     -> text tower   -> the last real token -> text_projection -> e_txt [N, p]
    logits = e_txt @ e_imgᵀ · exp(logit_scale)  [N, N];  loss = CE(rows) + CE(columns), halved

Records are the pretrain stage's (`<image>` + a caption, LLaVA's format). A record may carry a `group`: the
records of a group are drawn into the same batch (a scene and its edited copies, hard negatives that differ
in one colour, shape, position, word or value), so the towers must tell them apart. Batches follow a seeded
order from a local generator; the folder is claimed as every writer's (vlora/output_folder.py). A stage of a
few minutes: a killed run starts over (no checkpoints), its log says so.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from vlora.config import VisionConfig
from vlora.errors import ConfigError, InputError
from vlora.training.loop import TrainResult
from vlora.training.recipe import TrainingRecipe
from vlora.training.short_stage import StepLog, claim, finish


@dataclasses.dataclass(frozen=True)
class TextTower:
    """CLIP's text tower and the shared projection width."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    projection_dim: int = 64
    max_positions: int = 128


def build_clip(vision: VisionConfig, text: TextTower, tokenizer, seed: int):
    """A randomly initialised CLIPModel of these sizes (its own init, from a local seed; the global RNG kept)."""
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=text.hidden_size, intermediate_size=4 * text.hidden_size,
                         num_hidden_layers=text.num_layers, num_attention_heads=text.num_heads,
                         max_position_embeddings=text.max_positions, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        vision_config=vision.to_hf().to_dict(), projection_dim=text.projection_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(config)


def read_pairs(data_file: Path, image_dir: Path) -> list[dict]:
    """(id, image, caption, group) of every record, checked as the pretrain stage checks them."""
    from vlora.training.data import check_images, read_json_records, read_records

    columns = read_records(data_file, image_dir, "pretrain")
    raw = read_json_records(data_file)
    if any(image is None for image in columns["image"]):
        first = columns["id"][columns["image"].index(None)]
        raise InputError(f"{data_file}: record id {first!r} has no image (a contrastive pair needs one)")
    check_images(columns["id"], columns["image"], data_file, image_dir)
    return [{"id": rid, "image": image, "caption": turns[0][1], "group": str(record.get("group", rid))}
            for rid, image, turns, record in zip(columns["id"], columns["image"], columns["turns"], raw, strict=True)]


class GroupBatches:
    """The record positions of each optimizer step: whole groups, in a seeded order per epoch (a local RNG)."""

    def __init__(self, pairs: list[dict], batch_size: int, seed: int):
        self.groups: dict[str, list[int]] = {}
        for position, pair in enumerate(pairs):
            self.groups.setdefault(pair["group"], []).append(position)
        self.batch_size, self.seed = batch_size, seed
        self.epoch, self.batches = -1, []

    def _epoch(self, epoch: int) -> list[list[int]]:
        order = list(self.groups)
        random.Random(f"{self.seed}/{epoch}").shuffle(order)
        out, current = [], []
        for key in order:
            if current and len(current) + len(self.groups[key]) > self.batch_size:
                out.append(current)
                current = []
            current = current + self.groups[key]
        return out if out else [current]

    def __call__(self, step: int) -> list[int]:
        """Step `step` (1-based)."""
        if self.epoch < 0:
            self.epoch, self.batches, self.start = 0, self._epoch(0), 1
        while step >= self.start + len(self.batches):
            self.start += len(self.batches)
            self.epoch += 1
            self.batches = self._epoch(self.epoch)
        return self.batches[step - self.start]


def contrastive_loss(clip, pixels: torch.Tensor, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    from transformers.models.clip.modeling_clip import image_text_contrastive_loss

    images = F.normalize(clip.visual_projection(clip.vision_model(pixels).pooler_output), dim=-1)
    states = clip.text_model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    last = attention.sum(-1) - 1  # the last real token: the caption's </s>
    texts = F.normalize(clip.text_projection(states[torch.arange(len(input_ids)), last]), dim=-1)
    return image_text_contrastive_loss(texts @ images.T * clip.logit_scale.exp())


def train_contrastive(clip, tokenizer, recipe: TrainingRecipe, data_file: Path, image_dir: Path, out_dir: Path, *,
                      vision: VisionConfig, progress: bool = True, force: bool = False,
                      say: Callable[[str], None] = print) -> TrainResult:
    """Train `clip` (in place) on the pairs of `data_file`; out_dir gets train_log.jsonl and model/ (the CLIP)."""
    from vlora.images import decode_image
    from vlora.training.resume import job_identity
    from vlora.vision import preprocess_images

    if recipe.dtype != "float32":
        raise ConfigError("training recipe: the contrastive stage trains in float32 (dtype: float32)")
    out = Path(out_dir)
    identity = job_identity(clip.config.to_dict(), tokenizer, recipe, data_file, "random initialisation")
    folder, done = claim(out, identity, "contrastive stage", force=force, say=say)
    if done is not None:
        return done
    pairs = read_pairs(Path(data_file), Path(image_dir))
    order = GroupBatches(pairs, recipe.batch_size, recipe.seed)
    total = recipe.max_steps or recipe.epochs * len(order._epoch(0))
    warmup = math.ceil(recipe.warmup_ratio * total)
    optimizer = torch.optim.AdamW(clip.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / max(warmup, 1) if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup)
                                                                                          / max(total - warmup, 1))))
    log = StepLog(out, total, recipe.log_every, progress)
    clip.train()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(recipe.seed)
            for step in range(1, total + 1):
                chosen = [pairs[i] for i in order(step)]
                pixels = preprocess_images([decode_image(image_dir / p["image"], label=str(image_dir / p["image"]))
                                            for p in chosen], vision)
                text = tokenizer([p["caption"] + tokenizer.eos_token for p in chosen], padding="longest",
                                 return_tensors="pt", padding_side="right", truncation=True,
                                 max_length=clip.config.text_config.max_position_embeddings)
                loss = contrastive_loss(clip, pixels, text.input_ids, text.attention_mask)
                log.step(step, loss, clip.parameters(), optimizer, schedule, recipe.max_grad_norm,
                         int(text.attention_mask.sum()), extra={"samples": len(chosen)}.copy)
    finally:
        log.close()
    return finish(clip, out, folder, log, recipe.batch_size)
