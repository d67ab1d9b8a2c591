"""Step 3, Train: start and stop a run; watch curves and the confusion matrix live.

The run trains in a background thread; this page only polls it (a gr.Timer),
so reloading the page re-attaches to the run instead of losing it.
"""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from components import evaluation_view, multilabel_view, settings_panel, views
from components.named import of, wire, with_runner
from components.session import user_of
from studio import backbones, budgets
from studio.config import command_line
from studio.data.checks import DEFAULT_EXCLUDE, EXCLUDABLE
from studio.lr_finder import find_lr
from studio.runs import ACTIVE_STATUSES, JobRunner, RunBusyError, owned_by
from studio.training.config import TrainConfig
from studio.training.trainer import start_training

TICK_SECONDS = 2.0  # how often an open page asks for news: each ask costs the server ~20 ms of CPU
BUDGET_CHOICES = [("Quick", "quick"), ("Balanced (recommended)", "balanced"), ("Best", "best")]
EPOCH_CHOICES = ["Auto", 1, 2, 3, 5, 8, 10, 20, 30, 50]
LR_CHOICES = ["Auto", "0.01", "0.003", "0.001", "0.0003", "0.0001"]


def gpu_count() -> int:
    """GPUs this machine has (the GPUs control shows from two)."""
    from studio.runs.runner import training_slots
    return training_slots()


def freeze_argument(backbone: str, depth: float) -> str:
    total = backbones.freeze_choices(backbone)["total_groups"]
    return "all" if int(depth) >= total else str(int(depth))


# the Advanced panel's settings, in its order (each widget is built from its setting: settings_panel)
ADVANCED = ("weight_decay", "label_smoothing", "patience", "augment", "class_weighting", "batchnorm", "seed",
            "optimizer", "schedule", "head_epochs", "augment_strength", "test_fraction")


def page_config(data_source, backbone, mode, depth, epochs, lr, batch_size, leave_out=None, findings=None,
                *rest, owner: str | None = None) -> TrainConfig:
    """The TrainConfig the page's controls ask for (the same for Start and for the repeat command).

    `data_source` is the Data step's {"source", "prefix_separator", "unlabeled"} (a plain path also works);
    `findings` its finding dicts: suggestions computed there (outliers) are left out by
    file, exactly as shown, instead of being computed again. `rest`: the Advanced panel's values (in
    ADVANCED's order), then the training time (Quick / Balanced / Best), Best's minutes and the GPUs (0: one
    device, in the studio; 2 or more: torchrun, shown only on a machine with several)."""
    if isinstance(data_source, str):
        data_source = {"source": data_source, "prefix_separator": None}
    advanced, timing = rest[:len(ADVANCED)], list(rest[len(ADVANCED):]) + [None, None, None]
    return TrainConfig(budget=budgets.page_budget(timing[0] or budgets.DEFAULT, timing[1]), gpus=int(timing[2] or 0),
                       data=data_source["source"], prefix_separator=data_source.get("prefix_separator"),
                       backbone=backbone, freeze="auto" if mode == "auto" else freeze_argument(backbone, depth),
                       epochs=None if epochs in (None, "Auto") else int(epochs),
                       lr=None if lr in (None, "Auto") else float(lr),
                       batch_size=None if batch_size in (None, "", "auto") else int(batch_size),
                       exclude=_left_out_kinds(leave_out, findings),
                       exclude_files=_chosen_files(leave_out, findings, ("outliers", "wrong_folder")),
                       unlabeled=data_source.get("unlabeled"), task=data_source.get("task") or "auto",
                       owner=owner, **settings_panel.values_as_settings(ADVANCED, advanced))


def start(data_source, *controls, runner: JobRunner, owner: str | None = None):
    """Start a run in the studio's `runner`; returns status (markdown) and run_dir (the run's folder).
    Takes page_config's controls."""
    if not data_source:
        return {"status": "**Choose data first** (step 1: use the example or upload a .zip).", "run_dir": gr.skip()}
    try:
        run = start_training(page_config(data_source, *controls, owner=owner), runner=runner)
    except RunBusyError as exc:
        gr.Warning(str(exc))
        return {"status": f"**Not started.** {exc}", "run_dir": gr.skip()}
    except (ValueError, backbones.BackboneError) as exc:
        return {"status": f"**Not started.** {exc}", "run_dir": gr.skip()}
    snapshot = run.snapshot()
    words = views.status_line(snapshot) if snapshot["status"] == "queued" else "**Starting…**"
    return {"status": words, "run_dir": snapshot["run_dir"]}


