"""`studio`: the command line over the same engine the page uses.

User mistakes (a missing folder, an unknown backbone, a damaged model file) end
in one clear line on stderr and a non-zero exit, never a traceback. A flag's
value is checked while the command line is read, before any data is opened or a
backbone loaded.
"""
from __future__ import annotations

import argparse
import sys

from studio import values
from studio.config import flag_type
from studio.commands import (EXIT_USAGE, cmd_adapt, cmd_advise, cmd_backbones, cmd_cluster, cmd_doctor, cmd_export,
                             cmd_explain, cmd_lr_find, cmd_predict, cmd_runs, cmd_serve, cmd_setup_tflite,
                             cmd_shift, cmd_train)

# ---------------------------------------------------------------- flag values

class Parser(argparse.ArgumentParser):
    """argparse whose mistakes end in one line, what was wrong and what is allowed (exit 2), not usage text."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"studio: error: {message.rstrip('.')}. (`{self.prog} --help` lists every flag.)\n")


whole_number = lambda *bounds: flag_type(values.whole_number(*bounds))  # noqa: E731
number = lambda allowed, ok: flag_type(values.number(allowed, ok))        # noqa: E731
backbone_list = flag_type(lambda text: [values.backbone_name(name) for name in text.split(",") if name.strip()])
freeze_value, device_name, backbone_name, separator, out_folder = (flag_type(check) for check in (
    values.freeze_value, values.device_name, values.backbone_name, values.separator, values.out_folder))


def build_parser() -> argparse.ArgumentParser:
    """Every command and flag; each constrained value has its `type=` or `choices=`, checked before any work."""
    from studio import __version__
    parser = Parser(prog="studio", description="Transfer Studio: train an image classifier on your photos.",
                    epilog="With no command, or with serve's flags alone (`studio --port 7999`, `studio --host "
                           "0.0.0.0 --auth ann:secret`), it launches the studio in the browser.")
    parser.add_argument("--version", action="version", version=f"studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in (_serve, _train, _doctor, _advise, _predict, _explain, _shift, _adapt, _cluster, _export,
                        _setup_tflite, _runs, _backbones, _lr_find):
        add_command(sub)
    return parser


def _serve(sub) -> None:
    serve = sub.add_parser("serve", help="launch the studio in the browser (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=whole_number(1, 65535), default=7860)
    serve.add_argument("--auth", action="append", metavar="USER:PASSWORD",
                       help="ask for a login (repeat for several people); each person sees only their own runs")
    serve.add_argument("--auth-file", metavar="FILE", help="logins, one user:password per line")
    serve.add_argument("--executor", choices=("thread", "ray"), default="thread",
                       help="where runs train: thread (the default: in the studio's own process, one per GPU) or "
                            "ray (submitted as Ray jobs to --ray-address; pip install -e \".[cluster]\")")
    serve.add_argument("--ray-address", default="http://127.0.0.1:8265", metavar="URL",
                       help="the Ray cluster's dashboard address (with --executor ray)")
    serve.add_argument("--jobs", type=whole_number(1), default=None,
                       help="runs that may train at once (default: one per GPU, one on a CPU; with Ray, the "
                            "cluster's size is the limit you choose)")
    serve.set_defaults(func=cmd_serve)


def _train(sub) -> None:
    from studio.config import add_flags, by_name
    from studio.training.config import TrainConfig
    settings_of = by_name(TrainConfig)
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
    several = train.add_argument_group("several machines (with --gpus or --nproc; torchrun's rendezvous)")
    several.add_argument("--nnodes", type=whole_number(1), default=1, help="machines taking part (default 1)")
    several.add_argument("--node-rank", type=whole_number(0), default=0, help="this machine's number, 0 to NNODES-1; "
                         "machine 0 writes the run folder (give the same --out on shared storage everywhere)")
    several.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="where the machines meet: machine 0's "
                         "address and a free port, the same on every machine")
    train.set_defaults(func=cmd_train)


def _doctor(sub) -> None:
    from studio.config import by_name
    from studio.training.config import TrainConfig
    doctor = sub.add_parser("doctor", help="check a dataset for what would ruin a model")
    doctor.add_argument("data")
    doctor.add_argument("--json", action="store_true", help="one JSON document on stdout")
    doctor.add_argument("--val-fraction", type=number("a fraction between 0 and 1, e.g. 0.2", lambda v: 0 < v < 1),
                        default=0.2)
    doctor.add_argument("--seed", type=whole_number(0), default=0)
    doctor.add_argument("--prefix-sep", type=separator, default=None,
                        help=by_name(TrainConfig)["prefix_separator"].help)
    doctor.add_argument("--outliers", action="store_true",
                        help="also suggest pictures that do not look like their class (runs the pretrained network)")
    doctor.set_defaults(func=cmd_doctor)


def _advise(sub) -> None:
    advise = sub.add_parser("advise", help="rank the backbones at hand on your photos, in seconds (no training)")
    advise.add_argument("data", help="a dataset as `studio train` takes it")
    advise.add_argument("--backbones", type=backbone_list, default=None, metavar="A,B",
                        help="only these backbones (default: every one whose weights are here)")
    advise.add_argument("--seed", type=whole_number(0), default=0, help="which photos the sample takes")
    advise.add_argument("--json", action="store_true", help="one JSON document: ranking, words, photos, seconds")
    advise.set_defaults(func=cmd_advise)


def _predict(sub) -> None:
    predict = sub.add_parser("predict", help="classify images with a trained or exported model")
    predict.add_argument("model", help="model.safetensors, an exported .pt (TorchScript) or .onnx (float or int8) "
                                       "file, or an export's folder or zip")
    predict.add_argument("images", nargs="+", help="image files or folders")
    predict.add_argument("--top-k", type=int, default=3, help="classes to show per image (default 3)")
    predict.add_argument("--json", action="store_true", help="one JSON line per image, in the order given: "
                         "{image, predictions} or, for a file that cannot be read, {image, error}")
    predict.set_defaults(func=cmd_predict)


def _explain(sub) -> None:
    explain = sub.add_parser("explain", help="where the model looked: a Grad-CAM heatmap over each photo")
    explain.add_argument("run", help="a run folder or id, its model.safetensors, or an export's folder")
    explain.add_argument("images", nargs="+", help="image files or folders")
    explain.add_argument("--out", required=True, help="folder for the heatmaps (PHOTO-where-it-looked.png)")
    explain.add_argument("--class", dest="class_name", default=None,
                         help="where it looked for this class (default: for its own answer)")
    explain.add_argument("--json", action="store_true",
                         help="one JSON line per photo: path, class, probability, heatmap (or path, error)")
    explain.set_defaults(func=cmd_explain)


def _shift(sub) -> None:
    shift = sub.add_parser("shift", help="how unlike the training photos new photos are (domain shift), "
                                         "and which answers to doubt")
    shift.add_argument("run", help="a run folder or id, its model.safetensors, or an export's folder")
    shift.add_argument("photos", nargs="+", help="image files or folders")
    shift.add_argument("--json", action="store_true", help="one JSON object: shift (the folder's; about 1 is "
                       "like the validation photos, higher is farther), percentile, unfamiliar (a count), photos "
                       "[{path, shift, percentile, unfamiliar, answer, confidence}], unreadable [{path, reason}]")
    shift.set_defaults(func=cmd_shift)


def _cluster(sub) -> None:
    cluster = sub.add_parser("cluster", help="sort unlabeled photos into groups of similar ones (no labels "
                                             "needed), most typical photo first; optionally save them as a dataset")
    cluster.add_argument("photos", nargs="+", help="image files, folders or .zip files")
    cluster.add_argument("--groups", type=whole_number(1, 10_000), help="how many groups (default: chosen "
                         "automatically, the number whose groups are most clearly apart)")
    cluster.add_argument("--backbone", type=backbone_name, help="timm model whose pretrained features "
                         "compare the photos (default: the first available offline)")
    cluster.add_argument("--save", metavar="DIR", type=out_folder, help="copy the photos into DIR, one folder "
                         "per group (group-01, group-02, ...: rename them to class names), ready to train")
    cluster.add_argument("--next", type=whole_number(1, 10_000), metavar="N", help="also list the N photos to "
                         "label first (the most typical photo of each group, then more typical ones)")
    cluster.add_argument("--labelled", metavar="DIR", type=flag_type(values.existing_path), help="with --next: "
                         "photos you have labelled already (e.g. the dataset you copied them into); they are "
                         "not suggested again")
    cluster.add_argument("--model", metavar="RUN", help="with --next: a trained run or model; once every group "
                         "has a label, the photos it is least sure of come next")
    cluster.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    cluster.add_argument("--json", action="store_true", help='one JSON object: {"groups": [{"photos": [paths, '
                         'most typical first]}, ...], "unreadable": [{path, reason}], "silhouette", and "next" '
                         'and "saved" when asked}')
    cluster.set_defaults(func=cmd_cluster)


def _adapt(sub) -> None:
    adapt = sub.add_parser("adapt", help="adapt a run's model to a new site from its unlabeled photos "
                                         "(a new run; refused when it would make things worse)")
    adapt.add_argument("run", help="a run folder or id, or its model.safetensors")
    adapt.add_argument("photos", nargs="+", help="the new site's photos: image files or folders (no labels)")
    adapt.add_argument("--out", help="the new run folder (default: a new folder in the workspace)")
    adapt.add_argument("--check-with", metavar="DIR", help="a few labelled photos from the new site (one folder per "
                       "class), never trained on: the adapted model must do at least as well on them, or it is "
                       "refused (without them nothing can confirm it works better there)")
    adapt.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    adapt.add_argument("--json", action="store_true", help="end with one JSON object: status, run_dir, "
                       "model_path, photos_used, pseudo_labelled, val_accuracy_before/after, shift_before/after, "
                       "class_mix, refused, reason, words")
    adapt.add_argument("--quiet", action="store_true", help="no progress on stderr")
    adapt.set_defaults(func=cmd_adapt)


def _export(sub) -> None:
    from studio.export.formats import DEFAULT as export_default, FORMATS as export_formats  # imports nothing heavy
    export = sub.add_parser("export", help="export a run's model, checked against the trained model")
    export.add_argument("run", help="a run folder (or its id, or its model.safetensors)")
    export.add_argument("--format", choices=[*export_formats, "model"], default=export_default, metavar="FORMAT",
                        help="bundle (safetensors + ONNX + model card + predict.py; the default), torchscript, "
                             "onnx, onnx-uint8 (pixels in), onnx-int8, tflite or tflite-int8 (TFLite needs "
                             "`studio setup-tflite` once)")
    export.add_argument("--out", type=out_folder, required=True, help="folder to write the export into")
    export.add_argument("--zip", action="store_true", help="also pack the folder into OUT.zip")
    export.add_argument("--quiet", action="store_true", help="no progress on stderr")
    export.set_defaults(func=cmd_export)


def _setup_tflite(sub) -> None:
    setup = sub.add_parser("setup-tflite", help="install the TFLite converter (litert-torch) in an environment of "
                                                "its own, once; the studio's packages are not changed")
    setup.set_defaults(func=cmd_setup_tflite)


def _runs(sub) -> None:
    runs = sub.add_parser("runs", help="list every run the studio wrote, wherever it is, with its status")
    runs.add_argument("paths", nargs="*", metavar="PATH",
                      help="list the runs in these folders instead (a run folder or a folder of runs); they are "
                           "remembered, so the Runs page lists them too")
    runs.add_argument("--json", action="store_true", help="one JSON object per run")
    runs.set_defaults(func=cmd_runs)


def _backbones(sub) -> None:
    listing = sub.add_parser("backbones", help="list the backbones and whether each can be had now; --add your "
                             "own pretrained weights")
    listing.add_argument("--add", metavar="FILE_OR_FOLDER",
                         help="check and keep your own pretrained weights: a timm .safetensors/.pth file, or a "
                              "folder saved by timm or the Hugging Face Hub (config.json + model.safetensors); they "
                              "then train as backbone own:NAME")
    listing.add_argument("--architecture", metavar="TIMM_NAME",
                         help="with --add: the timm architecture of a bare weights file (default: recognised "
                              "among the catalog's, or read from the folder's config.json)")
    listing.add_argument("--name", help="with --add: the name it gets (default: the file or folder name)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_backbones)


def _lr_find(sub) -> None:
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
