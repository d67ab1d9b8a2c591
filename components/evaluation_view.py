"""Evaluation you can click: a confusion matrix whose cells open the photos they count,
and the photos the model was most sure about and still got wrong.

Shared by the Train step (the live run) and the Runs view (any past run). Both read
the run folder's predictions.csv, which the trainer rewrites at every new best epoch,
so the photos always match the matrix of the model that is kept.
"""
from __future__ import annotations

import functools
import hashlib
import tempfile
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from components import views
from components.named import of, wire
from components.session import user_of
from studio import evaluation
from studio.data.imaging import ImageDecodeError, open_rgb
from studio.explain import ExplainError, WarmExplainer
from studio.inference import WarmPredictor
from studio.runs import MODEL_FILE

THUMBNAIL = 256
# Event delegation on the component's root survives the table being re-rendered every epoch.
CELL_CLICK_JS = """
element.addEventListener('click', (event) => {
  const cell = event.target.closest('td[data-true]');
  if (cell) { trigger('click', {true_class: cell.dataset.true, predicted_class: cell.dataset.predicted}); }
});
"""
PER_CLASS_LABEL = "Per-class results"
PER_LABEL_LABEL = "Per-label results (this epoch, each label at 0.5)"
MULTILABEL_HINT = "Several labels per photo: each label's mistakes are shown per label, under Runs."
PICK_HINT = "Click a number in the confusion matrix, or pick a true class and an answer, to see those photos."


def one_class_per_photo(table: pd.DataFrame | None) -> bool:
    """Whether a predictions table is a single-label run's (one answer and its confidence per photo): a
    multi-label run's has a score per label instead, and its photos are shown per label (multilabel_view)."""
    return table is not None and "confidence" in table.columns