def repeat_command(data_source, *controls) -> str:
    """The `studio train` command line that asks for the run the page is about to start (markdown)."""
    if not data_source:
        return "Choose data first (step 1); the command line that repeats the run appears here."
    try:
        line = command_line(page_config(data_source, *controls))
    except (ValueError, backbones.BackboneError) as exc:
        return f"No command yet: {exc}"
    return ("The same run from a terminal (after it, `studio train --config RUN_FOLDER` repeats it exactly "
            f"as asked):\n\n```bash\n{line}\n```")


def _left_out_kinds(leave_out, findings) -> list[str]:
    """The findings to leave out: the kinds ticked, and the default ones the page did not offer (the data
    has none of them), so an untouched page asks for the CLI's default and its command carries no flag."""
    offered = {f["kind"] for f in findings or []}
    chosen = set(leave_out or []) | {k for k in DEFAULT_EXCLUDE if k not in offered}
    return [k for k in EXCLUDABLE if k in chosen and k != "outliers"]   # outliers are left out by file


def _chosen_files(leave_out, findings, kinds) -> dict:
    return {path: f"left out: {f['kind'].replace('_', ' ')}" for f in findings or [] if f["kind"] in kinds
            and f["kind"] in (leave_out or []) for path in f["exclude"]}


def suggest_lr(data_source, backbone, mode, depth, progress=gr.Progress(), *, runner: JobRunner):
    """Run the learning-rate range test; returns lr (the learning-rate dropdown) and suggestion (words)."""
    if not data_source:
        return {"lr": gr.skip(), "suggestion": "**Choose data first** (step 1)."}
    if runner.busy():
        return {"lr": gr.skip(), "suggestion": "A training is running; suggest a learning rate when it has finished."}
    if isinstance(data_source, str):
        data_source = {"source": data_source}
    if data_source.get("multilabel"):
        return {"lr": gr.skip(), "suggestion": "**No suggestion for several labels per photo yet:** the range test "
                                               "learns one class per photo. Auto's learning rate suits both."}
    freeze = "auto" if mode == "auto" else freeze_argument(backbone, depth)
    try:
        result = find_lr(data_source["source"], backbone, freeze,
                         progress=lambda d, t: progress((d, t), desc="Trying learning rates", unit="steps"))
    except (ValueError, backbones.BackboneError) as exc:
        return {"lr": gr.skip(), "suggestion": f"**No suggestion.** {exc}"}
    return {"lr": gr.Dropdown(value=f"{result['lr']:.2g}", allow_custom_value=True), "suggestion": result["words"]}


def stop(owner: str | None = None, run_dir: str | None = None, *, runner: JobRunner):
    """Stop this page's run (else this person's latest): a training one after its batch, a queued one
    leaves the queue."""
    run = _own_run(owner, runner, run_dir)
    if run is None or not run.is_active():
        others = [r for r in runner.active() if not owned_by(r.snapshot()["config"], owner)]
        return ("Only the person who started a training can stop it." if others
                else "Nothing is training right now.")
    waiting = run.thread is None
    if runner.stop(run):
        return ("**Taken out of the queue.** It never started, so nothing was lost." if waiting else
                "**Stopping after the current batch…** The best model so far is kept.")
    return "Nothing is training right now."


def _own_run(user: str | None, runner: JobRunner, run_dir: str | None):
    """The run this page started (its run_dir), else the newest run this person may see."""
    run = runner.find(run_dir) if run_dir else None
    if run is not None and owned_by(run.snapshot()["config"], user):
        return run
    return runner.latest_for(user)


def _visible_run(user: str | None, runner: JobRunner, run_dir: str | None = None):
    """(snapshot of the run this page shows or None, status words when only someone else's run is busy).
    Each page follows the run it started, so two tabs (or people) with runs in the queue each see their own.
    A queued run's place and expected start are brought up to date first."""
    runner.refresh()
    run = _own_run(user, runner, run_dir)
    if run is not None:
        return run.snapshot(), None
    others = [r.snapshot() for r in runner.active()]
    return None, (views.someone_else_training(others, runner.slots) if others else None)


def run_key(snapshot: dict | None) -> list | None:
    """Changes exactly when the charts, matrix or photos have something new to show."""
    return None if snapshot is None else [snapshot["id"], len(snapshot["history"]), snapshot["status"],
                                          len(snapshot["config"].get("choices") or {})]


