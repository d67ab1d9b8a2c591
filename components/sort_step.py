"""Inside step 1, Data: sort photos that have no labels yet into groups, edit the groups into classes,
and save them as a dataset.

The grouping itself is `studio.unlabeled` (pretrained features, k-means, most typical photo first);
this module only shows it and passes the person's edits on. The Grouping lives in the session's
gr.State, with its features: "Sort again" with another number of groups reuses them instead of
looking at every photo again. Saving copies the photos of the named groups into a new dataset of the
workspace (`studio.data.workspace`); the Data step then uses it like any other data (data_step.use_sorted).
"""
from __future__ import annotations

import html
import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from components import multilabel_view, views
from components.named import of, wire
from components.session import user_of
from studio.data import workspace as wd
from studio.runs import history
from studio.data.imaging import IMAGE_EXTENSIONS, ImageDecodeError, open_rgb
from studio.data.sources import DatasetError
from studio.unlabeled import GroupingError, label_next, sort_photos
from studio.unlabeled.suggest import model_answers
from studio.unlabeled.features import not_photos, unpacked
from studio.unlabeled.grouping import MIN_PHOTOS, MOST_GROUPS

FILE_TYPES = sorted(IMAGE_EXTENSIONS) + [".zip"]
FIRST_SHOWN = 48            # a group's gallery: its most typical photos ...
LAST_SHOWN = 16             # ... and its least typical ones (where photos to move usually are)
IN_TABLE = 3                # most typical photo names per group in the overview
NEXT_COUNT = 12             # photos "Label these next" suggests
DEFAULT_NAME = "sorted photos"
THUMB = 160
HELP = ("Photos with no labels yet? Drop them here (many files, or a .zip). The studio's pretrained network "
        "puts similar photos together; you name each group (a name makes it a class), fix what it got "
        "wrong, and save the named groups as a dataset to train on. Your files are never changed: saving "
        f"copies them. Needs at least {MIN_PHOTOS} photos; about 15 s per 1,000 photos on a 2-core CPU.")
OVERVIEW_COLUMNS = ["group", "name", "photos", "most typical photos"]
NEXT_COLUMNS = ["photo", "group", "why"]
NO_MODEL = ("No model yet: typical photos only", "")


def _esc(text) -> str:
    return html.escape(str(text), quote=False)


NOT_DONE = "**Not done:**"


def _problem(text: str) -> str:
    return f"{NOT_DONE} {_esc(text)}"


def _index(group) -> int | None:
    """The 0-based index of the group picker's value ("1", "2", ...), or None."""
    try:
        return int(group) - 1
    except (TypeError, ValueError):
        return None


def _group_words(grouping, index: int) -> str:
    group = grouping.groups[index]
    count = f"{len(group.photos)} photo{'s' if len(group.photos) != 1 else ''}"
    return f"Group {index + 1}: {group.name} ({count})" if group.name else f"Group {index + 1} ({count}, no name yet)"


# ------------------------------------------------------------------ what the section shows

def overview_table(grouping) -> pd.DataFrame:
    """One line per group: number, name, photo count and the names of its most typical photos."""
    rows = [[str(i + 1), g.name or "(no name yet)", len(g.photos),
             ", ".join(Path(p).name for p in g.photos[:IN_TABLE]) + (" …" if len(g.photos) > IN_TABLE else "")]
            for i, g in enumerate(grouping.groups)] if grouping else []
    return pd.DataFrame(rows, columns=OVERVIEW_COLUMNS).astype({"group": "str", "name": "str", "photos": "int64",
                                                                 "most typical photos": "str"})


def _thumbnail(path: str, caption: str):
    try:
        image = open_rgb(path, draft=THUMB)
    except ImageDecodeError:
        return None
    image.thumbnail((THUMB, THUMB))
    return image, caption


def group_gallery(grouping, index: int | None) -> tuple[list, list[str], str]:
    """(gallery items, their photo paths, words about them) of one group: the most typical photos first
    and, in a big group, its least typical ones last."""
    if grouping is None or index is None or not 0 <= index < len(grouping.groups):
        return [], [], ""
    photos = grouping.groups[index].photos
    shown = list(enumerate(photos))
    if len(photos) > FIRST_SHOWN + LAST_SHOWN:
        shown = shown[:FIRST_SHOWN] + shown[-LAST_SHOWN:]
    items, paths = [], []
    for rank, path in shown:
        made = _thumbnail(path, f"{rank + 1}. {Path(path).name}")
        if made:
            items.append(made)
            paths.append(path)
    words = f"**{_esc(_group_words(grouping, index))}**, most typical first. Click a photo to move it."
    if len(photos) > len(shown):
        words = (f"**{_esc(_group_words(grouping, index))}**: its {FIRST_SHOWN} most typical photos, then its "
                 f"{LAST_SHOWN} least typical (odd ones out are usually there). Click a photo to move it.")
    return items, paths, words


