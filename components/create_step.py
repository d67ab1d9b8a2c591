"""Inside step 1, Data: make a dataset in the browser (classes by name, photos, webcam) or extend one.

What is made is an ordinary folder of class folders in the studio's workspace
(`studio.data.workspace`); "Use this dataset" hands it to the Data step like any
upload, so the summary, the checks and training see exactly those files.
"""
from __future__ import annotations

import html
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from components.named import of, wire
from components.session import user_of
from studio.data import workspace as wd
from studio.data.sources import DatasetError, open_dataset
from studio.data.checks import diagnose
from studio.data.imaging import IMAGE_EXTENSIONS, ImageDecodeError, open_rgb

THUMBS = 60                 # newest photos of a class shown as thumbnails
BURST_EVERY_S = 0.25        # a burst saves about 4 photos a second
CAMERA_LIMIT_S = 600        # the camera feed stops after 10 minutes (press record again to go on)
CAMERA = {"video": {"width": {"ideal": 640}, "height": {"ideal": 480}}}  # plenty for a 224 px network
BURST_CHECK_EVERY_S = 3.0   # during a burst, the thumbnails and the check refresh this often
FILE_TYPES = sorted(IMAGE_EXTENSIONS)  # extensions, not "image": keeps the page's only accept='image/*' in Try it
SEVERITY = {"error": "Problem:", "warning": "Warning:", "info": "Note:"}
HELP = (f"Name a class for each kind of thing the model should tell apart, then add photos to it: drop many "
        f"files at once, or use the webcam. Each class needs at least {wd.NEEDED_PER_CLASS} photos "
        "(20 or more is better). Everything is saved as you go in the studio's workspace, as one folder "
        "per class; it is still here after a restart.")
_last_check: dict[str, float] = {}


def _esc(text) -> str:
    """User text made safe for Markdown/HTML (quotes stay readable)."""
    return html.escape(str(text), quote=False)


def dataset_folder(name: str | None, request) -> Path | None:
    """The folder of this person's dataset `name` in the workspace, or None."""
    if not name:
        return None
    try:
        return wd.dataset_dir(name, user_of(request))
    except wd.WorkspaceError:
        return None


def class_choices(folder: Path | None) -> list[tuple[str, str]]:
    """(label, value) for the class picker: the label says how many photos and how many more are needed."""
    if folder is None:
        return []
    choices = []
    for name, count in wd.counts(folder).items():
        more = wd.needs(count)
        choices.append((f"{name}: {count} photo{'s' if count != 1 else ''}"
                        + (f" (needs {more} more)" if more else ""), name))
    return choices


def classes_markdown(folder: Path | None) -> str:
    if folder is None:
        return "No dataset open. Type a name and press **Create**, or pick one of yours above."
    counts = wd.counts(folder)
    if not counts:
        return f"**{_esc(folder.name)}** has no classes yet. Type a class name and press **Add class**."
    lines = [f"**{_esc(folder.name)}**: {len(counts)} class{'es' if len(counts) != 1 else ''}, "
             f"{sum(counts.values())} photos", "", "| class | photos | ready? |", "|---|---|---|"]
    for name, count in counts.items():
        more = wd.needs(count)
        lines.append(f"| {_esc(name)} | {count} | "
                     + (f"needs {more} more photo{'s' if more != 1 else ''}" if more else "ready") + " |")
    if len(counts) < wd.MIN_CLASSES:
        lines.append(f"\nAdd {wd.MIN_CLASSES - len(counts)} more class: a classifier needs at least two.")
    return "\n".join(lines)


def check_markdown(folder: Path | None) -> str:
    """The Data step's checks (duplicates, tiny images, too few per class, ...) on the dataset as it is now."""
    if folder is None:
        return ""
    counts = wd.counts(folder)
    if sum(counts.values()) == 0:
        return "### Data check\nAdd photos to see the check."
    _last_check[str(folder)] = time.monotonic()
    try:
        dataset = open_dataset(folder)
    except DatasetError as exc:
        return f"### Data check\n{_esc(str(exc))}"
    report = diagnose(dataset)
    findings = [f for f in report.findings if f.paths or f.severity != "info"]
    if not findings:
        return "### Data check: no problems found\nPress **Use this dataset** to train on it."
    lines = [f"### Data check: {len(findings)} finding(s)"]
    for finding in findings:
        lines.append(f"- **{SEVERITY[finding.severity]}** {_esc(finding.message)}")
    return "\n".join(lines)