def watch(user: str | None = None, run_dir: str | None = None, *, runner: JobRunner):
    """The page's once-a-second tick: status, progress (bar) and run_key, plain values only.

    Gradio rebuilds a component's whole config for every update it is sent (a `gr.skip()` included:
    about 45 ms of CPU each), so the tick sends only plain text; the heavy view is refreshed by the
    run key's change event, once per epoch (see `poll`)."""
    snapshot, busy = _visible_run(user, runner, run_dir)
    if busy:
        return {"status": busy, "progress": "", "run_key": None}
    return {"status": views.status_line(snapshot), "progress": views.progress_html(snapshot),
            "run_key": run_key(snapshot)}


# the step's, then the evaluation's (the API's order: the evaluation's photos stay last, `seen` is page state)
POLLED = ("status", "progress", "loss", "accuracy", "confusion", "per_class", "choices", "seen", "scores",
          "true_class", "predicted_class", "cell_note", "cell_gallery", "mistakes_note", "mistakes")


def poll(seen: dict | None, user: str | None = None, run_dir: str | None = None, *, runner: JobRunner):
    """Everything the live view shows; plots, matrix and photos are only resent when an epoch finished.

    With login, another person's run is not shown (only that the studio is busy and for how long).
    Names: status, progress, loss, accuracy, confusion, per_class, choices, seen, and the evaluation's
    true_class, predicted_class, cell_note, cell_gallery, mistakes_note, mistakes; and scores (POLLED). A
    multi-label run has scores (mAP and F1) and a per-label table instead of accuracy and a matrix."""
    snapshot, busy = _visible_run(user, runner, run_dir)
    unchanged = dict.fromkeys(POLLED, gr.skip())
    if busy:
        return {**unchanged, "status": busy, "progress": ""}
    key = run_key(snapshot)
    changed = key != (seen or {}).get("key")
    status, progress = views.status_line(snapshot), views.progress_html(snapshot)
    if not changed:
        return {**unchanged, "status": status, "progress": progress}
    history = snapshot["history"] if snapshot else []
    classes = snapshot["classes"] if snapshot else []
    true_class, predicted_class = (seen or {}).get("pair") or (None, None)
    run_folder = snapshot["run_dir"] if snapshot else None
    if multilabel_view.is_multilabel(snapshot):
        return _multilabel_poll(snapshot, key, status, progress)
    # the matrix shown is the last finished epoch's, and so are the photos behind it
    # no finished epoch (a new run): the charts keep what they show, hidden (see layout). Emptied (None)
    # while hidden, Gradio's plot would throw from its resize observer once the page's size changes.
    return {"status": status, "progress": progress, "loss": views.curves(history, "loss") if history else gr.skip(),
            "accuracy": views.curves(history, "accuracy") if history else gr.skip(),
            "confusion": views.confusion_html(snapshot and snapshot["confusion"], classes, clickable=True),
            "per_class": views.per_class_table(snapshot and snapshot["per_class"]),
            "choices": views.choices_markdown(snapshot),
            "seen": {"key": key, "run_dir": run_folder, "pair": (true_class, predicted_class)},
            **evaluation_view.class_pickers(classes, true_class, predicted_class),
            **evaluation_view.cell_photos(run_folder, true_class, predicted_class, latest=True),
            **evaluation_view.confident_mistakes(run_folder, latest=True)}


def _multilabel_poll(snapshot: dict, key: list, status: str, progress: str) -> dict:
    """poll's answer for a multi-label run: its mAP and F1 curves and the per-label table of the last epoch; the
    accuracy chart, matrix and cell photos are hidden (layout) and left as they are."""
    history = snapshot["history"]
    return {**dict.fromkeys(POLLED, gr.skip()), "status": status, "progress": progress,
            "loss": views.curves(history, "loss") if history else gr.skip(),
            "scores": views.score_curves(history) if history else gr.skip(),
            "per_class": multilabel_view.per_label_table(snapshot["per_class"]),
            "choices": views.choices_markdown(snapshot),
            "seen": {"key": key, "run_dir": snapshot["run_dir"], "pair": (None, None), "multilabel": True}}


def layout(key: list | None, seen: dict | None = None):
    """stop (the button) and results for a run key: Stop while a run is going, the curves, matrix and photos
    once an epoch has finished. Follows the run key, which changes with the status and each epoch. With `seen`
    (the poll's): accuracy, scores and the evaluation's confusion, per_class and photos_box for the kind of run
    (a multi-label one shows its scores and per-label table instead of accuracy and the matrix)."""
    has_epoch = bool(key) and key[1] > 0
    shown = {"stop": gr.Button(visible=views.shown_if(bool(key) and key[2] in ACTIVE_STATUSES)),
             "results": gr.Column(elem_classes=views.classes_if(has_epoch))}
    if seen is None:
        return shown
    several = bool(seen.get("multilabel"))
    return {**shown, "accuracy": gr.LinePlot(visible=views.shown_if(not several)),
            "scores": gr.LinePlot(visible=views.shown_if(several)),
            **evaluation_view.layout(several, keep_table=True)}


