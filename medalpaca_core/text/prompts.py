"""The one prompt builder of MedAlpaca Studio: training, inference and evaluation all call it.

Mismatched prompt formats between training and inference were the medAlpaca repository's most
common cause of garbage output, so there is exactly one place where prompts are rendered and one
place where responses are cut out of generated text.

Three templates are known:

* ``medalpaca`` -- the Alpaca/medAlpaca instruction format (primer, ``### Instruction:``,
  ``### Input:``, ``### Response:``) that the medAlpaca models were trained on;
* ``context_qa`` -- the model-card format ``Context: {context}\\n\\nQuestion: {question}\\n\\nAnswer: ``
  that medAlpaca's users ran;
* ``chat`` -- the base model's own chat template (tokenizer.apply_chat_template).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

PRIMER = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request."
)
INSTRUCTION_TAG = "\n\n### Instruction:\n"
INPUT_TAG = "\n\n### Input:\n"
RESPONSE_TAG = "\n\n### Response:\n"
RESPONSE_SPLIT = "### Response:"
DEFAULT_INSTRUCTION = "Answer this question truthfully"

TEMPLATES = ("medalpaca", "context_qa", "chat")

# Text that means the model has started a new turn of the template instead of answering.
STOP_MARKERS: dict[str, tuple[str, ...]] = {
    "medalpaca": ("### Instruction:", "### Input:", "### Response:", "\n\n### "),
    "context_qa": ("\n\nQuestion:", "\n\nContext:", "\nQuestion:"),
    "chat": ("<|im_start|>", "<|im_end|>", "<|user|>", "<|assistant|>"),
}


class PromptError(ValueError):
    """A prompt that cannot be built (unknown template, empty question, missing tokenizer)."""


@dataclass(frozen=True)
class PromptParts:
    """What a prompt is made of, independent of its template.

    ``history`` holds earlier (user, assistant) turns of a chat; ``response_prefix`` primes the
    answer (the paper's evaluation starts every response with "The Answer to the question is:").
    """

    question: str
    context: str = ""
    instruction: str = DEFAULT_INSTRUCTION
    response_prefix: str = ""
    history: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def with_context(self, context: str) -> PromptParts:
        """The same prompt with another context (used when the context must be shortened)."""
        return PromptParts(self.question, context, self.instruction, self.response_prefix, self.history)


def check_template(template: str) -> str:
    """Return ``template`` if known, else raise a PromptError naming the known ones."""
    if template not in TEMPLATES:
        raise PromptError(f"Unknown prompt template {template!r}; known templates: {', '.join(TEMPLATES)}")
    return template


def _full_context(parts: PromptParts) -> str:
    """The context, preceded by the chat transcript for templates that have no notion of turns."""
    transcript = "\n".join(f"User: {user}\nAssistant: {assistant}" for user, assistant in parts.history)
    return "\n\n".join(piece for piece in (parts.context.strip(), transcript) if piece)


def render_medalpaca(parts: PromptParts) -> str:
    """medAlpaca's own format: the question (after any context) is the ``### Input:``."""
    context = _full_context(parts)
    model_input = f"{context}\n\n{parts.question}" if context else parts.question
    return f"{PRIMER}{INSTRUCTION_TAG}{parts.instruction}{INPUT_TAG}{model_input}{RESPONSE_TAG}{parts.response_prefix}"


def render_context_qa(parts: PromptParts) -> str:
    """The model-card format; the Context block is left out when there is no context."""
    context = _full_context(parts)
    head = f"Context: {context}\n\n" if context else ""
    return f"{head}Question: {parts.question}\n\nAnswer: {parts.response_prefix}"


def render_chat(parts: PromptParts, tokenizer: Any) -> str:
    """The base model's chat template, the instruction as system message."""
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise PromptError("The 'chat' template needs a tokenizer that has a chat template")
    messages = [{"role": "system", "content": parts.instruction}] if parts.instruction else []
    for user, assistant in parts.history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    question = f"{parts.context.strip()}\n\n{parts.question}" if parts.context.strip() else parts.question
    messages.append({"role": "user", "content": question})
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text + parts.response_prefix


def render(template: str, parts: PromptParts, tokenizer: Any = None) -> str:
    """Render ``parts`` in ``template``; the text ends where the model's answer begins."""
    check_template(template)
    if not parts.question.strip():
        raise PromptError("The question is empty: type a question to ask the model")
    if template == "medalpaca":
        return render_medalpaca(parts)
    if template == "context_qa":
        return render_context_qa(parts)
    return render_chat(parts, tokenizer)


def cut_response(template: str, text: str) -> tuple[str, bool]:
    """Cut a generated text down to the answer.

    Drops an echoed prompt (everything up to the last ``### Response:``) and everything from the
    first marker of a new template turn on. Returns the answer and whether a marker was found,
    which means the model has finished answering.
    """
    if RESPONSE_SPLIT in text:
        text = text.rsplit(RESPONSE_SPLIT, 1)[1]
    positions = [text.find(marker) for marker in STOP_MARKERS[check_template(template)]]
    positions = [pos for pos in positions if pos >= 0]
    if positions:
        return text[: min(positions)].strip(), True
    return text.strip(), False


MAX_QUESTION_CHARS = 4_000
MAX_CONTEXT_CHARS = 32_000


@dataclass(frozen=True)
class InputLimits:
    """The longest question and context taken, in characters (None: no cap but the model's context window)."""

    question_chars: int | None = MAX_QUESTION_CHARS
    context_chars: int | None = MAX_CONTEXT_CHARS


VISITOR_LIMITS = InputLimits()  # what a visitor sends (the page, the API): a clear error, not a megabyte tokenized
OPERATOR_LIMITS = InputLimits(None, None)  # an operator's own data (a benchmark file on the command line)


def validate_parts(parts: PromptParts, limits: InputLimits = VISITOR_LIMITS) -> PromptParts:
    """Server-side input checks: text, a question, and within ``limits``."""
    for name in ("question", "context", "instruction", "response_prefix"):
        if not isinstance(getattr(parts, name), str):
            raise PromptError(f"The {name} must be text, not {type(getattr(parts, name)).__name__}")
    if not parts.question.strip():
        raise PromptError("The question is empty: type a question to ask the model")
    for name, limit in [("question", limits.question_chars), ("context", limits.context_chars)]:
        length = len(getattr(parts, name))
        if limit is not None and length > limit:
            raise PromptError(f"The {name} is {length:,} characters; the limit is {limit:,}")
    return parts


def encode(template: str, text: str, tokenizer: Any) -> list[int]:
    """Token ids of a rendered prompt; a chat-template text already holds its special tokens."""
    return tokenizer(text, add_special_tokens=template != "chat")["input_ids"]


def _shorten(parts: PromptParts, overflow: int, tokenizer: Any) -> PromptParts | None:
    """Drop the oldest chat turn, else ``overflow`` (+ a margin) tokens from the context's start."""
    if parts.history:
        return replace(parts, history=parts.history[1:])
    context_ids = tokenizer(parts.context, add_special_tokens=False)["input_ids"]
    if not context_ids:
        return None
    return parts.with_context(tokenizer.decode(context_ids[overflow + 8 :], skip_special_tokens=True))


def fit_prompt(
    template: str, parts: PromptParts, tokenizer: Any, window: int, max_new_tokens: int
) -> tuple[list[int], bool]:
    """Prompt ids that leave room for the answer, cutting history or context if needed."""
    limit = window - max_new_tokens
    truncated = False
    for _ in range(len(parts.history) + 64):  # one pass per chat turn that may have to go, then context cuts
        ids = encode(template, render(template, parts, tokenizer), tokenizer)
        if len(ids) <= limit:
            return ids, truncated
        shorter = _shorten(parts, len(ids) - limit, tokenizer)
        if shorter is None:
            break
        parts, truncated = shorter, True
    raise PromptError(
        f"The question alone is {len(ids):,} tokens; with {max_new_tokens} new tokens it does not fit the "
        f"model's context window of {window:,} tokens"
    )
