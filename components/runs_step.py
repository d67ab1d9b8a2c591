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

from components import evaluation_view, multilabel_view, views, wrong_folder_view
from components.named import of, wire, with_runner
from components.session import user_of
from studio.runs import history
from studio.runs import JobRunner, RunBusyError, RunFolder
from studio.multilabel import decide
from studio.runs.checkpoints import ResumeError
from studio.training.trainer import resume_training

NO_COMPARISON = ("(no comparison)", "")
PICK_A_RUN = "Choose a run above to see its curves and confusion matrix."


def list_runs(chosen: str | None = None, other: str | None = None, request: gr.Request = None, *,
              runner: JobRunner):
    """table, run (dropdown) and other (the compare dropdown); keeps the current choices while they still exist."""
    rows = [multilabel_view.with_task(row) for row in history.list_runs(owner=user_of(request), live=runner.runs)]
    ids = [row["id"] for row in rows]
    choices = [(views.run_choice_label(row), row["id"]) for row in rows]
    readable = [row["id"] for row in rows if row["status"] != history.UNREADABLE]
    value = chosen if chosen in ids else (readable or ids or [None])[0]
    comparable = [(label, rid) for label, rid in choices if rid in readable]
    other_value = other if other in readable else ""
    return {"table": views.runs_table(rows), "run": gr.Dropdown(choices=choices, value=value),
            "other": gr.Dropdown(choices=[NO_COMPARISON, *comparable], value=other_value)}


def show_run(run_id: str | None, request: gr.Request = None, *, runner: JobRunner):
    """summary, loss and accuracy (charts), confusion (matrix), per_class (table), pr_curves (chart), pr_note
    and choices of one run."""
    empty = {"loss": None, "accuracy": None, "confusion": views.confusion_html(None, []),
             "per_class": views.per_class_table(None), "choices": "", "pr_curves": None,
             "pr_note": views.precision_recall_curves(None)[1]}
    if not run_id:
        return {"summary": PICK_A_RUN, **empty}
    try:
        run = history.load_run(run_id, owner=user_of(request), live=runner.runs)
    except history.RunNotFound as exc:
        return {"summary": f"**{exc}** Press Refresh.", **empty}
    past = run["history"]
    curves, curve_words = views.precision_recall_curves(run["ranking"])
    summary = multilabel_view.with_task(run["summary"])
    several = multilabel_view.is_multilabel(summary)
    words = (multilabel_view.figures_words(decide.read(summary["run_dir"]), summary.get("multilabel")) if several
             else views.balance_markdown(run["confusion"], run["classes"]))
    # a multi-label run's accuracy chart is hidden (its scores chart shows instead): left as it is, as a hidden
    # chart must never be emptied (see train_step.poll)
    accuracy = gr.skip() if several else views.curves(past, "accuracy") if past else None
    return {"summary": views.run_summary_markdown(summary) + words,
            "pr_curves": curves, "pr_note": curve_words,
            "loss": views.curves(past, "loss") if past else None,
            "accuracy": accuracy,
            "confusion": views.confusion_html(run["confusion"], run["classes"], clickable=True),
            "per_class": views.per_class_table(run["per_class"]),
            "choices": views.choices_markdown({"config": {"choices": run["choices"]}})}


def show_labels(run_id: str | None, request: gr.Request = None):
    """The multi-label part of one run: scores (its mAP and F1 chart), label_table, label (picker), label_note,
    false_positives and false_negatives; for a single-label run it is emptied (and hidden: run_layout)."""
    folder = run_folder(run_id, user_of(request))
    status = multilabel_view.run_status(folder)
    shown = multilabel_view.run_labels(folder, status)
    several = multilabel_view.is_multilabel(status)
    past = RunFolder(folder).history() if several else []
    return {**shown, "scores": views.score_curves(past) if past else gr.skip()}


def run_layout(run_id: str | None, request: gr.Request = None):
    """What applies to the run shown: a multi-label run's scores chart and per-label part instead of the accuracy
    chart, the confusion matrix and the photos in the wrong folder (names: accuracy, scores, multilabel, the
    evaluation's row and photos_box, wrong_folder)."""
    several = multilabel_view.is_multilabel(multilabel_view.run_status(run_folder(run_id, user_of(request))))
    return {"accuracy": gr.LinePlot(visible=views.shown_if(not several)),
            "scores": gr.LinePlot(visible=views.shown_if(several)),
            "multilabel": gr.Column(elem_classes=views.classes_if(several)),
            "row": gr.Row(elem_classes=["ts-evaluation-row", *views.classes_if(not several)]),
            "photos_box": gr.Accordion(elem_classes=views.classes_if(not several)),
            "wrong_folder": gr.Accordion(elem_classes=views.classes_if(not several))}


def run_folder(run_id: str | None, user: str | None = None) -> str | None:
    try:
        return str(history.find_run(run_id, owner=user)) if run_id else None
    except history.RunNotFound:
        return None


