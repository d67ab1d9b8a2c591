"""Step 1, Data: upload a .zip or use the built-in example; see what is in it."""
from __future__ import annotations

import html
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from components import create_step, sort_step, views
from components.named import of, wire
from components.session import user_of
from studio import paths, scratch
from studio.data import workspace
from studio.data.samples import MULTI_LABEL, OUTSIDE_CLASS, label_list
from studio.data.sources import DatasetError, open_dataset, prefix_preview
from studio.data.checks import DEFAULT_EXCLUDE, diagnose
from studio.data.imaging import IMAGE_EXTENSIONS, ImageDecodeError, image_files, is_image_name, open_rgb
from studio.data.outliers import find_outliers
from studio.unlabeled.features import unpacked

SAMPLES_PER_CLASS = 6
PREFIX_HINT = ("If each file name starts with its class (for example `cat_001.jpg`, `dog_002.jpg`), open "
               "**My images are in one folder** below and type the character that ends the class name. "
               "Otherwise put each class's images in a folder named after the class and zip the folders.")
UNVIEWABLE = ("junk", "not_images", "unreadable")  # findings whose files have no picture to show
SEVERITY_ICON = {"error": "Problem:", "warning": "Warning:", "info": "Note:"}  # words: emoji fonts may be missing
EXCLUDE_LABELS = {"exact_duplicates": "Extra copies of identical files",
                  "near_duplicates": "Extra copies of near-identical pictures",
                  "conflicting_labels": "Pictures that appear in more than one class",
                  "train_val_leak": "Training copies of validation pictures (leakage)",
                  "tiny_images": "Images smaller than 32 px",
                  "outliers": "Pictures that don't look like their class (suggestion)",
                  "wrong_folder": "Photos probably in the wrong folder (your picks on the Runs page)"}


def _empty(message: str, skipped: list[dict] | None = None) -> dict:
    """Nothing to train on; what was left out (`skipped`) is still listed, so the user sees why."""
    # the chart keeps what it showed (hidden, see show_what_applies): emptied while hidden, Gradio's plot
    # would throw from its resize observer
    return {"data_source": None, "summary": message, "chart": gr.skip(), "gallery": [], "skipped": _skipped(skipped),
            "findings": "", "picker": gr.Dropdown(choices=[], value=None),
            "leave_out": gr.CheckboxGroup(choices=[], value=[]), "report": None, "paths": {}, "findings_state": []}


def _check_progress(progress):
    """Adapt a gr.Progress to the doctor's (done, total) callback."""
    if progress is None:
        return None
    return lambda done, total: progress((done, total), desc="Checking images", unit="images")


TASKS = [("Auto (from the data)", "auto"), ("One class per photo", "single-label"),
         ("Several labels per photo", MULTI_LABEL)]   # TrainConfig.task's values, in the page's words


