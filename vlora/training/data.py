"""Training data: LLaVA-format JSON -> a tokenised, cached `datasets.Dataset` -> batches.

A record is {"id", "image" (path under the image folder; absent for text-only samples),
"conversations": [{"from": "human" | "gpt", "value": ...}, ...]}, alternating human / gpt turns,
the `<image>` placeholder in the first human turn. A stage's record names its template (TEMPLATES), as the
release trained; a data record may name its own (`"template": "plain"`: a text stage that mixes captions
into its dialogues):
  plain     (`--version plain`, pretrain): `<image>` + caption + "\n" -> [BOS, -200, caption..., \n];
            BOS and the placeholder are ignored, caption + "\n" is learned.
  dialogue  (`--version v1`, finetune): the Vicuna-v1 dialogue; `<image>\n` moved to the front of the
            first turn (as LLaVA does); only each answer + `</s>` is learned.
Records are checked up front (one-line errors naming the file and the record), tokenised once with
`Dataset.map` into an Arrow file keyed by the data file's bytes, the tokenizer, the template, the
stage and the length limit, and reused while none of them changes. Images are decoded per batch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlora.errors import InputError
from vlora.hf_quiet import datasets_progress
from vlora.images import decode_image
from vlora.prompting import (
    IGNORE_INDEX,
    IMAGE_PLACEHOLDER,
    IMAGE_TOKEN_INDEX,
    VICUNA_V1,
    ConversationTemplate,
    tokenize_for_training,
)

DATA_FORMAT = 2  # part of the cache key: bump when the tokenisation below changes
ROLES = ("human", "gpt")


# --- reading and checking records ----------------------------------------------------------------
def _fail(data_file: Path, index: int, rid: Any, problem: str) -> InputError:
    return InputError(f"{data_file}: record {index} (id {rid!r}): {problem}")


def read_records(data_file: str | Path, image_dir: str | Path, stage: str) -> dict[str, list]:
    """The checked records as columns: id (str), image (relative path or None), turns ([[q, a], ...]
    with the placeholder moved to the front of the first question). Any malformed record is an
    InputError naming the file and the record."""
    data_file, image_dir = Path(data_file), Path(image_dir)
    records = read_json_records(data_file)
    columns: dict[str, list] = {"id": [], "image": [], "turns": [], "form": []}
    for index, record in enumerate(records):
        rid = record.get("id", index) if isinstance(record, dict) else index
        image, turns, form = _check_record(record, index, rid, data_file, image_dir, stage)
        columns["id"].append(str(rid))
        columns["image"].append(image)
        columns["turns"].append(turns)
        columns["form"].append(form)
    check_images(columns["id"], columns["image"], data_file, image_dir)
    return columns


def check_images(ids: Sequence[str], images: Sequence[str | None], data_file: Path, image_dir: Path) -> None:
    """Every record's image lies inside `image_dir` (no absolute path, no `..` that leaves it; symlinks
    inside are followed as the user set them) and exists; all records are checked before any training, and
    the bad ones are counted and the first named."""
    if not image_dir.is_dir():
        raise InputError(f"--images {image_dir} is not a folder")
    outside, missing = [], []
    root = os.path.normpath(os.path.abspath(image_dir))
    for index, (rid, image) in enumerate(zip(ids, images, strict=True)):
        if image is None:
            continue
        path = os.path.normpath(os.path.join(root, image))
        if os.path.isabs(image) or os.path.commonpath([root, path]) != root:
            outside.append((index, rid, image))
        elif not os.path.isfile(path):
            missing.append((index, rid, image))
    for bad, what in ((outside, f"name images outside --images {image_dir}"), (missing, "name image files that do not exist")):
        if bad:
            index, rid, image = bad[0]
            raise InputError(f"{data_file}: {len(bad)} of {len(ids)} records {what} (first: record {index} (id {rid!r}): "
                             f"{image})")


def read_json_records(data_file: Path) -> list:
    try:
        records = json.loads(data_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"training data {data_file} does not exist") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise InputError(f"training data {data_file} cannot be read ({type(e).__name__})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{data_file}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(records, list):
        raise InputError(f"{data_file}: expected a JSON list of records, got a {type(records).__name__}")
    if not records:
        raise InputError(f"{data_file}: holds no records")
    return records


def _check_record(record: Any, index: int, rid: Any, data_file: Path, image_dir: Path,
                  stage: str) -> tuple[str | None, list[list[str]], str]:
    def fail(problem: str) -> InputError:
        return _fail(data_file, index, rid, problem)

    if not isinstance(record, dict):
        raise fail(f"expected an object, got a {type(record).__name__}")
    conversations = record.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise fail("has no 'conversations' list" if conversations is None else "'conversations' must be a non-empty list")
    for i, turn in enumerate(conversations):
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            raise fail(f"turn {i} must be an object with a text 'value'")
        if turn.get("from") != ROLES[i % 2]:
            raise fail(f"turn {i} is from {turn.get('from')!r}, expected {ROLES[i % 2]!r} "
                       "(turns alternate human, gpt, starting with human)")
    if len(conversations) % 2:
        raise fail("ends with a human turn that has no gpt answer")
    form = record.get("template", template_of(stage))
    if form not in TEMPLATES:
        raise fail(f"'template' must be one of {', '.join(TEMPLATES)}, got {form!r}")
    if form == "plain" and len(conversations) != 2:
        raise fail(f"a plain record is one human / gpt pair (a caption), got {len(conversations)} turns")

    image = record.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        raise fail(f"'image' must be one file path, got {image!r} (one image per sample)")
    counts = [turn["value"].count(IMAGE_PLACEHOLDER) for turn in conversations]
    expected = [1 if image is not None else 0] + [0] * (len(counts) - 1)
    if counts != expected:
        where = "in the first human turn" if image is not None else "(the record has no image)"
        raise fail(f"has {sum(counts)} {IMAGE_PLACEHOLDER} placeholder(s) where {sum(expected)} belongs {where}")

    values = [turn["value"] for turn in conversations]
    if image is not None:  # LLaVA's preprocess_multimodal: the placeholder goes first, then a newline
        values[0] = f"{IMAGE_PLACEHOLDER}\n" + values[0].replace(IMAGE_PLACEHOLDER, "").strip()
    return image, [[values[i], values[i + 1]] for i in range(0, len(values), 2)], form


# --- tokenisation ---------------------------------------------------------------------------------
def tokenize_sample(turns: Sequence[Sequence[str]], has_image: bool, form: str, tokenizer,
                    template: ConversationTemplate = VICUNA_V1) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one sample in the template `form` ("plain" | "dialogue"); labels are IGNORE_INDEX
    where nothing is learned."""
    return tokenize_for_training(TEMPLATES[form](turns, has_image, template), tokenizer)


