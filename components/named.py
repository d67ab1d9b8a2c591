"""Handlers answer by name; the wiring maps the names to the page's components.

A handler returns {"status": ..., "progress": ...}: plain values a test reads by name, with no
browser and no order to remember. `wire()` turns it into what an event listener takes: the
outputs, in the order the API returns them, and a function that answers {component: value}
(Gradio's way of updating outputs by component). A name the handler leaves out keeps its
component as it is (gr.skip()); a name that is not an output is a mistake, and says so.
"""
from __future__ import annotations

import functools
import inspect
from types import SimpleNamespace

import gradio as gr


def of(ui: SimpleNamespace, *names: str) -> dict:
    """{name: component} for these names of a step's components (its `ui`)."""
    return {name: getattr(ui, name) for name in names}


def wire(fn, inputs, /, **outputs) -> dict:
    """fn=, inputs=, outputs= for an event listener whose `fn` returns {name: value}, names of `outputs`.

    The wrapper keeps `fn`'s signature (functools.wraps), so Gradio still passes gr.Request, gr.Progress
    and event data by it, and names the endpoint after it."""
    @functools.wraps(fn)
    def by_component(*args, **kwargs):
        values = fn(*args, **kwargs)
        unknown = set(values) - set(outputs)
        if unknown:
            raise KeyError(f"{fn.__name__} answered {sorted(unknown)}, which are not among its outputs "
                           f"{list(outputs)}")
        return {component: values.get(name, gr.skip()) for name, component in outputs.items()}

    return dict(fn=by_component, inputs=inputs, outputs=list(outputs.values()))


def with_runner(fn, runner):
    """`fn` with its keyword `runner` bound to the studio's JobRunner, and a signature without it, so
    Gradio (which reads the signature for gr.Request and inputs) never sees the parameter."""
    @functools.wraps(fn)
    def bound(*args, **kwargs):
        return fn(*args, runner=runner, **kwargs)

    signature = inspect.signature(fn)
    bound.__signature__ = signature.replace(parameters=[p for name, p in signature.parameters.items()
                                                        if name != "runner"])
    return bound