def _picker(grouping, index: int | None, exclude: bool = False, empty: str | None = None) -> gr.Dropdown:
    """A dropdown of the groups (values "1", "2", ...); with `exclude`, without group `index`."""
    choices = [(_group_words(grouping, i), str(i + 1)) for i in range(len(grouping.groups) if grouping else 0)
               if not (exclude and i == index)]
    value = (str(index + 1) if index is not None and not exclude and grouping and index < len(grouping.groups)
             else empty)
    return gr.Dropdown(choices=choices, value=value)


def _unreadable(grouping, extra: list[dict] | None = None) -> pd.DataFrame:
    rows = [{"file": Path(u["path"]).name, "reason": u["reason"]}
            for u in ((grouping.features.unreadable if grouping else []) + (extra or []))]
    return pd.DataFrame(rows, columns=["file", "reason"])


# view()'s names, the API's order
VIEW = ("grouping", "status", "overview", "group", "gallery", "gallery_note", "names", "photo", "other", "target",
        "count", "editing", "unreadable", "next_note", "next_gallery", "next_table")
NEXT_HINT = "Which photos to label first, if you label some by hand."


def view(grouping, index: int | None, message: str, left_out: list[dict] | None = None) -> dict:
    """Everything the section shows after a sort or an edit, by name (VIEW): grouping (the state),
    status, overview (table), group (picker), gallery, gallery_note and names (its photo paths), photo (the picked one,
    cleared), other (merge with), target (move to), count (number of groups), editing (the controls' row,
    shown once there are groups), unreadable (table); and the Label these next suggestions, cleared (the
    groups they were made for have changed)."""
    if grouping is not None and grouping.groups:
        index = min(max(index or 0, 0), len(grouping.groups) - 1)
    else:
        index = None
    items, paths, words = group_gallery(grouping, index)
    photos = len(grouping.features.paths) if grouping else 0
    most = max(2, min(MOST_GROUPS, photos))
    count = (gr.Slider(minimum=1, maximum=most, value=len(grouping.groups), step=1, interactive=True)
             if grouping else gr.skip())
    unreadable = _unreadable(grouping, left_out) if grouping is not None or left_out else _unreadable(None)
    return {"grouping": grouping, "status": message, "overview": overview_table(grouping),
            "group": _picker(grouping, index), "gallery": items, "gallery_note": words, "names": paths,
            "photo": None, "other": _picker(grouping, index, exclude=True),
            "target": _picker(grouping, index, exclude=True), "count": count,
            "editing": gr.Column(elem_classes=views.classes_if(grouping is not None)),
            "unreadable": gr.Dataframe(value=unreadable, visible=views.shown_if(len(unreadable) > 0)),
            "next_note": NEXT_HINT, "next_gallery": gr.Gallery(value=[], visible="hidden"),
            "next_table": gr.Dataframe(value=pd.DataFrame(columns=NEXT_COLUMNS), visible="hidden")}


def _sorted_words(grouping) -> str:
    photos = len(grouping.features.paths)
    groups = len(grouping.groups)
    words = f"### Sorted {photos} photos into {groups} group{'s' if groups != 1 else ''}\n"
    if grouping.chosen_automatically:
        words += (f"The number of groups was chosen automatically: {groups} separated these photos best. "
                  "If you know there are more (or fewer) kinds of thing, set **Number of groups** and press "
                  "**Sort again**. ")
    else:
        words += f"You asked for {groups} groups. "
    words += ("Each group's most typical photos come first. Give each group that is one kind of thing a name "
              "(it becomes a class), merge or split groups, move photos that landed in the wrong group, then "
              "**Save as a dataset**.")
    unreadable = len(grouping.features.unreadable)
    if unreadable:
        words += f"\n\n**{unreadable} file(s) could not be read** and are not sorted (listed below, with the reason)."
    return words


# ------------------------------------------------------------------ handlers: sorting

def _paths(files) -> list[str]:
    if not files:
        return []
    files = files if isinstance(files, (list, tuple)) else [files]
    return [str(f) if isinstance(f, (str, Path)) else getattr(f, "name", str(f)) for f in files]