def describe(source: str, progress=None, separator: str | None = None, task: str = "auto") -> dict:
    """Everything the Data step shows about a dataset, by name (DESCRIBED): data_source
    ({"source", "prefix_separator"} or None; with "task" when one other than Auto was asked for, and
    "multilabel": True for data with several labels per photo), summary, chart, gallery (samples), skipped
    (table), findings (markdown), picker, leave_out (choices), report (file), paths ({finding kind: paths}),
    findings_state (the finding dicts).
    """
    try:
        dataset = open_dataset(source, prefix_separator=separator or None, task=task)
    except DatasetError as exc:
        return _empty(f"### This data can't be used yet\n{html.escape(str(exc))}")
    if len(dataset.classes) == 1 and not separator:
        return _empty(f"### Only one class found ({html.escape(dataset.classes[0])})\nA classifier needs at "
                      "least two. " + PREFIX_HINT, dataset.skipped)
    loose = [s for s in dataset.skipped if s["reason"].startswith(OUTSIDE_CLASS)]
    if len(dataset.samples) == 0 and loose:
        return _empty(f"### {len(loose)} images, but no class folders\n" + PREFIX_HINT, dataset.skipped)
    report = diagnose(dataset, _check_progress(progress))
    if not report.trainable:
        return _empty(f"### This data can't be used yet\n{html.escape(report.reason)}", dataset.skipped)
    counts = dataset.counts()
    lines = _multilabel_summary(dataset, counts) if dataset.is_multilabel else [
             f"### {len(dataset.classes)} classes, {len(dataset.samples):,} images",
             "| class | " + " | ".join(counts.columns) + " |", "|---|" + "---|" * len(counts.columns)]
    if not dataset.is_multilabel:
        for name, row in counts.iterrows():
            lines.append(f"| {html.escape(name)} | " + " | ".join(str(int(v)) for v in row) + " |")
    split = ("Using your own train/validation folders." if dataset.split_source.startswith("folders")
             else "No validation folder found: 20% of each class is held out to measure accuracy honestly.")
    if dataset.is_multilabel:
        split = ("Using the CSV's own train/validation split." if dataset.split_source == "csv" else
                 "No split column in the labels CSV: 20% of the photos, drawn at random, are held out to measure "
                 "the model honestly.")
    lines.append(f"\n{split}")
    if dataset.skipped:
        # a grouped line (a test split, a __MACOSX folder) stands for every file under its members
        left_out = sum(len(entry.get("members") or []) or 1 for entry in dataset.skipped)
        lines.append(f"\n**{left_out} file(s) not used** (listed below, with the reason). "
                     "Your files are not changed.")
    lines.append("\nNext: **2. Model**.")
    findings = [asdict(f) for f in report.findings if f.paths or f.severity != "info"]
    report_file = scratch.new_folder("report-") / "data-report.json"
    report_file.write_text(json.dumps(report.to_dict(dataset), indent=2))
    source_state = {"source": str(dataset.root), "prefix_separator": separator or None,
                    **({"task": task} if task != "auto" else {}),
                    **({"multilabel": True} if dataset.is_multilabel else {})}
    return {"data_source": source_state, "summary": "\n".join(lines), "chart": views.counts_frame(counts),
            "gallery": _gallery(dataset), "skipped": _skipped(dataset.skipped),
            **render_findings(findings, list(DEFAULT_EXCLUDE)), "report": str(report_file),
            "findings_state": findings}


def _multilabel_summary(dataset, counts: pd.DataFrame) -> list[str]:
    """The summary's first lines for data with several labels per photo: what it is, the multi-label check's
    words (labels per photo, labels always together, labels too rare, photos with no label) and photos per label
    and split, each label's problem beside it (markdown lines)."""
    check = dataset.multilabel_check or {}
    rare, together = set(check.get("rare") or []), check.get("always_together") or []
    partners = {name: [b if a == name else a for a, b in together if name in (a, b)] for name in dataset.classes}
    lines = [f"### Several labels per photo: a multi-label task ({len(dataset.classes)} labels, "
             f"{len(dataset.samples):,} photos)",
             "Each label is a yes/no question the model answers for every photo, so a photo can get any number of "
             "them. Not what you meant? Change **Kind of task** below.", "", "**Multi-label check:**"]
    lines += [f"- {html.escape(sentence)}" for sentence in check.get("words") or []]
    lines += ["", "| label | " + " | ".join(counts.columns) + " | note |", "|---|" + "---|" * (len(counts.columns) + 1)]
    for name, row in counts.iterrows():
        note = "; ".join((["too rare to learn well"] if name in rare else []) +
                         [f"always with {html.escape(other)}" for other in partners.get(name, [])])
        lines.append(f"| {html.escape(name)} | " + " | ".join(str(int(v)) for v in row) + f" | {note} |")
    return lines


def render_findings(findings: list[dict], ticked: list[str]) -> dict:
    """findings (markdown), picker, leave_out (choices) and paths ({kind: paths}) from finding dicts."""
    with_files = [f for f in findings if f["paths"]]
    picker = gr.Dropdown(choices=[(f"{SEVERITY_ICON[f['severity']]} {f['kind'].replace('_', ' ')} "
                                   f"({len(f['paths'])})", f["kind"]) for f in with_files],
                         value=next((f["kind"] for f in with_files if f["kind"] not in UNVIEWABLE),
                                    next((f["kind"] for f in with_files), None)))
    excludable = [k for k in EXCLUDE_LABELS if any(f["kind"] == k and f["exclude"] for f in findings)]
    leave_out = gr.CheckboxGroup(choices=[(EXCLUDE_LABELS[k], k) for k in excludable],
                                 value=[k for k in excludable if k in ticked])
    return {"findings": _findings_markdown(findings), "picker": picker, "leave_out": leave_out,
            "paths": {f["kind"]: f["paths"] for f in with_files}}


