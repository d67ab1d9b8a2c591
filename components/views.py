"""Pure functions that turn engine objects into what the page shows.

Kept apart from the event wiring so they can be tested without a browser, and so
every step shows the same facts the same way.
"""
from __future__ import annotations

import html
from datetime import datetime

import pandas as pd

from studio.data.samples import MULTI_LABEL
from studio.training import final_test

# the same colours for the same series on every chart and every run
SERIES_COLOURS = {"train": "#2563eb", "validation": "#f97316"}
SPLIT_COLOURS = {"train": "#2563eb", "val": "#f97316", "test": "#16a34a"}

STATUS_WORDS = {"queued": "Waiting to start", "preparing": "Getting ready", "running": "Training",
                "finished": "Finished", "stopped": "Stopped", "failed": "Failed"}

# Epochs on the x axis of the loss/accuracy charts. As numbers, a short run gets ticks in tenths
# (1.0, 1.1 ... 2.0): Vega picks about one tick per 40 px whatever the data. So up to EPOCH_LABELS_UP_TO
# epochs the epoch is sent as a label ("1", "2" ...): one tick per epoch, in EPOCH_ORDER (the charts'
# `sort`; labels alone would sort 1, 10, 2). Longer runs keep numbers: a full-width chart has at most
# about 29 ticks, so 25 or more epochs apart always get whole steps (1, 2, 5 ...), and 26+ labels would crowd.
EPOCH_LABELS_UP_TO = 25
EPOCH_ORDER = [str(epoch) for epoch in range(1, EPOCH_LABELS_UP_TO + 1)]


def _whole_epochs(frame: pd.DataFrame) -> pd.DataFrame:
    """Epochs as labels when the run is short enough for one tick each (see EPOCH_LABELS_UP_TO)."""
    if len(frame) and frame["epoch"].between(1, EPOCH_LABELS_UP_TO).all():
        frame["epoch"] = frame["epoch"].astype(str)
    return frame


def curves(history: list[dict], metric: str) -> pd.DataFrame:
    """Train and validation values of `metric` ('loss' or 'accuracy') per epoch, long format."""
    rows = []
    for entry in history:
        rows.append({"epoch": entry["epoch"], "value": entry[f"train_{metric}"], "series": "train"})
        rows.append({"epoch": entry["epoch"], "value": entry[f"val_{metric}"], "series": "validation"})
    # typed even when empty (an empty object column would make the y axis a list of categories)
    return _whole_epochs(pd.DataFrame(rows, columns=["epoch", "value", "series"]).astype(
        {"epoch": "int64", "value": "float64", "series": "str"}))


# A multi-label run's validation scores: one line each, in the same colours on every chart
SCORE_SERIES = {"val_map": "mAP", "val_micro_f1": "micro-F1", "val_macro_f1": "macro-F1"}
SCORE_COLOURS = {"mAP": "#7c3aed", "micro-F1": "#0d9488", "macro-F1": "#db2777"}


def score_curves(history: list[dict]) -> pd.DataFrame:
    """A multi-label run's validation mAP, micro-F1 and macro-F1 per epoch, long format (what replaces the
    accuracy chart: exact-match accuracy hides how many of a photo's labels were right)."""
    rows = [{"epoch": entry["epoch"], "value": entry[key], "series": name}
            for entry in history for key, name in SCORE_SERIES.items() if entry.get(key) is not None]
    return _whole_epochs(pd.DataFrame(rows, columns=["epoch", "value", "series"]).astype(
        {"epoch": "int64", "value": "float64", "series": "str"}))


# Above this many classes the matrix uses smaller cells, so that up to about 25 classes fit the page's
# width at 1280 px; a wider one scrolls inside its own box (assets/studio.css, .ts-matrix).
COMPACT_MATRIX_ABOVE = 8
SCROLL_HINT_ABOVE = 15  # compact columns of short names: about this many fit before the box scrolls