def sort(files, progress=gr.Progress()) -> dict:
    """Sort the uploaded photos (files or .zip files) into groups, the number chosen automatically."""
    paths = _paths(files)
    if not paths:
        return view(None, None, "Pick or drop the photos to sort first (many files at once, or a .zip).")
    try:
        items = unpacked(paths)
    except DatasetError as exc:
        return view(None, None, _problem(str(exc)))
    report = (lambda done, total: progress((done, total), desc="Looking at every photo", unit="photos")
              if progress is not None else None)
    try:
        grouping = sort_photos(items, progress=report)   # what is not a photo is in its unreadable list
    except GroupingError as exc:
        return view(None, None, _problem(str(exc)), not_photos(items))
    return view(grouping, 0, _sorted_words(grouping))


def sort_again(grouping, count, progress=gr.Progress()) -> dict:
    """The same photos in `count` groups: the features computed by the first sort are reused."""
    if grouping is None:
        return view(None, None, "Sort some photos first.")
    try:
        again = sort_photos(grouping.features, groups=int(count))
    except (GroupingError, TypeError, ValueError) as exc:
        return view(grouping, 0, _problem(str(exc)))
    kept, dropped = again.carry_names(grouping)
    words = _sorted_words(again)
    if kept:
        words += f"\n\nNames kept on the groups that hold most of their photos: {', '.join(kept)}."
    if dropped:
        words += (f"\n\nNo group is mostly the photos of {', '.join(dropped)} any more: name "
                  f"{'it' if len(dropped) == 1 else 'them'} again.")
    return view(again, 0, words)


# ------------------------------------------------------------------ handlers: editing

PICKED = ("gallery", "gallery_note", "names", "photo", "other", "target")


def pick_group(grouping, group) -> dict:
    """Show another group (its gallery; the merge and move pickers without it)."""
    index = _index(group)
    if grouping is None or index is None:
        return {}
    shown = view(grouping, index, gr.skip())
    return {name: shown[name] for name in PICKED}


def _edit(grouping, group, action, done: str, index_after=None) -> dict:
    index = _index(group)
    if grouping is None:
        return view(None, None, "Sort some photos first.")
    if index is None:
        return view(grouping, 0, _problem("Choose a group first."))
    try:
        action(index)
    except GroupingError as exc:
        return view(grouping, index, _problem(str(exc)))
    return view(grouping, index if index_after is None else index_after(), done)


def name_group(grouping, group, name: str) -> dict:
    """Give the chosen group a name: it becomes a class (names are checked like class folder names)."""
    index = _index(group)
    result = _edit(grouping, group, lambda i: grouping.name(i, name),
                   f"Group {(index or 0) + 1} is now the class **{_esc((name or '').strip())}**.")
    return {**result, "new_name": gr.skip() if result["status"].startswith(NOT_DONE) else ""}


def merge_groups(grouping, group, other) -> dict:
    """Put the `other` group's photos into the chosen one (the other group goes away)."""
    keep, gone = _index(group), _index(other)
    if grouping is not None and keep is not None and gone is None:
        return view(grouping, keep, _problem("Choose the group to merge into this one."))

    def after() -> int:
        return keep - 1 if gone is not None and gone < keep else keep

    return _edit(grouping, group, lambda i: grouping.merge(i, gone),
                 f"Merged group {(gone or 0) + 1} into group {(keep or 0) + 1}.", after)


def split_group(grouping, group) -> dict:
    """Split the chosen group in two (by the same features); the new group comes right after it."""
    index = _index(group)
    return _edit(grouping, group, lambda i: grouping.split(i),
                 f"Split group {(index or 0) + 1} in two: groups {(index or 0) + 1} and {(index or 0) + 2}.")


def pick_photo(names: list[str] | None, evt: gr.SelectData) -> dict:
    """photo: the clicked thumbnail's photo path, and status."""
    index = evt.index if isinstance(evt.index, int) else (evt.index or [None])[0]
    photo = (names or [])[index] if index is not None and index < len(names or []) else None
    return {"photo": photo, "status": (f"Picked **{_esc(Path(photo).name)}**. Choose the group it belongs in and "
                                       "press **Move the picked photo**." if photo else "Click a photo to pick it.")}