def _findings_markdown(findings: list[dict]) -> str:
    if not findings:
        return "### Data check: no problems found"
    lines = [f"### Data check: {len(findings)} finding(s)"]
    for f in findings:
        lines.append(f"- **{SEVERITY_ICON[f['severity']]}** **{f['kind'].replace('_', ' ')}**: "
                     f"{html.escape(f['message'])}")
    lines.append("\nPick a finding below to see its files. Choose what to leave out of training; "
                 "your files are never changed.")
    return "\n".join(lines)


def look_for_outliers(data_source: dict | None, findings: list[dict] | None, ticked: list[str] | None,
                      progress=gr.Progress()) -> dict:
    """Run the optional outlier suggestion and add it to the findings (nothing is left out unless ticked):
    outlier_note, findings, picker, leave_out, paths, findings_state."""
    findings = [f for f in (findings or []) if f["kind"] != "outliers"]
    if not data_source:
        return {"outlier_note": "Choose data first.", **render_findings(findings, ticked or []),
                "findings_state": findings}
    dataset = open_dataset(data_source["source"], prefix_separator=data_source.get("prefix_separator"))
    finding = find_outliers(dataset, progress=lambda d, t: progress((d, t), desc="Looking at every picture",
                                                                   unit="steps"))
    if finding is None:
        note = "The pretrained network found no picture that stands out from the rest of its class."
    else:
        findings.append(asdict(finding))
        note = (f"{len(finding.paths)} picture(s) stand out; see **outliers** in the list below. "
                "Tick *Pictures that don't look like their class* to leave them out.")
    return {"outlier_note": note, **render_findings(findings, ticked or []), "findings_state": findings}


def finding_gallery(kind: str | None, paths_by_kind: dict | None) -> list:
    """Thumbnails of the files of one finding, captioned class/file name."""
    items = []
    for path in (paths_by_kind or {}).get(kind, [])[:48]:
        try:
            image = open_rgb(path, draft=192)
        except ImageDecodeError:
            continue
        image.thumbnail((192, 192))
        items.append((image, "/".join(Path(path).parts[-2:])))
    return items


def _gallery(dataset) -> list:
    """Sample training photos of each class; for several labels per photo, of each label, each photo once and
    captioned with all of its labels."""
    items = []
    train = dataset.split("train")
    if dataset.is_multilabel:
        return _multilabel_gallery(train, dataset.classes)
    for name in dataset.classes:
        for path in train[train.label == name].path.head(SAMPLES_PER_CLASS):
            try:
                image = open_rgb(path, draft=256)
            except ImageDecodeError:
                continue
            image.thumbnail((256, 256))
            items.append((image, name))
    return items


def _multilabel_gallery(train: pd.DataFrame, labels: list[str]) -> list:
    chosen: dict[str, list[str]] = {}
    sets = [(path, label_list(cell)) for path, cell in zip(train.path, train.label)]
    for name in labels:
        having = [(path, has) for path, has in sets if name in has and path not in chosen]
        chosen.update(having[:SAMPLES_PER_CLASS])
    items = []
    for path, has in chosen.items():
        try:
            image = open_rgb(path, draft=256)
        except ImageDecodeError:
            continue
        image.thumbnail((256, 256))
        items.append((image, " + ".join(has)))
    return items


def _skipped(rows) -> pd.DataFrame:
    return pd.DataFrame(rows or [], columns=["path", "reason"])


def use_example(progress=gr.Progress()) -> dict:
    """What describe() shows, and uploaded: the example's folder (each use_* says which data it used)."""
    return {**describe(str(paths.EXAMPLE_DATASET), progress), "uploaded": str(paths.EXAMPLE_DATASET)}


def use_upload(file, progress=gr.Progress()) -> dict:
    if not file:
        return {**_empty("Choose a .zip file first."), "uploaded": None}
    path = file if isinstance(file, str) else getattr(file, "name", str(file))
    if not path.lower().endswith(".zip"):
        return {**_empty("### Please upload a .zip file\nZip a folder that holds one folder per class "
                         "(or train/ and val/ folders that hold class folders)."), "uploaded": None}
    return {**describe(path, progress), "uploaded": path}


