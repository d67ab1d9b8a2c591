"""Step 4, Try it: classify a new photo with the trained model."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from components.named import of, wire
from components.session import model_path, user_of
from components.views import classes_if, shown_if
from studio.data.imaging import ImageDecodeError
from studio.familiarity import photo_words
from studio.inference import UNSURE_BELOW, WarmPredictor
from studio.modelfile import ModelFileError
from studio.runs import JobRunner


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
        answer = next((loaded or WarmPredictor())(path).predict_each([image], top_k=5, familiarity=True))
    except (ModelFileError, ImageDecodeError) as exc:
        return {"label": None, "advice": f"**Could not classify this image:** {exc}"}
    if answer.error is not None:
        return {"label": None, "advice": f"**Could not classify this image:** {answer.error}"}
    return {"label": dict(answer.top), "advice": advice_for(answer)}


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
    next_button = gr.Button("Next: export →")
    return SimpleNamespace(image=image, label=label, advice=advice, next=next_button, no_model=no_model,
                           ready=ready)


def bind(ui: SimpleNamespace, run_dir: gr.State, runner: JobRunner) -> None:
    loaded = WarmPredictor()   # this page's model, loaded once per model file

    def classify_as_user(request: gr.Request, image, folder):
        return classify(image, folder, user_of(request), runner=runner, loaded=loaded)

    # the answer box shows only with an answer (a private follow-up: the API keeps returning plain values)
    ui.image.change(**wire(classify_as_user, [ui.image, run_dir], **of(ui, "label", "advice")),
                    api_name="classify").then(
        show_answer, ui.label, ui.label, api_visibility="private", show_progress="hidden")


def show_answer(label) -> gr.Label:
    """The answer box, shown only when it holds an answer."""
    return gr.Label(visible=shown_if(bool(label)))