def move_photo(grouping, group, photo: str | None, target) -> dict:
    """Move the picked photo into the `target` group; the chosen group stays shown."""
    index, to = _index(group), _index(target)
    if grouping is not None and not photo:
        return view(grouping, index, _problem("Click a photo in the gallery first, then move it."))
    if grouping is not None and to is None:
        return view(grouping, index, _problem("Choose the group to move the photo to."))
    before = len(grouping.groups) if grouping is not None else 0
    source = grouping.labels().get(photo) if grouping is not None else None

    def after() -> int:
        """The chosen group's new index; when the move emptied it (it goes away), the target's."""
        if source is None or len(grouping.groups) == before:
            return index
        shown = to if index == source else index
        return shown - 1 if shown > source else shown

    return _edit(grouping, group, lambda _: grouping.move(photo, to),
                 f"Moved **{_esc(Path(photo or '').name)}** to group {(to or 0) + 1}.", after)


# ------------------------------------------------------------------ handlers: suggestions, saving

def model_choices(chosen: str | None = None, user: str | None = None) -> dict:
    """next_model: this person's runs that have a model, newest first, to ask which photos it is least sure of."""
    # sorting makes one class per photo: a multi-label model's doubts are about other questions, so it is not offered
    rows = [row for row in map(multilabel_view.with_task, history.list_runs(owner=user))
            if row["has_model"] and row["status"] == "finished" and not multilabel_view.is_multilabel(row)]
    ids = [row["id"] for row in rows]
    # two runs of the same data in the same minute read alike: the end of the run's id tells them apart
    labels = [f"{views.run_choice_label(row)} · {row['id'].rsplit('-', 1)[-1]}" for row in rows]
    return {"next_model": gr.Dropdown(choices=[NO_MODEL, *zip(labels, ids)], value=chosen if chosen in ids else "")}


def _answers(run_id: str, paths: list[str], user: str | None) -> tuple[dict | None, str]:
    """The chosen run's calibrated answers for the photos (None and the reason when it cannot answer)."""
    try:
        folder = history.find_run(run_id, owner=user)
    except history.RunNotFound as exc:
        return None, str(exc)
    try:
        answers = model_answers(folder / "model.safetensors", paths)
    except Exception as exc:  # a damaged or unfinished model file: say so, suggest without it
        return None, f"its model could not be read ({exc.__class__.__name__}: {exc})"
    missing = len(paths) - len(answers)
    if missing:
        return None, f"it could not read {missing} of the photos"
    return answers, ""


def suggest_next(grouping, run_id: str | None = None, user: str | None = None) -> dict:
    """next_note, next_gallery and next_table: the photos to label first (label_next), with the reason; photos of
    named groups count as labelled. With a run chosen, its model's least-sure photos follow the typical ones."""
    empty = pd.DataFrame(columns=NEXT_COLUMNS)
    if grouping is None:
        return {"next_note": "Sort some photos first.", "next_gallery": [], "next_table": empty}
    named = [p for g in grouping.groups if g.name for p in g.photos]
    answers, trouble = (None, "")
    if run_id:
        answers, trouble = _answers(run_id, grouping.features.paths, user)
    picks = label_next(grouping, labelled=named, count=NEXT_COUNT, probabilities=answers)
    if not picks:
        return {"next_note": "Every photo is in a named group: nothing is left to label.", "next_gallery": [],
                "next_table": empty}
    where = grouping.labels()
    items, rows = [], []
    for n, pick in enumerate(picks, 1):
        group = where.get(pick["path"])
        made = _thumbnail(pick["path"], f"{n}. group {group + 1}: {pick['why']}" if group is not None
                          else f"{n}. {pick['why']}")
        if made:
            items.append(made)
        rows.append([Path(pick["path"]).name, "" if group is None else str(group + 1), pick["why"]])
    then = (f"then the photos the model of **{_esc(run_id)}** is least sure of (near the borders between its "
            "classes, where a label teaches it most)" if answers is not None
            else "then more typical photos of what no label covers yet")
    note = (f"**Label these {len(picks)} next**, in this order: the most typical photo of each group first "
            f"(a few typical photos that cover every kind of thing teach a model most), {then}."
            + (" Photos of named groups count as labelled." if named else ""))
    if trouble:
        note += f"\n\n**The model of {_esc(run_id)} was not asked:** {_esc(trouble)}. Choose another run, or none."
    return {"next_note": note, "next_gallery": items, "next_table": pd.DataFrame(rows, columns=NEXT_COLUMNS)}


