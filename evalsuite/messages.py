"""VLMEvalKit-style messages -> requests: a list of {"type": "image" | "text", "value": ...} items, as
VLMEvalKit's `build_prompt` returns them and its `generate(message, dataset)` receives them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evalsuite.adapter import Request
from vlora.errors import InputError
from vlora.prompting import IMAGE_PLACEHOLDER

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def normalise_message(message: Any) -> list[dict[str, Any]]:
    """VLMEvalKit's accepted message forms (a str, a dict, a list of both) -> {"type", "value"} dicts;
    a bare string is an image when it names an image file that exists."""
    if isinstance(message, (str, dict)):
        message = [message]
    out = []
    for item in message:
        if isinstance(item, dict):
            if item.get("type") not in ("image", "text") or "value" not in item:
                raise InputError(f"message item {item!r} is not {{'type': 'image'|'text', 'value': ...}}")
            out.append({"type": item["type"], "value": item["value"]})
        elif isinstance(item, str):
            is_image = Path(item).suffix.lower() in IMAGE_SUFFIXES and Path(item).is_file()
            out.append({"type": "image" if is_image else "text", "value": item})
        else:
            raise InputError(f"message item of type {type(item).__name__} is not a str or a dict")
    return out


def message_to_request(message: Sequence[dict[str, Any]], request_id: str = "0", max_new_tokens: int = 32,
                       choices: tuple[str, ...] = ()) -> Request:
    """Interleaved message -> one request: each image becomes `<image>\\n` where it stands (LLaVA's form)."""
    text, images = "", []
    for item in message:
        if item["type"] == "image":
            images.append(item["value"])
            text += f"{IMAGE_PLACEHOLDER}\n"
        else:
            text += item["value"]
    return Request(id=request_id, text=text, images=tuple(images), choices=choices, max_new_tokens=max_new_tokens)
