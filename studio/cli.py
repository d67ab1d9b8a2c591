"""`studio`: the command line over the same engine the page uses.

User mistakes (a missing folder, an unknown backbone, a damaged model file) end
in one clear line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_ERROR = 1
EXIT_USAGE = 2
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
EXIT_FLAGGED = 3  # an export was written but differs from the trained model beyond the tolerance
PREFIX_HELP = "flat folder of images: the class is the file name up to this separator (e.g. '_' for cat_001.jpg)"


def _fail(message: str, code: int = EXIT_ERROR) -> int:
    print(f"studio: error: {message}", file=sys.stderr)
    return code


def _bar(snapshot: dict, width: int = 30) -> str:
    fraction = snapshot.get("progress") or 0.0
    filled = int(width * fraction)
    eta = snapshot.get("eta_seconds")
    eta_text = f" ETA {int(eta)}s" if eta else ""
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {snapshot.get('phase', '')[:50]:<50}{eta_text:<10}"


def cmd_train(args) -> int:
    from studio.data import DatasetError, check_trainable, open_dataset
    from studio.doctor import DEFAULT_EXCLUDE
    from studio.checkpoints import ResumeError
    from studio.training import TrainConfig, resume_training, start_training

    if args.resume:
        if args.data:
            return _fail("--resume carries on a run with its own data and settings: give the run folder only.",
                         EXIT_USAGE)
        try:
            run = resume_training(args.resume)
        except ResumeError as exc:
            return _fail(str(exc), EXIT_USAGE)
        return _follow(run, args.quiet, time.perf_counter())
    if not args.data:
        return _fail("give the data to train on (or --resume RUN_DIR to carry on a run).", EXIT_USAGE)
    try:
        check_trainable(open_dataset(args.data, args.val_fraction, args.seed, args.prefix_sep))
    except DatasetError as exc:
        return _fail(str(exc), EXIT_USAGE)
    config = TrainConfig(data=str(Path(args.data).resolve()), backbone=args.backbone or "", freeze=args.freeze,
                         epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
                         val_fraction=args.val_fraction, device=args.device, prefix_separator=args.prefix_sep,
                         exclude=[] if args.keep_all else (args.exclude or list(DEFAULT_EXCLUDE)),
                         feature_views=args.views, batchnorm=args.batchnorm, memory_budget_mb=args.memory_budget,
                         weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, patience=args.patience,
                         augment=not args.no_augment, class_weighting=args.class_weighting,
                         train_size=args.train_size, optimizer=args.optimizer, schedule=args.schedule,
                         head_epochs=args.head_epochs, augment_strength=args.augment_strength)
    started = time.perf_counter()
    return _follow(start_training(config, run_dir=args.out), args.quiet, started)


def _follow(run, quiet: bool, started: float) -> int:
    """Show a run's progress until it ends (Ctrl-C stops it, keeping the best model), then its result."""
    from studio.runs import MANAGER

    try:
        while run.is_active():
            if not quiet:
                print(_bar(run.snapshot()), end="", file=sys.stderr, flush=True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        run.stop_event.set()
        print("\nstopping after the current batch...", file=sys.stderr)
    MANAGER.wait()
    snap = run.snapshot()
    if not quiet:
        print(_bar(snap), file=sys.stderr)
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
    print(json.dumps(result))
    return 0


def cmd_doctor(args) -> int:
    from studio.data import DatasetError, open_dataset
    from studio.doctor import diagnose

    try:
        dataset = open_dataset(args.data, args.val_fraction, args.seed, args.prefix_sep)
    except DatasetError as exc:
        return _fail(str(exc), EXIT_USAGE)
    progress = None if args.json else (lambda d, t: print(f"\rchecking {d}/{t}", end="", file=sys.stderr))
    report = diagnose(dataset, progress)
    if args.outliers:
        from studio.outliers import find_outliers
        finding = find_outliers(dataset, progress=None if args.json else
                                (lambda d, t: print(f"\rlooking for outliers {d}/{t}", end="", file=sys.stderr)))
        if finding is not None:
            report.findings.append(finding)
    if args.json:
        print(json.dumps(report.to_dict(dataset)))
    else:
        print(file=sys.stderr)
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
    from studio.imaging import is_image_name
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
    from studio import bundle
    from studio.modelfile import ModelFileError

    fmt = "bundle" if args.format == "model" else args.format
    out = Path(args.out)
    progress = None if args.quiet else (
        lambda fraction, words: print(f"\r[{fraction:4.0%}] {words[:60]:<60}", end="", file=sys.stderr, flush=True))
    try:
        result = bundle.export_run(_run_folder(args.run), fmt, out,
                                   zip_path=out.with_name(out.name + ".zip") if args.zip else None,
                                   progress=progress)
    except (ModelFileError, bundle.ExportError, FileNotFoundError) as exc:
        if progress:
            print(file=sys.stderr)
        return _fail(str(exc))
    if progress:
        print(file=sys.stderr)
    main_file = result.model_files[-1] if fmt != "bundle" else result.model_files[0]
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
    """Every run on disk with its status (running, finished, stopped, failed, interrupted, damaged)."""
    from studio.history import list_runs
    rows = list_runs()
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    if not rows:
        print("No runs yet.")
        return 0
    for row in rows:
        accuracy = f"{row['best_val_accuracy']:.1%}" if row.get("best_val_accuracy") is not None else "-"
        print(f"{row['id']:<48} {row['status']:<11} {row['data']:<16} {row['backbone']:<18} {accuracy:>6}"
              + (f"  ({row['error']})" if row.get("error") else ""))
    return 0


def cmd_bench(args) -> int:
    from studio.backbones import BackboneError
    from studio.bench import BenchError, BenchUsageError, format_table, run_bench
    from studio.data import DatasetError
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
    from studio.data import DatasetError
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
    from studio import augment, optim  # the choices' names live beside what they choose
    export_formats = ["bundle", "torchscript", "onnx", "onnx-int8"]  # studio.export.FORMATS, without importing torch
    parser = argparse.ArgumentParser(prog="studio", description="Transfer Studio: train an image classifier on your photos.")
    sub = parser.add_subparsers(dest="command")

    serve = sub.add_parser("serve", help="launch the studio in the browser (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7860)
    serve.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                       help="ask for a login (repeat for several people); each person sees only their own runs")
    serve.add_argument("--auth-file", metavar="FILE", help="logins, one user:password per line")
    serve.set_defaults(func=cmd_serve)

    train = sub.add_parser("train", help="train headless; prints one JSON line at the end")
    train.add_argument("data", nargs="?", help="folder of class folders, or with train/ and val/ folders, or a .zip of either")
    train.add_argument("--resume", metavar="RUN_DIR", help="carry on a stopped, failed or interrupted run after its "
                       "last finished epoch (its own data and settings)")
    train.add_argument("--backbone", default="", help="timm model name (default: the first available offline)")
    train.add_argument("--freeze", default="auto", help="'auto' (the new head first, then as many top layer groups as the data needs; "
                       "the default), 'all' (only the new head trains) or a number of leading layer groups to keep frozen "
                       "(0 = fine-tune everything)")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--lr", type=float, default=None, help="learning rate of the new head")
    train.add_argument("--batch-size", type=int, default=None,
                       help="photos per training step (default: 32; on a GPU larger for large datasets)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--val-fraction", type=float, default=0.2, help="held out for validation when the data has no val/ folder")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train.add_argument("--prefix-sep", default=None, help=PREFIX_HELP)
    train.add_argument("--out", default=None, help="run folder (default: a new folder in the workspace)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--exclude", action="append", metavar="KIND",
                       help="leave out the files of this data-check finding (repeatable; default: "
                            "exact_duplicates and train_val_leak; see `studio doctor`)")
    train.add_argument("--keep-all", action="store_true", help="train on every readable file, leave nothing out")
    train.add_argument("--views", type=int, default=None,
                       help="feature extraction: views of each training image (1 = no augmentation; default 2 on CPU, 4 on GPU)")
    train.add_argument("--batchnorm", default="pretrained", choices=["pretrained", "adapt"],
                       help="'pretrained' keeps every BatchNorm layer's ImageNet statistics (steadier on small data, faster on CPU); "
                            "'adapt' lets trainable layers re-estimate them from your images")
    train.add_argument("--optimizer", default="adamw", choices=list(optim.OPTIMIZERS),
                       help="default adamw; sgd gets 10x the automatic learning rates")
    train.add_argument("--schedule", default="warmup-cosine", choices=list(optim.SCHEDULES),
                       help="how the learning rate changes over the run (default warmup-cosine)")
    train.add_argument("--head-epochs", type=int, default=None,
                       help="epochs of the new head alone before unfreezing (default: 5 with --freeze auto, 0 otherwise)")
    train.add_argument("--augment-strength", default="auto", choices=["auto", *augment.STRENGTHS],
                       help="how different each training view may be (default auto = normal)")
    train.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (default 1e-4)")
    train.add_argument("--label-smoothing", type=float, default=0.1, help="default 0.1")
    train.add_argument("--patience", type=int, default=None,
                       help="stop after this many epochs without a better validation result (default 3; 0 = never)")
    train.add_argument("--no-augment", action="store_true", help="no random crops, flips or colour changes")
    train.add_argument("--class-weighting", default="auto", choices=["auto", "on", "off"],
                       help="class-weighted loss: auto = when the largest class has 1.5x the smallest's images")
    train.add_argument("--train-size", default="auto",
                       help="fine-tuning crop size in px (default auto: 3/4 of the input size on CPU, full on GPU)")
    train.add_argument("--memory-budget", type=int, default=None, metavar="MB",
                       help="largest in-memory image cache; bigger datasets stream from disk (default: half the free RAM, "
                            "or STUDIO_CACHE_BUDGET)")
    train.set_defaults(func=cmd_train)

    doctor = sub.add_parser("doctor", help="check a dataset for what would ruin a model")
    doctor.add_argument("data")
    doctor.add_argument("--json", action="store_true", help="one JSON document on stdout")
    doctor.add_argument("--val-fraction", type=float, default=0.2)
    doctor.add_argument("--seed", type=int, default=0)
    doctor.add_argument("--prefix-sep", default=None, help=PREFIX_HELP)
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
    export.add_argument("--format", choices=[*export_formats, "model"], default="bundle", metavar="FORMAT",
                        help="bundle (safetensors + ONNX + model card + predict.py; the default), torchscript, "
                             "onnx or onnx-int8")
    export.add_argument("--out", required=True, help="folder to write the export into")
    export.add_argument("--zip", action="store_true", help="also pack the folder into OUT.zip")
    export.add_argument("--quiet", action="store_true", help="no progress line")
    export.set_defaults(func=cmd_export)

    runs = sub.add_parser("runs", help="list every run on disk with its status")
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.set_defaults(func=cmd_runs)

    listing = sub.add_parser("backbones", help="list the backbones and whether each can be had now")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_backbones)

    finder = sub.add_parser("lr-find", help="suggest a learning rate (the learning-rate range test)")
    finder.add_argument("data")
    finder.add_argument("--backbone", default="")
    finder.add_argument("--freeze", default="auto", help="as for `studio train`: auto/all test the new head; a number "
                                                        "tests fine-tuning with that many groups frozen")
    finder.add_argument("--seed", type=int, default=0)
    finder.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    finder.add_argument("--json", action="store_true", help="one JSON line: lr, curve [(rate, loss)], words")
    finder.set_defaults(func=cmd_lr_find)

    bench = sub.add_parser("bench", help="time the tutorial loop, the studio engine and (CUDA) the raw limit on the same data")
    bench.add_argument("data", help="a dataset as `studio train` takes it")
    bench.add_argument("--backbone", default="", help="timm model name (default: the first available offline)")
    bench.add_argument("--epochs", type=int, default=3)
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    bench.add_argument("--only", default=None, metavar="PARTS",
                       help="comma-separated subset of tutorial,frozen,finetune,auto,pass,raw (default: all the device can run; "
                            "raw is CUDA only; 'tutorial' runs the tutorial in the modes of the studio runs chosen)")
    bench.add_argument("--batch-size", type=int, default=None,
                       help="the studio runs' training batch (default: the studio's own choice for the data)")
    bench.add_argument("--random-weights", action="store_true",
                       help="time a backbone whose pretrained weights are not at hand; accuracies mean nothing then")
    bench.add_argument("--json-only", action="store_true", help="no table: stdout is only the JSON line")
    bench.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or [])])
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
