"""Runs: every past run from disk, its curves and confusion matrix, a comparison, and reuse.

Reads only what `studio.history` reads back from the run folders, so it shows
runs from before a restart too (cut-off ones as "interrupted"). "Try" and
"Export" point the app's run_dir at the chosen run, which the Try and Export
steps already follow; "Resume" carries on a stopped, failed or interrupted run
and shows it on the Train tab, which follows the running job.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from components import evaluation_view, views
from components.session import user_of
from studio import history
from studio.runs import CHECKPOINT_FILE, MODEL_FILE, RunBusyError
from studio.checkpoints import ResumeError
from studio.training import resume_training

NO_COMPARISON = ("(no comparison)", "")
PICK_A_RUN = "Choose a run above to see its curves and confusion matrix."


def list_runs(chosen: str | None = None, other: str | None = None, request: gr.Request = None):
    """(table, run dropdown, compare dropdown); keeps the current choices while they still exist."""
    rows = history.list_runs(owner=user_of(request))
    ids = [row["id"] for row in rows]
    choices = [(views.run_choice_label(row), row["id"]) for row in rows]
    readable = [row["id"] for row in rows if row["status"] != history.UNREADABLE]
    value = chosen if chosen in ids else (readable or ids or [None])[0]
    comparable = [(label, rid) for label, rid in choices if rid in readable]
    other_value = other if other in readable else ""
    return (views.runs_table(rows), gr.Dropdown(choices=choices, value=value),
            gr.Dropdown(choices=[NO_COMPARISON, *comparable], value=other_value))


def show_run(run_id: str | None, request: gr.Request = None):
    """(summary, loss chart, accuracy chart, confusion matrix, per-class table, choices) of one run."""
    empty = (None, None, views.confusion_html(None, []), views.per_class_table(None), "")
    if not run_id:
        return (PICK_A_RUN, *empty)
    try:
        run = history.load_run(run_id, owner=user_of(request))
    except history.RunNotFound as exc:
        return (f"**{exc}** Press Refresh.", *empty)
    past = run["history"]
    return (views.run_summary_markdown(run["summary"]),
            views.curves(past, "loss") if past else None,
            views.curves(past, "accuracy") if past else None,
            views.confusion_html(run["confusion"], run["classes"], clickable=True),
            views.per_class_table(run["per_class"]),
            views.choices_markdown({"config": {"choices": run["choices"]}}))


def run_folder(run_id: str | None, user: str | None = None) -> str | None:
    try:
        return str(history.find_run(run_id, owner=user)) if run_id else None
    except history.RunNotFound:
        return None


def run_photos(run_id: str | None, request: gr.Request = None):
    """(true picker, predicted picker, cell note, cell gallery, mistakes note, mistakes) for one run."""
    folder = run_folder(run_id, user_of(request))
    classes = []
    if folder:
        try:
            classes = history.load_run(run_id)["classes"]
        except history.RunNotFound:
            pass
    return (*evaluation_view.class_pickers(classes), evaluation_view.PICK_HINT, [],
            *evaluation_view.confident_mistakes(folder))


def compare_runs(run_id: str | None, other_id: str | None, request: gr.Request = None):
    """(comparison chart or None, note): both runs' validation accuracy, one line per run."""
    if not run_id or not other_id:
        return None, "Pick a second run under **Compare with** to draw both runs' validation accuracy here."
    if run_id == other_id:
        return None, "That is the same run; pick a different one to compare."
    runs = []
    for rid in (run_id, other_id):
        try:
            runs.append(history.load_run(rid, owner=user_of(request)))
        except history.RunNotFound as exc:
            return None, f"**{exc}** Press Refresh."
    missing = [run["summary"]["id"] for run in runs if not run["history"]]
    if missing:
        return None, f"Run {missing[0]} has no finished epoch yet, so there is no curve to compare."
    names = [views.run_series_name(run["summary"]) for run in runs]
    if names[0] == names[1]:  # same data, same second: only the ids tell them apart
        names = [run_id, other_id]
    series = [(name, run["history"]) for name, run in zip(names, runs)]
    return views.compare_curves(series), (f"Validation accuracy per epoch: **{names[0]}** ({run_id}) against "
                                          f"**{names[1]}** ({other_id}). Higher is better.")


def use_run(run_id: str | None, target: str, user: str | None = None):
    """(run_dir, tab, message): point Try it / Export at this run's model and go there."""
    if not run_id:
        return gr.skip(), gr.skip(), "Choose a run first."
    try:
        folder = history.find_run(run_id, owner=user)
    except history.RunNotFound as exc:
        return gr.skip(), gr.skip(), f"**{exc}** Press Refresh."
    if not (folder / MODEL_FILE).is_file():
        return gr.skip(), gr.skip(), ("**This run has no model to use**: it ended before its first epoch "
                                      "finished. Choose another run.")
    step = "Try it" if target == "try" else "Export"
    return str(Path(folder)), gr.Tabs(selected=target), f"Using run **{run_id}** in **{step}**."


def try_run(run_id: str | None, request: gr.Request = None):
    return use_run(run_id, "try", user_of(request))


def export_run(run_id: str | None, request: gr.Request = None):
    return use_run(run_id, "export", user_of(request))


