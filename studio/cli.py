"""`studio`: the command line over the same engine the page uses.

User mistakes (a missing folder, an unknown backbone, a damaged model file) end
in one clear line on stderr and a non-zero exit, never a traceback. A flag's
value is checked while the command line is read, before any data is opened or a
backbone loaded.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from studio import values
from studio.config import flag_type
from studio.values import MIN_BATCH

EXIT_ERROR = 1
EXIT_USAGE = 2
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
EXIT_FLAGGED = 3  # an export was written but differs from the trained model beyond the tolerance


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"studio: error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------- flag values

class Parser(argparse.ArgumentParser):
    """argparse whose mistakes end in one line, what was wrong and what is allowed (exit 2), not usage text."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"studio: error: {message.rstrip('.')}. (`{self.prog} --help` lists every flag.)\n")


whole_number = lambda *bounds: flag_type(values.whole_number(*bounds))  # noqa: E731
number = lambda allowed, ok: flag_type(values.number(allowed, ok))        # noqa: E731
freeze_value, device_name, backbone_name, separator, out_folder = (flag_type(check) for check in (
    values.freeze_value, values.device_name, values.backbone_name, values.separator, values.out_folder))


def bench_parts(text: str) -> str:
    """--only: a comma-separated subset of the bench's parts (studio.bench.PARTS)."""
    from studio.bench import PARTS, BenchUsageError, parse_parts
    try:
        parse_parts(text, "cuda")
    except BenchUsageError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated subset of {','.join(PARTS)}") from None
    return text


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
    from studio.checkpoints import ResumeError
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
    if chosen.get("freeze", "auto") == "auto" and chosen.get("head_epochs") == 0:
        return _fail("--head-epochs 0 needs --freeze all or a number: Auto trains the new head alone first "
                     "(1 epoch or more) to choose how deep to fine-tune.", EXIT_USAGE)
    try:
        config = TrainConfig(**chosen)
        config.resolved()   # the engine's own checks of the settings together, before the data is read
        check_trainable(open_dataset(config.data, config.val_fraction, config.seed, config.prefix_separator))
    except (DatasetError, ValueError, TypeError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    started = time.perf_counter()
    return _follow(start_training(config, run_dir=args.out), args, started)


def _epoch_line(record: dict, total: int | None) -> str:
    """One finished epoch in words, for the log."""
    of = f" of {total}" if total and total >= record["epoch"] else ""
    seconds = f", {record['epoch_seconds']:.1f} s" if record.get("epoch_seconds") is not None else ""
    return (f"Epoch {record['epoch']}{of}: validation accuracy {record['val_accuracy']:.1%} "
            f"(loss {record['val_loss']:.3f}), training accuracy {record['train_accuracy']:.1%} "
            f"(loss {record['train_loss']:.3f}){seconds}")


def _follow(run, args, started: float) -> int:
    """Show a run's progress until it ends (Ctrl-C stops it, keeping the best model), then its result:
    a short summary for a person, or with --json one JSON line for a program."""
    from studio.runs import MANAGER

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
    MANAGER.wait()
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
    }
    print(json.dumps(result) if args.json else train_summary(result, snap["config"].get("data")))
    return 0


def train_summary(result: dict, data: str | None = None) -> str:
    """What a person wants when a run ends: how well it did, where it is, how to try it."""
    run_dir, model = result["run_dir"], result["model_path"]
    done = "Finished" if result["status"] == "finished" else "Stopped"
    lines = [f"{done} after {result['epochs_run']} epoch(s) in {result['train_seconds']:.0f} s ({result['backbone']}, "
             f"{len(result['classes'])} classes)."]
    if result["best_epoch"] is not None:
        lines.append(f"Best: epoch {result['best_epoch']}, validation accuracy {result['best_val_accuracy']:.1%}.")
    for note in (result.get("stopped_early"), result.get("advice")):
        if note:
            lines.append(note)
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
        dataset = open_dataset(args.data, args.val_fraction, args.seed, args.prefix_sep)
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
        print(json.dumps(report.to_dict(dataset)))
    else:
        counts = dataset.counts()
        print(f"{len(dataset.classes)} classes, {len(dataset.samples)} images ({dataset.split_source} split)")
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
    from studio.data.imaging import is_image_name
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p)))
        else:
            files.append(path)
    return files