def run_photos(run_id: str | None, request: gr.Request = None):
    """The evaluation's true_class, predicted_class (pickers), cell_note, cell_gallery, mistakes_note and
    mistakes for one run."""
    folder = run_folder(run_id, user_of(request))
    classes = []
    if folder:
        try:
            classes = history.load_run(run_id)["classes"]
        except history.RunNotFound:
            pass
    return {**evaluation_view.class_pickers(classes), "cell_note": evaluation_view.PICK_HINT, "cell_gallery": [],
            **evaluation_view.confident_mistakes(folder), "looked": False}   # another run: plain photos again


def compare_runs(run_id: str | None, other_id: str | None, request: gr.Request = None, *, runner: JobRunner):
    """compare (the chart, or None) and compare_note: both runs' validation accuracy, one line per run."""
    def answer(chart, note: str) -> dict:
        return {"compare": chart, "compare_note": note}

    if not run_id or not other_id:
        return answer(None, "Pick a second run under **Compare with** to draw both runs' validation accuracy here.")
    if run_id == other_id:
        return answer(None, "That is the same run; pick a different one to compare.")
    runs = []
    for rid in (run_id, other_id):
        try:
            runs.append(history.load_run(rid, owner=user_of(request), live=runner.runs))
        except history.RunNotFound as exc:
            return answer(None, f"**{exc}** Press Refresh.")
    missing = [run["summary"]["id"] for run in runs if not run["history"]]
    if missing:
        return answer(None, f"Run {missing[0]} has no finished epoch yet, so there is no curve to compare.")
    several = [multilabel_view.is_multilabel(multilabel_view.with_task(run["summary"])) for run in runs]
    if several[0] != several[1]:
        return answer(None, "One of these runs gives one class per photo and the other several labels per photo: "
                            "accuracy and mAP measure different things, so they are not drawn on one chart.")
    names = [views.run_series_name(run["summary"]) for run in runs]
    if names[0] == names[1]:  # same data, same second: only the ids tell them apart
        names = [run_id, other_id]
    series = [(name, run["history"]) for name, run in zip(names, runs)]
    measure = "mAP" if several[0] else "accuracy"
    return answer(views.compare_curves(series, "val_map" if several[0] else "val_accuracy"),
                  f"Validation {measure} per epoch: **{names[0]}** ({run_id}) against **{names[1]}** ({other_id}). "
                  "Higher is better.")


def compare_titles(run_id: str | None, other_id: str | None, request: gr.Request = None):
    """The comparison chart's title and axis for what it draws: mAP when the run shown is multi-label."""
    several = multilabel_view.is_multilabel(multilabel_view.run_status(run_folder(run_id, user_of(request))))
    measure = "mAP" if several else "accuracy"
    return gr.LinePlot(title=f"Validation {measure}, two runs", y_title=f"validation {measure}")


def use_run(run_id: str | None, target: str, user: str | None = None):
    """run_dir, tabs and use_message: point Try it / Export at this run's model and go there."""
    if not run_id:
        return {"run_dir": gr.skip(), "tabs": gr.skip(), "use_message": "Choose a run first."}
    try:
        folder = history.find_run(run_id, owner=user)
    except history.RunNotFound as exc:
        return {"run_dir": gr.skip(), "tabs": gr.skip(), "use_message": f"**{exc}** Press Refresh."}
    if not RunFolder(folder).has_model():
        return {"run_dir": gr.skip(), "tabs": gr.skip(),
                "use_message": ("**This run has no model to use**: it ended before its first epoch "
                                "finished. Choose another run.")}
    step = "Try it" if target == "try" else "Export"
    return {"run_dir": str(Path(folder)), "tabs": gr.Tabs(selected=target),
            "use_message": f"Using run **{run_id}** in **{step}**."}


def try_run(run_id: str | None, request: gr.Request = None):
    return use_run(run_id, "try", user_of(request))


def export_run(run_id: str | None, request: gr.Request = None):
    return use_run(run_id, "export", user_of(request))


def resume_run(run_id: str | None, request: gr.Request = None, *, runner: JobRunner):
    """tabs and use_message: carry on the chosen run after its last finished epoch, watched on the Train tab."""
    if not run_id:
        return {"tabs": gr.skip(), "use_message": "Choose a run first."}
    user = user_of(request)
    try:
        folder = history.find_run(run_id, owner=user)
        resume_training(folder, owner=user, runner=runner)
    except history.RunNotFound as exc:
        return {"tabs": gr.skip(), "use_message": f"**{exc}** Press Refresh."}
    except (ResumeError, RunBusyError) as exc:
        return {"tabs": gr.skip(), "use_message": f"**Cannot resume {run_id}:** {exc}"}
    return {"tabs": gr.Tabs(selected="train"), "use_message": f"Resuming **{run_id}**: follow it on the **Train** tab."}


