"""Runs view: the training photos probably in the wrong folder, each with its photo, its reason and a tick box
that leaves it out of the next run.

The picks become a finding on the Data step ("wrong folder"), ticked under *Leave out of training*, so the
person sees there, with the other findings, what the next run leaves out, and can untick it. The engine
(`studio.data.wrong_folder`) found them; this module only shows them and passes the picks on.
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from components import views
from components.evaluation_view import thumbnail
from components.named import of, wire
from components.session import user_of
from studio.data import wrong_folder
from studio.data.findings import WARNING
from studio.data.samples import MULTI_LABEL

KIND = "wrong_folder"   # the Data step's finding kind for the picks
SHOWN = 24              # photos shown, most certain first (all of them are in the run's wrong-folder.csv)
MULTILABEL_WORDS = ("Not looked for: with several labels per photo there are no folders to be wrong. A photo with "
                    "a wrong or missing label shows among that label's surest mistakes (pick the label above).")
NOTHING = "Choose a run above: the training photos it found probably in the wrong folder show here."


def _choice_label(row) -> str:
    return f"{Path(row.path).name}: in {row.label}, looks like {row.suggested} ({row.suggested_probability:.0%})"


def suspects(run_folder: str | None, status: dict | None = None) -> dict:
    """note, gallery and picks (tick boxes) for one run's suspects."""
    empty = {"gallery": gr.Gallery([], visible="hidden"), "picks": gr.CheckboxGroup(choices=[], value=[],
                                                                                    visible=False)}
    if not run_folder:
        return {"note": NOTHING, **empty}
    if (status or {}).get("task") == MULTI_LABEL:
        return {"note": MULTILABEL_WORDS, **empty}
    table = wrong_folder.read(run_folder)
    words = ((status or {}).get("wrong_folder") or {}).get("words")
    if table is None:
        return {"note": words or "This run has no list of photos in the wrong folder: it was trained before the "
                                 "studio looked for them, or it ended before its last epoch.", **empty}
    if table.empty:
        return {"note": words or "No training photo looks like it is in the wrong folder.", **empty}
    rows = table.head(SHOWN)
    items = [(image, f"in {row.label}, looks like {row.suggested} ({row.suggested_probability:.0%}) · "
                     f"{Path(row.path).name}") for row in rows.itertuples() if (image := thumbnail(row.path))]
    shown = ("" if len(table) <= SHOWN else
             f" The {SHOWN} surest are shown; all {len(table)} are in {wrong_folder.FILE}.")
    return {"note": (words or "") + shown + " Tick the ones that really are wrong, then **Leave the ticked photos "
                     "out**: your next run (Train step) leaves them out; your files are not changed.",
            "gallery": gr.Gallery(items, visible=views.shown_if(bool(items))),
            "picks": gr.CheckboxGroup(choices=[(_choice_label(row), row.path) for row in rows.itertuples()],
                                      value=[], visible=True)}


def picked_finding(picked: list[str], run_folder: str | None) -> dict | None:
    """The Data step's finding for the picked photos (None when nothing is picked)."""
    if not picked:
        return None
    table = wrong_folder.read(run_folder) if run_folder else None
    reasons = dict(zip(table.path, table.reason)) if table is not None else {}
    lines = "; ".join(f"{Path(p).name} {reasons.get(p, '')}".strip() for p in picked[:5])
    more = f"; and {len(picked) - 5} more" if len(picked) > 5 else ""
    return {"kind": KIND, "severity": WARNING, "paths": list(picked), "exclude": list(picked),
            "message": f"{len(picked)} photo(s) you picked on the Runs page as probably in the wrong folder: "
                       f"{lines}{more}."}


def render() -> SimpleNamespace:
    with gr.Accordion("Photos probably in the wrong folder", open=True, elem_id="runs-wrong-folder") as box:
        note = gr.Markdown(NOTHING, elem_id="runs-wrong-folder-note")
        gallery = gr.Gallery([], label="Probably in the wrong folder (most certain first)", columns=6, height=300,
                             object_fit="cover", fit_columns=False, visible="hidden",
                             elem_id="runs-wrong-folder-gallery")
        picks = gr.CheckboxGroup([], value=[], label="Leave out of my next run", visible=False,
                                 elem_id="runs-wrong-folder-picks")
        leave_out = gr.Button("Leave the ticked photos out", size="sm", elem_id="runs-wrong-folder-leave-out")
        left_note = gr.Markdown("", elem_id="runs-wrong-folder-left")
    return SimpleNamespace(note=note, gallery=gallery, picks=picks, leave_out=leave_out, left_note=left_note, box=box)


def other_data(data_source: dict | None, run_folder: str | None) -> str | None:
    """Why the picks can't go to the Data step (no data chosen there, or other data than the run's), or None."""
    from studio.runs import RunFolder
    data = (RunFolder(run_folder).read_config().get("data") if run_folder else None) or ""
    if not data_source:
        return (f"**Choose this run's data on the Data step first** ({data}), then come back and leave the "
                "ticked photos out.")
    if Path(data_source["source"]).resolve() != Path(data).resolve():
        return (f"**The Data step holds other data** than this run's ({data}): choose the run's data there "
                "first, then come back and leave the ticked photos out.")
    return None


def bind(ui: SimpleNamespace, run: gr.Dropdown, to_folder, data_ui: SimpleNamespace, data_source: gr.State) -> None:
    """`to_folder(run id, user)`: the run's folder; `data_ui`: the Data step, whose findings take the picks."""
    from components import data_step
    from studio.runs import RunFolder

    def show(run_id, request: gr.Request):
        folder = to_folder(run_id, user_of(request))
        status = RunFolder(folder).read_status() if folder else None
        return {**suspects(folder, status), "left_note": ""}

    def leave_out(run_id, picked, source, findings, ticked, request: gr.Request):
        folder = to_folder(run_id, user_of(request))
        refused = other_data(source, folder) if picked else None
        if refused:
            return {"left_note": refused}
        findings = [f for f in (findings or []) if f["kind"] != KIND]
        finding = picked_finding(list(picked or []), folder)
        ticked = [k for k in (ticked or []) if k != KIND]
        if finding is None:
            note = "Nothing ticked: no photo will be left out for being in the wrong folder."
        else:
            findings.append(finding)
            ticked.append(KIND)
            note = (f"**{len(finding['exclude'])} photo(s) will be left out of your next run.** They are listed on "
                    "the **Data** step (finding *wrong folder*, ticked under *Leave out of training*), where you "
                    "can untick them.")
        return {"left_note": note, **data_step.render_findings(findings, ticked), "findings_state": findings}

    run.change(**wire(show, run, **of(ui, "note", "gallery", "picks", "left_note")), api_name="runs_wrong_folder")
    ui.leave_out.click(**wire(leave_out, [run, ui.picks, data_source, data_ui.findings_state, data_ui.leave_out],
                              left_note=ui.left_note, **of(data_ui, "findings", "picker", "leave_out", "paths",
                                                           "findings_state")),
                       api_name="runs_leave_out_wrong_folder").then(**data_ui.show_files)
