"""Several labels per photo (a multi-label run), shown in plain words: each label's figures, and the photos
behind them.

A multi-label model answers a yes/no question per label, so there is no confusion matrix: what replaces it is
a table with a row per label and, for a chosen label, the photos where the model said it but it is not there
(false positives) and the photos that have it where the model missed it (false negatives), the most confident
first. Used by the Runs view (a finished run's best model, at its tuned thresholds) and the Train step (the
per-label table, live). Every figure is the engine's: `multilabel.json` and predictions.csv in the run folder.
"""
from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from components import evaluation_view, views
from components.named import of, wire
from components.session import user_of
from studio.data.samples import MULTI_LABEL, label_list
from studio import evaluation
from studio.evaluation import SCORE_PREFIX
from studio.multilabel import decide
from studio.multilabel.metrics import DEFAULT_THRESHOLD
from studio.runs import RunFolder

MAP_WORDS = ("mAP (mean average precision) says how well the model puts the photos that have a label above the "
             "photos that don't, averaged over the labels: 1.0 is perfect, and it needs no threshold")
PICK_LABEL = "Pick a label (or click its row in the table) to see the photos the model got wrong for it."
TABLE_COLUMNS = ["label", "threshold", "precision", "recall", "f1", "support", "auc", "ap"]
MISTAKES_SHOWN = 24   # photos per gallery, the most confident first


def is_multilabel(status: dict | None) -> bool:
    """Whether a run's status (or snapshot) is a multi-label run's: then its figures are mAP and F1, not accuracy."""
    return (status or {}).get("task") == MULTI_LABEL


def run_status(folder) -> dict:
    """A run folder's status.json, or {} when it cannot be read (a damaged run says so elsewhere)."""
    try:
        status = RunFolder(folder).read_status() if folder else {}
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def with_task(row: dict) -> dict:
    """A run's row (history) with its kind of task, best score and test figures from its status, so a multi-label
    run is shown with its mAP instead of an accuracy."""
    status = run_status(row.get("run_dir"))
    return {**row, **{key: status.get(key) for key in ("task", "best_score", "multilabel", "test")}}


def per_label_table(rows: list[dict] | None, thresholds: dict | None = None) -> pd.DataFrame:
    """One row per label: its threshold (once tuned), precision, recall, F1, photos that have it (support), ROC
    AUC and average precision. Rows are the engine's, keyed `label` (multilabel.json) or `class` (a live epoch)."""
    columns = [c for c in TABLE_COLUMNS if c != "threshold" or thresholds]
    lines = []
    for row in rows or []:
        name = row.get("label", row.get("class"))
        lines.append({**{k: row.get(k) for k in columns}, "label": name,
                      **({"threshold": round(thresholds[name], 2) if name in thresholds else None}
                         if thresholds else {})})
    return pd.DataFrame(lines, columns=columns)


def figures_words(figures: dict | None, live: dict | None = None) -> str:
    """The finished model's multi-label figures in plain words (mAP explained, micro- and macro-F1, every label
    right, each label's threshold), a paragraph of bullets to follow the run's summary; `live` (status.json's
    `multilabel`) when the run has no multilabel.json."""
    if not figures and not live:
        return ("\n\nSeveral labels per photo (multi-label). This run stopped before its thresholds were tuned, so "
                "there are no final figures: the curves show how far it got.")
    figures = figures or live
    photos = f"the {figures['photos']} validation photos" if figures.get("photos") else "the validation photos"
    lines = [f"\n\n**Several labels per photo (multi-label)**, on {photos}:",
             f"- **mAP {(figures.get('map') or 0):.3f}**: {MAP_WORDS}.",
             f"- **micro-F1 {figures['micro_f1']:.2f}**: every yes/no answer counted together, each label at its "
             "threshold (1.0: all right).",
             f"- **macro-F1 {figures['macro_f1']:.2f}**: the average label, so a rare label counts as much as a "
             "common one.",
             f"- **Every label right on {figures['exact_match']:.0%}** of the photos (no label missed, none too many)."]
    thresholds = figures.get("thresholds")
    if thresholds:
        lines.append("- **Thresholds**: a label is given when its score reaches its own threshold, tuned on the "
                     "validation photos: " + ", ".join(f"{html.escape(name)} {cut:.2f}"
                                                        for name, cut in thresholds.items()) + ".")
    return "\n".join(lines)