def confusion_html(matrix: list[list[int]] | None, classes: list[str], clickable: bool = False) -> str:
    """The confusion matrix as a heatmap table: rows true class, columns predicted class.

    With `clickable`, each cell carries its class pair (data-true / data-predicted) for the page's
    click handler, which opens the photos counted in it.
    """
    if not matrix:
        return "<div class='ts-empty'>The confusion matrix appears after the first epoch.</div>"
    # headers carry the full name as a tooltip: long names are cut short in the narrow columns of a big matrix
    head = "".join(f"<th scope='col' title='{html.escape(c, quote=True)}'>{html.escape(c)}</th>" for c in classes)
    body = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        cells = []
        for j, count in enumerate(row):
            share = count / total
            hue = 145 if i == j else 5
            style = f"background: hsla({hue}, 65%, 45%, {0.08 + 0.85 * share:.2f});"
            pair = (f" class='ts-cell' data-true='{html.escape(classes[i], quote=True)}' "
                    f"data-predicted='{html.escape(classes[j], quote=True)}'" if clickable else "")
            hint = " (click to see them)" if clickable and count else ""
            cells.append(f"<td style='{style}'{pair} title='true {html.escape(classes[i])}, predicted "
                         f"{html.escape(classes[j])}: {count} of {sum(row)}{hint}'>{count}</td>")
        body.append(f"<tr><th scope='row' title='{html.escape(classes[i], quote=True)}'>{html.escape(classes[i])}</th>"
                    f"{''.join(cells)}</tr>")
    caption = "Rows: true class. Columns: what the model said." + (
        " Click a number to see those photos." if clickable else "") + (
        f" Scroll inside the matrix to see all {len(classes)} classes." if len(classes) > SCROLL_HINT_ABOVE else "")
    size = " ts-confusion-compact" if len(classes) > COMPACT_MATRIX_ABOVE else ""
    return (f"<table class='ts-confusion{size}'><caption><span>{caption}</span></caption>"
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def shown_if(applies: bool) -> bool | str:
    """Gradio's `visible` for a component shown only when it applies. One that stops applying is hidden
    in the page ("hidden"), not taken out of it (False): a chart taken out keeps a resize observer that
    throws on its missing element (Gradio 6.31)."""
    return True if applies else "hidden"


HIDDEN = "ts-hidden"  # assets/studio.css: display none


def classes_if(applies: bool) -> list[str]:
    """`elem_classes` for a Row or Column shown only when it applies. Gradio 6.31 has no "hidden" for
    layouts (it shows them), and visible=False would take its charts out of the page (see shown_if);
    a class that hides it keeps them in."""
    return [] if applies else [HIDDEN]


def per_class_table(per_class: list[dict] | None) -> pd.DataFrame:
    """Precision, recall, F1 and photos per class; with the finished model's ROC AUC and average precision
    (one class against the rest) when the run has them."""
    columns = ["class", "precision", "recall", "f1", "support"]
    if per_class and any(row.get("auc") is not None for row in per_class):
        columns += ["auc", "ap"]
    return pd.DataFrame(per_class or [], columns=columns)


def balance_markdown(confusion: list[list[int]] | None, classes: list[str]) -> str:
    """The best epoch's balanced accuracy and macro-F1 in words (why they matter when classes are imbalanced)
    and, for two classes, sensitivity and specificity: a paragraph to follow the run's summary."""
    from studio import evaluation
    if not confusion or not classes:
        return ""
    words = f"\n\nOn the validation photos: {evaluation.balance_words(confusion)}."
    both = evaluation.two_class_words(confusion, classes)
    if both:
        words += f" As a two-class test, {both}."
    return html.escape(words, quote=False)


PR_CLASSES = 8   # classes drawn on the precision-recall chart (the hardest ones when there are more)


def precision_recall_curves(ranked: dict | None) -> tuple[pd.DataFrame | None, str]:
    """(long table recall/precision/class for a LinePlot, a caption): each class against the rest, on the
    validation photos; with many classes, the PR_CLASSES with the lowest average precision."""
    if not ranked:
        return None, "The precision-recall curves appear when a run has finished (runs from before them have none)."
    classes = {name: c for name, c in ranked["classes"].items() if c["curve"]}
    shown = sorted(classes, key=lambda name: classes[name]["ap"])[:PR_CLASSES]
    rows = [{"recall": r, "precision": p, "class": f"{name} (AP {classes[name]['ap']:.2f})"}
            for name in shown for r, p, _ in classes[name]["curve"]]
    which = ("every class" if len(shown) == len(classes) else
             f"the {len(shown)} classes with the lowest average precision (of {len(classes)})")
    words = (f"Precision against recall for {which}: follow a line to see how many photos of the class the model "
             "finds (recall) for how many of its answers are right (precision) as its threshold goes down. "
             "AP, the area under the line, is 1.0 for a perfect class.")
    if ranked.get("macro_auc") is not None:
        words += f" Mean ROC AUC over the classes: {ranked['macro_auc']:.3f}."
    table = pd.DataFrame(rows, columns=["recall", "precision", "class"]).astype(
        {"recall": "float64", "precision": "float64", "class": "str"})
    return table, words


def someone_else_training(snapshots: list[dict], slots: int = 1) -> str:
    """What a signed-in person with no run of their own sees while other people's runs are going."""
    training = [s for s in snapshots if s["status"] != "queued"]
    waiting = len(snapshots) - len(training)
    etas = [s["eta_seconds"] for s in training if s.get("eta_seconds")]
    soonest = f" The first should finish in about {max(1, round(min(etas) / 60))} min." if etas else ""
    queue = f" {waiting} more {'is' if waiting == 1 else 'are'} waiting." if waiting else ""
    if len(training) < slots and not waiting:
        plural = "s" if len(training) != 1 else ""
        return f"**{len(training)} other training{plural} going;** Start begins yours at once."
    return (f"**Someone else is training right now.**{soonest}{queue} Press Start and your run waits in the "
            "queue (turns go round, one person after another); you can leave the page and come back.")


def status_line(snapshot: dict | None) -> str:
    """One plain-words sentence about where the run stands."""
    if not snapshot:
        return "No training yet. Choose data and a model, then press **Start training**."
    status = snapshot["status"]
    history = snapshot["history"]
    if status == "failed":
        return f"**Training failed:** {html.escape(snapshot.get('error') or 'unknown error')}"
    if status == "queued":   # the place in line is a whole sentence already
        return f"**{html.escape(snapshot.get('phase') or STATUS_WORDS[status])}**"
    if status in ("queued", "preparing") or (status == "running" and not history):
        return f"**{html.escape(snapshot.get('phase') or STATUS_WORDS[status])}…**"
    if snapshot.get("task") == MULTI_LABEL:
        return _multilabel_status(snapshot)
    last = history[-1] if history else None
    best = snapshot.get("best_val_accuracy")
    text = (f"Epoch {last['epoch']} of {snapshot['epochs']}, validation accuracy {last['val_accuracy']:.0%}"
            if last else "")
    advice = f"\n\n**Note:** {html.escape(snapshot['advice'])}" if snapshot.get("advice") else ""
    if status == "running":
        # best is None for a moment after the first epoch is recorded and before it is kept
        trend = "still improving" if best is None or last["val_accuracy"] >= best else f"best so far {best:.0%}"
        return f"**Training.** {text}, {trend}.{advice}"
    if status == "finished":
        early = f" {html.escape(snapshot['stopped_early'])}" if snapshot.get("stopped_early") else ""
        result = (f"Best validation accuracy {best:.1%} (epoch {snapshot['best_epoch']})." if best is not None
                  else "No epoch finished, so there is no model.")
        honest = f"\n\n{html.escape(final_test.words(snapshot.get('test')))}" if best is not None else ""
        return f"**Finished.** {result}{early} Go on to **Try it** or **Export**.{honest}{advice}"
    if status == "stopped":
        kept = f" The best model so far ({best:.1%}) is kept." if best is not None else ""
        return f"**Stopped.** {text}.{kept}"
    return text


def best_score(snapshot: dict) -> float | None:
    """A multi-label run's best mAP so far (the score that picks its best epoch), or None."""
    score = snapshot.get("best_score") or {}
    return score.get("value") if score.get("name") == "mAP" else None


def _multilabel_status(snapshot: dict) -> str:
    """status_line for a run with several labels per photo: mAP (and the share with every label right), never
    a plain accuracy."""
    status, history = snapshot["status"], snapshot["history"]
    last, best = (history[-1] if history else None), best_score(snapshot)
    text = (f"Epoch {last['epoch']} of {snapshot['epochs']}, validation mAP {last.get('val_map') or 0:.3f} "
            f"(every label right on {last['val_accuracy']:.0%} of the photos)" if last else "")
    advice = f"\n\n**Note:** {html.escape(snapshot['advice'])}" if snapshot.get("advice") else ""
    if status == "running":
        improving = best is None or (last.get("val_map") or 0) >= best
        return f"**Training.** {text}, {'still improving' if improving else f'best so far mAP {best:.3f}'}.{advice}"
    if status == "finished":
        early = f" {html.escape(snapshot['stopped_early'])}" if snapshot.get("stopped_early") else ""
        result = (f"Best validation mAP {best:.3f} (epoch {snapshot['best_epoch']}; 1.0 is perfect)."
                  if best is not None else "No epoch finished, so there is no model.")
        honest = f"\n\n{html.escape(final_test.words(snapshot.get('test')))}" if best is not None else ""
        return (f"**Finished.** {result}{early} Go on to **Try it** or **Export**; **Runs** shows each label's "
                f"mistakes.{honest}{advice}")
    if status == "stopped":
        kept = f" The best model so far (mAP {best:.3f}) is kept." if best is not None else ""
        return f"**Stopped.** {text}.{kept}"
    return text


def progress_html(snapshot: dict | None) -> str:
    if not snapshot:
        return ""
    fraction = max(0.0, min(1.0, snapshot.get("progress") or 0.0))
    eta = snapshot.get("eta_seconds")
    active = snapshot["status"] in ("queued", "preparing", "running")
    eta_text = f" · about {_duration(eta)} left" if eta and active else ""
    step = ""
    if active and snapshot.get("steps"):
        step = f" · {snapshot['step']} / {snapshot['steps']}"
    phase = html.escape(snapshot.get("phase") or "")
    return (f"<div class='ts-progress' role='progressbar' aria-valuenow='{fraction * 100:.0f}' aria-valuemin='0' "
            f"aria-valuemax='100'><div class='ts-progress-fill' style='width:{fraction * 100:.1f}%'></div></div>"
            f"<div class='ts-progress-text'>{fraction:.0%} · {phase}{step}{eta_text}</div>")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def counts_frame(counts: pd.DataFrame | None) -> pd.DataFrame:
    """Class x split counts in long format for a bar chart (typed even when empty, as for curves)."""
    if counts is None:
        long = pd.DataFrame(columns=["class", "split", "images"])
    else:
        long = counts.reset_index().melt(id_vars="label", var_name="split", value_name="images")
        long = long.rename(columns={"label": "class"})
    return long.astype({"class": "str", "split": "str", "images": "int64"})


CHOICE_ORDER = ("backbone", "freeze", "search", "depth", "epochs", "lr", "patience", "class_weighting",
                "feature_views", "train_size")


def choices_markdown(snapshot: dict | None) -> str:
    """What the recipe decided for this run, in its own words (config.json keeps the same list)."""
    choices = ((snapshot or {}).get("config") or {}).get("choices") or {}
    if not choices:
        return ""
    ordered = sorted(choices.items(), key=lambda kv: CHOICE_ORDER.index(kv[0]) if kv[0] in CHOICE_ORDER else 99)
    search = (snapshot.get("search") or {}).get("summary")
    lead = f"**{html.escape(search)}**\n\n" if search else ""
    return lead + "**What the studio chose, and why**\n" + "\n".join(f"- {html.escape(words)}" for _, words in ordered)


def run_status_words(status: str) -> str:
    """A run's status in the Runs table (adds the two statuses only a past run can have)."""
    extra = {"interrupted": "Interrupted (studio restarted)", "damaged": "Damaged (files unreadable)"}
    return extra.get(status) or STATUS_WORDS.get(status, status)


def runs_table(rows: list[dict]) -> pd.DataFrame:
    """The Runs table: one line per run, newest first, every value already in words."""
    columns = ["Started", "Data", "Backbone", "Freeze", "Best accuracy", "Duration", "Status", "Run"]
    lines = []
    for row in rows:
        started = row.get("started")
        lines.append([f"{datetime.fromtimestamp(started):%Y-%m-%d %H:%M}" if started else "",
                      row["data"], row["backbone"], row["freeze"],
                      _best_shown(row),
                      _duration(row["duration_seconds"]) if row.get("duration_seconds") is not None else "",
                      run_status_words(row["status"]), row["id"]])
    return pd.DataFrame(lines, columns=columns).astype(str)


def _best_shown(row: dict) -> str:
    """A run's best validation figure in the Runs table: its accuracy, or "mAP 0.990" for a multi-label run
    (whose accuracy would be the share of photos with every label right)."""
    if row.get("task") == MULTI_LABEL:
        best = best_score(row)
        return f"mAP {best:.3f}" if best is not None else ""
    return f"{row['best_val_accuracy']:.1%}" if row.get("best_val_accuracy") is not None else ""


def run_choice_label(row: dict) -> str:
    """How a run is named in the Runs dropdowns."""
    started = f"{datetime.fromtimestamp(row['started']):%Y-%m-%d %H:%M}" if row.get("started") else "?"
    best = f", {row['best_val_accuracy']:.0%}" if row.get("best_val_accuracy") is not None else ""
    if row.get("task") == MULTI_LABEL:
        best = f", mAP {best_score(row):.2f}" if best_score(row) is not None else ""
    return f"{started} · {row['data']} · {row['backbone']}{best} ({run_status_words(row['status']).lower()})"


def run_summary_markdown(summary: dict) -> str:
    """A few plain sentences about one past run, including what an interruption means."""
    words = f"**{html.escape(summary['id'])}**: {html.escape(run_status_words(summary['status']))}."
    if summary["status"] == "damaged":
        return (f"{words} Its files could not be read ({html.escape(summary.get('error') or 'unknown')}), "
                "so there is nothing to show.")
    best = summary.get("best_val_accuracy")
    facts = [f"Data: {html.escape(summary['data'])}", f"backbone: {html.escape(summary['backbone'])}",
             f"freeze: {html.escape(summary['freeze'])}"]
    epoch = f" (epoch {summary['best_epoch']})" if summary.get("best_epoch") is not None else ""
    if summary.get("task") == MULTI_LABEL:
        facts += _multilabel_facts(summary, epoch)
    elif best is not None:
        facts.append(f"best validation accuracy {best:.1%}{epoch}")
    if summary.get("test_accuracy") is not None and summary.get("task") != MULTI_LABEL:
        facts.append(f"test accuracy {summary['test_accuracy']:.1%} on {summary['test_images']} photos kept apart")
    if summary.get("duration_seconds") is not None:
        facts.append(f"took {_duration(summary['duration_seconds'])}")
    text = f"{words} {', '.join(facts)}."
    if summary["status"] == "interrupted":
        text += (" The studio was restarted while this run trained. " +
                 ("Its best model so far is kept: you can still try and export it." if summary["has_model"] else
                  "It stopped before its first epoch ended, so there is no model to use."))
    elif summary["status"] == "failed" and summary.get("error"):
        text += f" Error: {html.escape(summary['error'])}"
    return text


def _multilabel_facts(summary: dict, epoch: str) -> list[str]:
    """A multi-label run's best mAP and, when it had a test split, its test figures (run_summary_markdown)."""
    facts = [f"several labels per photo, best validation mAP {best_score(summary):.3f}{epoch}"
             if best_score(summary) is not None else "several labels per photo"]
    test = summary.get("test") or {}
    if test.get("map") is not None:
        facts.append(f"test mAP {test['map']:.3f}, every label right on {test['accuracy']:.1%} of "
                     f"{test['images']} photos kept apart")
    return facts


def run_series_name(row: dict) -> str:
    """A run's name on a comparison chart: short enough for the legend (data and start time)."""
    if not row.get("started"):
        return row["id"]
    return f"{row['data']} {datetime.fromtimestamp(row['started']):%m-%d %H:%M:%S}"


def compare_curves(series: list[tuple[str, list[dict]]], metric: str = "val_accuracy") -> pd.DataFrame:
    """Validation accuracy (or `metric`: val_map for multi-label runs) per epoch of several runs, one series per
    run name (long format)."""
    rows = [{"epoch": entry["epoch"], "value": entry.get(metric), "series": name}
            for name, history in series for entry in history]
    return _whole_epochs(pd.DataFrame(rows, columns=["epoch", "value", "series"]).astype(
        {"epoch": "int64", "value": "float64", "series": "str"}))
