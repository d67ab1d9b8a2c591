"""The studio as a Python library: `train` a classifier, `load` one back, `predict`, `export`.

    from studio import train, load
    model = train("photos/", backbone="mobilenetv2_100", epochs=3, on_epoch=print)
    model.accuracy, model.classes, model.run_dir
    model.predict(["a.jpg", "b.jpg"])          # [Prediction(image, top=[(class, p), ...]), ...]
    model.shift("new_site/")                   # how unlike the training photos new photos are: {shift, photos, words}
    model.adapt("new_site/", out="adapted/")   # a new TrainedModel adapted to those unlabeled photos (or AdaptRefused)
    model.export("onnx", "exported/")          # checked against the trained model, as on the page
    load(model.run_dir)                        # the same object back, later or elsewhere
    tags = train("posters/")                   # a labels CSV with several labels per photo: a multi-label model
    tags.task, tags.thresholds, tags.metrics   # "multi-label", {label: threshold}, {map, micro_f1, per_label, ...}
    tags.predict("p.jpg")[0].labels            # every label above its threshold; .near: the near-misses
    tags.label_mistakes("Drama")               # that label's false positives and false negatives, surest first
    train("few_labels/", unlabeled="many_photos/")   # the new head also learns from unlabeled photos

Photos with no labels at all: `from studio import sort_photos, label_next` (studio.unlabeled) groups
them, lets a script name, merge, split and move groups, saves a dataset and suggests what to label first.

It is the engine the page and the CLI run (the same recipe, run folder and checks), made to
block until the run ends, which is what a script or a notebook wants.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

from studio.runs import MODEL_FILE, RunFolder


class AdaptRefused(RuntimeError):
    """Adapting was refused or failed; the message says why, `report` holds the figures (None on a failure)."""

    def __init__(self, message: str, report: dict | None):
        super().__init__(message)
        self.report = report


class TrainingFailed(RuntimeError):
    """The run ended in failure; the message says why (and names run.log for the details)."""

    def __init__(self, message: str, run_dir: Path):
        super().__init__(message)
        self.run_dir = run_dir


@dataclass
class TrainedModel:
    """A trained classifier and what is known of how it was trained."""
    model_path: Path
    classes: list[str]
    accuracy: float | None = None        # best validation accuracy (None for an export without it)
    history: list[dict] = field(default_factory=list)   # one dict per finished epoch
    run_dir: Path | None = None          # the run folder (None when loaded from an export)
    status: str = "finished"             # finished, or stopped when training was stopped early
    adaptation: dict | None = None       # for an adapted model: what adapting did (photos, accuracy, shift)
    task: str = "single-label"           # or "multi-label": a yes/no per label (`thresholds`, `metrics`)
    thresholds: dict | None = None       # multi-label: {label: decision threshold}, tuned on validation
    metrics: dict | None = None          # multi-label: mAP, micro/macro F1, per-label figures (multilabel.json)
    _predictor: object = field(default=None, repr=False, compare=False)
    _explainer: object = field(default=None, repr=False, compare=False)

    def predict(self, images, top_k: int = 5, familiarity: bool = False) -> list:
        """`Prediction`s (image, top [(class, calibrated probability)], error; `unsure`) for a path, an image
        or a list of them, in order; an unreadable image gets its reason and the others are still
        classified. With `familiarity`, each also says how like the training photos it is."""
        many = isinstance(images, (list, tuple))
        return list(self._loaded().predict_each(list(images) if many else [images], top_k, familiarity))

    def shift(self, photos) -> dict:
        """How unlike the training photos `photos` (paths, folders) are: {shift, percentile, unfamiliar,
        photos: [{path, shift, percentile, unfamiliar, answer, confidence}], unreadable, words}."""
        from studio.data.imaging import image_files
        from studio.shift import check
        many = isinstance(photos, (list, tuple))
        return check(self._loaded(), image_files(photos if many else [photos]))

    def explain(self, image, class_name: str | None = None):
        """Where the model looked (Grad-CAM): an Explanation with `overlay` (a PIL image: the photo as the
        model saw it, the heatmap over it), `heat`, `class_name` and `probability`; by default for its own
        answer, or for `class_name`."""
        from studio.explain import Explainer
        if self._explainer is None:
            self._explainer = Explainer.of(self._loaded())
        return self._explainer.explain(image, class_name)

    def adapt(self, photos, out: str | Path | None = None, seed: int = 0,
              check_with: str | Path | None = None) -> "TrainedModel":
        """A new model adapted to the new site's unlabeled `photos` (paths, folders), in a new run folder
        (`out`); blocks until done. Raises AdaptRefused when adapting would make the model worse (on its
        validation photos, or on `check_with`: labelled new-site photos, one folder per class)."""
        from studio.adapt import start_adaptation
        from studio.runs import JobRunner
        if self.run_dir is None:
            raise ValueError("This model was loaded from an export; adapt its run folder instead.")
        many = isinstance(photos, (list, tuple))
        run = start_adaptation(self.run_dir, list(photos) if many else [photos], runner=JobRunner(), out=out,
                               seed=seed, check_with=check_with)
        try:
            run.wait()
        except KeyboardInterrupt:
            run.stop_event.set()
            run.wait()
        snapshot = run.snapshot()
        if snapshot["status"] != "finished":
            raise AdaptRefused(snapshot["error"] or "adapting did not finish", snapshot.get("adaptation"))
        return load(run.dir)

    def wrong_folder(self):
        """The training photos probably in the wrong folder (a pandas table: path, label, suggested, their
        probabilities and the reason), the surest first; None when the run did not look (see
        studio.data.wrong_folder). `train(..., leave_out_list=CSV)` leaves such a list out."""
        from studio.data import wrong_folder
        if self.run_dir is None:
            raise ValueError("This model was loaded from an export; the run folder holds the training photos.")
        return wrong_folder.read(self.run_dir)

    def label_mistakes(self, label: str, limit: int = 24) -> dict:
        """A multi-label model's mistakes on one label among the validation photos: `false_positives` (said,
        not there) and `false_negatives` (there, not said) as [(path, score)], the surest first."""
        from studio.evaluation import multilabel_mistakes, read_run_table
        if self.task != "multi-label" or self.run_dir is None:
            raise ValueError("label_mistakes is for a multi-label model's run folder; a single-label run's "
                             "mistakes are in its predictions.csv (label against predicted).")
        if label not in self.classes:
            raise ValueError(f"{label!r} is not one of the labels: {', '.join(self.classes)}.")
        table = read_run_table(RunFolder(self.run_dir).predictions)
        return multilabel_mistakes(table, self.classes, self.thresholds, label, limit)

    def _loaded(self):
        if self._predictor is None:
            from studio.inference import Predictor
            self._predictor = Predictor(self.model_path)
        return self._predictor

    def export(self, fmt: str, out: str | Path, zip: bool = False):
        """Export as `fmt` (bundle, torchscript, onnx, onnx-int8) into `out`, checked against the
        trained model on the run's validation photos. Returns the ExportResult (files, parity)."""
        from studio.export import bundle
        if self.run_dir is None:
            raise ValueError("This model was loaded from an export; export from its run folder instead.")
        out = Path(out)
        return bundle.export_run(self.run_dir, fmt, out, zip_path=out.with_suffix(".zip") if zip else None)


