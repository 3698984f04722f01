"""The Train tab's advanced settings, generated from the training schema (TrainConfig's field metadata).

One widget per setting, labelled with its name and its help text, so a setting added to
the schema appears here by itself. Settings that name a file or folder ("path" metadata:
the data, the model) are never offered: nothing typed in the app may point the trainer
at a file. Every widget starts blank, and blank keeps the recipe's value. Numbers are typed
in text boxes: Gradio's number field cannot be blank (it shows and sends 0, a real value
for several settings); the schema turns the text into a number, naming a bad one.
"""

from __future__ import annotations

from dataclasses import Field, fields

import gradio as gr

from localsft.train.config import TrainConfig, setting_kind

PER_ROW = 4
ON_OFF = ("on", "off")
BLANK = "(the recipe's value)"


def _kind(f: Field) -> str | None:
    """bool, int, float or str; None for settings that are not one plain value (lists, mappings)."""
    return setting_kind(str(f.type))


def offered() -> list[Field]:
    """The schema fields the app offers, in schema order."""
    return [f for f in fields(TrainConfig)  # path settings never; preference settings come with "Improve"
            if not f.metadata.get("path") and not f.metadata.get("preference") and _kind(f) is not None]


def element_id(name: str) -> str:
    return f"train-set-{name}"


def _widget(f: Field) -> gr.components.Component:
    label, info, elem_id = f.name.replace("_", " "), f.metadata.get("help", ""), element_id(f.name)
    kind = _kind(f)
    if kind == "bool" or "choices" in f.metadata:
        choices = list(ON_OFF if kind == "bool" else f.metadata["choices"])
        return gr.Dropdown(label=label, info=info, choices=choices, value=None, elem_id=elem_id)
    return gr.Textbox(label=label, info=info, placeholder=BLANK, max_lines=1, elem_id=elem_id)


def build() -> list[gr.components.Component]:
    """The widgets, in rows of PER_ROW (call inside a Blocks layout)."""
    widgets = []
    settings = offered()
    for start in range(0, len(settings), PER_ROW):
        with gr.Row():
            widgets += [_widget(f) for f in settings[start:start + PER_ROW]]
    return widgets


def changes(values: list | tuple) -> dict:
    """The settings the user filled in, by name (blank ones keep the recipe's value)."""
    out = {}
    for f, value in zip(offered(), values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        kind = _kind(f)
        if kind == "bool":
            value = value == "on"
        out[f.name] = value.strip() if isinstance(value, str) else value
    return out


def values(**settings) -> list:
    """Widget values for the given settings (blank elsewhere), in widget order: for tests and scripts."""
    unknown = set(settings) - {f.name for f in offered()}
    if unknown:
        raise KeyError(f"not offered in the app: {', '.join(sorted(unknown))}")
    def shown(value):
        return ON_OFF[0] if value is True else ON_OFF[1] if value is False else value

    return [shown(settings.get(f.name)) for f in offered()]
