"""What a training run is asked to do, and the studio's decisions for what was left to it.

`resolved()` fills every "let the studio decide" field and records why, in words, in `choices`:
the run folder keeps both, so a run can be repeated and explained.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from studio import budgets, choices as named, recipe, values   # torch-free: `studio --help` answers at once
from studio.choices import DEFAULT_EXCLUDE, EXCLUDABLE
from studio.config import setting

HEAD_LR = 3e-3        # the new head on frozen features (Auto's first stage and --freeze all)
OTHER_CAMERAS_EPOCHS = 8   # the measured recipe for other-cameras views (benchmarks/SHIFT.md)
PREFIX_HELP = "flat folder of images: the class is the file name up to this separator (e.g. '_' for cat_001.jpg)"
STRENGTH_NAMES = tuple(named.STRENGTHS)


@dataclass
class TrainConfig:
    """One run's settings (each declared with its help, see studio.config) and the studio's `choices`."""
    # -- data
    data: str = setting(group="data", help="folder of class folders, or with train/ and val/ folders, "
                        "or a .zip of either")
    val_fraction: float = setting(0.2, group="data", flag="--val-fraction",
                                  parse=values.number("a fraction between 0 and 1, e.g. 0.2", lambda v: 0 < v < 1),
                                  help="held out for validation when the data has no val/ folder")
    test_fraction: float = setting(0.0, group="data", flag="--test-fraction", label="Hold out for a test",
                                   parse=values.number("a fraction from 0 up to (not including) 1, e.g. 0.1",
                                                       lambda v: 0 <= v < 1), span=(0, 0.3, 0.05),
                                   help="when the data has no test/ folder: this part of the training photos "
                                        "is kept apart and measures the finished model once, at the end, "
                                        "honestly (0, the default: no test)")
    prefix_separator: str | None = setting(None, group="data", flag="--prefix-sep", parse=values.separator,
                                           help=PREFIX_HELP + " (default: class folders)")
    task: str = setting("auto", group="data", flag="--task", choices=("auto", "single-label", "multi-label"),
                        label="Kind of task", words={"auto": "Auto (from the data)", "single-label": "One class per "
                                                     "photo", "multi-label": "Several labels per photo"},
                        help="auto (the default: multi-label when a labels CSV gives photos several labels), "
                             "single-label (one class per photo) or multi-label (each label a yes/no question)")
    exclude: list = setting(group="data", factory=lambda: list(DEFAULT_EXCLUDE), flag="--exclude",
                            choices=tuple(EXCLUDABLE), metavar="KIND", off_flag="--keep-all",
                            help="leave out the files of this data-check finding (repeatable; default: "
                                 f"{' and '.join(DEFAULT_EXCLUDE)}; see `studio doctor`): " + ", ".join(EXCLUDABLE))
    exclude_files: dict = setting(group="data", factory=dict,
                                  help="{path: reason}: files the user chose to leave out (the page's picks)")
    leave_out_list: str | None = setting(None, group="data", flag="--leave-out-photos", metavar="FILE",
                                         parse=values.existing_path,
                                         help="leave out the photos listed in FILE: a CSV with a path column (a "
                                              "run's wrong-folder.csv as it is, perhaps with rows deleted) or one "
                                              "path per line")
    unlabeled: str | None = setting(None, group="data", flag="--unlabeled", metavar="FOLDER",
                                    parse=values.existing_path, label="Unlabeled photos",
                                    help="a folder or .zip of unlabeled photos of the same kinds of thing: the new "
                                         "head also learns from the ones it is surest of (semi-supervised; helps "
                                         "most with few labels; default: none)")
    memory_budget_mb: int | None = setting(None, group="data", flag="--memory-budget", metavar="MB",
                                           parse=values.whole_number(0),
                                           help="largest in-memory image cache; bigger datasets stream from disk "
                                                "(default: half the free RAM, or STUDIO_CACHE_BUDGET)")
    # -- model
    backbone: str = setting("", group="model", flag="--backbone", parse=values.backbone_name,
                            help="timm model name (default: the first available offline)")
    freeze: str = setting("auto", group="model", flag="--freeze", parse=values.freeze_value, metavar="auto|all|N",
                          help="'auto' (the new head first, then as many top layer groups as the data needs; the "
                               "default), 'all' (only the new head trains) or a number of leading layer groups to "
                               "keep frozen (0 = fine-tune everything)")
    budget: str = setting(budgets.DEFAULT, group="model", flag="--budget", parse=values.budget,
                          metavar="quick|balanced|best|TIME",
                          help="how long Auto may work on finding and training the best plan: quick (about a "
                               "minute), balanced (the default: a fixed amount of work sized from the data), "
                               f"best ({budgets.BEST_MINUTES} minutes) or a time such as 90s, 10m or 1h; "
                               "used when --freeze is auto")
    batchnorm: str = setting("pretrained", group="model", flag="--batchnorm", choices=("pretrained", "adapt"),
                             label="BatchNorm statistics", page_help="keeping the ImageNet statistics is steadier "
                             "on small datasets and faster on a CPU (the default); adapting re-estimates them from "
                             "your photos",
                             words={"pretrained": "Keep ImageNet statistics", "adapt": "Adapt to my photos"},
                             help="'pretrained' keeps every BatchNorm layer's ImageNet statistics (steadier on "
                                  "small data, faster on CPU; the default); 'adapt' lets trainable layers "
                                  "re-estimate them from your photos")
    train_size: int | str = setting("auto", group="model", flag="--train-size", parse=values.train_size,
                                    metavar="auto|PX", help="fine-tuning crop size in px (default auto: 3/4 of "
                                                            "the input size on CPU, full on GPU)")
    feature_views: int | None = setting(None, group="model", flag="--views", parse=values.whole_number(1),
                                        help="feature extraction: views of each training image (1 = no "
                                             "augmentation; default 2 on CPU, 4 on GPU)")
    # -- optimisation
    epochs: int | None = setting(None, group="optimisation", flag="--epochs", parse=values.whole_number(1),
                                 help="passes over the photos (default: the recipe decides; in Auto, the "
                                      "fine-tuning epochs after the head's own)")
    head_epochs: int | None = setting(None, group="optimisation", flag="--head-epochs",
                                      parse=values.whole_number(0), label="Epochs of the new layer alone "
                                      "(freeze schedule)", suggested=(0, 1, 2, 3, 5, 8, 10),
                                      page_help="before any pretrained layer is unfrozen, the new layer learns on "
                                                "its own, so its first random guesses don't disturb what the network "
                                                "knows (Auto: 5 in Auto mode, 0 when you pick the depth yourself)",
                                      help="epochs of the new head alone before any pretrained layer is unfrozen, "
                                           "so its first random guesses don't disturb what the network knows "
                                           "(default: 5 with --freeze auto, 0 otherwise)")
    lr: float | None = setting(None, group="optimisation", flag="--lr",
                               parse=values.number("a learning rate above 0, e.g. 0.001", lambda v: v > 0),
                               help="learning rate of the new head; the backbone gets less (default: the "
                                    "recipe decides from the data)")
    batch_size: int | None = setting(None, group="optimisation", flag="--batch-size",
                                     parse=values.whole_number(values.MIN_BATCH),
                                     help="photos per training step (default: 32; on a GPU larger for large "
                                          "datasets)")
    optimizer: str = setting("adamw", group="optimisation", flag="--optimizer", choices=tuple(named.OPTIMIZERS),
                             label="Optimizer", words={"adamw": "AdamW", "sgd": "SGD with momentum"},
                             help="how each correction is computed: AdamW (the default) forgives a rough learning "
                                  "rate; SGD gets 10x the automatic rates")
    schedule: str = setting("warmup-cosine", group="optimisation", flag="--schedule",
                            choices=tuple(named.SCHEDULES), label="Learning-rate schedule",
                            words={"warmup-cosine": "Warm-up, then cosine", "one-cycle": "One-cycle",
                                   "constant": "Constant"},
                            help="how the learning rate changes over the run (default: warm up, then glide down)")
    weight_decay: float = setting(1e-4, group="optimisation", flag="--weight-decay", label="Weight decay",
                                  parse=values.number("a weight decay of 0 or more, e.g. 1e-4", lambda v: v >= 0),
                                  help="pulls weights toward zero (AdamW)")
    label_smoothing: float = setting(0.1, group="optimisation", flag="--label-smoothing", label="Label smoothing",
                                     parse=values.number("a label smoothing from 0 up to (not including) 1, "
                                                         "e.g. 0.1", lambda v: 0 <= v < 1), span=(0, 0.3, 0.05),
                                     help="keeps the model from being over-sure")
    patience: int | None = setting(None, group="optimisation", flag="--patience", parse=values.whole_number(0),
                                   label="Early-stopping patience", auto_value=3, span=(0, 10, 1),
                                   help="epochs without a better validation result before stopping; the best "
                                        "epoch is kept (default 3; 0 = never stop early)")
    class_weighting: str = setting("auto", group="optimisation", flag="--class-weighting",
                                   choices=("auto", "on", "off"), label="Class-weighted loss",
                                   help="auto: weight the loss by class when the largest class has 1.5x the "
                                        "smallest's photos")
    augment: bool = setting(True, group="optimisation", flag="--no-augment",
                            label="Augment (random crops, flips, colour)",
                            page_help="shows each photo a little differently every time (on by default)",
                            help="random crops, flips and colour changes, so each photo looks a little different "
                                 "every time (on by default; --no-augment turns them off)")
    augment_strength: str = setting("auto", group="optimisation", flag="--augment-strength",
                                    choices=("auto", *STRENGTH_NAMES), label="Augmentation strength",
                                    words={"auto": "Auto (normal)", "light": "Light", "normal": "Normal",
                                           "strong": "Strong", "other-cameras": "Other cameras"},
                                    help="how different each training view may be (default auto = normal: crops "
                                         "keep at least 35% of a photo; strong helps little data that varies a lot; "
                                         "other-cameras for a model that will meet photos from other cameras or "
                                         "places: smaller in the frame, softer, other light, never mirrored; it "
                                         "fine-tunes every layer at the full size, slower than Auto)")
    # -- run
    seed: int = setting(0, group="run", flag="--seed", parse=values.whole_number(0), label="Seed",
                        help="same seed, same data, same machine: same model")
    device: str = setting("auto", group="run", flag="--device", parse=values.device_name, metavar="auto|cpu|cuda",
                          help="auto (the default: the GPU when there is one), cpu or cuda")
    gpus: int = setting(0, group="run", flag="--gpus", parse=values.whole_number(0), label="GPUs",
                        help="train on this many GPUs at once (torchrun and DistributedDataParallel; 0 = one "
                             "device, in the studio's own process)")
    processes: int = setting(1, group="run", flag="--nproc", parse=values.whole_number(1), label="Processes",
                             help="train in this many processes on the CPU (torchrun, gloo): for many-core servers; "
                                  "the same code path as --gpus")
    runs_root: str | None = setting(None, group="run", repeat=False,
                                    help="where new run folders go (tests; default: the "
                                         "workspace)")
    owner: str | None = setting(None, group="run", repeat=False,
                                help="the signed-in user who started the run (None: no login)")
    random_weights: bool = setting(False, group="run", repeat=False,
                                   help="timing benchmarks of backbones without offline "
                                        "weights only (`studio bench --random-weights`); the page and `studio train` "
                                        "never set it")
    choices: dict = field(default_factory=dict)   # what the recipe decided, in words

    def resolved(self) -> "TrainConfig":
        """Fill every 'let the studio decide' field, recording why in `choices`.

        Long on purpose: one decision after another, in the order they depend on each other (the
        backbone and freeze before the epochs and the learning rate), each beside its words."""
        cfg = TrainConfig(**asdict(self))
        if not cfg.backbone:
            from studio import backbones
            cfg.backbone = backbones.default_backbone()
            cfg.choices["backbone"] = f"{cfg.backbone}: the first backbone available offline."
        cfg.freeze = recipe.freeze_setting(cfg.freeze)   # a wrong value fails here, before any work
        feature_extraction = cfg.freeze == "all"
        if cfg.head_epochs is None or feature_extraction:  # "all" is the head alone throughout
            cfg.head_epochs = recipe.HEAD_EPOCHS if cfg.freeze == "auto" else 0
        cfg.head_epochs = int(cfg.head_epochs)
        if cfg.head_epochs < 0 or (cfg.freeze == "auto" and cfg.head_epochs < 1):
            raise ValueError("head_epochs must be 0 or more (at least 1 in Auto, which measures the head "
                             "alone to choose how deep to fine-tune).")
        if cfg.head_epochs and cfg.freeze not in ("auto", "all"):
            cfg.choices["head_epochs"] = (f"{cfg.head_epochs} epochs of the new head alone before the layers "
                                          "you chose are unfrozen (your choice).")
        cfg.budget = budgets.budget_setting(cfg.budget)
        if cfg.augment and cfg.augment_strength == "other-cameras" and cfg.freeze == "auto":
            # measured (benchmarks/SHIFT.md): these views pay only when every layer learns them for several
            # epochs; Auto's shallow plans and short fine-tuning leave the network unable to use them
            cfg.freeze, cfg.head_epochs = "0", 0
            feature_extraction = False
            cfg.epochs = OTHER_CAMERAS_EPOCHS if cfg.epochs is None else cfg.epochs
            cfg.choices["freeze"] = (f"every layer fine-tuned for {cfg.epochs} epochs, because the other-cameras "
                                     "augmentation was chosen: it works only when the whole network learns to "
                                     "ignore size, sharpness and light (rendered to real traffic signs: 85% "
                                     "right, against 61% with the usual views). Slower than Auto.")
        if cfg.freeze == "auto":
            cfg.choices["freeze"] = (f"Auto: {cfg.head_epochs} epochs of the new head alone, then plans for "
                                     "fine-tuning the backbone (how deep, how fast) tried briefly and the best "
                                     "one trained on; " + budgets.describe(cfg.budget) + ".")
        elif cfg.epochs is None:
            cfg.epochs = 10 if feature_extraction else 5
            cfg.choices["epochs"] = (f"{cfg.epochs} epochs: " + ("with the backbone frozen an epoch "
                                     "costs milliseconds." if feature_extraction else
                                     "enough for a pretrained network to adapt without overfitting."))
        if cfg.feature_views is None:
            from studio.hardware import pick_device
            gpu = pick_device(cfg.device).type == "cuda"
            cfg.feature_views = 4 if gpu else 2
            cfg.choices["feature_views"] = (f"{cfg.feature_views} views of each training image for feature "
                                            "extraction (the original and " + ("3 augmented copies" if gpu else
                                            "1 augmented copy: each copy costs a forward pass on this CPU") + ").")
        if cfg.patience is None:
            cfg.patience = 3
            cfg.choices["patience"] = ("early stopping after 3 epochs without a better validation result; "
                                       "the best epoch's model is kept.")
        if cfg.train_size != "auto":
            try:
                cfg.train_size = int(cfg.train_size)
            except ValueError:
                raise ValueError("train_size must be 'auto' or a number of pixels, e.g. 224.") from None
        if cfg.gpus and cfg.processes > 1:
            raise ValueError("Give --gpus N (one process per GPU) or --nproc N (processes on the CPU), not both.")
        if cfg.gpus and cfg.device == "cpu":
            raise ValueError("--gpus trains on GPUs; leave out --device cpu (or use --nproc for CPU processes).")
        if cfg.class_weighting not in ("auto", "on", "off"):
            raise ValueError("class_weighting must be 'auto', 'on' or 'off'.")
        from studio import optim
        optim.check(cfg.optimizer, cfg.schedule)
        cfg.choices["optimizer"] = f"{named.OPTIMIZERS[cfg.optimizer]} Schedule: {named.SCHEDULES[cfg.schedule]}"
        if cfg.augment_strength not in ("auto", *named.STRENGTHS):
            raise ValueError(f"augment_strength must be 'auto' or one of {', '.join(named.STRENGTHS)}.")
        if not cfg.augment:
            cfg.choices["augment"] = "no augmentation: every epoch shows the photos exactly as they are."
        elif cfg.augment_strength == "auto":
            cfg.augment_strength = "normal"
            cfg.choices["augment"] = ("normal augmentation: " + named.STRENGTHS["normal"]["words"] +
                                      " Light, strong and other cameras (for photos from other cameras or places) "
                                      "are in the advanced settings.")
        else:
            cfg.choices["augment"] = (f"{cfg.augment_strength.replace('-', ' ')} augmentation (as asked): "
                                      + named.STRENGTHS[cfg.augment_strength]["words"])
        if cfg.batchnorm not in ("pretrained", "adapt"):
            raise ValueError("batchnorm must be 'pretrained' or 'adapt'.")
        if cfg.lr is None and cfg.freeze != "auto":  # Auto picks its rate from the dataset's size
            cfg.lr = (HEAD_LR if feature_extraction else 1e-3) * named.LR_SCALE[cfg.optimizer]
            cfg.choices["lr"] = (f"learning rate {cfg.lr:g} for the new head" + (
                "" if feature_extraction else f", {recipe.BODY_LR_FACTOR:g} of it for the top pretrained layers, "
                f"down to {recipe.BODY_LR_FACTOR * recipe.DEEPEST_LR_FACTOR:g} of it for the deepest trained ones."))
        return cfg
