"""The vision side computed once per distinct image: an LRU of per-image outputs keyed by image content.

What is kept for an image is what its connector made of it: the visual tokens [L, h] of an input-space
connector, or VLoRA's stacked A matrices [K, h, r] (K = receiving layers x weight types; B does not
depend on the image and is never cached). An entry is valid for the model state that made it: a cache
belongs to one model (the adapter that owns it), and `clear()` is due after the model's weights change.

The memory is bounded by bytes: least recently used entries go first. The counters (`VisionPasses`) say
what was really done: decodes, images through CLIP and through the connector, entries reused.
Shapes: N images of a batch, M of them not cached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from PIL import Image

from vlora.errors import ConfigError
from vlora.image_sources import ImageSource

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: ~50 VLoRA-7B images (21 MB of A each in bf16), ~220 LLaVA-7B ones


@dataclass
class VisionPasses:
    """What the vision side did: every number counts images, except `encoder_calls`."""

    decodes: int = 0  # images decoded from their bytes
    clip: int = 0  # images through the CLIP tower
    connector: int = 0  # images through the connector (generator, projector or Q-Former)
    encoder_calls: int = 0  # one CLIP and one connector forward each, over the missing images of a batch
    reused: int = 0  # image uses served without encoding (cached, or a repeat within the batch)
    evicted: int = 0  # entries dropped to stay within the budget

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class VisionCache:
    """Per-image outputs keyed by content (`ImageSource.key`), least recently used first out."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_bytes < 0:
            raise ConfigError(f"the vision cache's budget must be at least 0 bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self.passes = VisionPasses()
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        """Forget every entry (after the model's weights changed); the counters stay."""
        self._entries.clear()
        self._bytes = 0

    def get(self, key: str) -> torch.Tensor | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: str, value: torch.Tensor) -> None:
        """Keep `value` (a tensor of its own, not a view into a batch) unless it alone exceeds the budget."""
        size = self._nbytes(value)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._bytes -= self._nbytes(self._entries.pop(key))
        self._entries[key] = value
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= self._nbytes(dropped)
            self.passes.evicted += 1

    @staticmethod
    def _nbytes(value: torch.Tensor) -> int:
        return value.numel() * value.element_size()

    def outputs(self, sources: Sequence[ImageSource],
                encode: Callable[[list[Image.Image]], torch.Tensor]) -> torch.Tensor:
        """The per-image outputs [N, ...] of `sources`, in order: cached ones reused, the others decoded
        (each distinct key once, all before any compute, so a broken image costs no work) and encoded
        together by `encode` (decoded images -> [M, ...])."""
        found: dict[str, torch.Tensor] = {}
        missing: dict[str, ImageSource] = {}
        for source in sources:
            if source.key in found or source.key in missing:
                continue
            cached = self.get(source.key)
            if cached is None:
                missing[source.key] = source
            else:
                found[source.key] = cached
        self.passes.reused += len(sources) - len(missing)
        if missing:
            images = [source.load() for source in missing.values()]
            self.passes.decodes += len(images)
            encoded = encode(images)  # [M, ...]
            self.passes.clip += len(images)
            self.passes.connector += len(images)
            self.passes.encoder_calls += 1
            for key, value in zip(missing, encoded, strict=True):
                found[key] = value.clone()  # its own storage: the batch tensor is not kept alive
                self.put(key, found[key])
        return torch.stack([found[source.key] for source in sources])