def preview_prefix(uploaded: str | None, separator: str) -> dict:
    """What a separator would make of the uploaded flat folder, before the user applies it:
    prefix_table (file, class) and prefix_note."""
    empty = pd.DataFrame(columns=["file", "class"])
    if not uploaded:
        return {"prefix_table": empty, "prefix_note": "Upload a .zip first."}
    if not separator:
        return {"prefix_table": empty,
                "prefix_note": "Type the character that ends the class name, e.g. `_` for `cat_001.jpg`."}
    try:
        preview = prefix_preview(uploaded, separator)
    except DatasetError as exc:
        return {"prefix_table": empty, "prefix_note": html.escape(str(exc))}
    table = pd.DataFrame(preview["examples"], columns=["file", "class"])
    classes = preview["classes"]
    words = (f"**{len(classes)} classes**: "
             + ", ".join(f"{html.escape(c)} ({n})" for c, n in list(classes.items())[:12])
             + (" …" if len(classes) > 12 else "")) if classes else "**No classes**: no file name has that separator."
    if preview["unmatched"]:
        words += f"; {preview['unmatched']} file(s) without `{html.escape(separator)}` would be left out."
    return {"prefix_table": table, "prefix_note": words}


def use_prefix(uploaded: str | None, separator: str, progress=gr.Progress()) -> dict:
    if not uploaded:
        return {**_empty("Upload a .zip first."), "uploaded": uploaded}
    if not separator:
        return {**_empty("Type the separator first (e.g. `_`)."), "uploaded": uploaded}
    return {**describe(uploaded, progress, separator), "uploaded": uploaded}


def use_made(dataset: str | None, request: gr.Request = None, progress=gr.Progress()) -> dict:
    """Hand the dataset made in the browser (create_step) to the Data step: the same summary, checks and
    training as any upload."""
    folder = create_step.dataset_folder(dataset, request)
    if folder is None:
        return {**_empty("Create or open a dataset in **Make a dataset here** first."), "uploaded": None}
    return {**describe(str(folder), progress), "uploaded": None}


def use_sorted(grouping, name: str | None, request: gr.Request = None, progress=gr.Progress()) -> dict:
    """Save the named groups of *Sort my photos* as a new workspace dataset (sort_step.save_groups) and hand
    it to the Data step like *Use this dataset* does; saved (words) and create_dataset (the *Make a dataset
    here* picker, now on it). Nothing saved: the Data step stays as it was."""
    result = sort_step.save_groups(grouping, name, request)
    if not result["folder"]:
        return {"saved": result["saved"]}
    picker = gr.Dropdown(choices=workspace.list_datasets(user_of(request)), value=result["dataset"])
    described = describe(result["folder"], progress)
    after = ("The Data step below now describes it: check it, then go on to **2. Model**." if described["data_source"]
             else "**It can't be trained on yet** (the Data step below says why): add photos to its classes in "
                  "**…or make your own dataset here**, then press **Use this dataset** there.")
    return {**described, "uploaded": None, "saved": f"{result['saved']}\n\n{after}", "create_dataset": picker}


# ---- the kind of task (TrainConfig.task): data_source["task"] ----------------------------------------------

TASK_WORDS = dict((value, words.lower()) for words, value in TASKS)


def switch_task(data_source: dict | None, task: str, progress=gr.Progress()) -> dict:
    """Read the chosen data again as another kind of task (what TrainConfig.task asks for): everything describe()
    shows, and task_note. A kind the data cannot be (several labels on class folders, one class on photos that
    have several) is refused in the DatasetError's words, and the data stays as it was (task goes back)."""
    task = task or "auto"
    if not data_source:
        return {"task": gr.Radio(value="auto"), "task_note": "Choose data first (above)."}
    asked_before = data_source.get("task") or "auto"
    try:
        open_dataset(data_source["source"], prefix_separator=data_source.get("prefix_separator"), task=task)
    except DatasetError as exc:
        return {"task": gr.Radio(value=asked_before), "task_note": _refused(task, str(exc))}
    described = describe(data_source["source"], progress, data_source.get("prefix_separator"), task)
    if described["data_source"] is None:   # readable, but not trainable as that kind: the summary says why
        return {"task": gr.Radio(value=asked_before),
                "task_note": _refused(task, described["summary"].split("\n", 1)[-1])}
    kept = {k: data_source[k] for k in ("unlabeled",) if k in data_source}   # the unlabeled photos stay attached
    return {**described, "data_source": {**described["data_source"], **kept}, "task_note": task_words(
        described["data_source"])}


