"""Turn one example into the exact token ids the model trains on, and which of them carry loss.

Chats are rendered with the model's own chat template (a plain fallback for tokenizers
without one). With prompt masking only the assistant turns carry loss: each assistant
message's content and its end-of-turn token (e.g. `<|im_end|>`), for every turn of a
multi-turn chat. Everything the template adds around them (a default system line, role
headers) carries none. Plain-text examples ({"text": ...}) carry loss on every token.

How the assistant spans are found: the template renders the chat up to an assistant turn
with the generation prompt, then up to the end of that turn; the difference is exactly
what the model must produce at inference. The full rendering is then tokenized once
(so token boundaries are those the model sees), and a token carries loss when its
characters overlap an assistant span.
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenizers import Tokenizer

from localsft.errors import UserError


@dataclass
class TokenizedExample:
    """Token ids and, per token, whether it carries loss (True) or is context only (False)."""

    ids: list[int]
    loss_mask: list[bool]

    @property
    def loss_tokens(self) -> int:
        return sum(self.loss_mask)

    def __len__(self) -> int:
        return len(self.ids)


def _hf(tokenizer):
    """The Hugging Face tokenizer behind an mlx-lm TokenizerWrapper (or the tokenizer itself)."""
    return getattr(tokenizer, "_tokenizer", tokenizer)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "has_chat_template", None) or getattr(_hf(tokenizer), "chat_template", None))


def fallback_render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """`role: content` lines; assistant turns end with the end-of-sequence token.

    Matches the fallback prompt `localsft.inference.generate.chat_prompt` builds for inference
    ("...\\nassistant: "), so a model trained with it answers the same way it was taught.
    """
    eos = getattr(tokenizer, "eos_token", None) or ""
    text = "".join(f"{m['role']}: {m['content']}{eos if m['role'] == 'assistant' else ''}\n" for m in messages)
    return text + ("assistant: " if add_generation_prompt else "")


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The chat as text, exactly as the model will see it."""
    if not has_chat_template(tokenizer):
        return fallback_render(tokenizer, messages, add_generation_prompt)
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as err:  # jinja errors: e.g. a template that insists on alternating roles
        raise UserError(f"The model's chat template cannot render this chat: {err}") from None


def _span_by_prefix(tokenizer, messages: list[dict], i: int, full: str) -> tuple[int, int] | None:
    """(start, end) of assistant turn i in `full`, from the renderings before and after it."""
    if i == 0:
        return None
    before = render(tokenizer, messages[:i], add_generation_prompt=True)
    after = full if i == len(messages) - 1 else render(tokenizer, messages[: i + 1])
    if not (after.startswith(before) and full.startswith(after)):
        return None
    end = len(before) + len(after[len(before):].rstrip())  # the newline after the end-of-turn is not an answer
    return len(before), max(end, len(before))


def _span_by_search(tokenizer, content: str, full: str, cursor: int) -> tuple[int, int]:
    """(start, end) of `content` in `full` after `cursor`, plus the end-of-turn token right after it."""
    start = full.find(content, cursor)
    if start < 0:
        raise UserError("The model's chat template drops or rewrites an assistant message, "
                        "so its loss cannot be located.")
    end = start + len(content)
    eos = getattr(tokenizer, "eos_token", None)
    rest = full[end:]
    if eos and rest.lstrip(" ").startswith(eos):
        end += len(rest) - len(rest.lstrip(" ")) + len(eos)
    return start, end


def loss_spans(tokenizer, messages: list[dict], full: str) -> list[tuple[int, int]]:
    """Character spans of `full` (the rendered chat) that carry loss: the assistant turns."""
    spans, cursor = [], 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        span = _span_by_prefix(tokenizer, messages, i, full)
        if span is None or span[0] < cursor:
            span = _span_by_search(tokenizer, message["content"], full, cursor)
        spans.append(span)
        cursor = span[1]
    return spans


def _tokenize_spans(tokenizer, text: str, spans: list[tuple[int, int]]) -> TokenizedExample:
    """Tokenize `text` once and mark the tokens whose characters overlap a span."""
    hf = _hf(tokenizer)
    backend = getattr(hf, "_tokenizer", None)  # the Rust tokenizer of a fast HF tokenizer
    if isinstance(backend, Tokenizer):
        enc = backend.encode(text, add_special_tokens=False)
        ids, offsets = enc.ids, enc.offsets
    else:
        try:
            enc = hf(text, add_special_tokens=False, return_offsets_mapping=True)
            ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
        except (NotImplementedError, TypeError, ValueError, KeyError):
            return _tokenize_pieces(tokenizer, text, spans)  # slow tokenizers have no offsets
    mask, spans, span = [], iter(spans), None
    span = next(spans, None)
    for start, end in offsets:  # tokens and spans are both in text order: one sweep
        while span is not None and span[1] <= start:
            span = next(spans, None)
        mask.append(span is not None and max(end, start + 1) > span[0])
    return TokenizedExample(ids, mask)


def _tokenize_pieces(tokenizer, text: str, spans: list[tuple[int, int]]) -> TokenizedExample:
    ids, mask, pos = [], [], 0
    for start, end in spans + [(len(text), len(text))]:
        for piece, carries in ((text[pos:start], False), (text[start:end], True)):
            if piece:
                piece_ids = _hf(tokenizer).encode(piece, add_special_tokens=False)
                ids += piece_ids
                mask += [carries] * len(piece_ids)
        pos = end
    return TokenizedExample(ids, mask)


def tokenize_chat(tokenizer, messages: list[dict], mask_prompt: bool = True) -> TokenizedExample:
    """Token ids of a chat rendered with the model's template, with its loss mask.

    mask_prompt=True: only assistant turns (content + end-of-turn token) carry loss.
    mask_prompt=False: every token does. The trainer truncates to its max length.
    """
    full = render(tokenizer, messages)
    spans = loss_spans(tokenizer, messages, full) if mask_prompt else [(0, len(full))]
    return _tokenize_spans(tokenizer, full, spans)


def tokenize_text(tokenizer, text: str) -> TokenizedExample:
    """Plain continuation text: every token carries loss; ends with end-of-sequence."""
    ids = list(_hf(tokenizer).encode(text))
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    return TokenizedExample(ids, [True] * len(ids))


def tokenize_example(tokenizer, example: dict, mask_prompt: bool = True) -> TokenizedExample:
    """A normalized example: {"messages": [...]} (chat) or {"text": ...} (continuation)."""
    if "messages" in example:
        return tokenize_chat(tokenizer, example["messages"], mask_prompt)
    return tokenize_text(tokenizer, example["text"])


def preview(tokenizer, example: dict, mask_prompt: bool = True) -> list[tuple[str, bool]]:
    """The exact training text as (piece, carries_loss) runs, for highlighting trained tokens."""
    tokenized = tokenize_example(tokenizer, example, mask_prompt)
    runs: list[tuple[str, bool]] = []
    start = 0
    for i in range(1, len(tokenized.ids) + 1):
        if i == len(tokenized.ids) or tokenized.loss_mask[i] != tokenized.loss_mask[start]:
            piece = _hf(tokenizer).decode(tokenized.ids[start:i], skip_special_tokens=False)
            runs.append((piece, tokenized.loss_mask[start]))
            start = i
    return runs
