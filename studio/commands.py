"""What each `studio` command does, once its flags are read and checked (studio.cli).

Each `cmd_*` takes the parsed arguments and returns the exit status. User mistakes end in one clear
line on stderr (`_fail`) and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import os
import json
import shlex
import sys
import time
from pathlib import Path

EXIT_ERROR = 1
EXIT_USAGE = 2
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
EXIT_FLAGGED = 3  # an export was written but differs from the trained model beyond the tolerance


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"studio: error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------- progress

class Progress:
    """Progress on stderr. On a terminal, one bar redrawn in place; anywhere else (CI, nohup, a notebook,
    a pipe) one line per phase, so a log keeps what happened instead of a redraw every half second."""

    WIDTH = 30

    def __init__(self, quiet: bool = False):
        self.stream = sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.phase: str | None = None
        self.drawn = False

    def update(self, fraction: float, phase: str, detail: str = "") -> None:
        if self.quiet:
            return
        if self.tty:
            fraction = min(max(fraction or 0.0, 0.0), 1.0)
            filled = int(self.WIDTH * fraction)
            print(f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {fraction:4.0%} {phase[:50]:<50}{detail:<12}",
                  end="", file=self.stream, flush=True)
            self.drawn = True
        elif phase and phase != self.phase:
            print(phase, file=self.stream, flush=True)
        self.phase = phase

    def line(self, text: str) -> None:
        """A line of its own (an epoch's result), above the bar on a terminal."""
        if self.quiet:
            return
        if self.drawn:
            print("\r\033[K", end="", file=self.stream)
            self.drawn = False
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self.drawn:
            print(file=self.stream, flush=True)
            self.drawn = False


def cmd_train(args) -> int:
    from studio.config import ConfigFileError, read_saved, typed_values
    from studio.data.sources import DatasetError, check_trainable, open_dataset
    from studio.runs.checkpoints import ResumeError
    from studio.training.config import TrainConfig
    from studio.training.trainer import resume_training, start_training

    typed = typed_values(args, TrainConfig)
    if args.resume:
        if args.data or args.config or typed:
            return _fail("--resume carries on a run with its own data and settings: give the run folder only "
                         "(to change settings, start a new run: --config RUN_DIR with the flags to change).",
                         EXIT_USAGE)
        try:
            run = resume_training(args.resume)
        except ResumeError as exc:
            return _fail(str(exc), EXIT_USAGE)
        return _follow(run, args, time.perf_counter())
    try:
        saved = read_saved(args.config, TrainConfig) if args.config else {}
    except ConfigFileError as exc:
        return _fail(str(exc), EXIT_USAGE)
    data = args.data or saved.get("data")
    if not data:
        return _fail("give the data to train on (or --config RUN_DIR to repeat a run, or --resume RUN_DIR to "
                     "carry one on).", EXIT_USAGE)
    chosen = {**saved, **typed, "data": str(Path(data).resolve())}
    if os.environ.get("STUDIO_OWNER"):   # a run a studio with login submitted elsewhere (a Ray job) stays its person's
        chosen["owner"] = os.environ["STUDIO_OWNER"]
    if chosen.get("freeze", "auto") == "auto" and chosen.get("head_epochs") == 0:
        return _fail("--head-epochs 0 needs --freeze all or a number: Auto trains the new head alone first "
                     "(1 epoch or more) to choose how deep to fine-tune.", EXIT_USAGE)
    try:
        config = TrainConfig(**chosen)
        config.resolved()   # the engine's own checks of the settings together, before the data is read
        check_trainable(open_dataset(config.data, config.val_fraction, config.seed, config.prefix_separator,
                                     config.test_fraction, config.task))
    except (DatasetError, ValueError, TypeError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    started = time.perf_counter()
    from studio.training import launch
    if launch.is_distributed(config) or args.nnodes > 1:
        return _train_distributed(config, args, started)
    return _follow(start_training(config, run_dir=args.out), args, started)


def _train_distributed(config, args, started: float) -> int:
    """torchrun's processes train; machine 0 follows the run folder as for any run, the others only wait."""
    from studio.runs import JobRunner
    from studio.training import launch
    rendezvous = launch.Rendezvous(args.nnodes, args.node_rank, args.rdzv_endpoint)
    try:
        rendezvous.check()
        if args.nnodes > 1 and not args.out:
            raise ValueError("A run on several machines needs --out: the same run folder, on storage every "
                             "machine can reach.")
        if not launch.is_distributed(config):
            raise ValueError("--nnodes needs --gpus N (GPUs per machine) or --nproc N (processes per machine).")
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    if args.node_rank > 0:
        return launch.run_other_node(config, Path(args.out), rendezvous)
    return _follow(launch.start_distributed(config, JobRunner(), run_dir=args.out, rendezvous=rendezvous),
                   args, started)


def _epoch_line(record: dict, total: int | None) -> str:
    """One finished epoch in words, for the log."""
    of = f" of {total}" if total and total >= record["epoch"] else ""
    seconds = f", {record['epoch_seconds']:.1f} s" if record.get("epoch_seconds") is not None else ""
    if record.get("val_map") is not None:   # multi-label: mAP and F1; "accuracy" is every label right
        return (f"Epoch {record['epoch']}{of}: validation mAP {record['val_map']:.3f}, micro-F1 "
                f"{record['val_micro_f1']:.2f}, every label right on {record['val_accuracy']:.1%} (loss "
                f"{record['val_loss']:.3f}), training loss {record['train_loss']:.3f}{seconds}")
    return (f"Epoch {record['epoch']}{of}: validation accuracy {record['val_accuracy']:.1%} "
            f"(loss {record['val_loss']:.3f}), training accuracy {record['train_accuracy']:.1%} "
            f"(loss {record['train_loss']:.3f}){seconds}")


def _follow(run, args, started: float) -> int:
    """Show a run's progress until it ends (Ctrl-C stops it, keeping the best model), then its result:
    a short summary for a person, or with --json one JSON line for a program."""
    progress = Progress(args.quiet)
    announced = len(run.snapshot()["history"])   # a resumed run's earlier epochs were shown when they ran

    def show(snap: dict) -> int:
        for record in snap["history"][announced:]:
            progress.line(_epoch_line(record, snap.get("epochs")))
        eta = snap.get("eta_seconds")
        progress.update(snap.get("progress") or 0.0, snap.get("phase", ""), f" ETA {int(eta)}s" if eta else "")
        return len(snap["history"])

    try:
        while run.is_active():
            announced = show(run.snapshot())
            time.sleep(0.5)
    except KeyboardInterrupt:
        run.stop_event.set()
        progress.line("stopping after the current batch...")
    run.wait()
    snap = run.snapshot()
    show(snap)
    progress.close()
    if snap["status"] == "failed":
        return _fail(snap["error"] or "training failed")
    result = {
        "status": snap["status"], "classes": snap["classes"], "best_val_accuracy": snap["best_val_accuracy"],
        "best_epoch": snap["best_epoch"], "epochs_run": len(snap["history"]),
        "train_seconds": round(time.perf_counter() - started, 2),
        "confusion_matrix": snap.get("best_confusion"), "history": snap["history"],
        "backbone": snap["config"]["backbone"], "freeze": snap.get("freeze"),
        "choices": snap["config"].get("choices", {}), "stopped_early": snap.get("stopped_early"),
        "advice": snap.get("advice"), "skipped": snap.get("dataset", {}).get("skipped", []),
        "run_dir": snap["run_dir"], "model_path": snap["model_path"],
        "test": snap.get("test"), "test_accuracy": (snap.get("test") or {}).get("accuracy"),
        "search": snap.get("search"), "timings": snap.get("timings"), "unlabeled": snap.get("unlabeled"),
        "wrong_folder": snap.get("wrong_folder"), "task": snap.get("task"), "multilabel": snap.get("multilabel"),
    }
    print(json.dumps(result) if args.json else train_summary(result, snap["config"].get("data")))
    return 0


def train_summary(result: dict, data: str | None = None) -> str:
    """What a person wants when a run ends: how well it did, where it is, how to try it."""
    run_dir, model = result["run_dir"], result["model_path"]
    done = "Finished" if result["status"] == "finished" else "Stopped"
    multi = result.get("task") == "multi-label"
    lines = [f"{done} after {result['epochs_run']} epoch(s) in {result['train_seconds']:.0f} s ({result['backbone']}, "
             f"{len(result['classes'])} {'labels, several per photo' if multi else 'classes'})."]
    if result["best_epoch"] is not None:
        from studio.training import final_test
        figures = result.get("multilabel")
        if multi and figures:
            lines.append(f"Best: epoch {result['best_epoch']}, validation mAP {figures['map'] or 0:.3f} (how well each "
                         f"label's photos rank first; 1 is perfect), micro-F1 {figures['micro_f1']:.2f}, macro-F1 "
                         f"{figures['macro_f1']:.2f} at the tuned thresholds; every label right on "
                         f"{figures['exact_match']:.1%} of the photos.")
        else:
            lines.append(f"Best: epoch {result['best_epoch']}, validation accuracy {result['best_val_accuracy']:.1%}.")
        if result["status"] == "finished":
            lines.append(final_test.words(result.get("test"), multi))
    search = result.get("search") or {}
    for note in (search.get("summary"), result.get("stopped_early"), result.get("advice")):
        if note:
            lines.append(note)
    if search.get("flags") and data:
        lines.append(f"The winning plan again, without the search: studio train {shlex.quote(data)} "
                     f"--backbone {result['backbone']} {search['flags']}")
    unlabeled = result.get("unlabeled")
    if unlabeled:
        lines.append(f"Unlabeled photos: {unlabeled['photos']:,} read; the new head learnt from the "
                     f"{unlabeled['pseudo_labelled']:,} it was surest of in its last epoch"
                     + (f"; {len(unlabeled['left_out'])} left out (status.json lists them and why)."
                        if unlabeled["left_out"] else "."))
    wrong = result.get("wrong_folder") or {}
    if wrong.get("suspects"):
        listed = Path(run_dir) / wrong["file"]
        lines.append(f"{wrong['words']} They are listed in {listed}; to train again without them (delete the rows "
                     f"you disagree with first): studio train --config {shlex.quote(str(run_dir))} "
                     f"--leave-out-photos {shlex.quote(str(listed))}")
    if result.get("skipped"):
        lines.append(f"{len(result['skipped'])} file(s) not used" +
                     (f": `studio doctor {shlex.quote(data)}` lists them and why." if data else "."))
    lines.append(f"Run:    {run_dir}")
    if model:
        lines += [f"Model:  {model}",
                  f"Try it: studio predict {shlex.quote(model)} PHOTO_OR_FOLDER",
                  f"Export: studio export {shlex.quote(run_dir)} --out FOLDER"]
    else:
        lines.append("No epoch finished, so there is no model yet.")
    if result["status"] != "finished":
        lines.append(f"Carry on: studio train --resume {shlex.quote(run_dir)}")
    lines.append(f"Repeat: studio train --config {shlex.quote(run_dir)} (add flags to change a setting)")
    return "\n".join(lines)


def cmd_doctor(args) -> int:
    from studio.data.sources import DatasetError, open_dataset
    from studio.data.checks import diagnose

    try:
        dataset = open_dataset(args.data, args.val_fraction, args.seed, args.prefix_sep,
                               task=getattr(args, "task", "auto"))
    except DatasetError as exc:
        return _fail(str(exc), EXIT_USAGE)
    progress = Progress(quiet=args.json)

    def counter(phase: str):
        return None if args.json else (lambda done, total: progress.update(done / max(1, total), phase,
                                                                           f" {done}/{total}"))
    report = diagnose(dataset, counter("Checking the images"))
    if args.outliers:
        from studio.data.outliers import find_outliers
        finding = find_outliers(dataset, progress=counter("Looking for pictures that don't belong"))
        if finding is not None:
            report.findings.append(finding)
    progress.close()
    if args.json:
        print(json.dumps({**report.to_dict(dataset), "task": dataset.task,
                          **({"multilabel": dataset.multilabel_check} if dataset.is_multilabel else {})}))
    else:
        counts = dataset.counts()
        if dataset.is_multilabel:
            print("Multi-label data (several labels per photo): " + " ".join(dataset.multilabel_check["words"]))
        print(f"{len(dataset.classes)} {'labels' if dataset.is_multilabel else 'classes'}, {len(dataset.samples)} "
              f"images ({dataset.split_source} split)")
        print(counts.to_string())
        for finding in report.findings:
            print(f"\n[{finding.severity}] {finding.kind}: {finding.message}")
            for path in finding.paths[:10]:
                print(f"    {path}")
            if len(finding.paths) > 10:
                print(f"    ... and {len(finding.paths) - 10} more")
        print(f"\n{len(dataset.skipped)} file(s) skipped" + (":" if dataset.skipped else "."))
        for row in dataset.skipped[:20]:
            print(f"    {row['path']}: {row['reason']}")
    if not report.trainable:
        print(f"studio: cannot train on this data: {report.reason}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def _expand_images(items: list[str]) -> list[Path]:
    from studio.data.imaging import image_files
    return image_files(items)


def _no_images(items: list[str]) -> int:
    from studio.data.imaging import IMAGE_EXTENSIONS
    kinds = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
    return _fail(f"no images in {', '.join(items)} (looked for {kinds}).")


def cmd_predict(args) -> int:
    """Classify every image given (files and folders) in one fast pass, in the order given; an
    unreadable file is named with its reason and the rest are still classified."""
    from studio.inference import Predictor
    from studio.modelfile import ModelFileError

    if args.top_k < 1:
        return _fail(f"--top-k must be 1 or more (got {args.top_k}).", EXIT_USAGE)
    images = _expand_images(args.images)
    if not images:
        return _no_images(args.images)
    try:
        predictor = Predictor(args.model)
    except ModelFileError as exc:
        return _fail(str(exc))
    unreadable = 0
    for result in predictor.predict_each(images, args.top_k):
        if result.error is not None:
            unreadable += 1
            print(f"studio: {result.image}: {result.error}", file=sys.stderr)
            if args.json:
                print(json.dumps({"image": str(result.image), "error": result.error}))
        elif args.json:
            print(json.dumps({"image": str(result.image), "predictions": [
                {"class": c, "probability": round(p, 5)} for c, p in result.top],
                **({"labels": [{"label": c, "probability": round(p, 5)} for c, p in result.labels]}
                   if result.labels is not None else {})}))
        elif result.labels is not None:   # multi-label: every label above its threshold, then the near-misses
            said = ", ".join(f"{c} {p:.1%}" for c, p in result.labels) or "none of the labels"
            print(f"{result.image}: {said}" + (" (below threshold: " + ", ".join(
                f"{c} {p:.1%}" for c, p in result.near) + ")" if result.near else ""))
        else:
            print(f"{result.image}: " + ", ".join(f"{c} {p:.1%}" for c, p in result.top))
    if unreadable:
        print(f"studio: {unreadable} of {len(images)} images could not be read (named above); "
              f"the other {len(images) - unreadable} were classified.", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _run_folder(run: str) -> Path:
    """A run folder from what a person typed: the folder, its model.safetensors, or a run id."""
    from studio.runs import history
    path = Path(run)
    if path.is_file() and path.suffix == ".safetensors":
        return path.parent
    if path.is_dir() or path.exists():
        return path
    try:
        return history.find_run(run)
    except history.RunNotFound as exc:
        raise FileNotFoundError(f"{run} is neither a run folder nor a run id ({exc})") from None


def cmd_explain(args) -> int:
    """Grad-CAM heatmaps of where the model looked, one PNG per photo in --out."""
    from studio.explain import ExplainError, explain_files
    from studio.modelfile import ModelFileError

    images = _expand_images(args.images)
    if not images:
        return _no_images(args.images)
    failed = False
    try:
        for found in explain_files(_model_of(args.run), images, args.out, args.class_name):
            if "error" in found:
                failed = True
                print(f"studio: {found['path']}: {found['error']}", file=sys.stderr)
            elif args.json:
                print(json.dumps(found), flush=True)
            else:
                print(f"{found['path']}: looked for {found['class']} ({found['probability']:.0%}) -> "
                      f"{found['heatmap']}", flush=True)
    except (FileNotFoundError, ModelFileError, ExplainError) as exc:
        return _fail(str(exc))
    return EXIT_ERROR if failed else 0


def cmd_shift(args) -> int:
    """How unlike the model's training photos the photos given are: the folder's shift in words (or one
    JSON object), then each photo, the unfamiliar ones marked."""
    from studio.inference import Predictor
    from studio.modelfile import ModelFileError
    from studio.familiarity import than_validation
    from studio.shift import ShiftUnavailable, check

    images = _expand_images(args.photos)
    if not images:
        return _no_images(args.photos)
    try:
        result = check(Predictor(_model_of(args.run)), images,
                       None if args.json else lambda words: print(words, file=sys.stderr, flush=True))
    except (FileNotFoundError, ModelFileError, ShiftUnavailable) as exc:
        return _fail(str(exc))
    for failure in result["unreadable"]:
        print(f"studio: {failure['path']}: {failure['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps({key: result[key] for key in ("shift", "percentile", "unfamiliar", "photos", "unreadable")}))
    else:
        print(result["words"].replace("**", ""))
        for photo in result["photos"]:
            mark = "  UNFAMILIAR" if photo["unfamiliar"] else ""
            print(f"{photo['path']}: shift {photo['shift']:.2f} (farther than "
                  f"{than_validation(photo['percentile'])}); says {photo['answer']} {photo['confidence']:.0%}{mark}")
    return EXIT_ERROR if result["unreadable"] else 0


def cmd_cluster(args) -> int:
    """Sort unlabeled photos into groups by pretrained features: each group with its most typical photos
    first (or one JSON object); --save copies them into one folder per group, --next lists what to label first."""
    from studio.unlabeled import GroupingError, label_next, sort_photos
    from studio.unlabeled.features import unpacked
    from studio.data.samples import DatasetError

    try:
        items = unpacked(args.photos)
    except (DatasetError, OSError) as exc:
        return _fail(str(exc))
    missing = [str(item) for item in items if not item.exists()]
    if missing:
        return _fail(f"{', '.join(missing)}: no such file or folder.")
    if args.save and Path(args.save).is_dir() and any(Path(args.save).iterdir()):   # before the photos are read
        return _fail(f"{args.save} is not empty: save into a new folder.")
    model = None
    if args.model:   # a typo fails before the photos are read
        try:
            model = _model_of(args.model)
        except (OSError, ValueError) as exc:
            return _fail(f"--model {args.model}: {exc}")
    say = (lambda done, total: None) if args.json else (
        lambda done, total: print(f"Reading photos: {done} of {total}", file=sys.stderr, flush=True))
    try:
        grouping = sort_photos(items, groups=args.groups, backbone=args.backbone, seed=args.seed, progress=say)
    except GroupingError as exc:
        return _fail(str(exc))
    for index, group in enumerate(grouping.groups, start=1):
        group.name = f"group-{index:02d}"
    result = grouping.to_dict()
    for group in result["groups"]:
        group.pop("name")
    if args.next:
        from studio.unlabeled.suggest import already_labelled, model_answers
        done = already_labelled(grouping.features.paths, args.labelled) if args.labelled else []
        try:
            answers = model_answers(model, grouping.features.paths) if model else None
        except (OSError, ValueError) as exc:
            return _fail(f"--model {args.model}: {exc}")
        result["next"] = label_next(grouping, labelled=done, count=args.next, seed=args.seed,
                                    probabilities=answers)
    if args.save:
        try:
            result["saved"] = grouping.save(args.save)
        except GroupingError as exc:
            return _fail(str(exc))
    for failure in grouping.features.unreadable:
        print(f"studio: {failure['path']}: {failure['reason']} (left out)", file=sys.stderr)
    for failure in result.get("saved", {}).get("refused", []):
        print(f"studio: {failure['path']}: {failure['reason']} (not copied)", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    how = "chosen automatically" if grouping.chosen_automatically else "as asked"
    print(f"{len(grouping.features.paths)} photos in {len(grouping.groups)} groups ({how}; "
          "most typical photos first):")
    for index, group in enumerate(grouping.groups, start=1):
        shown = ", ".join(Path(p).name for p in group.photos[:5])
        print(f"group-{index:02d}: {len(group.photos)} photos: {shown}{' ...' if len(group.photos) > 5 else ''}")
    for pick in result.get("next", []):
        print(f"label next: {pick['path']} ({pick['why']})")
    if "saved" in result:
        print(f"Saved into {result['saved']['folder']}: one folder per group. Rename the folders to class names, "
              f"then `studio train {result['saved']['folder']}`.")
    return 0


def _model_of(run: str) -> Path:
    """The model to use from what a person typed: a model file, an export's folder or zip, or a run."""
    path = Path(run)
    if path.is_file():
        return path
    folder = _run_folder(run)
    return folder / "model.safetensors" if (folder / "model.safetensors").is_file() else folder


def cmd_setup_tflite(args) -> int:
    import subprocess

    from studio.export import litert
    try:
        python = litert.setup(progress=lambda words: print(words, file=sys.stderr, flush=True))
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"studio: error: the converter could not be installed ({exc}); its output is above. The studio itself "
              "is unchanged.", file=sys.stderr)
        return 1
    print(f"Ready: TFLite exports convert with {python} (`studio export RUN --format tflite`).")
    return 0


def cmd_export(args) -> int:
    from studio.export import bundle
    from studio.export.formats import DEFAULT
    from studio.modelfile import ModelFileError

    fmt = DEFAULT if args.format == "model" else args.format
    out = Path(args.out)
    progress = Progress(args.quiet)
    try:
        result = bundle.export_run(_run_folder(args.run), fmt, out,
                                   zip_path=out.with_name(out.name + ".zip") if args.zip else None,
                                   progress=progress.update)
    except (ModelFileError, bundle.ExportError, FileNotFoundError) as exc:
        progress.close()
        return _fail(str(exc))
    progress.close()
    main_file = result.model_files[0]  # the format's first file: the bundle's is the studio model file
    print(json.dumps({"format": fmt, "path": str(main_file), "bytes": main_file.stat().st_size,
                      "folder": str(result.folder), "files": sorted(p.relative_to(result.folder).as_posix()
                                                                      for p in result.folder.rglob("*") if p.is_file()),
                      "zip": str(result.zip_path) if result.zip_path else None,
                      "parity": result.parity, "verdict": result.verdict()}))
    if result.flagged:
        print(f"studio: warning: {result.verdict()}", file=sys.stderr)
        return EXIT_FLAGGED
    return 0


def cmd_backbones(args) -> int:
    from studio.backbones import catalog
    if getattr(args, "add", None):
        return _add_own_weights(args)
    if getattr(args, "architecture", None) or getattr(args, "name", None):
        return _fail("--architecture and --name go with --add FILE_OR_FOLDER", EXIT_USAGE)
    rows = catalog()
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        top1 = f"{row['imagenet_top1']:.1f}%" if row["imagenet_top1"] else "  -  "
        print(f"{row['name']:<24} {row['params_m']:>5.1f}M  top-1 {top1}  {row['status']:<8}  {row['availability']}")
    return 0


def _add_own_weights(args) -> int:
    from studio.own_weights import OwnWeightsError, add
    try:
        added = add(args.add, args.architecture, args.name)
    except OwnWeightsError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(added))
        return 0
    dropped = f"; its old classifier ({len(added['dropped'])} tensors) is left out" if added["dropped"] else ""
    print(f"Added {added['name']}: {added['architecture']}, {added['params_m']:g}M parameters, every tensor checked"
          f"{dropped}. Train with: studio train DATA --backbone {added['name']}")
    return 0


def read_logins(pairs: list[str] | None, file: str | None) -> list[tuple[str, str]]:
    """`user:password` pairs from the command line and/or a file (one per line, # comments)."""
    lines = list(pairs or [])
    if file:
        try:
            lines += [line.strip() for line in Path(file).read_text().splitlines()
                      if line.strip() and not line.lstrip().startswith("#")]
        except OSError as exc:
            raise ValueError(f"cannot read the login file {file}: {exc.strerror}") from None
    logins = []
    for line in lines:
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"a login must look like user:password, not {line.split(':')[0]!r}...")
        logins.append((user.strip(), password))
    return logins


def exposure_warning(host: str, logins: list) -> str | None:
    """Listening beyond this machine without a login lets anyone on the network train and read runs."""
    if logins or host in LOCAL_HOSTS:
        return None
    return (f"listening on {host} without login: anyone who can reach this machine can see and start "
            "trainings. Add --auth user:password (or --auth-file) to require a login.")


def cmd_serve(args) -> int:
    try:
        logins = read_logins(args.auth, args.auth_file)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    warning = exposure_warning(args.host, logins)
    if warning:
        print(f"studio: warning: {warning}", file=sys.stderr)
    from components.app import launch
    from studio.runs import JobRunner
    executor = None
    if args.executor == "ray":
        from studio.training.executors import ExecutorError, RayJobs
        try:
            executor = RayJobs(args.ray_address)
        except ExecutorError as exc:
            return _fail(str(exc), EXIT_USAGE)
    runner = JobRunner(slots=args.jobs, executor=executor)
    launch(host=args.host, port=args.port, auth=logins or None, runner=runner)
    return 0


def cmd_runs(args) -> int:
    """Every run the studio wrote, wherever it is, with its status; or the runs in the folders given."""
    from studio import paths
    from studio.runs import history
    if args.paths:
        rows, problems = history.list_runs_at(args.paths)
        for problem in problems:
            print(f"studio: {problem}", file=sys.stderr)
        if problems and not rows:
            return _fail("No run found there: give a run folder (it holds config.json) or a folder of runs.",
                         EXIT_USAGE)
    else:
        rows = history.list_runs()
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    if not rows:
        print("No runs yet.")
    inside = paths.runs_dir().resolve()
    for row in rows:
        accuracy = f"{row['best_val_accuracy']:.1%}" if row.get("best_val_accuracy") is not None else "-"
        if row.get("task") == "multi-label" and row.get("best_score"):   # every-label-right would mislead here
            accuracy = f"mAP {row['best_score']['value']:.2f}"
        where = "" if Path(row["run_dir"]).resolve().parent == inside else f"  {row['run_dir']}"
        print(f"{row['id']:<48} {row['status']:<11} {row['data']:<16} {row['backbone']:<18} {accuracy:>6}"
              + where + (f"  ({row['error']})" if row.get("error") else ""))
    missing = [] if args.paths else history.missing_runs()
    if missing:
        print(f"{len(missing)} run folder(s) the studio wrote are no longer where they were (moved or deleted): "
              + ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
              + ". `studio runs NEW_PLACE` finds them again.", file=sys.stderr)
    return 0


def cmd_advise(args) -> int:
    from studio.backbones import BackboneError
    from studio.data.sources import DatasetError
    from studio.models.advisor import advise

    try:
        result = advise(args.data, args.backbones, seed=args.seed,
                        progress=None if args.json else (lambda text: print(text, file=sys.stderr, flush=True)))
    except DatasetError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except BackboneError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'backbone':<24} {'k-NN':>6} {'probe':>6} {'LogME':>7} {'ms/photo':>9} {'params':>7}")
    for row in result["ranking"]:
        print(f"{row['backbone']:<24} {row['knn_accuracy']:>6.1%} {row['probe_accuracy']:>6.1%} {row['logme']:>7.3f} "
              f"{row['ms_per_photo']:>9.1f} {row['params_millions']:>6.1f}M")
    print(f"\n{result['words']}\n(frozen features of {result['photos']['train']} training and "
          f"{result['photos']['val']} validation photos, {result['seconds']:.0f} s)")
    return 0


def cmd_lr_find(args) -> int:
    from studio.backbones import BackboneError
    from studio.data.sources import DatasetError
    from studio.lr_finder import find_lr

    try:
        result = find_lr(args.data, args.backbone or "", args.freeze, seed=args.seed, device=args.device)
    except DatasetError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (BackboneError, ValueError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps({"lr": result["lr"], "curve": result["curve"], "words": result["words"]}))
    else:
        print(result["words"])
    return 0


def cmd_adapt(args) -> int:
    """Adapt a run's model to new unlabeled photos: a new run folder (--out) whose model works better on
    them, or a refusal with the reason (exit 1, no model written)."""
    from studio.adapt import AdaptError, start_adaptation
    from studio.modelfile import ModelFileError
    from studio.runs import JobRunner, RunBusyError
    try:
        source = _run_folder(args.run)
        run = start_adaptation(source, args.photos, runner=JobRunner(), out=args.out, seed=args.seed,
                               check_with=args.check_with)
    except (FileNotFoundError, AdaptError, ModelFileError, RunBusyError) as exc:
        return _fail(str(exc))
    progress = Progress(args.quiet or args.json)
    try:
        while run.is_active():
            snap = run.snapshot()
            progress.update(snap.get("progress") or 0.0, snap.get("phase", ""))
            time.sleep(0.5)
    except KeyboardInterrupt:
        run.stop_event.set()
        progress.line("stopping after the current batch...")
    run.wait()
    progress.close()
    snap = run.snapshot()
    found = snap.get("adaptation") or {}
    for failure in found.get("unreadable", []):
        print(f"studio: {failure['path']}: {failure['reason']}", file=sys.stderr)
    if args.json:
        print(json.dumps({"status": snap["status"], "run_dir": snap["run_dir"], "model_path": snap["model_path"],
                          "error": snap["error"], **{k: v for k, v in found.items() if k != "words"},
                          "words": found.get("words")}, default=str))
    elif snap["status"] == "finished":
        print(found["words"])
        print(f"The adapted run: {snap['run_dir']}\nTry it: studio predict {snap['model_path']} PHOTO")
    if snap["status"] != "finished":
        return _fail(snap["error"] or "adapting failed") if not args.json else EXIT_ERROR
    return 0