def save_groups(grouping, name: str | None, request=None) -> dict:
    """Copy the named groups' photos into a new dataset of this person's workspace: saved (words), folder
    (the dataset's folder, or None when nothing was saved) and dataset (its name)."""
    user = user_of(request)
    if grouping is None:
        return {"saved": "Sort some photos first.", "folder": None}
    named = [g for g in grouping.groups if g.name]
    if not named:
        return {"saved": _problem("Name at least one group first: a named group becomes a class of the dataset."),
                "folder": None}
    wanted = (name or "").strip() or wd.free_name(DEFAULT_NAME, user)
    try:
        folder = wd.create_dataset(wanted, user)
    except wd.NameProblem as exc:
        return {"saved": _problem(str(exc)), "folder": None}
    try:
        result = grouping.save(folder)
    except GroupingError as exc:
        shutil.rmtree(folder, ignore_errors=True)     # made just now, for this save
        return {"saved": _problem(str(exc)), "folder": None}
    classes = result["classes"]
    lines = [f"### Saved the dataset **{_esc(folder.name)}**",
             ", ".join(f"**{_esc(c)}**: {n} photos" for c, n in classes.items()) + "."]
    left = result["left_out"]
    if left:
        unnamed = sum(1 for g in grouping.groups if not g.name)
        lines.append(f"{left} photo{'s' if left != 1 else ''} of {unnamed} group{'s' if unnamed != 1 else ''} "
                     "without a name were left out.")
    if len(classes) < wd.MIN_CLASSES:
        lines.append("A classifier needs at least two classes: name another group and save again.")
    lines.append("Your original files are not changed. It is also in **…or make your own dataset here**, where you "
                 "can add or remove photos.")
    return {"saved": "\n\n".join(lines), "folder": str(folder), "dataset": folder.name}


# ------------------------------------------------------------------ layout

def render() -> SimpleNamespace:
    with gr.Accordion("Sort my photos (no labels yet): group similar photos, then name the groups",
                      open=False, elem_id="sort-section") as section:
        gr.Markdown(HELP, elem_classes="ts-help")
        with gr.Row(equal_height=False):
            files = gr.File(label="Photos to sort: many files, or a .zip", file_count="multiple",
                            file_types=FILE_TYPES, height=120, scale=3, elem_id="sort-files")
            with gr.Column(scale=1, min_width=200):
                sort_button = gr.Button("Sort", variant="primary", elem_id="sort-run")
        status = gr.Markdown("", elem_id="sort-status")
        unreadable = gr.Dataframe(_unreadable(None), label="Files not sorted, and why", interactive=False,
                                  wrap=True, max_height=200, visible="hidden", elem_id="sort-unreadable")
        with gr.Column(elem_classes=views.classes_if(False), elem_id="sort-editing") as editing:
            overview = gr.Dataframe(overview_table(None), label="All groups", interactive=False, wrap=True,
                                    max_height=260, column_widths=["9%", "22%", "10%", "59%"],
                                    elem_id="sort-overview")
            with gr.Row(equal_height=False):
                count = gr.Slider(minimum=1, maximum=MOST_GROUPS, value=2, step=1, label="Number of groups",
                                  info="Sort again starts afresh: names given so far are dropped.", scale=3,
                                  elem_id="sort-count")
                again = gr.Button("Sort again", scale=1, min_width=160, elem_id="sort-again")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=280):
                    group = gr.Dropdown([], label="Group", interactive=True, elem_id="sort-group",
                                        info="The group shown, and the one the buttons below change.")
                    new_name = gr.Textbox(label="Name this group", max_lines=1, placeholder="e.g. ants",
                                          info="A named group becomes a class.", elem_id="sort-name")
                    name_button = gr.Button("Name the group", size="sm", elem_id="sort-name-button")
                    other = gr.Dropdown([], label="Merge with", interactive=True, elem_id="sort-other",
                                        info="Its photos join the chosen group.")
                    with gr.Row():
                        merge = gr.Button("Merge", size="sm", min_width=100)
                        split = gr.Button("Split in two", size="sm", min_width=100)
                    target = gr.Dropdown([], label="Move the picked photo to", interactive=True,
                                         elem_id="sort-target")
                    move = gr.Button("Move the picked photo", size="sm")
                with gr.Column(scale=2):
                    gallery_note = gr.Markdown("", elem_id="sort-gallery-note")
                    gallery = gr.Gallery(label="Photos of the chosen group", columns=6, height=440,
                                         object_fit="cover", allow_preview=False, fit_columns=False,
                                         elem_id="sort-gallery")
            with gr.Row(equal_height=False):
                with gr.Column(scale=1, min_width=280):
                    next_model = gr.Dropdown([NO_MODEL], value="", label="Then ask a trained model",
                                             info="Once every group has a label, the photos this run's model is "
                                                  "least sure of come next.", elem_id="sort-next-model")
                    suggest = gr.Button("Label these next", size="sm", elem_id="sort-next-button")
                    next_note = gr.Markdown(NEXT_HINT,
                                            elem_classes="ts-help", elem_id="sort-next-note")
                next_gallery = gr.Gallery(label="Label these next", columns=6, height=220, scale=2,
                                          object_fit="cover", allow_preview=True, fit_columns=False,
                                          visible="hidden", elem_id="sort-next")
            next_table = gr.Dataframe(pd.DataFrame(columns=NEXT_COLUMNS), label="Why these", interactive=False,
                                      wrap=True, max_height=220, visible="hidden", elem_id="sort-next-table",
                                      column_widths=["35%", "10%", "55%"])
            with gr.Row(equal_height=False):
                dataset_name = gr.Textbox(label="Dataset name", max_lines=1, placeholder=DEFAULT_NAME, scale=3,
                                          info="The named groups become its classes; unnamed groups are left out.",
                                          elem_id="sort-dataset-name")
                save = gr.Button("Save as a dataset", variant="primary", scale=1, min_width=180,
                                 elem_id="sort-save")
            saved = gr.Markdown("", elem_id="sort-saved")
    return SimpleNamespace(section=section, files=files, sort=sort_button, status=status, unreadable=unreadable,
                           editing=editing, overview=overview, count=count, again=again, group=group,
                           new_name=new_name, name_button=name_button, other=other, merge=merge, split=split,
                           target=target, move=move, gallery=gallery, gallery_note=gallery_note, suggest=suggest,
                           next_model=next_model, next_note=next_note,
                           next_gallery=next_gallery, next_table=next_table, dataset_name=dataset_name, save=save,
                           saved=saved, grouping=gr.State(None), names=gr.State([]), photo=gr.State(None))