def _plain(turns: Sequence[Sequence[str]], has_image: bool, template: ConversationTemplate) -> list[tuple[str, str]]:
    """The human turn's text is dropped, the placeholder kept: `<image>` + caption + newline."""
    (_, caption), = turns
    return [(IMAGE_PLACEHOLDER if has_image else "", caption + "\n")]


def _dialogue(turns: Sequence[Sequence[str]], has_image: bool, template: ConversationTemplate) -> list[tuple[str, str]]:
    return template.dialogue([(q, a) for q, a in turns])


# how a stage's samples become (prompt, answer) pieces, by the template its record names
TEMPLATES: dict[str, Callable] = {"plain": _plain, "dialogue": _dialogue}


def template_of(stage: str) -> str:
    from vlora.training.stages import stage_record

    return stage_record(stage).template


def truncate(ids: list[int], labels: list[int], max_length: int, positions_per_image: int
             ) -> tuple[list[int], list[int]]:
    """Cut a sample so that the LLM sees at most `max_length` positions (each placeholder takes
    `positions_per_image`), as LLaVA cuts after splicing in the visual tokens."""
    used = 0
    for i, token in enumerate(ids):
        used += positions_per_image if token == IMAGE_TOKEN_INDEX else 1
        if used > max_length:
            if IMAGE_TOKEN_INDEX in ids[i:]:
                raise ValueError(f"max_length {max_length} cuts the image ({positions_per_image} positions)")
            return ids[:i], labels[:i]
    return ids, labels


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides token ids: the tokenizer's whole pipeline (tokenizer.json) and special ids."""
    from datasets.fingerprint import Hasher

    backend = getattr(tokenizer, "backend_tokenizer", None)
    pipeline = backend.to_str() if backend is not None else Hasher.hash(tokenizer)  # slow tokenizers: by value
    specials = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    return hashlib.sha256(f"{type(tokenizer).__name__}|{specials}|{pipeline}".encode()).hexdigest()