def _refused(task: str, why: str) -> str:
    return (f"**Not switched to {html.escape(TASK_WORDS.get(task, task))}:** {html.escape(why, quote=False)} "
            "The data is read as before.")


def task_words(data_source: dict | None) -> str:
    """What the data is read as, in words, beside the Kind of task control."""
    if not data_source:
        return ""
    several = bool(data_source.get("multilabel"))
    found = "several labels per photo (multi-label)" if several else "one class per photo"
    if (data_source.get("task") or "auto") != "auto":
        return f"Read as **{found}**, as you chose. Training uses the same."
    why = ("its labels CSV gives photos more than one label." if several else
           "several labels per photo come from a labels CSV (`photo.jpg,cat;dog`, or one 0/1 column per label).")
    return f"Auto reads this data as **{found}**: {why}"


CHART_WORDS = {False: {"title": "Images per class", "x_title": "class", "y_title": "images"},
               True: {"title": "Photos per label (a photo counts once per label)", "x_title": "label",
                      "y_title": "photos"}}
GALLERY_LABELS = {False: "Sample images per class", True: "Sample photos per label (each with all its labels)"}


def show_task(data_source: dict | None) -> dict:
    """task (the control: shown once data is chosen, at the kind asked for), task_note, and the chart's and the
    gallery's titles (photos per label for several labels per photo), after the data changes."""
    several = bool((data_source or {}).get("multilabel"))
    return {"task": gr.Radio(value=(data_source or {}).get("task") or "auto",
                             visible=views.shown_if(bool(data_source))),
            "task_note": task_words(data_source),
            "chart": gr.BarPlot(**CHART_WORDS[several]), "gallery": gr.Gallery(label=GALLERY_LABELS[several])}


# ---- unlabeled photos for training (TrainConfig.unlabeled): data_source["unlabeled"] -------------------

UNLABELED_HELP = ("**Unlabeled photos (optional):** photos of the same kinds of thing with no label; training's "
                  "new layer also learns from the ones it is surest of. Helps most when you have few labelled "
                  "photos. Drop many photos or a .zip; they are copied, never changed.")
UNLABELED_TYPES = sorted(IMAGE_EXTENSIONS) + [".zip"]
UNLABELED_TITLE = "Unlabeled photos (optional): learn from photos with no label too"


def _unlabeled_count(path: str) -> int:
    try:
        return len(image_files(unpacked([path])))
    except (DatasetError, OSError):
        return 0


def _unlabeled_shown(unlabeled: dict | None, note: str) -> dict:
    """unlabeled_state, unlabeled_note and unlabeled_box (its title says what is attached)."""
    title = (f"Unlabeled photos: {unlabeled['photos']} attached (training also learns from them)" if unlabeled
             else UNLABELED_TITLE)
    return {"unlabeled_state": unlabeled, "unlabeled_note": note, "unlabeled_box": gr.Accordion(label=title)}


def _attached_words(unlabeled: dict) -> str:
    return (f"**{unlabeled['photos']} unlabeled photos attached** ({html.escape(unlabeled['shown'])}). Training "
            "uses them with the data above; the Train step's command line shows them as `--unlabeled`. "
            "Press **Remove the unlabeled photos** to train without them.")


