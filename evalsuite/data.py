"""VLMEvalKit TSVs: where they live, what a valid one holds, and the images of a row.

Location: a file given by the user, else `{data_dir}/{name}.tsv`, where data_dir is `--data-dir`,
else `$LMUData` if it is set and exists, else `~/LMUData` (VLMEvalKit's rule).
Reading follows VLMEvalKit: `pandas.read_csv(sep="\\t")` with its default NA strings; an `image`
of at most 64 characters refers to another row's index; a "[...]" cell holds several base64
images; rows without an image are dropped. Images are handed to models as VLMEvalKit hands them:
RGBA / P / LA converted to RGB, and re-encoded as JPEG when `image_path` ends in .jpg.
Every problem is an error naming the file, the line, the index and the column.
"""

from __future__ import annotations

import ast
import base64
import binascii
import hashlib
import io
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
from PIL import Image

from evalsuite.benchmarks import BenchmarkSpec
from evalsuite.errors import DataError
from evalsuite.prompts import is_missing
from vlora.errors import InputError
from vlora.image_sources import ImageSource, bytes_key
from vlora.images import decode_image


def lmu_data_root() -> Path:
    """VLMEvalKit's data folder: $LMUData when set (it must exist), else ~/LMUData."""
    env = os.environ.get("LMUData")
    if env:
        if not Path(env).is_dir():
            raise DataError(f"$LMUData is set to {env}, which is not a folder; fix it or unset it")
        return Path(env)
    return Path.home() / "LMUData"


def resolve_tsv(spec: BenchmarkSpec, data_dir: str | Path | None = None, data_file: str | Path | None = None,
                notes: list[str] | None = None) -> Path:
    """The TSV of `spec`: `data_file` (a TSV, or a Hugging Face copy of the benchmark), else
    `{data_dir or $LMUData or ~/LMUData}/{name}.tsv`. When both are given, the file is used and a note says so."""
    if data_dir is not None and not Path(data_dir).is_dir():
        what = "is a file, not a folder" if Path(data_dir).exists() else "does not exist"
        if data_file is None:
            raise DataError(f"--data-dir {data_dir} {what}")
        if notes is not None:
            notes.append(f"--data-dir {data_dir} {what}; reading --data {data_file}")
    elif data_dir is not None and data_file is not None and notes is not None:
        notes.append(f"reading --data {data_file}; --data-dir {data_dir} is not used for {spec.name}")
    if data_file is not None:
        from evalsuite.hf_copies import form_of

        path = Path(data_file)
        if path.is_dir():
            if form_of(path) is not None:
                return path  # a Hugging Face copy of the benchmark (evalsuite/hf_copies.py)
            raise DataError(f"--data {path} is a folder, neither a TSV file nor a Hugging Face copy (a folder of "
                            "TSVs goes to --data-dir)")
    else:
        path = Path(data_dir if data_dir is not None else lmu_data_root()) / f"{spec.name}.tsv"
    if not path.is_file():
        hint = f" (VLMEvalKit's copy: {spec.url})" if spec.url else ""
        raise DataError(f"{path} not found: pass --data-dir DIR or --data FILE, or set $LMUData{hint}")
    return path