# --- the dataset ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingData:
    """Tokenised records: columns id, image, input_ids, labels, loss_tokens."""

    dataset: Any  # datasets.Dataset
    data_file: Path
    image_dir: Path
    fingerprint: str  # the cache key (data bytes, tokenizer, template, stage, lengths)
    cache_file: Path
    from_cache: bool

    def __len__(self) -> int:
        return len(self.dataset)


def load_training_data(data_file: str | Path, image_dir: str | Path, tokenizer, stage: str, *,
                       max_length: int, positions_per_image: int = 1,
                       template: ConversationTemplate = VICUNA_V1, cache_dir: str | Path,
                       progress: bool = False) -> TrainingData:
    """Checked, tokenised, truncated records; tokenised once per (data, tokenizer, template, stage,
    lengths) into an Arrow file under `cache_dir`, reused while none of them changes."""
    import datasets

    data_file, image_dir, cache_dir = Path(data_file), Path(image_dir), Path(cache_dir)
    try:
        content = data_file.read_bytes()
    except OSError as e:
        raise InputError(f"training data {data_file} cannot be read ({type(e).__name__})") from None
    key = hashlib.sha256()
    for part in (f"vlora-training-data {DATA_FORMAT}", stage, str(max_length), str(positions_per_image),
                 repr(template), tokenizer_fingerprint(tokenizer)):
        key.update(part.encode() + b"\0")
    key.update(content)
    fingerprint = key.hexdigest()[:20]
    cache_dir.mkdir(parents=True, exist_ok=True)
    cache_file = cache_dir / f"{data_file.stem}-{stage}-{fingerprint}.arrow"

    if cache_file.is_file():  # same bytes, same tokenizer: the records were checked when it was written
        dataset = datasets.Dataset.from_file(str(cache_file))
        check_images(dataset["id"], dataset["image"], data_file, image_dir)
        return TrainingData(dataset, data_file, image_dir, fingerprint, cache_file, from_cache=True)

    columns = read_records(data_file, image_dir, stage)

    def tokenize_batch(batch: dict[str, list]) -> dict[str, list]:
        out: dict[str, list] = {"input_ids": [], "labels": [], "loss_tokens": []}
        for rid, image, turns, form in zip(batch["id"], batch["image"], batch["turns"], batch["form"], strict=True):
            ids, labels = tokenize_sample(turns, image is not None, form, tokenizer, template)
            try:
                ids, labels = truncate(ids, labels, max_length, positions_per_image)
            except ValueError as e:
                raise InputError(f"{data_file}: record id {rid!r}: {e}") from None
            out["input_ids"].append(ids)
            out["labels"].append(labels)
            out["loss_tokens"].append(sum(label != IGNORE_INDEX for label in labels))
        return out

    with datasets_progress(progress):
        dataset = datasets.Dataset.from_dict(columns).map(
            tokenize_batch, batched=True, remove_columns=["turns", "form"], cache_file_name=str(cache_file),
            new_fingerprint=fingerprint, load_from_cache_file=True, desc=f"tokenising {data_file.name}")
    return TrainingData(dataset, data_file, image_dir, fingerprint, cache_file, from_cache=False)


# --- batches --------------------------------------------------------------------------------------
class ImageBatchCollator:
    """Rows of the dataset -> a MultimodalBatch with labels; images are decoded here, per batch."""

    def __init__(self, collate: Callable, data: TrainingData):
        self.collate, self.data_file, self.image_dir = collate, data.data_file, data.image_dir

    def __call__(self, rows: list[dict[str, Any]]):
        images = [None if row["image"] is None else
                  decode_image(self.image_dir / row["image"],
                               label=f"{self.data_file}: record id {row['id']!r}: image {self.image_dir / row['image']}")
                  for row in rows]
        return self.collate([row["input_ids"] for row in rows], images, [row["labels"] for row in rows])