def cmd_predict(args) -> int:
    """Classify every image given (files and folders) in one fast pass, in the order given; an
    unreadable file is named with its reason and the rest are still classified."""
    from studio.inference import Predictor
    from studio.modelfile import ModelFileError

    if args.top_k < 1:
        return _fail(f"--top-k must be 1 or more (got {args.top_k}).", EXIT_USAGE)
    images = _expand_images(args.images)
    if not images:
        return _fail(f"no images in {', '.join(args.images)} (looked for "
                     "jpg, jpeg, png, bmp, gif, webp, tif, tiff).")
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
                {"class": c, "probability": round(p, 5)} for c, p in result.top]}))
        else:
            print(f"{result.image}: " + ", ".join(f"{c} {p:.1%}" for c, p in result.top))
    if unreadable:
        print(f"studio: {unreadable} of {len(images)} images could not be read (named above); "
              f"the other {len(images) - unreadable} were classified.", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _run_folder(run: str) -> Path:
    """A run folder from what a person typed: the folder, its model.safetensors, or a run id."""
    from studio import history
    path = Path(run)
    if path.is_file() and path.suffix == ".safetensors":
        return path.parent
    if path.is_dir() or path.exists():
        return path
    try:
        return history.find_run(run)
    except history.RunNotFound as exc:
        raise FileNotFoundError(f"{run} is neither a run folder nor a run id ({exc})") from None


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
                      "folder": str(result.folder), "files": sorted(p.name for p in result.folder.iterdir()),
                      "zip": str(result.zip_path) if result.zip_path else None,
                      "parity": result.parity, "verdict": result.verdict()}))
    if result.flagged:
        print(f"studio: warning: {result.verdict()}", file=sys.stderr)
        return EXIT_FLAGGED
    return 0


def cmd_backbones(args) -> int:
    from studio.backbones import catalog
    rows = catalog()
    if args.json:
        print(json.dumps(rows))
        return 0
    for row in rows:
        top1 = f"{row['imagenet_top1']:.1f}%" if row["imagenet_top1"] else "  -  "
        print(f"{row['name']:<24} {row['params_m']:>5.1f}M  top-1 {top1}  {row['status']:<8}  {row['availability']}")
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
    launch(host=args.host, port=args.port, auth=logins or None)
    return 0