def default_tsv(spec: BenchmarkSpec) -> Path | None:
    """VLMEvalKit's default location of the benchmark's TSV ($LMUData, else ~/LMUData) when the file is
    there, else None (the caller then has no real data to offer)."""
    path = lmu_data_root() / f"{spec.name}.tsv"
    return path if path.is_file() else None


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class BenchmarkData:
    spec: BenchmarkSpec
    path: Path
    md5: str
    table: pd.DataFrame  # rows with an image, in file order; `line` = the row's line in the file
    dropped_without_image: int = 0
    warnings: list[str] = field(default_factory=list)
    stored_images: dict[str, str] = field(default_factory=dict)  # index -> base64 of rows that hold one
    embedded: bool = False  # the embedded mini-suite's stand-in, not the real benchmark
    mini_suite: bool = False  # the project's synthetic mini-suite (written by `data mini` or the embedded default)
    control: str | None = None  # a control's change to the data (evalsuite/controls.py), e.g. images shuffled
    source: dict | None = None  # a Hugging Face copy's source record (evalsuite/hf_copies.py); None for a TSV

    @property
    def row_word(self) -> str:
        """How an error names a row: a TSV's line, an HF copy's row."""
        return "line" if self.source is None else "row"

    def where(self, position: int, column: str) -> str:
        row = self.table.iloc[position]
        return f"{self.path}: {self.row_word} {row['line']} (index {row['index']}), column {column}"

    def _cell(self, position: int) -> str:
        cell = str(self.table["image"].iloc[position])
        return self.stored_images[cell] if len(cell) <= 64 else cell  # <= 64 characters: a reference

    def _sources(self, position: int) -> list[str]:
        try:
            return _image_list(self._cell(position))
        except ValueError as e:
            raise DataError(f"{self.where(position, 'image')}: {e}") from None

    def image_count(self, position: int) -> int:
        return len(self._sources(position))

    def images(self, position: int) -> list[Image.Image]:
        """The images of the row at `position`, decoded as VLMEvalKit hands them to a model."""
        return [source.load() for source in self.image_sources(position)]

    def image_sources(self, position: int) -> list[ImageSource]:
        """The images of the row at `position` as keyed sources (vlora/image_sources.py): the key is the
        hash of the image's bytes (plus `+jpeg` where VLMEvalKit re-encodes it), so rows that show the same
        image share it; decoding waits for `load()`."""
        names = self._image_names(position)
        out = []
        for i, cell in enumerate(self._sources(position)):
            name = names[i] if i < len(names) else ""
            try:
                data = base64.b64decode(cell, validate=False)
            except (binascii.Error, ValueError) as e:
                raise DataError(f"{self.where(position, 'image')}: not base64 ({e})") from None
            jpeg = name.lower().endswith((".jpg", ".jpeg"))
            out.append(ImageSource(bytes_key(data, "jpeg" if jpeg else ""), partial(self._load, data, name, position)))
        return out

    def _image_names(self, position: int) -> list[str]:
        if "image_path" not in self.table.columns:
            return []
        cell = self.table["image_path"].iloc[position]
        return [] if is_missing(cell) else _image_list(cell)

    def _load(self, data: bytes, name: str, position: int) -> Image.Image:
        try:
            image = decode_image(io.BytesIO(data), label="the base64 image", rgb=False)
        except InputError as e:
            raise DataError(f"{self.where(position, 'image')}: {e}") from None
        return _as_vlmevalkit_saves(image, name)

    def image_group(self, position: int) -> tuple[str, ...]:
        """The row's image cells, references resolved, without decoding: rows that show the same stored
        images share it (for ordering rows so that they meet in a batch; the cache keys by content)."""
        return tuple(self._sources(position))


def _image_list(cell) -> list[str]:
    text = str(cell)
    if text.startswith("["):
        try:
            return [str(x) for x in ast.literal_eval(text)]
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"not a list of base64 images ({type(e).__name__})") from None
    return [text]


def _as_vlmevalkit_saves(image: Image.Image, name: str) -> Image.Image:
    """VLMEvalKit writes each image to disk before the model reads it: same conversions here."""
    if image.mode in ("RGBA", "P", "LA"):
        image = image.convert("RGB")
    if name.lower().endswith((".jpg", ".jpeg")):
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG")
        image = Image.open(io.BytesIO(buffer.getvalue()))
    return image.convert("RGB")


def read_table(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, sep="\t")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path}: not a readable TSV ({e})") from None
    table.insert(0, "line", range(2, len(table) + 2))
    if "index" in table and all(_int_like(x) for x in table["index"]):
        table["index"] = [int(float(x)) for x in table["index"]]
    return table