def resume_run(run_id: str | None, request: gr.Request = None):
    """(tab, message): carry on the chosen run after its last finished epoch, watched on the Train tab."""
    if not run_id:
        return gr.skip(), "Choose a run first."
    user = user_of(request)
    try:
        folder = history.find_run(run_id, owner=user)
        resume_training(folder, owner=user)
    except history.RunNotFound as exc:
        return gr.skip(), f"**{exc}** Press Refresh."
    except (ResumeError, RunBusyError) as exc:
        return gr.skip(), f"**Cannot resume {run_id}:** {exc}"
    return gr.Tabs(selected="train"), f"Resuming **{run_id}**: follow it on the **Train** tab."


def can_resume(run_id: str | None, request: gr.Request = None):
    """Show Resume only for a run that has an epoch saved to carry on from."""
    try:
        folder = history.find_run(run_id, owner=user_of(request)) if run_id else None
    except history.RunNotFound:
        folder = None
    return gr.Button(visible=bool(folder and (folder / CHECKPOINT_FILE).is_file()))


def render() -> SimpleNamespace:
    gr.Markdown("Every training you ran is kept. Look back at any of them, compare two, "
                "or pick one to try or export.")
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="runs-refresh")
        gr.Markdown("Newest first. **Refresh** reads the list again (it also refreshes when you open this tab).")
    table = gr.Dataframe(views.runs_table([]), label="All runs", interactive=False, elem_id="runs-table",
                         wrap=True)
    gr.Markdown("*Interrupted* means the studio was restarted while the run trained; its best model so far "
                "is still kept, and **Resume** carries it on from its last finished epoch (also for a "
                "stopped or failed run).", elem_classes="ts-help")
    with gr.Row():
        run = gr.Dropdown([], value=None, label="Run to look at",
                          info="Shows this run's curves, confusion matrix and what the studio chose for it.")
        other = gr.Dropdown([NO_COMPARISON], value="", label="Compare with",
                            info="Draws this second run's validation accuracy next to the first one's.")
    summary = gr.Markdown(PICK_A_RUN, elem_id="runs-summary")
    with gr.Row():
        try_button = gr.Button("Try this run", variant="primary", elem_id="runs-try")
        export_button = gr.Button("Export this run", elem_id="runs-export")
        resume_button = gr.Button("Resume this run", visible=False, elem_id="runs-resume")
    use_message = gr.Markdown("Try and Export use the run chosen above instead of the latest one.",
                              elem_id="runs-use-message")
    with gr.Row():
        # charts start empty (None): one that starts from an empty table never draws later data
        loss_plot = gr.LinePlot(None, x="epoch", y="value", color="series", color_map=views.SERIES_COLOURS,
                                title="Loss (lower is better)", height=260, sort=views.EPOCH_ORDER,
                                x_title="epoch", y_title="loss",
                                caption="How wrong the model was, per epoch, on training and validation photos.")
        acc_plot = gr.LinePlot(None, x="epoch", y="value", color="series", color_map=views.SERIES_COLOURS,
                               title="Accuracy (higher is better)", height=260, y_lim=[0, 1],
                               x_title="epoch", y_title="accuracy", sort=views.EPOCH_ORDER,
                               caption="Share of photos the model got right, per epoch.")
    compare_note = gr.Markdown("Pick a second run under **Compare with** to draw both runs' validation "
                               "accuracy here.", elem_id="runs-compare-note")
    compare_plot = gr.LinePlot(None, x="epoch", y="value", color="series", title="Validation accuracy, two runs",
                               height=260, y_lim=[0, 1], x_title="epoch", y_title="validation accuracy",
                               sort=views.EPOCH_ORDER,
                               caption="Each line is one run, named by its data and start time.")
    evaluation = evaluation_view.render("Confusion matrix (best epoch)", elem_prefix="runs-")
    choices = gr.Markdown("", elem_id="runs-choices")
    return SimpleNamespace(refresh=refresh, table=table, run=run, other=other, summary=summary,
                           try_button=try_button, export_button=export_button, resume_button=resume_button,
                           use_message=use_message,
                           loss=loss_plot, accuracy=acc_plot, compare=compare_plot, compare_note=compare_note,
                           confusion=evaluation.confusion, per_class=evaluation.per_class, evaluation=evaluation, choices=choices)


def bind(ui: SimpleNamespace, run_dir: gr.State, tabs: gr.Tabs, tab: gr.Tab) -> None:
    listing = dict(fn=list_runs, inputs=[ui.run, ui.other], outputs=[ui.table, ui.run, ui.other])
    ui.refresh.click(**listing, api_name="list_runs")
    tab.select(**listing, api_visibility="private")
    ui.run.change(show_run, ui.run, [ui.summary, ui.loss, ui.accuracy, ui.confusion, ui.per_class, ui.choices],
                  api_name="show_run")
    ev = ui.evaluation
    evaluation_view.follow_galleries(ev, ui.run.change(
        run_photos, ui.run, [ev.true_class, ev.predicted_class, ev.cell_note, ev.cell_gallery, ev.mistakes_note,
                             ev.mistakes], api_visibility="private"))
    evaluation_view.bind(ev, ui.run, run_folder, api_prefix="runs_")
    comparing = dict(fn=compare_runs, inputs=[ui.run, ui.other], outputs=[ui.compare, ui.compare_note])
    ui.other.change(**comparing, api_name="compare_runs")
    ui.run.change(**comparing, api_visibility="private")
    ui.try_button.click(try_run, ui.run, [run_dir, tabs, ui.use_message], api_name="try_run")
    ui.export_button.click(export_run, ui.run, [run_dir, tabs, ui.use_message], api_name="export_run")
    ui.run.change(can_resume, ui.run, ui.resume_button, api_visibility="private")
    ui.resume_button.click(resume_run, ui.run, [tabs, ui.use_message], api_name="resume_run")