# ---- one label's mistakes ------------------------------------------------------------------------------

def _answers(run_dir: str | None, latest: bool = False) -> tuple[pd.DataFrame | None, list[str]]:
    """(predictions table, its labels in column order) of a multi-label run, or (None, [])."""
    table = evaluation_view.read_predictions(run_dir, latest)
    if table is None:
        return None, []
    labels = [c[len(SCORE_PREFIX):] for c in table.columns if c.startswith(SCORE_PREFIX)]
    return (table, labels) if labels else (None, [])


def thresholds_of(run_dir: str | None, labels: list[str], latest: bool = False) -> dict:
    """Each label's threshold: the tuned ones of the finished model; 0.5 while training (as the live table)."""
    tuned = {} if latest else ((decide.read(run_dir) or {}).get("thresholds") or {})
    return {name: float(tuned.get(name, DEFAULT_THRESHOLD)) for name in labels}


def mistakes(table: pd.DataFrame, labels: list[str], label: str, thresholds: dict,
             limit: int = MISTAKES_SHOWN) -> dict:
    """One label's false positives (said, not there) and false negatives (there, missed), the surest first, as
    rows of the table with their `score`, and how many of each there are (`counts`: said wrongly, missed, photos
    that have it). The engine decides (`evaluation.multilabel_mistakes`); this only shapes the rows to show."""
    found = evaluation.multilabel_mistakes(table, labels, thresholds, label, limit=len(table))
    rows = table.set_index("path")

    def shown(pairs: list) -> pd.DataFrame:
        return pd.DataFrame([{"path": path, "label": rows.label.get(path, ""), "score": score}
                             for path, score in pairs[:limit]], columns=["path", "label", "score"])

    having = sum(label in label_list(cell) for cell in table.label)
    return {"false_positives": shown(found["false_positives"]), "false_negatives": shown(found["false_negatives"]),
            "counts": (len(found["false_positives"]), len(found["false_negatives"]), having)}


def _items(rows: pd.DataFrame) -> list[tuple]:
    """(thumbnail, caption) pairs: the label's score, the photo's own labels and its file name."""
    items = []
    for row in rows.itertuples():
        image = evaluation_view.thumbnail(row.path)
        if image is None:   # the file changed since training
            continue
        has = ", ".join(label_list(row.label)) or "no label"
        items.append((image, f"scored {row.score:.0%} · has: {has} · {Path(row.path).name}"))
    return items


def label_photos(run_dir: str | None, label: str | None, latest: bool = False) -> dict:
    """label_note, false_positives and false_negatives (galleries) for one label of a multi-label run."""
    empty = {"false_positives": [], "false_negatives": []}
    table, labels = _answers(run_dir, latest)
    if table is None:
        return {"label_note": "The photos appear once the run has finished an epoch.", **empty}
    if not label or label not in labels:
        return {"label_note": PICK_LABEL, **empty}
    thresholds = thresholds_of(run_dir, labels, latest)
    threshold = thresholds[label]
    found = mistakes(table, labels, label, thresholds)
    said_wrongly, missed, having = found["counts"]
    name = html.escape(label)
    note = (f"**{name}** (threshold {threshold:.2f}) is on {having} of the {len(table)} validation photos. "
            f"**Said it, but it is not there** (false positives): {said_wrongly}. **There, but missed** (false "
            f"negatives): {missed}. The surest mistakes come first; a sure one is often a photo whose labels are "
            "wrong or missing.")
    if not said_wrongly and not missed:
        note = f"**{name}** (threshold {threshold:.2f}): no mistakes on the {len(table)} validation photos."
    return {"label_note": note, "false_positives": _items(found["false_positives"]),
            "false_negatives": _items(found["false_negatives"])}


def label_choices(run_dir: str | None, current: str | None = None) -> gr.Dropdown:
    """The label picker, with this run's labels (keeping a label that is still one)."""
    _, labels = _answers(run_dir)
    return gr.Dropdown(choices=labels, value=current if current in labels else None)