def thumbnails(folder: Path | None, name: str | None) -> tuple[list, list[str]]:
    """(gallery items captioned by file name, their file names): the newest THUMBS photos of a class."""
    if folder is None or not name:
        return [], []
    try:
        files = wd.images(folder, name)[-THUMBS:]
    except wd.WorkspaceError:
        return [], []
    items, names = [], []
    for file in reversed(files):  # newest first: a capture shows up at the top
        try:
            image = open_rgb(file, draft=160)
        except ImageDecodeError:
            continue
        image.thumbnail((160, 160))
        items.append((image, file.name))
        names.append(file.name)
    return items, names


# view()'s names, the API's order
VIEW = ("status", "dataset", "klass", "classes", "gallery", "check", "names", "photo")
UNCHANGED = dict.fromkeys(VIEW, gr.skip())


def view(folder: Path | None, klass: str | None, message: str, request=None, check: bool = True) -> dict:
    """Everything the section shows, by name (VIEW): status, dataset (picker), klass (class picker),
    classes (table), gallery (thumbnails), check, names (of the thumbnails), photo (picked)."""
    datasets = wd.list_datasets(user_of(request))
    choices = class_choices(folder)
    names = [value for _, value in choices]
    klass = klass if klass in names else (names[0] if names else None)
    items, files = thumbnails(folder, klass)
    return {"status": message, "dataset": gr.Dropdown(choices=datasets, value=folder.name if folder else None),
            "klass": gr.Radio(choices=choices, value=klass), "classes": classes_markdown(folder), "gallery": items,
            "check": check_markdown(folder) if check else gr.skip(), "names": files, "photo": None}


def _problem(text: str) -> str:
    return f"**Not done:** {_esc(text)}"


# ------------------------------------------------------------------ handlers

def open_one(dataset: str | None, klass: str | None = None, request: gr.Request = None) -> dict:
    folder = dataset_folder(dataset, request)
    message = f"Opened **{_esc(folder.name)}**." if folder else "Pick a dataset or create a new one."
    return view(folder, klass, message, request)


def pick_class(dataset: str | None, klass: str | None, request: gr.Request = None) -> dict:
    folder = dataset_folder(dataset, request)
    return view(folder, klass, f"New photos go into **{_esc(klass or '')}**." if klass else "", request,
                check=False)


# Each handler returns view()'s names; one that empties what was typed says so by the box's name
# (new_name, class_name, rename_to, files); a typed name that was refused stays (gr.skip()).

def new_dataset(name: str, request: gr.Request = None) -> dict:
    try:
        folder = wd.create_dataset(name, user_of(request))
    except wd.NameProblem as exc:
        return {**view(None, None, _problem(str(exc)), request), "new_name": gr.skip()}
    return {**view(folder, None, f"Created **{_esc(folder.name)}**. Now add a class.", request), "new_name": ""}


def add_class(dataset: str | None, name: str, request: gr.Request = None) -> dict:
    folder = dataset_folder(dataset, request)
    if folder is None:
        return {**view(None, None, _problem("Create or open a dataset first."), request), "class_name": gr.skip()}
    try:
        name = wd.add_class(folder, name)
    except wd.NameProblem as exc:
        return {**view(folder, None, _problem(str(exc)), request, check=False), "class_name": gr.skip()}
    return {**view(folder, name, f"Added class **{_esc(name)}**. Add at least {wd.NEEDED_PER_CLASS} "
                   "photos to it: drop files, or use the webcam.", request), "class_name": ""}


def rename_class(dataset: str | None, klass: str | None, new: str, request: gr.Request = None) -> dict:
    folder = dataset_folder(dataset, request)
    if folder is None or not klass:
        return {**view(folder, klass, _problem("Pick the class to rename first."), request), "rename_to": gr.skip()}
    try:
        new = wd.rename_class(folder, klass, new)
    except (wd.NameProblem, wd.WorkspaceError) as exc:
        return {**view(folder, klass, _problem(str(exc)), request, check=False), "rename_to": gr.skip()}
    return {**view(folder, new, f"Renamed **{_esc(klass)}** to **{_esc(new)}**.", request), "rename_to": ""}