def read_predictions(run_dir: str | Path | None, latest: bool = False) -> pd.DataFrame | None:
    """The best epoch's answers per validation photo (or the last finished epoch's, with `latest`)."""
    if not run_dir:
        return None
    path = Path(run_dir) / (evaluation.LATEST_PREDICTIONS_FILE if latest else evaluation.PREDICTIONS_FILE)
    try:
        return evaluation.read_run_table(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None


# Thumbnails are made once per photo and kept as small JPEG files in the temporary folder (which
# Gradio may serve): ten people watching a run then cost one decode per photo, not ten, and Gradio
# sends a file instead of encoding a picture for every session at every epoch.
THUMBNAIL_DIR = Path(tempfile.gettempdir()) / "studio-thumbnails"


@functools.lru_cache(maxsize=8192)
def _thumbnail_file(path: str, modified: float) -> str | None:
    try:
        image = open_rgb(path, draft=THUMBNAIL)
    except ImageDecodeError:
        return None
    return _saved_thumbnail(image, f"{path}|{modified}", ".jpg")


def _saved_thumbnail(image, key: str, suffix: str) -> str:
    """`image` shrunk to a thumbnail and kept as a JPEG named after `key` (see THUMBNAIL_DIR)."""
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    THUMBNAIL_DIR.mkdir(parents=True, exist_ok=True)
    target = THUMBNAIL_DIR / (hashlib.sha1(key.encode()).hexdigest() + suffix)
    image.save(target, quality=85)
    return str(target)


def thumbnail(path: str) -> str | None:
    try:
        modified = Path(path).stat().st_mtime
    except OSError:
        return None
    return _thumbnail_file(str(path), modified)


# the heatmaps' model: the run a person is looking at, loaded once per model file version
_PREDICTOR, _EXPLAINER = WarmPredictor(), WarmExplainer()


@functools.lru_cache(maxsize=2048)
def _heatmap_file(path: str, modified: float, model: str, model_modified: float, class_name: str) -> str | None:
    """The photo as the model saw it, with where it looked for `class_name` over it, as a thumbnail file."""
    try:
        overlay = _EXPLAINER(_PREDICTOR(Path(model))).explain(path, class_name).overlay
    except (ImageDecodeError, OSError, ExplainError):
        return None
    return _saved_thumbnail(overlay, f"{path}|{modified}|{model}|{model_modified}|{class_name}", "-looked.jpg")


def _looked_at(path: str, model: Path, class_name: str) -> str | None:
    try:
        return _heatmap_file(str(path), Path(path).stat().st_mtime, str(model), model.stat().st_mtime, class_name)
    except OSError:
        return None


def gallery_items(rows: pd.DataFrame, show_truth: bool, model: Path | None = None) -> list[tuple]:
    """(thumbnail file, caption) pairs; a caption says what the model said and how sure it was. With `model`,
    each thumbnail shows where that model looked for the answer it gave (Grad-CAM)."""
    items = []
    for row in rows.itertuples():
        image = thumbnail(row.path) if model is None else _looked_at(row.path, model, row.predicted)
        if image is None:  # the file changed since training
            continue
        caption = f"said {row.predicted} ({row.confidence:.0%})"
        if show_truth:
            caption = f"{row.label}, " + caption
        items.append((image, f"{caption} · {Path(row.path).name}"))
    return items


def _cell(note: str, items: list) -> dict:
    return {"cell_note": note, "cell_gallery": items}


def _model_for(run_dir: str | None, looked: bool) -> Path | None:
    model = Path(run_dir) / MODEL_FILE if looked and run_dir else None
    return model if model is not None and model.is_file() else None


def cell_photos(run_dir: str | None, true_class: str | None, predicted_class: str | None, latest: bool = False,
                looked: bool = False):
    """cell_note and cell_gallery for one cell of the confusion matrix shown (best epoch, or latest with
    `latest`); `looked`: heatmaps of where the model looked instead of plain thumbnails."""
    table = read_predictions(run_dir, latest)
    if table is None:
        return _cell("The photos appear after the first epoch.", [])
    if not one_class_per_photo(table):
        return _cell(MULTILABEL_HINT, [])
    if not true_class or not predicted_class:
        return _cell(PICK_HINT, [])
    rows = evaluation.cell_photos(table, true_class, predicted_class)
    count = int(((table.label == true_class) & (table.predicted == predicted_class)).sum())
    verdict = "right" if true_class == predicted_class else "wrong"
    if not count:
        return _cell(f"No validation photo of **{true_class}** was called **{predicted_class}**.", [])
    shown = "" if count <= len(rows) else f" (the {len(rows)} it was surest about)"
    return _cell(f"**{count}** validation photo{'s' if count != 1 else ''} of **{true_class}** the model called "
                 f"**{predicted_class}** ({verdict}){shown}, most confident first.",
                 gallery_items(rows, False, _model_for(run_dir, looked)))


def _mistakes(note: str, items: list) -> dict:
    return {"mistakes_note": note, "mistakes": items}


def confident_mistakes(run_dir: str | None, latest: bool = False, looked: bool = False):
    """mistakes_note and mistakes (gallery): the wrong answers the model was surest about; often mislabelled
    photos."""
    table = read_predictions(run_dir, latest)
    if table is None:
        return _mistakes("The model's mistakes appear after the first epoch.", [])
    if not one_class_per_photo(table):
        return _mistakes(MULTILABEL_HINT, [])
    rows = evaluation.confident_mistakes(table)
    if rows.empty:
        return _mistakes("No mistakes on the validation photos.", [])
    return _mistakes("The validation photos the model got wrong while being most sure. A sure mistake is often "
                     "a photo in the wrong folder, or one that shows both classes.",
                     gallery_items(rows, True, _model_for(run_dir, looked)))


def pick_cell(evt: gr.EventData):
    """A click on a matrix cell sets the pair pickers, true_class and predicted_class (which then show the
    photos)."""
    return {"true_class": evt.true_class, "predicted_class": evt.predicted_class}


def render(label: str = "Confusion matrix", elem_prefix: str = "", polled: bool = False,
           heatmaps: bool = False) -> SimpleNamespace:
    """The clickable matrix beside the per-class table (below it when the matrix is too wide to share
    the row), then the photo browsers. `polled`: the matrix and table are refreshed by a poll, so
    Gradio's progress overlay is kept out of them (assets/studio.css, .ts-polled)."""
    extra = ["ts-polled"] if polled else []
    # the row wraps: the matrix takes the width it needs (scrolling inside its box past the page's width)
    # and the table goes below it when both don't fit side by side (assets/studio.css)
    with gr.Row(elem_classes="ts-evaluation-row") as row:
        confusion = gr.HTML(views.confusion_html(None, []), label=label, elem_id=f"{elem_prefix}confusion",
                            js_on_load=CELL_CLICK_JS, elem_classes=["ts-matrix", *extra])
        per_class = gr.Dataframe(views.per_class_table(None), label=PER_CLASS_LABEL, interactive=False,
                                 elem_id=f"{elem_prefix}per-class", elem_classes=["ts-per-class", *extra])
    with gr.Accordion("Look at the photos behind the numbers", open=True) as photos_box:
        with gr.Row():
            true_class = gr.Dropdown([], value=None, label="True class", elem_id=f"{elem_prefix}cell-true",
                                     info="The class the photo really belongs to (its folder).")
            predicted_class = gr.Dropdown([], value=None, label="The model said",
                                          elem_id=f"{elem_prefix}cell-predicted",
                                          info="Pick a different class to see the mistakes between the two.")
        looked = (gr.Checkbox(False, label="Show where the model looked (heatmaps)", elem_id=f"{elem_prefix}looked",
                              info="Red is where a photo counted most for the answer the model gave: a model "
                                   "that looks at the background has learnt a shortcut.")
                  if heatmaps else None)
        cell_note = gr.Markdown(PICK_HINT, elem_id=f"{elem_prefix}cell-note")
        # fit_columns=False: a cell with one photo shows one thumbnail, not one photo stretched to the full
        # width. Hidden while empty (see follow_galleries).
        cell_gallery = gr.Gallery([], label="Photos in this cell", columns=6, height=300, object_fit="cover",
                                  elem_id=f"{elem_prefix}cell-gallery", fit_columns=False, visible="hidden")
        mistakes_note = gr.Markdown("The model's mistakes appear after the first epoch.",
                                    elem_id=f"{elem_prefix}mistakes-note")
        mistakes = gr.Gallery([], label="Most confident mistakes", columns=6, height=300, object_fit="cover",
                              elem_id=f"{elem_prefix}mistakes", fit_columns=False, visible="hidden")
    return SimpleNamespace(confusion=confusion, per_class=per_class, true_class=true_class,
                           predicted_class=predicted_class, cell_note=cell_note, cell_gallery=cell_gallery,
                           mistakes_note=mistakes_note, mistakes=mistakes, looked=looked, row=row,
                           photos_box=photos_box)


def layout(multilabel: bool, keep_table: bool = False) -> dict:
    """What applies to a run: a multi-label run has no confusion matrix and no photos behind its cells (each
    label is a yes/no question), so the matrix and the photo browser are hidden; with `keep_table` its
    per-label rows stay in the table (the Train step's live view), else the table goes too (the Runs view
    shows its own, with the tuned thresholds). Names: confusion, per_class, photos_box."""
    table_shown = not multilabel or keep_table
    return {"confusion": gr.HTML(visible=views.shown_if(not multilabel)),
            "per_class": gr.Dataframe(visible=views.shown_if(table_shown),
                                      label=PER_LABEL_LABEL if multilabel else PER_CLASS_LABEL),
            "photos_box": gr.Accordion(elem_classes=views.classes_if(not multilabel))}


def shown_when_filled(cell_items, mistake_items) -> dict:
    """The two photo galleries, each shown only when it has photos (its note says why when it has none)."""
    return {"cell_gallery": gr.Gallery(visible=views.shown_if(bool(cell_items))),
            "mistakes": gr.Gallery(visible=views.shown_if(bool(mistake_items)))}


def follow_galleries(ui: SimpleNamespace, event) -> None:
    """After an event that fills or empties the galleries, show or hide them (a private follow-up, so the
    event's API keeps returning plain values; Gallery.change does not fire for a function's update)."""
    event.then(**wire(shown_when_filled, [ui.cell_gallery, ui.mistakes], **of(ui, "cell_gallery", "mistakes")),
               api_visibility="private", show_progress="hidden")


def class_pickers(classes: list[str], current_true: str | None = None, current_predicted: str | None = None):
    """Updated choices for the two pickers (true_class, predicted_class), keeping a choice that still exists."""
    keep = lambda value: value if value in classes else None  # noqa: E731
    return {"true_class": gr.Dropdown(choices=classes, value=keep(current_true)),
            "predicted_class": gr.Dropdown(choices=classes, value=keep(current_predicted))}


def bind(ui: SimpleNamespace, source: gr.components.Component, to_folder, api_prefix: str,
         latest: bool = False) -> None:
    """Wire the clicks and pickers; `to_folder(source value, user)` is the run folder whose photos are shown
    (its best epoch's, or with `latest` the last finished epoch's, as the matrix beside them)."""
    def photos(value, true_class, predicted_class, looked, request: gr.Request):
        return cell_photos(to_folder(value, user_of(request)), true_class, predicted_class, latest, bool(looked))

    looked = ui.looked if ui.looked is not None else gr.State(False)
    ui.confusion.click(**wire(pick_cell, None, **of(ui, "true_class", "predicted_class")), api_visibility="private")
    shown = wire(photos, [source, ui.true_class, ui.predicted_class, looked], **of(ui, "cell_note", "cell_gallery"))
    follow_galleries(ui, ui.true_class.change(**shown, api_name=f"{api_prefix}cell_photos", show_progress="hidden"))
    follow_galleries(ui, ui.predicted_class.change(**shown, api_visibility="private", show_progress="hidden"))
    if ui.looked is not None:
        def both(value, true_class, predicted_class, looked_on, request: gr.Request):
            folder = to_folder(value, user_of(request))
            return {**cell_photos(folder, true_class, predicted_class, latest, bool(looked_on)),
                    **confident_mistakes(folder, latest, bool(looked_on))}

        follow_galleries(ui, ui.looked.change(**wire(both, [source, ui.true_class, ui.predicted_class, ui.looked],
                                                     **of(ui, "cell_note", "cell_gallery", "mistakes_note",
                                                          "mistakes")),
                                              api_name=f"{api_prefix}where_it_looked"))
