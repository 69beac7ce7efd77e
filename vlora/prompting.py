"""Prompts: the Vicuna-v1 conversation template and `<image>` placeholder tokenisation.

The placeholder becomes one id, IMAGE_TOKEN_INDEX (-200), exactly as LLaVA's
`tokenizer_image_token`: each text chunk is tokenised with BOS and only the first chunk keeps it.
What the placeholder turns into is the connector's business (VLoRA: one masked position).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

IMAGE_PLACEHOLDER = "<image>"
IMAGE_TOKEN_INDEX = -200
IGNORE_INDEX = -100


@dataclass(frozen=True)
class ConversationTemplate:
    """A LLaVA `SeparatorStyle.TWO` template: system, then 'ROLE: message' turns."""

    system: str
    roles: tuple[str, str] = ("USER", "ASSISTANT")
    sep: str = " "
    sep2: str = "</s>"

    def prompt(self, question: str) -> str:
        """A one-turn prompt that ends where the assistant starts answering."""
        return f"{self.system}{self.sep}{self.roles[0]}: {question}{self.sep}{self.roles[1]}:"

    def dialogue(self, turns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Multi-turn training text as (instruction part, answer part) pieces, in order.

        The instruction parts are masked from the loss; each answer part ends with sep2 (EOS). The space
        after "ASSISTANT:" belongs to the answer, as in LLaVA's `preprocess_v1` (its instruction length drops
        the trailing space's token): a tokenizer without a merged "▁3" must learn the bare "▁" that starts
        the answer, or greedy decoding after "ASSISTANT:" can never begin one.
        """
        pieces, head = [], self.system + self.sep
        for question, answer in turns:
            pieces.append((f"{head}{self.roles[0]}: {question}{self.sep}{self.roles[1]}:", f" {answer}{self.sep2}"))
            head = ""
        return pieces


VICUNA_V1 = ConversationTemplate(
    system="A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
)
# VLMEvalKit's 2024 LLaVA wrapper used conv_templates['llava_v1']: "human" instead of "user".
LLAVA_V1 = ConversationTemplate(
    system="A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
)
TEMPLATES = {"vicuna_v1": VICUNA_V1, "llava_v1": LLAVA_V1}


def image_question(question: str, with_image: bool = True) -> str:
    """LLaVA's first user turn: the placeholder, a newline, then the question."""
    if not with_image or IMAGE_PLACEHOLDER in question:
        return question
    return f"{IMAGE_PLACEHOLDER}\n{question}"


def tokenize_with_placeholder(prompt: str, tokenizer) -> list[int]:
    """Token ids with IMAGE_TOKEN_INDEX where `<image>` was (LLaVA's `tokenizer_image_token`)."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split(IMAGE_PLACEHOLDER)]
    offset = 1 if chunks[0] and chunks[0][0] == tokenizer.bos_token_id else 0  # BOS kept once, in front
    ids = list(chunks[0])
    for chunk in chunks[1:]:
        ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(chunk[offset:])
    return ids


def tokenize_for_training(pieces: Sequence[tuple[str, str]], tokenizer) -> tuple[list[int], list[int]]:
    """(input ids, labels) for (instruction, answer) pieces: only the answers are learned.

    Pieces are tokenised cumulatively so the ids equal those of the whole text; the label of each
    token is its id where it belongs to an answer and IGNORE_INDEX elsewhere.
    """
    text, ids, labels = "", [], []
    for instruction, answer in pieces:
        for part, learned in ((instruction, False), (answer, True)):
            text += part
            full = tokenize_with_placeholder(text, tokenizer)
            if full[:len(ids)] != ids:  # tokenisation merged across the boundary: re-label the overlap
                keep = next(i for i, (x, y) in enumerate(zip(full, ids, strict=False)) if x != y)
                ids, labels = ids[:keep], labels[:keep]
            new = full[len(ids):]
            labels.extend(new if learned else [IGNORE_INDEX] * len(new))
            ids = full
    labels = [IGNORE_INDEX if i == IMAGE_TOKEN_INDEX else lab for i, lab in zip(ids, labels, strict=True)]
    return ids, labels
