"""The Ollama Modelfile written beside a GGUF export: chat template, default system line, stop tokens.

Ollama templates are Go templates, not Jinja. Rather than recognize a few known formats, we
render the model's own Jinja template on probe conversations and read off the text around
each role's content (the turn prefix and suffix), the generation prompt, how a system message
is placed (its own block, or merged into the first user turn as Gemma does) and the system
line the template adds when a chat has none. The Go template rebuilds exactly that text.

Ollama hands a template the system message twice: as `.System` and inside `.Messages`
(it also inserts the Modelfile's SYSTEM as a message when the chat has none). So the system
text is written once from `.System` and system messages are skipped in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from localsft.export.layout import adds_bos, chat_template, stop_tokens
from localsft.export.merge import Tuned

_S, _U, _A, _U2 = "SYSPROBE7", "USERPROBE7", "ASSISTANTPROBE7", "SECONDPROBE7"


@dataclass
class ChatParts:
    """The literal text a chat template puts around each turn."""

    head: str  # before everything (a BOS token the GGUF does not add itself, say)
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str  # what add_generation_prompt appends
    system: tuple[str, str] | None  # around a system block; None: merged or unsupported
    merged_system_sep: str | None = None  # system merged into the first user turn, then this, then the user text
    default_system: str | None = None  # the system text a chat without one gets
    always_system: bool = False  # the system block is written even when empty


def _render(tokenizer, messages: list[dict], generation: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def _strip(text: str, prefix: str = "", suffix: str = "") -> str | None:
    if not text.startswith(prefix) or not text.endswith(suffix) or len(prefix) + len(suffix) > len(text):
        return None
    return text[len(prefix):len(text) - len(suffix)] if suffix else text[len(prefix):]


def chat_parts(tokenizer) -> ChatParts | None:
    """The turn structure of the tokenizer's chat template, or None when it does not fit a simple loop."""
    u, a, u2 = ({"role": "user", "content": _U}, {"role": "assistant", "content": _A},
                {"role": "user", "content": _U2})
    try:
        t_u, t_ua, t_uau = _render(tokenizer, [u]), _render(tokenizer, [u, a]), _render(tokenizer, [u, a, u2])
        t_gen = _render(tokenizer, [u], generation=True)
    except Exception:  # a template that rejects a plain chat cannot be rebuilt; Ollama reads the GGUF's
        return None
    suf_a = t_ua.split(_A, 1)[1]
    pre_u = _strip(t_uau.split(_A, 1)[1].split(_U2, 1)[0], suf_a)
    suf_u = t_uau.split(_U2, 1)[1]
    pre_a = _strip(t_ua.split(_U, 1)[1].split(_A, 1)[0], suf_u) if pre_u is not None else None
    head = _strip(t_u.split(_U, 1)[0], "", pre_u) if pre_u is not None else None
    generation = _strip(t_gen, t_u)
    if None in (pre_u, pre_a, head, generation) or not t_u.endswith(suf_u):
        return None
    parts = ChatParts(head, (pre_u, suf_u), (pre_a, suf_a), generation, None)
    try:
        with_system = _render(tokenizer, [{"role": "system", "content": _S}, u]).split(_U, 1)[0]
    except Exception:  # no system role (Gemma 2): system messages are left out
        return parts
    before, after = with_system.split(_S, 1) if _S in with_system else (None, None)
    if before is None:
        return parts
    if before == head + pre_u:  # merged into the first user turn
        parts.merged_system_sep = after
        return parts
    after = _strip(after, "", pre_u)
    if after is None:
        return None
    default = _strip(head, before, after)
    if default is not None:  # the block is always there; `default` fills it when a chat has no system
        parts.system, parts.always_system, parts.head = (before, after), True, ""
        parts.default_system = default or None
    elif before.startswith(head):
        parts.system = (before[len(head):], after)
    else:
        return None
    return parts


def go_template(parts: ChatParts) -> str:
    """The Ollama (Go text/template) TEMPLATE that renders what the Jinja template renders."""
    user = f'{parts.user[0]}{{{{ .Content }}}}{parts.user[1]}'
    if parts.merged_system_sep is not None:
        user = (f'{parts.user[0]}{{{{ if $system }}}}{{{{ $system }}}}{parts.merged_system_sep}'
                f'{{{{ $system = "" }}}}{{{{ end }}}}{{{{ .Content }}}}{parts.user[1]}')
    text = parts.head
    if parts.merged_system_sep is not None:
        text += "{{ $system := .System }}"
    elif parts.system and parts.always_system:
        text += f"{parts.system[0]}{{{{ .System }}}}{parts.system[1]}"
    elif parts.system:
        text += f"{{{{ if .System }}}}{parts.system[0]}{{{{ .System }}}}{parts.system[1]}{{{{ end }}}}"
    text += (f'{{{{ range .Messages }}}}{{{{ if eq .Role "user" }}}}{user}'
             f'{{{{ else if eq .Role "assistant" }}}}{parts.assistant[0]}{{{{ .Content }}}}{parts.assistant[1]}'
             f"{{{{ end }}}}{{{{ end }}}}{parts.generation}")
    return text


def _without_bos(parts: ChatParts, tuned: Tuned) -> ChatParts:
    """Drop a leading BOS token from the template when llama.cpp adds one itself (add_bos_token)."""

    bos = getattr(getattr(tuned.tokenizer, "_tokenizer", tuned.tokenizer), "bos_token", None)
    if bos and adds_bos(tuned):
        if parts.head.startswith(bos):
            parts.head = parts.head[len(bos):]
        elif parts.system and parts.always_system and parts.system[0].startswith(bos):
            parts.system = (parts.system[0][len(bos):], parts.system[1])
    return parts


def modelfile_text(tuned: Tuned, gguf_file: str) -> str:
    """The Modelfile for `ollama create NAME -f Modelfile` next to `gguf_file`."""
    lines = [f"FROM ./{gguf_file}", ""]
    parts = chat_parts(tuned.tokenizer) if chat_template(tuned.tokenizer) else None
    if parts:
        parts = _without_bos(parts, tuned)
        lines += [f'TEMPLATE """{go_template(parts)}"""', ""]
        # a chat without a system message gets the run's instructions, else the template's own line
        system = (tuned.instructions or "").replace('"""', '" " "') or parts.default_system
        if system:
            lines += [f'SYSTEM """{system}"""', ""]
    else:
        lines += ["# Chat template: Ollama reads it from the GGUF file.", ""]
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tuned.tokenizer, tuned.base_config)]
    return "\n".join(lines) + "\n"


def write_modelfile(tuned: Tuned, out: Path, gguf_file: str) -> None:
    (out / "Modelfile").write_text(modelfile_text(tuned, gguf_file))