def run_labels(run_dir: str | None, status: dict | None) -> dict:
    """Everything the multi-label part of the Runs view shows for one run: label_table, label (picker),
    label_note and the two galleries; a single-label run empties it (it is hidden then)."""
    if not is_multilabel(status):
        return {"label_table": per_label_table(None), "label": gr.Dropdown(choices=[], value=None),
                "label_note": PICK_LABEL, "false_positives": [], "false_negatives": []}
    figures = decide.read(run_dir) if run_dir else None
    rows = (figures or {}).get("per_label") or (status or {}).get("per_class")
    return {"label_table": per_label_table(rows, (figures or {}).get("thresholds")),
            "label": label_choices(run_dir), "label_note": PICK_LABEL, "false_positives": [], "false_negatives": []}


def pick_row(table: pd.DataFrame | None, evt: gr.SelectData) -> dict:
    """A click on a row of the per-label table picks that label (the picker then shows its photos)."""
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if table is None or row is None or not 0 <= row < len(table):
        return {"label": gr.skip()}
    return {"label": str(table.iloc[row]["label"])}


# ---- layout ----------------------------------------------------------------------------------------------

def render(elem_prefix: str = "runs-") -> SimpleNamespace:
    """The per-label table and, for a picked label, its false positives beside its false negatives; hidden
    until a multi-label run is shown (the `box`)."""
    with gr.Column(elem_classes=views.classes_if(False), elem_id=f"{elem_prefix}multilabel") as box:
        gr.Markdown("**Each label, at its threshold.** Precision: of the photos the model gave the label, the share "
                    "that have it. Recall: of the photos that have it, the share the model found. F1 balances the "
                    "two; support is how many validation photos have it; AUC and AP (1.0 is perfect) say how well "
                    "the scores rank the photos with it above the others, whatever the threshold.",
                    elem_classes="ts-help")
        table = gr.Dataframe(per_label_table(None), label="Per-label results (click a row to see its mistakes)",
                             interactive=False, elem_id=f"{elem_prefix}per-label")
        label = gr.Dropdown([], value=None, label="Label to look at", elem_id=f"{elem_prefix}label",
                            info="Its photos the model got wrong, the surest first.")
        note = gr.Markdown(PICK_LABEL, elem_id=f"{elem_prefix}label-note")
        with gr.Row():
            # each shown only with photos in it (shown_when_filled); the note gives both counts
            false_positives = gr.Gallery([], label="Said it, but it is not there (false positives)", columns=4,
                                         height=300, object_fit="cover", fit_columns=False, visible="hidden",
                                         elem_id=f"{elem_prefix}false-positives")
            false_negatives = gr.Gallery([], label="There, but missed (false negatives)", columns=4, height=300,
                                         object_fit="cover", fit_columns=False, visible="hidden",
                                         elem_id=f"{elem_prefix}false-negatives")
    return SimpleNamespace(box=box, label_table=table, label=label, label_note=note, false_positives=false_positives,
                           false_negatives=false_negatives)


def shown_when_filled(false_positives, false_negatives) -> dict:
    """The two galleries, each shown only when it has photos (the note says how many of each there are)."""
    return {"false_positives": gr.Gallery(visible=views.shown_if(bool(false_positives))),
            "false_negatives": gr.Gallery(visible=views.shown_if(bool(false_negatives)))}


def follow_galleries(ui: SimpleNamespace, event) -> None:
    """After an event that fills or empties the galleries, show or hide them (a private follow-up, so the event's
    API keeps returning plain values)."""
    galleries = of(ui, "false_positives", "false_negatives")
    event.then(**wire(shown_when_filled, list(galleries.values()), **galleries), api_visibility="private",
               show_progress="hidden")


def bind(ui: SimpleNamespace, source: gr.components.Component, to_folder, api_prefix: str = "runs_") -> None:
    """A picked label shows its photos; a click on a table row picks its label. `to_folder(source value, user)`
    is the run folder."""
    def photos(value, label, request: gr.Request):
        return label_photos(to_folder(value, user_of(request)), label)

    follow_galleries(ui, ui.label.change(**wire(photos, [source, ui.label],
                                                **of(ui, "label_note", "false_positives", "false_negatives")),
                                         api_name=f"{api_prefix}label_photos", show_progress="hidden"))
    ui.label_table.select(**wire(pick_row, ui.label_table, label=ui.label), api_visibility="private",
                          show_progress="hidden")
