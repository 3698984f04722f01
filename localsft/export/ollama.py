"""The Ollama Modelfile written beside a GGUF export: chat template, default system line, stop tokens.

Ollama templates are Go templates, not Jinja, so we recognize the chat format the
model's Jinja template produces (ChatML, Llama 3) and write its Go equivalent. For
other formats we leave TEMPLATE out and Ollama falls back to the template stored in
the GGUF file.
"""

from __future__ import annotations

from pathlib import Path

from localsft.export.layout import chat_template, stop_tokens
from localsft.export.merge import Tuned

_CHATML = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
           "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
           "<|im_start|>assistant\n")
_LLAMA3 = ("{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
           "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>"
           "{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n")
_PROBE = "PROBE-MESSAGE"


def go_template(jinja: str) -> str | None:
    """The Ollama (Go) template for the chat format a Jinja template renders, if we know it."""
    if "<|im_start|>" in jinja:
        return _CHATML
    if "<|start_header_id|>" in jinja:
        return _LLAMA3
    return None


def default_system(tokenizer) -> str | None:
    """The system line the chat template adds when a chat has none (SmolLM2 has one), if any."""
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": _PROBE}], tokenize=False)
    except Exception:  # templates may raise on unusual input; then there is no default to carry over
        return None
    for start, end in (("<|im_start|>system\n", "<|im_end|>"),
                       ("<|start_header_id|>system<|end_header_id|>\n\n", "<|eot_id|>")):
        head = text.split(_PROBE)[0]
        if start in head:
            return head.split(start, 1)[1].split(end, 1)[0] or None
    return None


def modelfile_text(tuned: Tuned, gguf_file: str) -> str:
    """The Modelfile for `ollama create NAME -f Modelfile` next to `gguf_file`."""
    lines = [f"FROM ./{gguf_file}", ""]
    template = go_template(chat_template(tuned.tokenizer))
    if template:
        lines += [f'TEMPLATE """{template}"""', ""]
    else:
        lines += ["# Chat template: Ollama reads it from the GGUF file.", ""]
    system = default_system(tuned.tokenizer) if template else None
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    lines += [f'PARAMETER stop "{token}"' for token in stop_tokens(tuned.tokenizer, tuned.base_config)]
    return "\n".join(lines) + "\n"


def write_modelfile(tuned: Tuned, out: Path, gguf_file: str) -> None:
    (out / "Modelfile").write_text(modelfile_text(tuned, gguf_file))
