"""Step 4, Try it: classify a new photo with the trained model."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from components.named import of, wire
from components.session import model_path, user_of
from components.views import classes_if, shown_if
from studio import shift
from studio.adapt import AdaptError, start_adaptation
from studio.data.imaging import ImageDecodeError, image_files
from studio.data.sources import DatasetError
from studio.data.zips import extract_zip
from studio.explain import ExplainError, WarmExplainer
from studio.familiarity import photo_words
from studio.inference import UNSURE_BELOW, WarmPredictor
from studio.modelfile import ModelFileError
from studio.runs import JobRunner, RunBusyError


def classify(image, run_dir: str | None, user: str | None = None, *, runner: JobRunner,
             loaded: WarmPredictor | None = None):
    """label ({class: probability} for gr.Label) and advice (markdown) for one photo; `loaded` keeps the
    model loaded between photos (without it, each call loads the model)."""
    if image is None:
        return {"label": None, "advice": "Upload a photo or take one with the webcam."}
    path = model_path(run_dir, user, runner=runner)
    if path is None:
        return {"label": None, "advice": "**No trained model yet.** Train one in step 3 first."}
    try:
        predictor = (loaded or WarmPredictor())(path)
        answer = next(predictor.predict_each([image], top_k=5, familiarity=True))
    except (ModelFileError, ImageDecodeError) as exc:
        return {"label": None, "advice": f"**Could not classify this image:** {exc}"}
    if answer.error is not None:
        return {"label": None, "advice": f"**Could not classify this image:** {answer.error}"}
    if predictor.multilabel:   # several labels: the words list them all (a one-answer box would mislead)
        return {"label": None, "advice": labels_advice(answer, dict(zip(predictor.classes, predictor.thresholds)))}
    return {"label": dict(answer.top), "advice": advice_for(answer)}


def where_it_looked(image, run_dir: str | None, user: str | None = None, *, runner: JobRunner,
                    loaded: WarmPredictor | None = None, explainers: WarmExplainer | None = None) -> dict:
    """heatmap (the photo with a Grad-CAM heatmap of the model's answer over it, or None) and heatmap_note."""
    path = model_path(run_dir, user, runner=runner) if image is not None else None
    if path is None:
        return {"heatmap": None, "heatmap_note": ""}
    try:
        predictor = (loaded or WarmPredictor())(path)
        found = (explainers or WarmExplainer())(predictor).explain(image)
    except (ModelFileError, ImageDecodeError, ExplainError) as exc:
        return {"heatmap": None, "heatmap_note": f"No heatmap for this photo: {exc}"}
    answered = (f"for **{found.class_name}** (its likeliest label)" if predictor.multilabel
                else f"to answer **{found.class_name}**")
    return {"heatmap": found.overlay,
            "heatmap_note": f"Where the model looked {answered}: red is where the photo "
                            "counted most for that answer, blue where it hardly counted. A model that looks at the "
                            "background or a watermark instead of the thing itself has learnt a shortcut."}


def advice_for(answer) -> str:
    """The answer in words: sure, unsure (low calibrated confidence), or none of these (an unfamiliar photo)."""
    best_class, best_p = answer.top[0]
    if answer.unfamiliar:
        advice = (f"**Maybe none of these, so the model is unsure:** {photo_words(answer.familiarity)} "
                  f"Best guess {best_class} ({best_p:.0%}).")
    elif best_p < UNSURE_BELOW:
        advice = (f"**The model is unsure** (best guess {best_class}, {best_p:.0%}). The photo may show "
                  "something unlike the training photos.")
    else:
        advice = f"The model says **{best_class}** ({best_p:.0%} sure)."
        if answer.familiarity:
            advice += " " + photo_words(answer.familiarity)
    return advice


def labels_advice(answer, thresholds: dict) -> str:
    """A multi-label answer in words: every label at or above its own threshold with its score (a calibrated
    likelihood), then the near-misses below theirs, as two short lists (they fit beside the photo); unsure when
    no label reached its threshold or the photo is unlike the training photos (as for one class per photo)."""
    found, near = answer.labels or [], answer.near or []
    if answer.unfamiliar:
        lead = f"**Maybe none of these, so the model is unsure:** {photo_words(answer.familiarity)}"
    elif not found:
        lead = ("**No label reached its threshold:** the model finds none of its labels in this photo (it may show "
                "none of them, or something unlike the training photos).")
    else:
        plural = "s" if len(found) != 1 else ""
        lead = f"**The model finds {len(found)} label{plural}:** {', '.join(name for name, _ in found)}."
        if answer.familiarity:
            lead += " " + photo_words(answer.familiarity)

    def listed(pairs: list) -> list[str]:
        return [f"- **{name}** {p:.0%} (its threshold {thresholds.get(name, 0.5):.0%})" for name, p in pairs]

    lines = [lead]
    if found:
        lines += ["", "**Found** (each at or above its own threshold):", *listed(found)]
    if near:
        lines += ["", "**Below threshold** (the likeliest labels it did not give):", *listed(near)]
    lines += ["", "Each label is a yes/no question with its own threshold, tuned on the validation photos; the score "
                  "is how likely the label is."]
    return "\n".join(lines)


CHECK_COLUMNS = ["photo", "shift", "familiar?", "answer", "confidence"]


def new_photo_files(files) -> dict[Path, str]:
    """The photos among an upload of files and .zip archives (a zip is unpacked safely, once), each with
    the name the person knows it by: its path inside its zip, else its file name."""
    shown: dict[Path, str] = {}
    for file in files or []:
        path = Path(file if isinstance(file, str) else getattr(file, "name", str(file)))
        if path.suffix.lower() == ".zip":
            folder = extract_zip(path)
            shown.update({photo: str(photo.relative_to(folder)) for photo in image_files([folder])})
        else:
            shown[path] = path.name
    return shown


def check_photos(files, run_dir: str | None, user: str | None = None, *, runner: JobRunner,
                 progress=None, loaded: WarmPredictor | None = None) -> dict:
    """check_words (markdown) and check_table (photos, most unfamiliar first) for a batch of new photos;
    `loaded` is the page's model, loaded once (as for single photos)."""
    empty = pd.DataFrame(columns=CHECK_COLUMNS)
    path = model_path(run_dir, user, runner=runner)
    if path is None:
        return {"check_words": NO_MODEL, "check_table": empty}
    if not files:
        return {"check_words": "Drop some new photos (or a .zip of them) in the box first.", "check_table": empty}
    try:
        photos = new_photo_files(files)
    except DatasetError as exc:
        return {"check_words": f"**Could not open the upload:** {exc}", "check_table": empty}
    if not photos:
        return {"check_words": "No photos were found in the upload (jpg, png, webp, bmp, tiff, gif...).",
                "check_table": empty}
    try:
        found = shift.check((loaded or WarmPredictor())(path), list(photos), progress=progress)
    except (shift.ShiftUnavailable, ModelFileError) as exc:
        return {"check_words": f"**These photos cannot be checked against this model:** {exc}", "check_table": empty}
    rows = sorted(found["photos"], key=lambda p: -p["shift"])
    table = pd.DataFrame([[photos.get(Path(p["path"]), Path(p["path"]).name), p["shift"],
                           "unfamiliar" if p["unfamiliar"] else "familiar", p["answer"], f"{p['confidence']:.0%}"]
                          for p in rows], columns=CHECK_COLUMNS)
    words = f"{len(rows)} photos checked. " + found["words"]
    if found["unreadable"]:
        words += "\n\n**Left out, could not be read:** " + "; ".join(
            f"{photos.get(Path(u['path']), Path(u['path']).name)} ({u['reason']})" for u in found["unreadable"])
    return {"check_words": words, "check_table": table}


def check_with_folder(upload) -> Path | None:
    """The folder of the optional labelled new-site photos: the .zip of class folders unpacked (safely, once)."""
    if not upload:
        return None
    path = Path(upload if isinstance(upload, str) else getattr(upload, "name", str(upload)))
    if path.suffix.lower() != ".zip":
        raise DatasetError(f"{path.name} is not a .zip: give the labelled new-site photos as a .zip of class "
                           "folders named like the model's classes.")
    return extract_zip(path)


def adapt_to_photos(files, run_dir: str | None, user: str | None = None, *, runner: JobRunner,
                    progress=None, check_with=None) -> dict:
    """adapt_words and run_dir: adapt the model to the uploaded photos (a new run, waited for here); when it
    is kept, this page's Try it and Export move to the adapted model, and the original run stays as it was.
    `check_with`: an optional .zip of labelled new-site photos (class folders) that decide whether it is kept."""
    path = model_path(run_dir, user, runner=runner)
    if path is None:
        return {"adapt_words": NO_MODEL}
    if not files:
        return {"adapt_words": "Drop the new site's photos (or a .zip of them) in the box first: a few dozen or "
                               "more, of the same classes, no labels needed."}
    try:
        photos = new_photo_files(files)
        run = start_adaptation(path.parent, list(photos), runner=runner, owner=user,
                               check_with=check_with_folder(check_with))
    except (DatasetError, AdaptError, ModelFileError, RunBusyError) as exc:
        return {"adapt_words": f"**Could not adapt:** {exc}"}
    while run.is_active():
        run.wait(0.5)
        snap = run.snapshot()
        if progress:
            progress(snap.get("progress") or 0.0, snap.get("phase", ""))
    snap = run.snapshot()
    if snap["status"] != "finished":
        return {"adapt_words": f"**The model was left as it is.** {snap['error']}"}
    words = (snap.get("adaptation") or {}).get("words", "")
    return {"adapt_words": f"**Adapted.** {words}\n\nTry it and Export now use the adapted model "
                           f"(run `{run.id}`); the original run is unchanged under **Runs**.",
            "run_dir": str(run.dir)}


NO_MODEL = ("**No trained model yet.** Train one in step 3 (or pick a past run under **Runs** and press "
            "*Try this run*), then come back here to give it a photo.")


def readiness(run_dir: str | None, user: str | None = None, *, runner: JobRunner):
    """no_model (the note) and ready (the photo row): the photo box only when there is a model to give it to."""
    ready = model_path(run_dir, user, runner=runner) is not None
    return {"no_model": gr.Markdown(visible=shown_if(not ready)), "ready": gr.Row(elem_classes=classes_if(ready))}


def render() -> SimpleNamespace:
    gr.Markdown("Give the model a photo it has never seen.")
    no_model = gr.Markdown(NO_MODEL, elem_id="try-no-model")
    # shown once a model exists (readiness); the answer box once there is an answer
    with gr.Row(elem_classes=classes_if(False), elem_id="try-ready") as ready:
        image = gr.Image(type="pil", sources=["upload", "webcam", "clipboard"], label="Photo", height=320)
        with gr.Column():
            label = gr.Label(num_top_classes=5, label="What the model sees", visible=False, elem_id="try-label")
            advice = gr.Markdown("", elem_id="try-advice")
        with gr.Column():
            heatmap = gr.Image(type="pil", label="Where it looked", height=320, interactive=False, visible=False,
                               elem_id="try-heatmap")
            heatmap_note = gr.Markdown("", elem_id="try-heatmap-note", elem_classes="ts-help")
    with gr.Accordion("Check new photos: are they like the training photos?", open=False,
                      elem_id="check-new-photos"):
        gr.Markdown("Photos from a new camera, place or season can look unlike the photos the model learned "
                    "from, and then its answers are less reliable. Drop a batch of them (or a .zip) to see how "
                    "familiar they look to the model, most unfamiliar first. Nothing is trained or changed.")
        new_photos = gr.File(label="New photos, or a .zip of them", file_count="multiple", height=120,
                             elem_id="check-files")
        with gr.Row():
            check_button = gr.Button("Check these photos", elem_id="check-button")
            adapt_button = gr.Button("Adapt to new photos", elem_id="adapt-button")
        gr.Markdown("*Adapt to new photos* makes a new run whose model has learnt what these photos look like, "
                    "from the answers it is surest of (no labels needed; a few minutes on a CPU). It says no, and "
                    "keeps the model as it is, if that would make it worse on your labelled validation photos, "
                    "or if the photos seem to show other classes. It does not always help on the new site "
                    "(on rendered-to-real traffic signs it did not): check a few of its answers there before "
                    "relying on it.")
        check_with = gr.File(label="Optional, for Adapt: a few labelled photos from the new site (.zip of class "
                                   "folders named like your classes)", file_types=[".zip"], height=100,
                             elem_id="adapt-check-with")
        gr.Markdown("With them, the adapted model is kept only if it gets at least as many of them right as the "
                    "model you have now; they are never trained on. A few per class is enough to catch an "
                    "adaptation that learnt the new photos wrongly.")
        check_words = gr.Markdown("", elem_id="check-words")
        check_table = gr.Dataframe(headers=CHECK_COLUMNS, interactive=False, wrap=True, max_height=360,
                                   label="Each photo, most unfamiliar first (shift: about 1 is normal)",
                                   elem_id="check-table")
        adapt_words = gr.Markdown("", elem_id="adapt-words")
    next_button = gr.Button("Next: export →")
    return SimpleNamespace(image=image, label=label, advice=advice, heatmap=heatmap, heatmap_note=heatmap_note,
                           next=next_button, no_model=no_model,
                           ready=ready, new_photos=new_photos, check=check_button, check_words=check_words,
                           check_table=check_table, adapt=adapt_button, adapt_words=adapt_words,
                           check_with=check_with)


def bind(ui: SimpleNamespace, run_dir: gr.State, runner: JobRunner) -> None:
    loaded = WarmPredictor()   # this page's model, loaded once per model file

    def classify_as_user(request: gr.Request, image, folder):
        return classify(image, folder, user_of(request), runner=runner, loaded=loaded)

    # the answer box shows only with an answer (a private follow-up: the API keeps returning plain values)
    explainers = WarmExplainer()   # this page's heatmaps, made once per model

    def explain_as_user(request: gr.Request, image, folder):
        return where_it_looked(image, folder, user_of(request), runner=runner, loaded=loaded, explainers=explainers)

    # the answer first (milliseconds), then where the model looked (a backward pass: a fraction of a second)
    answered = ui.image.change(**wire(classify_as_user, [ui.image, run_dir], **of(ui, "label", "advice")),
                               api_name="classify")
    answered.then(show_answer, ui.label, ui.label, api_visibility="private", show_progress="hidden")
    answered.then(**wire(explain_as_user, [ui.image, run_dir], **of(ui, "heatmap", "heatmap_note")),
                  api_name="where_it_looked").then(
        lambda heat: gr.Image(visible=shown_if(heat is not None)), ui.heatmap, ui.heatmap, api_visibility="private",
        show_progress="hidden")

    def check_as_user(request: gr.Request, files, folder, progress=gr.Progress()):
        return check_photos(files, folder, user_of(request), runner=runner,
                            progress=lambda words: progress(None, desc=words), loaded=loaded)

    ui.check.click(**wire(check_as_user, [ui.new_photos, run_dir], **of(ui, "check_words", "check_table")),
                   api_name="check_new_photos")

    def adapt_as_user(request: gr.Request, files, check_with, folder, progress=gr.Progress()):
        return adapt_to_photos(files, folder, user_of(request), runner=runner,
                               progress=lambda share, words: progress(share, desc=words), check_with=check_with)

    ui.adapt.click(**wire(adapt_as_user, [ui.new_photos, ui.check_with, run_dir], adapt_words=ui.adapt_words,
                          run_dir=run_dir),
                   api_name="adapt_to_new_photos")


def show_answer(label) -> gr.Label:
    """The answer box, shown only when it holds an answer."""
    return gr.Label(visible=shown_if(bool(label)))
