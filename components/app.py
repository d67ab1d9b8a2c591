"""Assemble the wizard and launch it.

Offline by default: analytics and the version check are off, there is no share
link, and the theme's fonts are served by Gradio itself (no CDN).
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from components import data_step, export_step, model_step, runs_step, train_step, try_step  # noqa: E402
from components.named import wire, with_runner  # noqa: E402
from components.session import user_of  # noqa: E402
from studio import paths  # noqa: E402
from studio.runs import JobRunner  # noqa: E402
from studio.training.trainer import requeue_saved  # noqa: E402

MAX_UPLOAD = os.environ.get("STUDIO_MAX_UPLOAD", "2gb")  # largest .zip the page accepts

STEPS = [("data", "1. Data"), ("model", "2. Model"), ("train", "3. Train"), ("try", "4. Try it"),
         ("export", "5. Export"), ("runs", "Runs")]


VIEWS = ["Simple", "Advanced"]
GRADIO_CACHE_CLEANUP = (3600, 24 * 3600)  # (check every, delete copies older than), seconds


def header_html() -> str:
    logo = (paths.ASSETS_DIR / "logo.svg").read_text()
    return (f"<div id='ts-header'>{logo}<div><h1>Transfer Studio</h1>"
            "<p>Your photos + a pretrained network = your own image classifier, in minutes.</p></div></div>")


def build(runner: JobRunner | None = None) -> gr.Blocks:
    """The whole wizard; its trainings run in `runner` (a new JobRunner unless one is given)."""
    runner = runner or JobRunner()
    # Gradio keeps a copy of every file it serves: delete copies older than a day, checked hourly
    with gr.Blocks(title="Transfer Studio", analytics_enabled=False, delete_cache=GRADIO_CACHE_CLEANUP) as demo:
        with gr.Row(equal_height=True):
            gr.HTML(header_html(), scale=5)
            view = gr.Radio(VIEWS, value="Simple", label="View", scale=1, min_width=200, elem_id="view-switch",
                            info="Simple: the studio decides. Advanced: every setting.")
        data_source = gr.State(None)
        run_dir = gr.State(None)
        with gr.Tabs(selected="data") as tabs:
            with gr.Tab(STEPS[0][1], id="data"):
                data_ui = data_step.render()
            with gr.Tab(STEPS[1][1], id="model"):
                model_ui = model_step.render()
            with gr.Tab(STEPS[2][1], id="train"):
                train_ui = train_step.render()
            with gr.Tab(STEPS[3][1], id="try"):
                try_ui = try_step.render()
            with gr.Tab(STEPS[4][1], id="export"):
                export_ui = export_step.render()
            with gr.Tab(STEPS[5][1], id="runs") as runs_tab:
                runs_ui = runs_step.render()
        data_step.bind(data_ui, data_source)
        model_step.bind(model_ui, data_source, runner)
        train_step.bind(train_ui, data_source, model_ui, run_dir, data_ui.leave_out, data_ui.findings_state, runner)
        try_step.bind(try_ui, run_dir, runner)
        export_step.bind(export_ui, run_dir, runner)
        runs_step.bind(runs_ui, run_dir, tabs, runs_tab, runner, data_ui, data_source)
        advanced_only = train_ui.advanced_only
        view.change(lambda v: dict.fromkeys(advanced_only, gr.update(visible=v == "Advanced")), view, advanced_only,
                    api_visibility="private")
        for ui, target in ((data_ui, "model"), (model_ui, "train"), (train_ui, "try"), (try_ui, "export")):
            ui.next.click(lambda t=target: gr.Tabs(selected=t), None, tabs, api_visibility="private")
        # Try it and Export show their controls only once there is a model: checked whenever the chosen
        # run changes and whenever a tab opens (a run may have finished meanwhile)
        ready = dict(**wire(with_runner(models_ready, runner), run_dir,
                            try_no_model=try_ui.no_model, try_ready=try_ui.ready,
                            export_target=export_ui.target, export_ready=export_ui.ready),
                     api_visibility="private", show_progress="hidden")
        run_dir.change(**ready)
        tabs.change(**ready)
    return demo


def models_ready(folder: str | None, request: gr.Request, *, runner: JobRunner):
    """What Try it and Export show: their no-model note, or their controls (try_step/export_step.readiness),
    each named after its step."""
    user = user_of(request)
    shown = {"try": try_step.readiness(folder, user, runner=runner),
             "export": export_step.readiness(folder, user, runner=runner)}
    return {f"{step}_{name}": value for step, parts in shown.items() for name, value in parts.items()}


def theme() -> gr.themes.Base:
    return gr.themes.Default(primary_hue="blue", neutral_hue="slate", text_size="lg")


def launch(host: str = "127.0.0.1", port: int = 7860, block: bool = True, auth: list[tuple[str, str]] | None = None,
           runner: JobRunner | None = None):
    """Start the server; returns (demo, url) when block is False (tests). Its trainings run in `runner`
    (a new JobRunner unless one is given, as a test does to wait for them).

    With `auth` [(user, password)], the page asks for a login and each person sees only their own runs.
    """
    runner = runner or JobRunner()
    requeue_saved(runner)   # runs that were waiting when the studio last stopped wait again, in order
    demo = build(runner)
    demo.queue(default_concurrency_limit=4)
    _, url, _ = demo.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                            prevent_thread_lock=not block, show_error=False, theme=theme(),
                            css_paths=[paths.ASSETS_DIR / "studio.css"], allowed_paths=[str(paths.EXAMPLE_DATASET)],
                            favicon_path=str(paths.ASSETS_DIR / "logo.svg"), quiet=not block,
                            footer_links=["api"], max_file_size=MAX_UPLOAD, auth=auth or None,
                            auth_message="Transfer Studio: sign in to see your own runs.")
    return demo, url
