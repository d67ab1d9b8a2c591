"""The Advanced panel, built from the settings' own declarations (studio.config).

Each widget takes its label, help line, allowed values and default from the setting, so the page, the
CLI (`studio train --help`) and a saved config.json never disagree on a default. Which settings the
panel shows, and in what order, is the page's choice (`train_step.ADVANCED`).
"""
from __future__ import annotations

import gradio as gr

from studio.config import Setting, by_name
from studio.training.config import TrainConfig

AUTO = "Auto"
PER_ROW = 3


def widget(s: Setting):
    """The Gradio component for one setting, showing its default (or what Auto picks)."""
    words = s.page_help or s.help
    info = words[:1].upper() + words[1:] + "."
    shown = s.auto_value if s.default is None and s.auto_value is not None else s.default
    if isinstance(s.default, bool):
        return gr.Checkbox(s.default, label=s.label, info=info)
    if s.choices:
        return gr.Radio([(s.words.get(v, v), v) for v in s.choices], value=s.default, label=s.label, info=info)
    if s.suggested:
        return gr.Dropdown([AUTO, *s.suggested], value=AUTO if s.default is None else s.default, label=s.label,
                           info=info)
    if s.span:
        low, high, step = s.span
        return gr.Slider(low, high, value=shown, step=step, label=s.label, info=info)
    whole = isinstance(shown, int)
    return gr.Number(shown, label=s.label, info=info, precision=0 if whole else None)


def render(names: tuple[str, ...]) -> list:
    """The widgets for `names`, in rows of PER_ROW, in that order."""
    known = by_name(TrainConfig)
    made = []
    for start in range(0, len(names), PER_ROW):
        with gr.Row():
            made += [widget(known[name]) for name in names[start:start + PER_ROW]]
    return made


def values_as_settings(names: tuple[str, ...], values) -> dict:
    """The panel's values that differ from the settings' defaults, as TrainConfig fields. A value left at
    Auto, or at what Auto would pick, keeps the default (None: the studio decides, and says why), as the
    CLI does without the flag."""
    known = by_name(TrainConfig)
    chosen = {}
    for name, value in zip(names, values):
        s = known[name]
        if value is None or value == AUTO or (s.default is None and value == s.auto_value):
            continue
        whole = type(s.default) is int or s.suggested or isinstance(s.auto_value, int)   # bool is not int here
        if whole:
            value = int(float(value))   # Gradio's numbers arrive as floats or text
        if value != s.default:
            chosen[name] = value
    return chosen
