"""Who is using this browser session, for pages shared by several people.

With login on (`studio serve --auth`), Gradio passes the signed-in name on each
request; each person then sees and steers only their own runs. Without login
the studio is one person's tool and every run is theirs (user None). `model_path` is the model
such a person's Try it and Export steps work on.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from studio.runs import JobRunner, RunFolder


def user_of(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None


def model_path(run_dir: str | None, user: str | None = None, *, runner: JobRunner) -> Path | None:
    """The model of this session's run, else of the studio's latest run (with login: the person's own)."""
    latest = runner.latest_for(user)
    for candidate in (run_dir, latest and str(latest.dir)):
        if candidate and RunFolder(candidate).has_model():
            return RunFolder(candidate).model
    return None