def remember_pair(seen: dict | None, true_class: str | None, predicted_class: str | None) -> dict:
    """Keep the matrix cell being looked at, so the next epoch's poll refreshes the same photos."""
    return {**(seen or {}), "pair": (true_class, predicted_class)}


def watched_run(seen: dict | None, user: str | None = None) -> str | None:
    """The folder of the run the live view shows (also after a page reload)."""
    return (seen or {}).get("run_dir")


def render() -> SimpleNamespace:
    gr.Markdown("Training shows the network your photos a number of times (**epochs**), "
                "and checks it on the held-out validation photos after each one.")
    with gr.Row():
        epochs = gr.Dropdown(EPOCH_CHOICES, value="Auto", label="Epochs",
                             info="How many passes over your photos (after the new layer's own, in Auto). "
                                  "Training stops early when it stops improving; the best epoch is kept.")
        lr = gr.Dropdown(LR_CHOICES, value="Auto", label="Learning rate", allow_custom_value=True, visible=False,
                         info="How big each correction is. Auto: chosen from your data (0.003 for the new layer "
                              "alone; less, and less again for deeper layers, when the network retrains).")
        batch = gr.Dropdown([("Auto", "auto"), 8, 16, 32, 64, 128, 256], value="auto", label="Batch size",
                            visible=False, info="Photos per step. Auto: 32, more on a GPU when you have many "
                                                "photos. Smaller uses less memory.")
    with gr.Row():
        budget = gr.Radio(BUDGET_CHOICES, value=budgets.DEFAULT, label="Training time (Auto)", elem_id="budget",
                          info="How long Auto may look for the best way to retrain the network, then train it. "
                               "Quick: about a minute. Balanced: sized from your photos. Best: the minutes you pick.")
        best_minutes = gr.Slider(2, 120, value=budgets.BEST_MINUTES, step=1, label="Minutes for Best",
                                 visible=False, elem_id="best-minutes",
                                 info="Everything included: reading the photos, trying plans, training.")
    cards = gpu_count()
    gpus = gr.Dropdown([("One GPU", 0)] + [(f"{n} GPUs at once (torchrun)", n) for n in range(2, cards + 1)],
                       value=0, label="GPUs for this run", visible=cards > 1, elem_id="gpus",
                       info="More GPUs train one run faster (each takes a share of every batch); the run waits "
                            "in the queue until that many are free.")
    with gr.Accordion("Advanced: every other setting, with its default", open=False, visible=False) as advanced_box:
        advanced = settings_panel.render(ADVANCED)
    with gr.Row(visible=False) as suggest_row:
        suggest_button = gr.Button("Suggest a learning rate", size="sm", scale=0)
        suggestion = gr.Markdown("", elem_id="lr-suggestion")
    with gr.Row():
        start_button = gr.Button("Start training", variant="primary", elem_id="start-training")
        # shown only while a run is going (see layout)
        stop_button = gr.Button("Stop", variant="stop", elem_id="stop-training", visible=False)
    repeat = gr.Markdown(repeat_command(None), elem_id="train-command", visible=False)
    polled = ["ts-polled"]  # no Gradio progress overlay inside what the timer refreshes (assets/studio.css)
    status = gr.Markdown(views.status_line(None), elem_id="train-status", elem_classes=polled)
    progress = gr.HTML("", elem_id="train-progress", elem_classes=polled)
    choices = gr.Markdown("", elem_id="train-choices", elem_classes=polled)
    # curves, matrix and photos only once there is a finished epoch to show (see layout)
    with gr.Column(elem_classes=views.classes_if(False), elem_id="train-results") as results:
        with gr.Row():
            # charts start empty (None): one that starts from an empty table never draws later data
            loss_plot = gr.LinePlot(None, x="epoch", y="value", color="series",
                                    color_map=views.SERIES_COLOURS, sort=views.EPOCH_ORDER,
                                    title="Loss (lower is better)", height=260, x_title="epoch", y_title="loss",
                                    elem_classes=polled)
            acc_plot = gr.LinePlot(None, x="epoch", y="value", color="series",
                                   color_map=views.SERIES_COLOURS, sort=views.EPOCH_ORDER,
                                   title="Accuracy (higher is better)", height=260, y_lim=[0, 1],
                                   x_title="epoch", y_title="accuracy", elem_classes=polled)
            # a multi-label run's chart, shown instead of the accuracy one (layout)
            scores_plot = gr.LinePlot(None, x="epoch", y="value", color="series", color_map=views.SCORE_COLOURS,
                                      sort=views.EPOCH_ORDER, title="mAP and F1 on validation (higher is better)",
                                      height=260, y_lim=[0, 1], x_title="epoch", y_title="score", visible="hidden",
                                      elem_id="train-scores", elem_classes=polled)
        evaluation = evaluation_view.render(polled=True)
    next_button = gr.Button("Next: try it →")
    return SimpleNamespace(epochs=epochs, lr=lr, batch=batch, start=start_button, stop=stop_button,
                           status=status, progress=progress, loss=loss_plot, accuracy=acc_plot, scores=scores_plot,
                           confusion=evaluation.confusion, per_class=evaluation.per_class, evaluation=evaluation,
                           choices=choices, next=next_button, results=results,
                           suggest=suggest_button, suggestion=suggestion,
                           advanced=advanced, repeat=repeat,
                           budget=budget, best_minutes=best_minutes, gpus=gpus,
                           timer=gr.Timer(TICK_SECONDS), seen=gr.State(None), run_key=gr.State(None),
                           advanced_only=[lr, batch, advanced_box, suggest_row, repeat])


