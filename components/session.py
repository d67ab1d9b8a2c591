"""Who is using this browser session, for pages shared by several people.

With login on (`studio serve --auth`), Gradio passes the signed-in name on each
request; each person then sees and steers only their own runs. Without login
the studio is one person's tool and every run is theirs (user None).
"""
from __future__ import annotations

import gradio as gr


def user_of(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) if request is not None else None