def attach_unlabeled(data_source: dict | None, files) -> dict:
    """Attach unlabeled photos (one .zip as it is; loose photos and several zips copied into a fresh folder) to
    the chosen data: data_source gains "unlabeled" (its path); unlabeled_state {path, photos, shown}."""
    paths = [str(f) if isinstance(f, (str, Path)) else getattr(f, "name", str(f))
             for f in (files if isinstance(files, (list, tuple)) else [files] if files else [])]
    if not paths:
        return {"unlabeled_note": "Pick or drop the unlabeled photos first (many photos, or a .zip)."}
    if not data_source:
        return {**_unlabeled_shown(None, "Choose the labelled photos first (above), then add the unlabeled ones."),
                "unlabeled_files": None}
    zips = [p for p in paths if p.lower().endswith(".zip")]
    if len(paths) == 1 and zips:
        path = zips[0]
        photos = _unlabeled_count(path)
    else:
        folder = scratch.new_folder("unlabeled-")
        try:
            for number, source in enumerate(image_files(unpacked(paths))):
                if is_image_name(source):   # a file that is no picture is left to training to report
                    shutil.copyfile(source, folder / f"{number:05d}-{source.name}")
        except DatasetError as exc:
            return {**_unlabeled_shown(None, f"**Not attached:** {html.escape(str(exc))}"), "unlabeled_files": None}
        path, photos = str(folder), len(list(folder.iterdir()))
    if photos == 0:
        return {**_unlabeled_shown(None, "**Not attached:** no photos (.jpg, .png, …) found in what you gave."),
                "unlabeled_files": None, "data_source": {k: v for k, v in data_source.items() if k != "unlabeled"}}
    unlabeled = {"path": path, "photos": photos,
                 "shown": ", ".join(Path(p).name for p in paths[:3]) + (" …" if len(paths) > 3 else "")}
    return {**_unlabeled_shown(unlabeled, _attached_words(unlabeled)),
            "data_source": {**data_source, "unlabeled": path}}


def remove_unlabeled(data_source: dict | None) -> dict:
    """Train without unlabeled photos again (the photos themselves are not touched)."""
    plain = {k: v for k, v in data_source.items() if k != "unlabeled"} if data_source else data_source
    return {**_unlabeled_shown(None, "No unlabeled photos: training uses the labelled ones only."),
            "data_source": plain, "unlabeled_files": None}


def show_unlabeled(data_source: dict | None, unlabeled: dict | None) -> dict:
    """After the data changes: what is attached. Choosing other data takes the unlabeled photos off, and says so."""
    path = (data_source or {}).get("unlabeled")
    if path:
        if not unlabeled or unlabeled.get("path") != path:
            unlabeled = {"path": path, "photos": _unlabeled_count(path), "shown": Path(path).name}
        return _unlabeled_shown(unlabeled, _attached_words(unlabeled))
    if unlabeled:
        return {**_unlabeled_shown(None, f"**The {unlabeled['photos']} unlabeled photos were taken off** because "
                                         "other data was chosen. Add them again if they show the same kinds of "
                                         "thing as the new data."), "unlabeled_files": None}
    return {}