def delete_class(dataset: str | None, klass: str | None, request: gr.Request = None) -> dict:
    folder = dataset_folder(dataset, request)
    if folder is None or not klass:
        return view(folder, klass, _problem("Pick the class to delete first."), request)
    try:
        count = len(wd.images(folder, klass))
        trash = wd.delete_class(folder, klass)
    except wd.WorkspaceError as exc:
        return view(folder, None, _problem(str(exc)), request)
    return view(folder, None, f"Deleted class **{_esc(klass)}** ({count} photos). They are kept in "
                f"`{_esc(str(trash))}` in case you want them back.", request)


def _added_message(klass: str, made: wd.Made, how: str) -> str:
    message = f"Added {len(made.added)} {how} to **{_esc(klass)}**."
    if made.refused:
        shown = "; ".join(f"{_esc(n)} ({_esc(r)})" for n, r in made.refused[:5])
        more = "…" if len(made.refused) > 5 else ""
        message += f" **{len(made.refused)} not added** (not a picture): {shown}{more}"
    return message


def add_files(dataset: str | None, klass: str | None, files, request: gr.Request = None) -> dict:
    """view()'s names, and files: the file box, emptied for the next drop."""
    folder = dataset_folder(dataset, request)
    files = [str(f) if isinstance(f, (str, Path)) else getattr(f, "name", str(f)) for f in (files or [])]
    if not files:
        return {**view(folder, klass, "Pick or drop photos to add.", request, check=False), "files": None}
    if folder is None or not klass:
        return {**view(folder, klass, _problem("Add a class (and pick it) before adding photos."), request),
                "files": None}
    try:
        made = wd.add_files(folder, klass, files)
    except wd.WorkspaceError as exc:
        return {**view(folder, None, _problem(str(exc)), request), "files": None}
    return {**view(folder, klass, _added_message(klass, made, "photo(s)"), request), "files": None}


def capture(dataset: str | None, klass: str | None, frame, request: gr.Request = None) -> dict:
    """One webcam shot ("Take a photo"): the camera's latest frame, saved into the picked class."""
    folder = dataset_folder(dataset, request)
    if frame is None:
        return view(folder, klass, _problem("Start the camera first: press the record button on the webcam "
                                            "picture (allow the camera if the browser asks)."), request,
                    check=False)
    if folder is None or not klass:
        return view(folder, klass, _problem("Add a class (and pick it) before taking photos."), request)
    try:
        made = wd.add_arrays(folder, klass, [frame])
    except wd.WorkspaceError as exc:
        return view(folder, None, _problem(str(exc)), request)
    if made.refused:
        return view(folder, klass, _problem(made.refused[0][1]), request, check=False)
    return view(folder, klass, _added_message(klass, made, "webcam photo"), request)


def burst(dataset: str | None, klass: str | None, frame, request: gr.Request = None) -> dict:
    """One frame of a burst: saved at once; thumbnails and the check refresh every few seconds."""
    folder = dataset_folder(dataset, request)
    if frame is None:
        return UNCHANGED
    if folder is None or not klass:
        return view(folder, klass, _problem("Add a class (and pick it) before recording a burst."), request,
                    check=False)
    try:
        made = wd.add_arrays(folder, klass, [frame], prefix="burst")
    except wd.WorkspaceError as exc:
        return view(folder, None, _problem(str(exc)), request, check=False)
    if made.refused:
        return view(folder, klass, _problem(made.refused[0][1]), request, check=False)
    count = len(wd.images(folder, klass))
    message = (f"Burst: 1 more photo saved to **{_esc(klass)}** (now {count}). Move the thing around a "
               "little; untick **Burst** (or stop the camera) when you have enough.")
    if time.monotonic() - _last_check.get(str(folder), 0.0) < BURST_CHECK_EVERY_S:
        return {**UNCHANGED, "status": message, "klass": gr.Radio(choices=class_choices(folder), value=klass),
                "classes": classes_markdown(folder)}
    return view(folder, klass, message, request)


def camera_frame(dataset: str | None, klass: str | None, burst_on: bool, frame, request: gr.Request = None) -> dict:
    """Each frame the live camera sends: kept as the latest (for "Take a photo"); saved too while Burst is on."""
    shown = burst(dataset, klass, frame, request) if burst_on else UNCHANGED
    return {**shown, "latest": frame}


def pick_photo(names: list[str] | None, evt: gr.SelectData) -> dict:
    """photo: the picked thumbnail's file name, and status."""
    index = evt.index if isinstance(evt.index, int) else (evt.index or [None])[0]
    name = (names or [])[index] if index is not None and index < len(names or []) else None
    return {"photo": name, "status": (f"Picked **{_esc(name)}**. Press **Remove the picked photo** to take it out."
                                      if name else "Click a thumbnail to pick it.")}