def bind(ui: SimpleNamespace) -> None:
    """Wire the section; its **Save as a dataset** button is wired by the Data step (data_step.use_sorted),
    which the saved dataset is handed to."""
    shown = of(ui, *VIEW)
    ui.sort.click(**wire(sort, ui.files, **shown), api_name="sort_photos")
    ui.again.click(**wire(sort_again, [ui.grouping, ui.count], **shown), api_name="sort_again")
    ui.group.input(**wire(pick_group, [ui.grouping, ui.group], **of(ui, *PICKED)),
                   api_visibility="private", show_progress="hidden")
    ui.name_button.click(**wire(name_group, [ui.grouping, ui.group, ui.new_name], **shown, new_name=ui.new_name),
                         api_name="name_group")
    ui.new_name.submit(**wire(name_group, [ui.grouping, ui.group, ui.new_name], **shown, new_name=ui.new_name),
                       api_visibility="private")
    ui.merge.click(**wire(merge_groups, [ui.grouping, ui.group, ui.other], **shown), api_name="merge_groups")
    ui.split.click(**wire(split_group, [ui.grouping, ui.group], **shown), api_name="split_group")
    ui.gallery.select(**wire(pick_photo, ui.names, **of(ui, "photo", "status")), api_visibility="private")
    ui.move.click(**wire(move_photo, [ui.grouping, ui.group, ui.photo, ui.target], **shown), api_name="move_photo")
    # the suggestions show only with something in them: a private follow-up, so the API keeps plain values
    def choices_as_user(request: gr.Request, chosen):
        return model_choices(chosen, user_of(request))

    def suggest_as_user(request: gr.Request, grouping, run_id):
        return suggest_next(grouping, run_id, user_of(request))

    ui.section.expand(**wire(choices_as_user, ui.next_model, next_model=ui.next_model),
                      api_visibility="private", show_progress="hidden")
    ui.next_model.focus(**wire(choices_as_user, ui.next_model, next_model=ui.next_model),
                        api_visibility="private", show_progress="hidden")
    ui.suggest.click(**wire(suggest_as_user, [ui.grouping, ui.next_model],
                            **of(ui, "next_note", "next_gallery", "next_table")),
                     api_name="label_next").then(
        lambda items: [gr.Gallery(visible=views.shown_if(bool(items))),
                       gr.Dataframe(visible=views.shown_if(bool(items)))],
        ui.next_gallery, [ui.next_gallery, ui.next_table], api_visibility="private", show_progress="hidden")