def render() -> SimpleNamespace:
    gr.Markdown("Give the studio some labelled photos: one folder per class, zipped. "
                "No data at hand? The example has photos of **ants and bees**.")
    with gr.Row():
        with gr.Column(scale=1):
            example = gr.Button("Use the example: ants vs bees", variant="primary")
            gr.Markdown("398 photos from ImageNet, already split into train and val.")
        upload = gr.File(label="…or upload a .zip of class folders", file_types=[".zip"], scale=2, height=140)
    create = create_step.render()
    sort = sort_step.render()
    with gr.Accordion("My images are in one folder, with the class in each file name", open=False):
        with gr.Row():
            separator = gr.Textbox(label="Separator after the class name", max_lines=1, scale=1,
                                   placeholder="_", info="For cat_001.jpg and dog_002.jpg, type _")
            prefix_note = gr.Markdown("", elem_id="prefix-note")
        prefix_table = gr.Dataframe(pd.DataFrame(columns=["file", "class"]), label="What it would give",
                                    interactive=False, max_height=220, visible=False, elem_id="prefix-table")
        apply_prefix = gr.Button("Use these classes")
    summary = gr.Markdown("No data chosen yet.", elem_id="data-summary")
    with gr.Row(equal_height=False):
        task = gr.Radio(TASKS, value="auto", label="Kind of task", visible="hidden", elem_id="data-task", scale=1,
                        info="One class per photo (a cat or a dog), or several labels per photo (cat, sofa, "
                             "indoors: each a yes/no question).")
        task_note = gr.Markdown("", elem_id="data-task-note", scale=1)
    # Until data is chosen only the summary shows; then each part shows when it has something in it
    # (see show_what_applies).
    with gr.Row(elem_classes=views.classes_if(False), elem_id="data-overview") as overview:
        # a title, not a label: with a label and a fixed height, the legend's entries fall below the box
        chart = gr.BarPlot(None, color_map=views.SPLIT_COLOURS, x="class", y="images", color="split",
                           title=CHART_WORDS[False]["title"], height=260, scale=1)
        gallery = gr.Gallery(label=GALLERY_LABELS[False], columns=6, height=260, scale=2,
                             allow_preview=True, object_fit="cover", fit_columns=False)
    skipped = gr.Dataframe(_skipped(None), label="Files not used, and why", interactive=False,
                           wrap=True, max_height=200, visible=False, elem_id="data-skipped")
    findings = gr.Markdown("", elem_id="data-findings")
    with gr.Row(elem_classes=views.classes_if(False), elem_id="data-checks") as checks:
        with gr.Column(scale=1):
            picker = gr.Dropdown([], label="Show the files of", interactive=True, visible=False)
            leave_out = gr.CheckboxGroup([], label="Leave out of training", visible=False,
                                         info="Suggested choices are ticked. Nothing is deleted.")
            report = gr.File(label="Download the data report (JSON)", interactive=False, visible=False,
                             elem_id="data-report")
            outliers = gr.Button("Look for pictures that don't belong", size="sm")
            outlier_note = gr.Markdown("A pretrained network compares every picture with the rest of its "
                                       "class (a placeholder, a blank frame, a screenshot). About 15 s per "
                                       "1,000 images on a 2-core CPU.")
        finding_files = gr.Gallery(label="Files concerned", columns=6, height=300, scale=2, object_fit="cover",
                                   visible=False, elem_id="data-finding-files", fit_columns=False)
    with gr.Accordion(UNLABELED_TITLE, open=False, elem_id="data-unlabeled") as unlabeled_box:
        with gr.Row(equal_height=False):
            unlabeled_files = gr.File(label="Unlabeled photos: many photos, or a .zip", file_count="multiple",
                                      file_types=UNLABELED_TYPES, height=120, scale=2, elem_id="data-unlabeled-files")
            with gr.Column(scale=2):
                unlabeled_note = gr.Markdown(UNLABELED_HELP, elem_id="data-unlabeled-note")
                unlabeled_remove = gr.Button("Remove the unlabeled photos", size="sm")
    next_button = gr.Button("Next: choose a model →")
    return SimpleNamespace(example=example, upload=upload, summary=summary, chart=chart, gallery=gallery,
                           skipped=skipped, findings=findings, picker=picker, leave_out=leave_out,
                           report=report, finding_files=finding_files, paths=gr.State({}), next=next_button,
                           separator=separator, prefix_note=prefix_note, prefix_table=prefix_table,
                           apply_prefix=apply_prefix, uploaded=gr.State(None), outliers=outliers,
                           outlier_note=outlier_note, findings_state=gr.State([]), create=create,
                           overview=overview, checks=checks, sort=sort, unlabeled_box=unlabeled_box,
                           unlabeled_files=unlabeled_files, unlabeled_note=unlabeled_note,
                           unlabeled_remove=unlabeled_remove, unlabeled_state=gr.State(None), task=task,
                           task_note=task_note)


def show_what_applies(data_source: dict | None, kind: str | None, paths_by_kind: dict | None,
                      findings: list[dict] | None, skipped: pd.DataFrame | None, report: str | None) -> dict:
    """Visibility of the Data step's parts (overview, skipped table, checks, finding picker, leave-out
    choices, report file) and the finding's files (finding_files): each shows only once it has something
    in it, so the page before any data is chosen holds the choices and nothing empty."""
    chosen = bool(data_source)
    excludable = any(f["kind"] in EXCLUDE_LABELS and f["exclude"] for f in findings or [])
    shown = views.shown_if
    layout = gr.Row(elem_classes=views.classes_if(chosen))
    return {"overview": layout, "skipped": gr.Dataframe(visible=shown(skipped is not None and len(skipped) > 0)),
            "checks": layout, "picker": gr.Dropdown(visible=shown(chosen and bool(paths_by_kind))),
            "leave_out": gr.CheckboxGroup(visible=shown(chosen and excludable)),
            "report": gr.File(visible=shown(chosen and bool(report))),
            "finding_files": shown_finding_files(kind, paths_by_kind if chosen else None)}