def remove_photo(dataset: str | None, klass: str | None, photo: str | None, request: gr.Request = None) -> dict:
    folder = dataset_folder(dataset, request)
    if folder is None or not klass or not photo:
        return view(folder, klass, _problem("Click a thumbnail first, then remove it."), request, check=False)
    try:
        wd.remove_image(folder, klass, photo)
    except wd.WorkspaceError as exc:
        return view(folder, klass, _problem(str(exc)), request)
    return view(folder, klass, f"Removed **{_esc(photo)}** from **{_esc(klass)}**.", request)


def download(dataset: str | None, request: gr.Request = None) -> dict:
    """archive: the dataset as a .zip (or None), and status."""
    folder = dataset_folder(dataset, request)
    if folder is None:
        return {"archive": None, "status": _problem("Create or open a dataset first.")}
    archive = wd.zip_dataset(folder)
    return {"archive": str(archive), "status": (f"**{_esc(folder.name)}.zip** is ready: one folder per class. "
                                                "Upload it anywhere, or train on it from the command line.")}


def extend(data_source: dict | None, request: gr.Request = None) -> dict:
    """Copy the dataset the Data step has chosen into the workspace, to add classes or photos to it."""
    user = user_of(request)
    if not data_source:
        return view(None, None, _problem("Choose a dataset above first (the example or an upload)."), request)
    source = data_source["source"] if isinstance(data_source, dict) else str(data_source)
    separator = data_source.get("prefix_separator") if isinstance(data_source, dict) else None
    if isinstance(data_source, dict) and data_source.get("multilabel"):
        return view(None, None, _problem("A dataset made here has one class per photo (a folder per class), so "
                                         "data with several labels per photo cannot be copied into one. Edit its "
                                         "labels CSV instead."), request)
    if wd.is_workspace_dataset(source, user) and not separator:
        return open_one(Path(source).name, None, request)
    name = wd.free_name(f"{Path(source).stem.split('-')[0] or 'dataset'} copy", user)
    try:
        folder, copied = wd.copy_into_workspace(source, name, user, separator)
    except (wd.WorkspaceError, wd.NameProblem) as exc:
        return view(None, None, _problem(str(exc)), request)
    return view(folder, None, f"Copied {copied} photos into a new dataset **{_esc(folder.name)}**; your "
                "original files are not touched. Add classes or photos, then press **Use this dataset**.",
                request)


# ------------------------------------------------------------------ layout

