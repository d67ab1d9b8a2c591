"""Named points where tests make the engine meet what really happens: a full disk, a GPU out
of memory. A hook is a function called with the point's context; it raises to inject the fault.
Nothing is registered in normal use, so each check costs one dictionary lookup. Process-wide on
purpose: a test sets a hook in its own thread for a fault the training thread must meet.
"""
from __future__ import annotations

from typing import Callable

_hooks: dict[str, Callable[..., None]] = {}


def set_hook(point: str, hook: Callable[..., None] | None) -> None:
    """Install (or with None remove) the hook for `point` ("save_model", "train_step")."""
    if hook is None:
        _hooks.pop(point, None)
    else:
        _hooks[point] = hook


def check(point: str, **context) -> None:
    hook = _hooks.get(point)
    if hook is not None:
        hook(**context)