def can_resume(run_id: str | None, request: gr.Request = None):
    """Show Resume only for a run that has an epoch saved to carry on from."""
    try:
        folder = history.find_run(run_id, owner=user_of(request)) if run_id else None
    except history.RunNotFound:
        folder = None
    return gr.Button(visible=bool(folder and RunFolder(folder).checkpoint.is_file()))


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
        # a multi-label run's chart, shown instead of the accuracy one (run_layout)
        scores_plot = gr.LinePlot(None, x="epoch", y="value", color="series", color_map=views.SCORE_COLOURS,
                                  title="mAP and F1 on validation (higher is better)", height=260, y_lim=[0, 1],
                                  x_title="epoch", y_title="score", sort=views.EPOCH_ORDER, visible="hidden",
                                  elem_id="runs-scores",
                                  caption="mAP: how well photos with each label are ranked above those without. "
                                          "F1: the labels given at 0.5, micro (all answers) and macro (per label).")
    compare_note = gr.Markdown("Pick a second run under **Compare with** to draw both runs' validation "
                               "accuracy here.", elem_id="runs-compare-note")
    compare_plot = gr.LinePlot(None, x="epoch", y="value", color="series", title="Validation accuracy, two runs",
                               height=260, y_lim=[0, 1], x_title="epoch", y_title="validation accuracy",
                               sort=views.EPOCH_ORDER,
                               caption="Each line is one run, named by its data and start time.")
    labels = multilabel_view.render("runs-")
    evaluation = evaluation_view.render("Confusion matrix (best epoch)", elem_prefix="runs-", heatmaps=True)
    pr_curves = gr.LinePlot(None, x="recall", y="precision", color="class", title="Precision and recall, per class",
                            height=300, x_lim=[0, 1], y_lim=[0, 1.02], x_title="recall", y_title="precision",
                            sort="x", elem_id="runs-pr-curves")
    pr_note = gr.Markdown(views.precision_recall_curves(None)[1], elem_id="runs-pr-note")
    wrong_folder = wrong_folder_view.render()
    choices = gr.Markdown("", elem_id="runs-choices")
    return SimpleNamespace(refresh=refresh, table=table, run=run, other=other, summary=summary,
                           try_button=try_button, export_button=export_button, resume_button=resume_button,
                           use_message=use_message,
                           loss=loss_plot, accuracy=acc_plot, scores=scores_plot, labels=labels,
                           compare=compare_plot, compare_note=compare_note,
                           confusion=evaluation.confusion, per_class=evaluation.per_class, evaluation=evaluation,
                           pr_curves=pr_curves, pr_note=pr_note, wrong_folder=wrong_folder, choices=choices)


def bind(ui: SimpleNamespace, run_dir: gr.State, tabs: gr.Tabs, tab: gr.Tab, runner: JobRunner,
         data_ui: SimpleNamespace, data_source: gr.State) -> None:
    """`data_ui` and `data_source`: the Data step, whose findings take the photos picked as in the wrong folder."""
    listing = wire(with_runner(list_runs, runner), [ui.run, ui.other], **of(ui, "table", "run", "other"))
    ui.refresh.click(**listing, api_name="list_runs")
    tab.select(**listing, api_visibility="private")
    ui.run.change(**wire(with_runner(show_run, runner), ui.run,
                         **of(ui, "summary", "loss", "accuracy", "confusion", "per_class", "pr_curves", "pr_note",
                              "choices")),
                  api_name="show_run")
    ev = ui.evaluation
    evaluation_view.follow_galleries(ev, ui.run.change(
        **wire(run_photos, ui.run, **of(ev, "true_class", "predicted_class", "cell_note", "cell_gallery",
                                        "mistakes_note", "mistakes", "looked")), api_visibility="private"))
    evaluation_view.bind(ev, ui.run, run_folder, api_prefix="runs_")
    ml = ui.labels
    labelled = ui.run.change(**wire(show_labels, ui.run, scores=ui.scores,
                                    **of(ml, "label_table", "label", "label_note", "false_positives",
                                         "false_negatives")), api_name="run_labels")
    labelled.then(**wire(run_layout, ui.run, accuracy=ui.accuracy, scores=ui.scores, multilabel=ml.box, row=ev.row,
                         photos_box=ev.photos_box, wrong_folder=ui.wrong_folder.box), api_visibility="private",
                  show_progress="hidden")
    multilabel_view.follow_galleries(ml, labelled)
    multilabel_view.bind(ml, ui.run, run_folder)
    wrong_folder_view.bind(ui.wrong_folder, ui.run, run_folder, data_ui, data_source)
    comparing = wire(with_runner(compare_runs, runner), [ui.run, ui.other], **of(ui, "compare", "compare_note"))
    titles = dict(fn=compare_titles, inputs=[ui.run, ui.other], outputs=ui.compare, api_visibility="private",
                  show_progress="hidden")
    ui.other.change(**comparing, api_name="compare_runs").then(**titles)
    ui.run.change(**comparing, api_visibility="private").then(**titles)
    used = dict(run_dir=run_dir, tabs=tabs, use_message=ui.use_message)
    ui.try_button.click(**wire(try_run, ui.run, **used), api_name="try_run")
    ui.export_button.click(**wire(export_run, ui.run, **used), api_name="export_run")
    ui.run.change(can_resume, ui.run, ui.resume_button, api_visibility="private")
    ui.resume_button.click(**wire(with_runner(resume_run, runner), ui.run, tabs=tabs, use_message=ui.use_message),
                           api_name="resume_run")