def _int_like(value) -> bool:
    try:
        return float(value) == int(float(value))
    except (TypeError, ValueError):
        return False


def _mini_suite_file(path: Path, md5: str) -> bool:
    from evalsuite.mini import written_by_the_tool

    return written_by_the_tool(path, md5)


def load_benchmark_data(spec: BenchmarkSpec, path: Path, check_images: bool = True, embedded: bool = False,
                        hf_config: str | None = None, hf_split: str | None = None) -> BenchmarkData:
    """The checked table of `spec` at `path`: a VLMEvalKit TSV, or a Hugging Face copy of the benchmark (a repo
    folder, a save_to_disk folder or parquet files; `hf_config` / `hf_split` where it holds several; see
    evalsuite/hf_copies.py). `embedded`: the mini-suite's stand-in (no release md5 to expect)."""
    from evalsuite.hf_copies import form_of, read_hf_copy

    path = Path(path)
    source = None
    if form_of(path) is not None:
        table, source = read_hf_copy(spec.name, path, hf_config, hf_split)
        md5, mini = source["content_sha256"][:32], False
        warnings = [f"{path}: {source['note']}"]
    else:
        if hf_config is not None or hf_split is not None:
            raise DataError(f"--hf-config / --hf-split apply to a Hugging Face copy; {path} is a TSV")
        table = read_table(path)
        md5 = md5_of(path)
        mini = embedded or _mini_suite_file(path, md5)
        warnings = [] if md5 in spec.md5 or mini else [
            f"{path}: md5 {md5} is not a known release of {spec.name} (known: {', '.join(spec.md5) or 'none'}); "
            "scores may not compare with published ones"]
    missing = [c for c in spec.handler.required_columns(spec.answers) if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} for {spec.name} (has {list(table.columns)[1:]})")
    if table.empty:
        raise DataError(f"{path}: no rows (only a header); is it the right file for {spec.name}?")
    _check_unique(table, path)
    if problem := spec.handler.identity_problem(table, spec):
        raise DataError(f"{path}: {problem}")
    no_image = table["image"].map(is_missing)
    kept = table[~no_image].reset_index(drop=True)
    if kept.empty:
        raise DataError(f"{path}: none of its {len(table)} row(s) has an image (rows without one are dropped, "
                        "as VLMEvalKit drops them)")
    stored = {str(i): str(im) for i, im in zip(kept["index"], kept["image"], strict=True) if len(str(im)) > 64}
    data = BenchmarkData(spec, path, md5, kept, int(no_image.sum()), warnings, stored, embedded, mini, source=source)
    _check_references(data)
    if spec.answers:
        _check_answers(data)
    if check_images:
        for position in range(len(kept)):
            if len(str(kept["image"].iloc[position])) > 64:
                data.images(position)
    return data


def _check_unique(table: pd.DataFrame, path: Path) -> None:
    seen: dict[str, int] = {}
    for line, index in zip(table["line"], table["index"], strict=True):
        if is_missing(index):
            raise DataError(f"{path}: line {line}, column index: no index")
        if str(index) in seen:
            raise DataError(f"{path}: line {line}, column index: index {index} repeats line {seen[str(index)]}")
        seen[str(index)] = line


def _check_references(data: BenchmarkData) -> None:
    for position, cell in enumerate(data.table["image"]):
        if len(str(cell)) <= 64 and str(cell) not in data.stored_images:
            raise DataError(f"{data.where(position, 'image')}: refers to index {cell}, "
                            "which is not a row with an image in the file")


def _check_answers(data: BenchmarkData) -> None:
    """Every row's answer as its protocol wants it (a letter among the options, Yes / No, ...)."""
    for position, row in data.table.iterrows():
        if problem := data.spec.handler.answer_problem(row):
            raise DataError(f"{data.where(position, 'answer')}: {problem}")