def shown_finding_files(kind: str | None, paths_by_kind: dict | None):
    """The finding's files, in a gallery that shows only when there are some."""
    items = finding_gallery(kind, paths_by_kind)
    return gr.Gallery(value=items, visible=views.shown_if(bool(items)))


DESCRIBED = ("summary", "chart", "gallery", "skipped", "findings", "picker", "leave_out", "report", "paths",
             "findings_state", "uploaded")  # what the use_* handlers show, after data_source (the API's order)


def bind(ui: SimpleNamespace, data_source: gr.State) -> None:
    described = dict(data_source=data_source, **of(ui, *DESCRIBED))
    # after every event that describes data: show the parts that now have something in them
    show_files = dict(**wire(show_what_applies, [data_source, ui.picker, ui.paths, ui.findings_state, ui.skipped,
                                                 ui.report],
                             **of(ui, "overview", "skipped", "checks", "picker", "leave_out", "report",
                                  "finding_files")), api_visibility="private", show_progress="hidden")
    ui.show_files = show_files   # for other steps that change the findings (the Runs page's wrong-folder picks)
    ui.example.click(**wire(use_example, None, **described), api_name="use_example").then(**show_files)
    ui.upload.upload(**wire(use_upload, ui.upload, **described), api_name="use_upload").then(**show_files)
    # tables and galleries show only with something in them: private follow-ups, so the API keeps plain values
    ui.separator.change(**wire(preview_prefix, [ui.uploaded, ui.separator], **of(ui, "prefix_table", "prefix_note")),
                        api_name="preview_prefix", show_progress="hidden").then(
        lambda table: gr.Dataframe(visible=views.shown_if(table is not None and len(table) > 0)), ui.prefix_table,
        ui.prefix_table, api_visibility="private", show_progress="hidden")
    ui.apply_prefix.click(**wire(use_prefix, [ui.uploaded, ui.separator], **described),
                          api_name="use_prefix").then(**show_files)
    ui.outliers.click(**wire(look_for_outliers, [data_source, ui.findings_state, ui.leave_out],
                             **of(ui, "outlier_note", "findings", "picker", "leave_out", "paths", "findings_state")),
                      api_name="look_for_outliers").then(**show_files)
    ui.picker.change(finding_gallery, [ui.picker, ui.paths], ui.finding_files, api_name="finding_files").then(
        lambda items: gr.Gallery(visible=views.shown_if(bool(items))), ui.finding_files, ui.finding_files,
        api_visibility="private", show_progress="hidden")
    create_step.bind(ui.create, data_source)
    ui.create.use.click(**wire(use_made, ui.create.dataset, **described),
                        api_name="use_made_dataset").then(**show_files)
    sort_step.bind(ui.sort)
    ui.sort.save.click(**wire(use_sorted, [ui.sort.grouping, ui.sort.dataset_name], **described,
                              saved=ui.sort.saved, create_dataset=ui.create.dataset),
                       api_name="save_sorted_dataset").then(**show_files)
    unlabeled = dict(data_source=data_source, **of(ui, "unlabeled_state", "unlabeled_note", "unlabeled_box",
                                                   "unlabeled_files"))
    ui.unlabeled_files.upload(**wire(attach_unlabeled, [data_source, ui.unlabeled_files], **unlabeled),
                              api_name="attach_unlabeled")
    ui.unlabeled_remove.click(**wire(remove_unlabeled, data_source, **unlabeled), api_name="remove_unlabeled")
    ui.unlabeled_files.clear(**wire(remove_unlabeled, data_source, **unlabeled), api_visibility="private")
    ui.task.input(**wire(switch_task, [data_source, ui.task], **described, task=ui.task, task_note=ui.task_note),
                  api_name="switch_task").then(**show_files)
    data_source.change(**wire(show_task, data_source, **of(ui, "task", "task_note", "chart", "gallery")),
                       api_visibility="private",
                       show_progress="hidden")
    data_source.change(**wire(show_unlabeled, [data_source, ui.unlabeled_state],
                              **of(ui, "unlabeled_state", "unlabeled_note", "unlabeled_box", "unlabeled_files")),
                       api_visibility="private", show_progress="hidden")