def render() -> SimpleNamespace:
    with gr.Accordion("…or make your own dataset here: name classes, add photos or use the webcam",
                      open=False, elem_id="create-section") as section:
        gr.Markdown(HELP, elem_classes="ts-help")
        with gr.Row(equal_height=False):
            with gr.Column(min_width=260):
                dataset = gr.Dropdown([], label="Your datasets", elem_id="create-dataset", interactive=True,
                                      info="Datasets you made here. Pick one to keep working on it.")
            with gr.Column(min_width=260):
                new_name = gr.Textbox(label="New dataset name", max_lines=1, placeholder="e.g. my desk things",
                                      info="Letters, digits, spaces, - and _.", elem_id="create-new-name")
                create = gr.Button("Create", size="sm")
        status = gr.Markdown("", elem_id="create-status")
        with gr.Row(equal_height=False):
            with gr.Column(min_width=260):
                class_name = gr.Textbox(label="New class name", max_lines=1, placeholder="e.g. mug",
                                        info="One class per kind of thing to recognise.",
                                        elem_id="create-class-name")
                add = gr.Button("Add class", size="sm")
            with gr.Column(min_width=260):
                rename_to = gr.Textbox(label="Rename the picked class to", max_lines=1, elem_id="create-rename")
                with gr.Row():
                    rename = gr.Button("Rename class", size="sm", min_width=120)
                    delete = gr.Button("Delete class", size="sm", variant="stop", min_width=120)
        klass = gr.Radio([], label="Add photos to this class", elem_id="create-class",
                         info="Pick a class; new photos and webcam shots go into it.")
        with gr.Tabs():
            with gr.Tab("Photo files"):
                files = gr.File(label="Drop photos here, or click to pick many at once", file_count="multiple",
                                file_types=FILE_TYPES, height=120, elem_id="create-files")
            with gr.Tab("Webcam"):
                camera = gr.Image(sources=["webcam"], type="numpy", streaming=True, height=320,
                                  label="Webcam: press the record button to start the camera",
                                  webcam_options=gr.WebcamOptions(constraints=CAMERA), elem_id="create-webcam")
                with gr.Row():
                    take = gr.Button("Take a photo", variant="primary", min_width=140, elem_id="create-take")
                    burst_on = gr.Checkbox(False, label="Burst: save about 4 photos a second",
                                           info="Tick, move the thing around for a few seconds, untick.",
                                           elem_id="create-burst", min_width=200)
        classes = gr.Markdown(classes_markdown(None), elem_id="create-classes")
        gallery = gr.Gallery(label="Photos of the picked class (newest first; click one to pick it)",
                             columns=4, height=300, object_fit="cover", allow_preview=False,
                             elem_id="create-gallery")
        remove = gr.Button("Remove the picked photo", size="sm")
        check = gr.Markdown("", elem_id="create-check")
        with gr.Row():
            use_button = gr.Button("Use this dataset", variant="primary", min_width=160)
            zip_button = gr.Button("Download as .zip", min_width=160)
            extend_button = gr.Button("Copy the chosen dataset here to add to it", min_width=200)
        gr.Markdown("**Copy the chosen dataset here** copies the example or your upload into a new dataset "
                    "of your own, so you can add classes or photos; your original files are never changed.",
                    elem_classes="ts-help")
        archive = gr.File(label="Your dataset as a .zip", interactive=False, elem_id="create-zip")
    return SimpleNamespace(section=section, dataset=dataset, new_name=new_name, create=create, status=status,
                           class_name=class_name, add=add, rename_to=rename_to, rename=rename, delete=delete,
                           klass=klass, files=files, camera=camera, take=take, burst_on=burst_on, classes=classes,
                           gallery=gallery, remove=remove, check=check, use=use_button,
                           zip=zip_button, extend=extend_button, archive=archive, names=gr.State([]),
                           photo=gr.State(None), latest=gr.State(None))


def bind(ui: SimpleNamespace, data_source: gr.State) -> None:
    """Wire the section; its **Use this dataset** button is wired by the Data step, which it hands the data to."""
    shown = of(ui, *VIEW)
    private = dict(api_visibility="private")
    ui.section.expand(**wire(open_one, [ui.dataset, ui.klass], **shown), **private)
    ui.dataset.input(**wire(open_one, [ui.dataset], **shown), api_name="open_dataset")
    ui.klass.input(**wire(pick_class, [ui.dataset, ui.klass], **shown), **private)
    ui.create.click(**wire(new_dataset, ui.new_name, **shown, new_name=ui.new_name), api_name="new_dataset")
    ui.new_name.submit(**wire(new_dataset, ui.new_name, **shown, new_name=ui.new_name), **private)
    ui.add.click(**wire(add_class, [ui.dataset, ui.class_name], **shown, class_name=ui.class_name),
                 api_name="add_class")
    ui.class_name.submit(**wire(add_class, [ui.dataset, ui.class_name], **shown, class_name=ui.class_name),
                         **private)
    ui.rename.click(**wire(rename_class, [ui.dataset, ui.klass, ui.rename_to], **shown, rename_to=ui.rename_to),
                    api_name="rename_class")
    ui.delete.click(**wire(delete_class, [ui.dataset, ui.klass], **shown), api_name="delete_class")
    ui.files.upload(**wire(add_files, [ui.dataset, ui.klass, ui.files], **shown, files=ui.files),
                    api_name="add_photos")
    ui.camera.stream(**wire(camera_frame, [ui.dataset, ui.klass, ui.burst_on, ui.camera], **shown, latest=ui.latest),
                     api_name="camera_frame", stream_every=BURST_EVERY_S, time_limit=CAMERA_LIMIT_S,
                     show_progress="hidden", concurrency_limit=None)
    ui.take.click(**wire(capture, [ui.dataset, ui.klass, ui.latest], **shown), api_name="take_photo",
                  show_progress="minimal")
    ui.gallery.select(**wire(pick_photo, ui.names, **of(ui, "photo", "status")), **private)
    ui.remove.click(**wire(remove_photo, [ui.dataset, ui.klass, ui.photo], **shown), api_name="remove_photo")
    ui.zip.click(**wire(download, ui.dataset, **of(ui, "archive", "status")), api_name="download_dataset")
    ui.extend.click(**wire(extend, data_source, **shown), api_name="extend_dataset")