def bind(ui: SimpleNamespace, data_source: gr.State, model_ui: SimpleNamespace, run_dir: gr.State,
         leave_out: gr.CheckboxGroup, findings: gr.State, runner: JobRunner) -> None:
    def start_as_user(request: gr.Request, *values):
        return start(*values, runner=runner, owner=user_of(request))

    def stop_as_user(request: gr.Request, folder: str | None):
        return stop(user_of(request), folder, runner=runner)

    controls = [data_source, model_ui.backbone, model_ui.mode, model_ui.freeze, ui.epochs, ui.lr, ui.batch,
                leave_out, findings, *ui.advanced, ui.budget, ui.best_minutes, ui.gpus]
    ui.budget.change(lambda mode: gr.Slider(visible=mode == "best"), ui.budget, ui.best_minutes,
                     api_visibility="private", show_progress="hidden")
    # the time budget is Auto's: a depth the person picks trains as asked
    model_ui.mode.change(lambda mode: gr.Radio(visible=mode == "auto"), model_ui.mode, ui.budget,
                         api_visibility="private", show_progress="hidden")
    ui.start.click(**wire(start_as_user, controls, status=ui.status, run_dir=run_dir), api_name="start_training",
                   show_progress="hidden")
    # the command that repeats the run follows every control it depends on
    gr.on([c.change for c in controls], repeat_command, controls, ui.repeat, api_visibility="private",
          show_progress="hidden")
    ui.stop.click(stop_as_user, run_dir, ui.status, api_name="stop_training", show_progress="hidden")
    ui.suggest.click(**wire(with_runner(suggest_lr, runner),
                            [data_source, model_ui.backbone, model_ui.mode, model_ui.freeze],
                            **of(ui, "lr", "suggestion")), api_name="suggest_lr")
    ev = ui.evaluation
    def poll_as_user(request: gr.Request, seen, folder):
        return poll(seen, user=user_of(request), run_dir=folder, runner=runner)

    def watch_as_user(request: gr.Request, folder):
        return watch(user_of(request), folder, runner=runner)

    ui.timer.tick(**wire(watch_as_user, run_dir, **of(ui, "status", "progress", "run_key")),
                  api_name="watch_training", show_progress="hidden")
    polled = {**of(ui, *POLLED[:9]), **of(ev, *POLLED[9:])}
    refreshed = ui.run_key.change(**wire(poll_as_user, [ui.seen, run_dir], **polled), api_name="poll_training",
                                  show_progress="hidden")
    # what shows follows the new values (so a new run's first epoch is not shown beside the last run's charts)
    refreshed.then(**wire(layout, [ui.run_key, ui.seen], **of(ui, "stop", "results", "accuracy", "scores"),
                          **of(ev, "confusion", "per_class", "photos_box")), api_visibility="private",
                   show_progress="hidden")
    evaluation_view.follow_galleries(ev, refreshed)
    evaluation_view.bind(ev, ui.seen, watched_run, api_prefix="train_", latest=True)
    for picker in (ev.true_class, ev.predicted_class):  # so the photos follow each new best epoch
        picker.change(remember_pair, [ui.seen, ev.true_class, ev.predicted_class], ui.seen, api_visibility="private",
                      show_progress="hidden")
