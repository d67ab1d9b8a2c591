"""What a training run is asked to do, and the studio's decisions for what was left to it.

`resolved()` fills every "let the studio decide" field and records why, in words, in `choices`:
the run folder keeps both, so a run can be repeated and explained.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from studio import augment, backbones, optim, recipe
from studio.data.checks import DEFAULT_EXCLUDE
from studio.hardware import pick_device

HEAD_LR = 3e-3        # the new head on frozen features (Auto's first stage and --freeze all)


@dataclass
class TrainConfig:
    data: str
    backbone: str = ""                 # empty: the first backbone that can be had now
    freeze: str = "auto"               # "auto" (head first, then the top layers), "all" (head only) or a number of frozen groups
    epochs: int | None = None          # None: the recipe decides (auto: the fine-tuning epochs after the head stage)
    lr: float | None = None            # None: the recipe decides (head rate; backbone gets less)
    batch_size: int | None = None      # None: 32, larger on a GPU for large datasets (recipe.batch_size)
    seed: int = 0
    val_fraction: float = 0.2
    augment: bool = True
    augment_strength: str = "auto"     # "light", "normal", "strong"; "auto": normal (see augment.STRENGTHS)
    optimizer: str = "adamw"           # see optim.OPTIMIZERS
    schedule: str = "warmup-cosine"    # see optim.SCHEDULES
    head_epochs: int | None = None     # epochs of the new head alone before unfreezing (None: Auto 5, manual 0)
    feature_views: int | None = None   # feature extraction: 1 clean + N-1 augmented views (None: by device)
    batchnorm: str = "pretrained"      # "pretrained": keep ImageNet statistics; "adapt": re-estimate while training
    train_size: int | str = "auto"     # fine-tuning crop size; "auto": 3/4 of the input size on CPU, full on GPU
    patience: int | None = None        # stop after this many epochs without improvement (0: never; None: 3)
    class_weighting: str = "auto"      # "auto": weight the loss by class when counts differ 1.5x or more; "on"; "off"
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    device: str = "auto"
    prefix_separator: str | None = None  # flat folder: class = file name up to this separator
    exclude: list = field(default_factory=lambda: list(DEFAULT_EXCLUDE))  # doctor findings to leave out
    exclude_files: dict = field(default_factory=dict)  # {path: reason}: files the user chose to leave out
    runs_root: str | None = None
    owner: str | None = None           # the signed-in user who started the run (None: no login)
    memory_budget_mb: int | None = None  # pixel cache limit; None: STUDIO_CACHE_BUDGET or half the free RAM
    random_weights: bool = False       # timing benchmarks of backbones without offline weights only (`studio bench
                                       # --random-weights`); the page and `studio train` never set it
    choices: dict = field(default_factory=dict)   # what the recipe decided, in words

    def resolved(self) -> "TrainConfig":
        """Fill every 'let the studio decide' field, recording why in `choices`."""
        cfg = TrainConfig(**asdict(self))
        if not cfg.backbone:
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
        if cfg.freeze == "auto":
            cfg.choices["freeze"] = (f"Auto: {cfg.head_epochs} epochs of the new head alone, then the top of "
                                     "the backbone fine-tuned; how deep is decided from the first stage.")
        elif cfg.epochs is None:
            cfg.epochs = 10 if feature_extraction else 5
            cfg.choices["epochs"] = (f"{cfg.epochs} epochs: " + ("with the backbone frozen an epoch "
                                     "costs milliseconds." if feature_extraction else
                                     "enough for a pretrained network to adapt without overfitting."))
        if cfg.feature_views is None:
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
        if cfg.class_weighting not in ("auto", "on", "off"):
            raise ValueError("class_weighting must be 'auto', 'on' or 'off'.")
        optim.check(cfg.optimizer, cfg.schedule)
        cfg.choices["optimizer"] = f"{optim.OPTIMIZERS[cfg.optimizer]} Schedule: {optim.SCHEDULES[cfg.schedule]}"
        if cfg.augment_strength not in ("auto", *augment.STRENGTHS):
            raise ValueError(f"augment_strength must be 'auto' or one of {', '.join(augment.STRENGTHS)}.")
        if not cfg.augment:
            cfg.choices["augment"] = "no augmentation: every epoch shows the photos exactly as they are."
        elif cfg.augment_strength == "auto":
            cfg.augment_strength = "normal"
            cfg.choices["augment"] = ("normal augmentation: " + augment.STRENGTHS["normal"]["words"] +
                                      " Light and strong are in the advanced settings.")
        if cfg.batchnorm not in ("pretrained", "adapt"):
            raise ValueError("batchnorm must be 'pretrained' or 'adapt'.")
        if cfg.lr is None and cfg.freeze != "auto":  # Auto picks its rate from the dataset's size
            cfg.lr = (HEAD_LR if feature_extraction else 1e-3) * optim.LR_SCALE[cfg.optimizer]
            cfg.choices["lr"] = (f"learning rate {cfg.lr:g} for the new head" + (
                "" if feature_extraction else f", {recipe.BODY_LR_FACTOR:g} of it for the top pretrained layers, "
                f"down to {recipe.BODY_LR_FACTOR * recipe.DEEPEST_LR_FACTOR:g} of it for the deepest trained ones."))
        return cfg