def cmd_runs(args) -> int:
    """Every run the studio wrote, wherever it is, with its status; or the runs in the folders given."""
    from studio import history, paths
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
        where = "" if Path(row["run_dir"]).resolve().parent == inside else f"  {row['run_dir']}"
        print(f"{row['id']:<48} {row['status']:<11} {row['data']:<16} {row['backbone']:<18} {accuracy:>6}"
              + where + (f"  ({row['error']})" if row.get("error") else ""))
    missing = [] if args.paths else history.missing_runs()
    if missing:
        print(f"{len(missing)} run folder(s) the studio wrote are no longer where they were (moved or deleted): "
              + ", ".join(map(str, missing[:5])) + (" …" if len(missing) > 5 else "")
              + ". `studio runs NEW_PLACE` finds them again.", file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    from studio.backbones import BackboneError
    from studio.bench import BenchError, BenchUsageError, format_table, run_bench
    from studio.data.sources import DatasetError
    from studio.runs import RunBusyError

    log = (lambda text: print(text, file=sys.stderr, flush=True)) if not args.quiet else (lambda text: None)
    try:
        report = run_bench(args.data, args.backbone or "", epochs=args.epochs, device=args.device,
                           only=args.only, log=log, batch_size=args.batch_size,
                           random_weights=args.random_weights)
    except (DatasetError, BenchUsageError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (BackboneError, BenchError, RunBusyError) as exc:
        return _fail(str(exc))
    if not args.json_only:
        print(format_table(report))
        print()
    print(json.dumps(report))
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


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag; each constrained value has its `type=` or `choices=`, checked before any work."""
    from studio import __version__
    from studio.config import add_flags, by_name
    from studio.training.config import TrainConfig
    from studio.export.formats import DEFAULT as export_default, FORMATS as export_formats  # imports nothing heavy
    parser = Parser(prog="studio", description="Transfer Studio: train an image classifier on your photos.",
                    epilog="With no command, or with serve's flags alone (`studio --port 7999`, `studio --host "
                           "0.0.0.0 --auth ann:secret`), it launches the studio in the browser.")
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    settings_of = by_name(TrainConfig)

    serve = sub.add_parser("serve", help="launch the studio in the browser (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=whole_number(1, 65535), default=7860)
    serve.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                       help="ask for a login (repeat for several people); each person sees only their own runs")
    serve.add_argument("--auth-file", metavar="FILE", help="logins, one user:password per line")
    serve.set_defaults(func=cmd_serve)

    train = sub.add_parser("train", help="train headless; ends with a short summary (--json: one JSON line)")
    train.add_argument("data", nargs="?", help=settings_of["data"].help + " (may come from --config)")
    train.add_argument("--config", metavar="RUN_DIR|FILE", help="repeat a run: the settings of a run folder "
                       "(or its config.json, or a JSON file of settings); flags given too change them")
    train.add_argument("--resume", metavar="RUN_DIR", help="carry on a stopped, failed or interrupted run after its "
                       "last finished epoch (its own data and settings)")
    train.add_argument("--out", type=out_folder, default=None,
                       help="run folder (default: a new folder in the workspace)")
    train.add_argument("--json", action="store_true", help="end with one JSON line on stdout instead of the summary")
    train.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_flags(train, TrainConfig)   # every setting's flag, help and check, from its declaration
    train.set_defaults(func=cmd_train)

    doctor = sub.add_parser("doctor", help="check a dataset for what would ruin a model")
    doctor.add_argument("data")
    doctor.add_argument("--json", action="store_true", help="one JSON document on stdout")
    doctor.add_argument("--val-fraction", type=number("a fraction between 0 and 1, e.g. 0.2", lambda v: 0 < v < 1),
                        default=0.2)
    doctor.add_argument("--seed", type=whole_number(0), default=0)
    doctor.add_argument("--prefix-sep", type=separator, default=None, help=settings_of["prefix_separator"].help)
    doctor.add_argument("--outliers", action="store_true",
                        help="also suggest pictures that do not look like their class (runs the pretrained network)")
    doctor.set_defaults(func=cmd_doctor)

    predict = sub.add_parser("predict", help="classify images with a trained or exported model")
    predict.add_argument("model", help="model.safetensors, an exported .pt (TorchScript) or .onnx (float or int8) "
                                       "file, or an export's folder or zip")
    predict.add_argument("images", nargs="+", help="image files or folders")
    predict.add_argument("--top-k", type=int, default=3, help="classes to show per image (default 3)")
    predict.add_argument("--json", action="store_true", help="one JSON line per image, in the order given: "
                         "{image, predictions} or, for a file that cannot be read, {image, error}")
    predict.set_defaults(func=cmd_predict)

    export = sub.add_parser("export", help="export a run's model, checked against the trained model")
    export.add_argument("run", help="a run folder (or its id, or its model.safetensors)")
    export.add_argument("--format", choices=[*export_formats, "model"], default=export_default, metavar="FORMAT",
                        help="bundle (safetensors + ONNX + model card + predict.py; the default), torchscript, "
                             "onnx or onnx-int8")
    export.add_argument("--out", type=out_folder, required=True, help="folder to write the export into")
    export.add_argument("--zip", action="store_true", help="also pack the folder into OUT.zip")
    export.add_argument("--quiet", action="store_true", help="no progress on stderr")
    export.set_defaults(func=cmd_export)

    runs = sub.add_parser("runs", help="list every run the studio wrote, wherever it is, with its status")
    runs.add_argument("paths", nargs="*", metavar="PATH",
                      help="list the runs in these folders instead (a run folder or a folder of runs); they are "
                           "remembered, so the Runs page lists them too")
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.set_defaults(func=cmd_runs)

    listing = sub.add_parser("backbones", help="list the backbones and whether each can be had now")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_backbones)

    finder = sub.add_parser("lr-find", help="suggest a learning rate (the learning-rate range test)")
    finder.add_argument("data")
    finder.add_argument("--backbone", type=backbone_name, default="")
    finder.add_argument("--freeze", type=freeze_value, default="auto", metavar="auto|all|N",
                        help="as for `studio train`: auto/all test the new head; a number tests fine-tuning "
                             "with that many groups frozen")
    finder.add_argument("--seed", type=whole_number(0), default=0)
    finder.add_argument("--device", type=device_name, default="auto", metavar="auto|cpu|cuda",
                        help="auto (the default), cpu or cuda")
    finder.add_argument("--json", action="store_true", help="one JSON line: lr, curve [(rate, loss)], words")
    finder.set_defaults(func=cmd_lr_find)

    bench = sub.add_parser("bench",
                           help="time the tutorial loop, the studio engine and (CUDA) the raw limit on the same data")
    bench.add_argument("data", help="a dataset as `studio train` takes it")
    bench.add_argument("--backbone", type=backbone_name, default="",
                       help="timm model name (default: the first available offline)")
    bench.add_argument("--epochs", type=whole_number(1), default=3)
    bench.add_argument("--device", type=device_name, default="auto", metavar="auto|cpu|cuda",
                       help="auto (the default), cpu or cuda")
    bench.add_argument("--only", type=bench_parts, default=None, metavar="PARTS",
                       help="comma-separated subset of tutorial,frozen,finetune,auto,pass,raw "
                            "(default: all the device can run; raw is CUDA only; "
                            "'tutorial' runs the tutorial in the modes of the studio runs chosen)")
    bench.add_argument("--batch-size", type=whole_number(MIN_BATCH), default=None,
                       help="the studio runs' training batch (default: the studio's own choice for the data)")
    bench.add_argument("--random-weights", action="store_true",
                       help="time a backbone whose pretrained weights are not at hand; accuracies mean nothing then")
    bench.add_argument("--json-only", action="store_true", help="no table: stdout is only the JSON line")
    bench.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    bench.set_defaults(func=cmd_bench)
    return parser


def with_command(argv: list[str]) -> list[str]:
    """The arguments with `serve` put first when none is named: plain `studio` launches the studio, and
    serve's flags work alone (`studio --port 7999`). `studio --help` and `--version` stay the program's own."""
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        return ["serve", *argv]
    return argv


def main(argv: list[str] | None = None) -> int:
    """The exit status, also for a refused flag, --help and --version (argparse exits; callers get a number)."""
    parser = build_parser()
    try:
        args = parser.parse_args(with_command(list(sys.argv[1:] if argv is None else argv)))
    except SystemExit as exited:
        return int(exited.code or 0)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