def train(data: str | Path, *, backbone: str = "", freeze: str = "auto", epochs: int | None = None,
          out: str | Path | None = None, on_epoch: Callable[[dict], None] | None = None,
          **settings) -> TrainedModel:
    """Train on `data` (the same folders and zips the page takes) and block until the run ends.

    `settings` are any other TrainConfig fields (lr, batch_size, patience, device, unlabeled, ...). Each
    finished epoch's figures go to `on_epoch`. Ctrl-C stops the run, keeping its best model so
    far, and returns it with status "stopped". A failed run raises TrainingFailed.
    """
    from studio.training.config import TrainConfig
    from studio.training.trainer import start_training
    known = {f.name for f in fields(TrainConfig)} - {"data", "choices"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"train() got unknown settings {', '.join(unknown)}; the settings are: "
                        f"{', '.join(sorted(known))}.")
    if settings.get("unlabeled") is not None:
        settings["unlabeled"] = str(settings["unlabeled"])   # a Path too (config.json keeps text)
    config = TrainConfig(data=str(data), backbone=backbone, freeze=freeze, epochs=epochs, **settings)
    run = start_training(config, run_dir=out)
    reported = 0
    try:
        while True:
            run.wait(0.25)
            snapshot = run.snapshot()
            for epoch in snapshot["history"][reported:]:
                if on_epoch is not None:
                    on_epoch(epoch)
            reported = len(snapshot["history"])
            if not run.is_active():
                break
    except KeyboardInterrupt:
        run.stop_event.set()
    run.wait()
    snapshot = run.snapshot()
    if snapshot["status"] == "failed":
        raise TrainingFailed(snapshot["error"] or "the run failed", run.dir)
    return load(run.dir)


def load(path: str | Path) -> TrainedModel:
    """A run folder, its model.safetensors, or an export (folder, zip or model file) as a TrainedModel."""
    path = Path(path)
    run_dir = path.parent if path.name == MODEL_FILE else path
    folder = RunFolder(run_dir)
    if folder.has_model() and folder.status.is_file():
        status = folder.read_status()
        history = [{k: v for k, v in row.items() if k != "confusion_matrix"} for row in folder.history()]
        from studio import modelfile
        from studio.multilabel import decide
        meta = modelfile.read_metadata(folder.model)
        return TrainedModel(folder.model, list(meta["classes"]), status.get("best_val_accuracy"),
                            history, run_dir, status.get("status") or "finished", status.get("adaptation"),
                            **_task_of(meta), metrics=decide.read(run_dir))
    if not path.exists():
        raise FileNotFoundError(f"{path} is neither a run folder nor an exported model.")
    from studio.inference import Predictor
    predictor = Predictor(path)
    return TrainedModel(Path(predictor.path), list(predictor.classes), _export_accuracy(predictor.meta),
                        _predictor=predictor, **_task_of(predictor.meta))


def _task_of(meta: dict) -> dict:
    from studio import modelfile
    if not modelfile.is_multilabel(meta):
        return {}
    return {"task": modelfile.MULTI_LABEL, "thresholds": dict(zip(meta["classes"], modelfile.thresholds_of(meta)))}


def _export_accuracy(meta: dict) -> float | None:
    value = (meta.get("summary") or {}).get("val_accuracy")
    return float(value) if isinstance(value, (int, float)) else None


__all__ = ["train", "load", "TrainedModel", "TrainingFailed", "AdaptRefused"]
