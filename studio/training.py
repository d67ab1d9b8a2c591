"""The trainer: a config in, a run folder with metrics and the best model out.

Two paths share one loop shape:
- Feature extraction (every backbone group frozen): the backbone runs once per
  image (and once per extra augmented view), and the new head trains on the
  cached features, so an epoch costs milliseconds instead of a full forward pass.
- Fine-tuning (some groups trainable): decoded pixels are cached once, batches are
  augmented on the training device, BatchNorm layers keep their pretrained
  statistics unless the config says "adapt".

Pixels come from one pass that both checks the data and decodes it (the doctor);
when they would not fit the memory budget they stream from disk instead, with the
same batches and the same results (see `pixels`).

`train()` runs in the caller's thread; `start_training()` runs it in a background
thread through the job manager, which is what the page and the CLI use.
"""
from __future__ import annotations

import errno
import functools
import json
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from studio import augment, backbones, checkpoints, evaluation, fastpath, faults, hardware, modelfile, optim, recipe
from studio.checkpoints import ResumeError
from studio.data import check_trainable, open_dataset
from studio.doctor import DEFAULT_EXCLUDE, SquareCache, apply_exclusions, diagnose, leave_out_files
from studio.hardware import pick_device
from studio.outliers import find_outliers
from studio.pixels import StreamedPixels, cache_bytes, cache_side, gpu_budget, memory_budget
from studio.run_log import LOG_FILE
from studio.runs import CHECKPOINT_FILE, MANAGER, MODEL_FILE, Run


MIN_HEAD_STEPS = 25   # feature extraction: fewest head updates per epoch
MIN_BATCH_SIZE = 2    # out of GPU memory below this: give up with a message
HEAD_LR = 3e-3        # the new head on frozen features (Auto's first stage and --freeze all)
WEIGHTING_RATIO = 1.5  # largest/smallest class count from which "auto" weights the loss
OVERFIT_GAP = 0.15     # training accuracy this far above validation accuracy is worth a word


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency loss weights (mean 1): each class counts as much as the others in total."""
    counts = torch.bincount(labels.cpu(), minlength=num_classes).clamp(min=1).float()
    return counts.sum() / (num_classes * counts)


class StopRequested(Exception):
    """Raised inside the loop when the user pressed Stop."""



class _Features(torch.nn.Module):
    """Input to pooled features (no classifier): what stage 1 stores for the head."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return backbones.pooled_features(self.model, x)


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


class Trainer:
    """One training run from a resolved config, publishing everything to `run`."""

    def __init__(self, config: TrainConfig, run: Run, resume: dict | None = None):
        self.cfg = config
        self.run = run
        self.resume = resume    # a checkpoint from read_checkpoint: continue after its epoch
        self.device = pick_device(config.device)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.amp = hardware.fast_bf16(self.device)
        self.eval_batch_size = self.eval_batch_size_for(self.device)
        self.loss_weights: torch.Tensor | None = None
        self._feature_fn = None  # see _frozen_features
        self._best_state: dict | None = None
        self._best_key: tuple | None = None
        self._epochs_without_gain = 0
        self._t0 = self._lap_started = time.perf_counter()
        self.batch_size = config.batch_size or recipe.CPU_BATCH   # decided for the data in train()

    @staticmethod
    def eval_batch_size_for(device: torch.device) -> int:
        return fastpath.eval_batch_size(device)

    # ------------------------------------------------------------------ helpers
    def _lap(self, name: str) -> None:
        """Add the seconds since the last lap to the run's `timings` under `name` (where the time goes)."""
        now = time.perf_counter()
        timings = dict(self.run.snapshot().get("timings") or {})
        timings[name] = round(timings.get(name, 0.0) + now - self._lap_started, 3)
        self._lap_started = now
        self.run.update(timings=timings)

    def _check_stop(self) -> None:
        if self.run.stop_event.is_set():
            raise StopRequested()

    def _progress(self, phase: str, done: int, total: int, weight_start: float, weight_span: float) -> None:
        fraction = weight_start + weight_span * (done / max(1, total))
        elapsed = time.perf_counter() - self._t0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
        self.run.update(phase=phase, step=done, steps=total, progress=round(fraction, 4), eta_seconds=eta)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp)

    def _input(self, batch_u8: torch.Tensor, augmented: bool, size: int | None = None) -> torch.Tensor:
        if augmented:
            strength = augment.STRENGTHS[self.cfg.augment_strength if self.cfg.augment_strength != "auto" else "normal"]
            x = augment.train_batch(batch_u8, self.prep, self.generator, jitter=strength["jitter"],
                                    scale=strength["scale"], size=size)
        else:
            x = augment.eval_batch(batch_u8, self.prep)
        # channels_last pays on both: tensor cores on CUDA, oneDNN kernels on CPU (2-3x here)
        return x.contiguous(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ main
    def train(self) -> dict:
        cfg, run = self.cfg, self.run
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            # cuDNN's autotuner tried every kernel for every new shape: 36 s before MobileNetV2's
            # first fine-tuning epoch on an H100, whose later epochs took 0.2 s (benchmarks/RESULTS.md)
            torch.backends.cudnn.benchmark = False
        run.update(status="preparing", phase="Reading the dataset")
        dataset = open_dataset(cfg.data, cfg.val_fraction, cfg.seed, cfg.prefix_separator)
        check_trainable(dataset)
        self._lap("read_dataset")
        run.update(phase="Loading the pretrained backbone")
        model = backbones.create_model(cfg.backbone, len(dataset.classes), pretrained=not cfg.random_weights)
        if cfg.random_weights:
            run.add_choice("backbone", "random weights: a timing run, not a model to use.")
        prep = backbones.preprocessing(model)
        staged = cfg.freeze == "auto" or cfg.head_epochs > 0   # the head alone first, then unfreeze
        freeze = backbones.apply_freeze(model, "all" if staged else cfg.freeze)
        model.to(self.device, memory_format=torch.channels_last)
        self.prep, self.model = prep, model
        self._lap("load_backbone")

        run.update(phase="Checking and decoding the images")
        side = cache_side(prep)
        wanted = dataset.samples[dataset.samples.split.isin(["train", "val"])].path.tolist()
        fits = cache_bytes(len(wanted), side) <= memory_budget(cfg.memory_budget_mb)
        squares = SquareCache.for_files(wanted, side) if fits else None
        report = diagnose(dataset, lambda d, t: self._progress("Checking and decoding the images", d, t, 0.0, 0.15),
                          squares)
        self._check_stop()
        if "outliers" in cfg.exclude:
            run.update(phase="Looking for pictures that don't belong")
            finding = find_outliers(dataset, should_stop=run.stop_event.is_set)
            self._check_stop()
            if finding is not None:
                report.findings.append(finding)
        dataset = leave_out_files(apply_exclusions(dataset, report, cfg.exclude), cfg.exclude_files)
        check_trainable(dataset)
        self.classes = dataset.classes
        samples = dataset.samples[dataset.samples.split.isin(["train", "val"])].reset_index(drop=True)
        if self.resume:
            self._check_same_samples(samples)
        samples.to_csv(run.dir / "samples.csv", index=False)
        train_files = samples[samples.split == "train"].path.tolist()
        val_files = samples[samples.split == "val"].path.tolist()
        self.val_files = val_files
        labels = {split: torch.tensor([self.classes.index(c) for c in samples[samples.split == split].label],
                                      device=self.device) for split in ("train", "val")}
        train_px, val_px, where = self._pixel_sources(squares, train_files, val_files, side)
        self._lap("check_and_decode")
        self._choose_class_weighting(labels["train"])
        if cfg.batch_size:
            self.batch_size = int(cfg.batch_size)
        else:
            self.batch_size, words = recipe.batch_size(len(train_files), self.device.type == "cuda")
            run.record_setting("batch_size", self.batch_size, words)
        run.update(status="running", classes=self.classes, freeze=freeze,
                   engine={"device": hardware.describe(self.device), "precision": "bf16" if self.amp else "fp32",
                           "pixels": where, "batchnorm": cfg.batchnorm},
                   dataset={"train": len(train_files), "val": len(val_files), "classes": self.classes,
                            "skipped": dataset.skipped})
        if self.resume:
            self._take_back_best()
        if staged:
            self._staged(train_px, labels["train"], val_px, labels["val"])
        elif freeze["feature_extraction"]:
            self._train_head_on_features(train_px, labels["train"], val_px, labels["val"], cfg.epochs, cfg.lr,
                                         resume=self.resume)
        else:
            self._plan = {"frozen": cfg.freeze, "lr": cfg.lr, "epochs": cfg.epochs, "first_epoch": 1}
            self._fine_tune(train_px, labels["train"], val_px, labels["val"], cfg.epochs, cfg.lr, resume=self.resume)
        self._restore_best()
        return run.snapshot()

    def _staged(self, train_px, train_y, val_px, val_y) -> None:
        """Stage 1: the head alone on frozen features; stage 2: fine-tune (Auto: as deep as stage 1 says)."""
        cfg, run = self.cfg, self.run
        head_epochs, scale = cfg.head_epochs, optim.LR_SCALE[cfg.optimizer]
        auto = cfg.freeze == "auto"
        ft_epochs, epochs_words = ((cfg.epochs, f"{cfg.epochs} fine-tuning epochs (your choice).") if cfg.epochs
                                   else recipe.fine_tune_epochs(len(train_y)))
        run.update(epochs=head_epochs + ft_epochs)
        if self.resume and self.resume["stage"] == "fine_tune":  # stage 1 and its decisions are behind us
            plan = self.resume["plan"]
            run.update(freeze=backbones.apply_freeze(self.model, plan["frozen"]))
            self._plan = plan
            self._fine_tune(train_px, train_y, val_px, val_y, plan["epochs"], plan["lr"],
                            first_epoch=plan["first_epoch"], resume=self.resume)
            return
        self._train_head_on_features(train_px, train_y, val_px, val_y, head_epochs, HEAD_LR * scale,
                                     early_stop=False, resume=self.resume)
        self._restore_best()  # stage 2 starts from the best head
        if auto:
            total = len(backbones.layer_groups(self.model))
            frozen, depth_words = recipe.fine_tune_depth(run.snapshot()["best_val_accuracy"], len(self.classes),
                                                         total)
            if cfg.lr:
                lr, lr_words = cfg.lr, f"learning rate {cfg.lr:g} (your choice)"
            else:
                lr, lr_words = recipe.fine_tune_lr(len(train_y))
                lr *= scale
                if scale != 1:
                    lr_words += f" Times {scale:g} for SGD, which takes smaller effective steps than AdamW."
            run.add_choice("depth", depth_words)
            run.add_choice("epochs", epochs_words)
            run.add_choice("lr", lr_words)
        else:
            frozen, lr = cfg.freeze, cfg.lr
        run.update(freeze=backbones.apply_freeze(self.model, frozen))
        self._plan = {"frozen": frozen, "lr": lr, "epochs": ft_epochs, "first_epoch": head_epochs + 1}
        self._fine_tune(train_px, train_y, val_px, val_y, ft_epochs, lr, first_epoch=head_epochs + 1)

    def _choose_class_weighting(self, train_y: torch.Tensor) -> None:
        counts = torch.bincount(train_y.cpu(), minlength=len(self.classes))
        ratio = counts.max().item() / max(1, counts.min().item())
        mode = self.cfg.class_weighting
        if mode == "on" or (mode == "auto" and ratio >= WEIGHTING_RATIO):
            self.loss_weights = class_weights(train_y, len(self.classes)).to(self.device)
            why = (f"the largest class has {ratio:.1f}x the photos of the smallest, so mistakes on small "
                   "classes count more in the loss" if mode == "auto" else "asked for")
            self.run.add_choice("class_weighting", f"class-weighted loss: {why}.")

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, weight=self.loss_weights, label_smoothing=self.cfg.label_smoothing)

    def _pixel_sources(self, squares: SquareCache | None, train_files: list[str], val_files: list[str], side: int):
        """Cached squares (moved to the GPU when they fit there), or streaming from disk."""
        if squares is None:
            return StreamedPixels(train_files, side), StreamedPixels(val_files, side), "streamed from disk"
        train, val = squares.sources(train_files, val_files)
        where = "cached in memory"
        if self.device.type == "cuda" and squares.pixels.nbytes <= gpu_budget(self.device):
            train.pixels = val.pixels = train.pixels.to(self.device)
            train.rows, val.rows, where = train.rows.to(self.device), val.rows.to(self.device), "cached on the GPU"
        return train, val, where

    def _batches(self, n: int, batch_size: int, shuffle: bool):
        order = torch.randperm(n, generator=self.generator) if shuffle else torch.arange(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]

    # ------------------------------------------------------------------ feature extraction
    def _frozen_features(self):
        """The frozen backbone as one function from input to pooled features, for stage-1 passes.

        On a CPU it is traced and frozen into one oneDNN graph (conv, batch norm and activation
        fused): about 2x the eager forward (MobileNetV2 bf16, batch 8: 336 vs 170 img/s) for
        1.3 s of tracing. A model that cannot be traced runs eagerly.

        Traced graphs are kept for the next run of the same pretrained backbone (the frozen
        weights are the same): each new trace holds on to about 60 MB that Torch never gives
        back, so tracing on every run grew the process by that much per run.
        """
        if self._feature_fn is not None:
            return self._feature_fn
        eager = _Features(self.model).eval()
        self._feature_fn = eager
        if self.device.type == "cpu":
            key = (self.cfg.backbone, self.prep["input_size"], self.amp, fastpath.weights_fingerprint(self.model))
            side = self.prep["input_size"]
            example = fastpath.channels_last(torch.zeros(self.eval_batch_size, 3, side, side))
            self._feature_fn = fastpath.traced(key, eager, example, self.amp)
        return self._feature_fn

    @torch.inference_mode()
    def _features(self, source, augmented: bool, phase: str, start: float, span: float) -> torch.Tensor:
        self.model.eval()
        forward = self._frozen_features()
        out = []
        batches = self._batches(len(source), self.eval_batch_size, shuffle=False)
        for i, batch in enumerate(source.batches(batches, self.device), start=1):
            self._check_stop()
            with self._autocast():
                features = forward(self._input(batch, augmented))
            out.append(features.float())
            self._progress(phase, i, len(batches), start, span)
        return torch.cat(out).clone()  # clone: leave inference mode so the head can train on them

    def _train_head_on_features(self, train_px, train_y, val_px, val_y, epochs: int, lr: float,
                                early_stop: bool = True, resume: dict | None = None) -> None:
        cfg = self.cfg
        views = max(1, cfg.feature_views if cfg.augment else 1)
        span = 0.6 / (views + 1)
        train_feats = [self._features(train_px, False, "Computing features (original images)", 0.15, span)]
        for v in range(1, views):
            train_feats.append(self._features(train_px, True, f"Computing features (augmented copy {v})",
                                              0.15 + span * v, span))
        val_feats = self._features(val_px, False, "Computing features (validation)", 0.15 + span * views, span)
        self._lap("features")
        features = torch.cat(train_feats)
        labels = train_y.repeat(views)
        head = self.model.get_classifier()
        # an epoch of the head costs milliseconds, so small datasets get several passes per epoch:
        # 3 updates an epoch (48 photos, batch 32) leave the head half-trained
        batches_per_pass = math.ceil(len(features) / self.batch_size)
        passes = math.ceil(MIN_HEAD_STEPS / batches_per_pass)
        steps_per_epoch = passes * batches_per_pass
        optimizer = optim.make_optimizer(cfg.optimizer, head.parameters(), lr, cfg.weight_decay)
        schedule = optim.make_schedule(cfg.schedule, optimizer, steps_per_epoch * epochs)
        self._epochs_without_gain = 0
        first = 1
        if resume and resume["stage"] == "head":  # the features are made again (same seed); the head carries on
            head.load_state_dict(resume["weights"])
            optimizer.load_state_dict(resume["optimizer"])
            self.generator.set_state(resume["generator"])
            self._epochs_without_gain = resume["epochs_without_gain"]
            first = resume["epoch"] + 1
            done = resume["epoch"] * steps_per_epoch
            schedule = self._resumed_schedule(optimizer, done, steps_per_epoch * epochs - done)
        for epoch in range(first, epochs + 1):
            started = time.perf_counter()
            head.train()
            loss_sum = correct = seen = 0
            batches = [b for _ in range(passes) for b in self._batches(len(features), self.batch_size, shuffle=True)]
            for index in batches:
                self._check_stop()
                index = augment.to_device(index, features.device)
                logits = head(features[index])
                loss = self._loss(logits, labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                loss_sum = loss_sum + loss.detach() * len(index)
                correct = correct + (logits.argmax(1) == labels[index]).sum()
                seen += len(index)
            head.eval()
            with torch.no_grad():
                val_logits = head(val_feats)
            self._progress("Training the new head", epoch, epochs, 0.75, 0.25)
            stop = not self._end_epoch(epoch, float(loss_sum) / seen, int(correct) / seen, val_logits, val_y, started,
                                       functools.partial(self._save_checkpoint, "head", epoch, head, optimizer),
                                       last=epoch == epochs or not early_stop)
            self._lap("head_epochs")
            if stop:
                break

    # ------------------------------------------------------------------ fine-tuning
    def _train_size(self) -> int:
        """Crop size for fine-tuning steps; validation always runs at the pretrained input size.

        On a CPU, training on 3/4-size random crops costs about half the compute (MobileNetV2:
        64 vs 33 img/s at 160 vs 224 px, 2 cores) and, with random-resized crops that enlarge
        objects, matches the apparent object size of full-size evaluation ("FixRes", Touvron
        et al. 2019). BatchNorm keeps its pretrained statistics, so the two sizes do not clash.
        """
        full = self.prep["input_size"]
        if self.cfg.train_size != "auto":
            return int(self.cfg.train_size)
        if self.device.type == "cuda" or not self.cfg.augment:
            return full
        return max(96, int(round(full * 0.75 / 32)) * 32)

    def _param_groups(self, lr: float) -> list[dict]:
        """The head at `lr`; each trainable backbone group lower, the deeper the lower (see recipe)."""
        model = self.model
        head = [p for p in model.get_classifier().parameters() if p.requires_grad]
        head_ids = {id(p) for p in head}
        named = dict(model.named_parameters())
        body = [[named[n] for n in group if named[n].requires_grad and id(named[n]) not in head_ids]
                for group in backbones.layer_groups(model)]
        body = [g for g in body if g]
        rates = recipe.group_learning_rates(lr, len(body))
        return [{"params": head, "lr": lr}] + [{"params": g, "lr": r} for g, r in zip(body, rates)]

    def _fine_tune(self, train_px, train_y, val_px, val_y, epochs: int, lr: float, first_epoch: int = 1,
                   resume: dict | None = None) -> None:
        cfg, model = self.cfg, self.model
        train_size = self._train_size()
        self.run.update(engine={**self.run.snapshot().get("engine", {}), "train_size": train_size})
        if train_size != self.prep["input_size"]:
            self.run.add_choice("train_size", f"training steps on {train_size} px random crops, validation at "
                                f"{self.prep['input_size']} px: about half the work on a CPU, same accuracy.")
        optimizer = optim.make_optimizer(cfg.optimizer, self._param_groups(lr), lr, cfg.weight_decay)
        batch_size = self.batch_size
        last_epoch = first_epoch + epochs - 1
        epoch, steps_done = first_epoch, 0
        self._epochs_without_gain = 0
        if resume and resume["stage"] == "fine_tune":
            model.load_state_dict(resume["weights"])
            optimizer.load_state_dict(resume["optimizer"])
            self.generator.set_state(resume["generator"])
            self._epochs_without_gain = resume["epochs_without_gain"]
            batch_size, steps_done, epoch = resume["batch_size"], resume["steps_done"], resume["epoch"] + 1
        # whole batches only (when there is one): a last batch of a few images gives a noisy step and,
        # on a CPU, new kernel shapes to prepare in every epoch
        batches_per_epoch = len(train_px) // batch_size or 1
        if steps_done:
            schedule = self._resumed_schedule(optimizer, steps_done, batches_per_epoch * (last_epoch - epoch + 1))
        else:
            schedule = optim.make_schedule(cfg.schedule, optimizer, batches_per_epoch * epochs)
        while epoch <= last_epoch:
            started = time.perf_counter()
            model.train()
            backbones.keep_norms_in_eval(model, frozen_only=cfg.batchnorm == "adapt")
            loss_sum = correct = seen = 0
            batches = self._batches(len(train_px), batch_size, shuffle=True)[:batches_per_epoch]
            try:
                for i, (index, batch) in enumerate(zip(batches, train_px.batches(batches, self.device)), start=1):
                    self._check_stop()
                    faults.check("train_step", batch_size=batch_size)
                    x = self._input(batch, cfg.augment, train_size)
                    y = train_y[augment.to_device(index, train_y.device)]
                    with self._autocast():
                        logits = model(x)
                        loss = self._loss(logits.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    steps_done += 1
                    # summed on the device: reading a number back per step would stall the GPU's queue
                    loss_sum = loss_sum + loss.detach() * len(index)
                    correct = correct + (logits.argmax(1) == y).sum()
                    seen += len(index)
                    done = (epoch - first_epoch) * len(batches) + i
                    self._progress(f"Epoch {epoch} of {last_epoch}: training", done, epochs * len(batches),
                                   0.15 if first_epoch == 1 else 0.3, 0.85 if first_epoch == 1 else 0.7)
            except torch.cuda.OutOfMemoryError:
                batch_size = self._smaller_batch(batch_size, optimizer)
                batches_per_epoch = len(train_px) // batch_size or 1
                remaining = batches_per_epoch * (last_epoch - epoch + 1)
                schedule = self._resumed_schedule(optimizer, steps_done, remaining)
                continue  # this epoch again, in smaller batches
            val_logits = self._predict_pixels(val_px)
            checkpoint = functools.partial(self._save_checkpoint, "fine_tune", epoch, model, optimizer,
                                           steps_done=steps_done, batch_size=batch_size, plan=self._plan)
            stop = not self._end_epoch(epoch, float(loss_sum) / seen, int(correct) / seen, val_logits, val_y, started,
                                       checkpoint, last=epoch == last_epoch)
            self._lap("first_fine_tuning_epoch" if epoch == first_epoch else "fine_tuning_epochs")
            if stop:
                break
            epoch += 1

    def _smaller_batch(self, batch_size: int, optimizer) -> int:
        """Out of GPU memory: halve the batch and say so, rather than failing the run."""
        if batch_size <= MIN_BATCH_SIZE:
            raise MemoryError(f"Out of GPU memory even with batch size {batch_size}: choose a smaller backbone "
                              "or free the GPU, then start again.")
        optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = max(MIN_BATCH_SIZE, batch_size // 2)
        note = (f"Out of GPU memory with batch size {batch_size}: continuing with {smaller} "
                "(this epoch starts over).")
        self.run.update(notes=[*self.run.snapshot().get("notes", []), note])
        self.run.add_choice("batch_size", note)
        return smaller

    def _resumed_schedule(self, optimizer, steps_done: int, remaining: int):
        """The same schedule shape stretched over the steps now left, positioned where the run is."""
        schedule = optim.make_schedule(self.cfg.schedule, optimizer, steps_done + remaining)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # stepping a scheduler before the optimizer: on purpose here
            for _ in range(steps_done):
                schedule.step()
        return schedule

    @torch.inference_mode()
    def _predict_pixels(self, source) -> torch.Tensor:
        self.model.eval()
        out = []
        batches = self._batches(len(source), self.eval_batch_size, shuffle=False)
        for batch in source.batches(batches, self.device):
            with self._autocast():
                out.append(self.model(self._input(batch, False)).float())
        return torch.cat(out).clone()

    # ------------------------------------------------------------------ bookkeeping
    def _end_epoch(self, epoch: int, train_loss: float, train_acc: float, val_logits: torch.Tensor,
                   val_y: torch.Tensor, started: float, checkpoint: Callable[..., None], last: bool = False) -> bool:
        """Keep the model if it is the best so far, save the checkpoint, then announce the epoch;
        False when this stage should stop.

        The checkpoint comes before the epoch reaches metrics.jsonl and the page, so an epoch the
        studio calls done can always be resumed: a crash in between loses an epoch nobody was told of.
        """
        val_loss = F.cross_entropy(val_logits, val_y).item()
        predicted = val_logits.argmax(1)
        matrix = evaluation.confusion_matrix(val_y.cpu(), predicted.cpu(), len(self.classes))
        val_acc = evaluation.accuracy(matrix)
        metrics = {"epoch": epoch, "train_loss": round(train_loss, 5), "train_accuracy": round(train_acc, 5),
                   "val_loss": round(val_loss, 5), "val_accuracy": round(val_acc, 5),
                   "epoch_seconds": round(time.perf_counter() - started, 3),
                   "elapsed_seconds": round(time.perf_counter() - self._t0, 3)}
        evaluation.predictions_table(self.val_files, val_y, val_logits, self.classes).to_csv(
            self.run.dir / evaluation.LATEST_PREDICTIONS_FILE, index=False)
        # better = higher accuracy, or the same accuracy with a lower loss (small validation sets tie often)
        key = (round(val_acc, 6), -val_loss)
        improved = self._best_key is None or key > self._best_key
        if improved:
            self._best_key, self._epochs_without_gain = key, 0
            self._best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            faults.check("save_model", epoch=epoch)
            shutil.copyfile(self.run.dir / evaluation.LATEST_PREDICTIONS_FILE,
                            self.run.dir / evaluation.PREDICTIONS_FILE)
            path = modelfile.save(self.model, self.run.dir / MODEL_FILE, self.cfg.backbone, self.classes,
                                  self.prep, {"epoch": epoch, "val_accuracy": val_acc,
                                              "freeze": str(self.cfg.freeze), "run_id": self.run.id})
        else:
            self._epochs_without_gain += 1
        previous = self.run.snapshot()
        best = ({"epoch": epoch, "val_accuracy": val_acc, "confusion": matrix} if improved else
                {"epoch": previous["best_epoch"], "val_accuracy": previous["best_val_accuracy"],
                 "confusion": previous.get("best_confusion")})
        checkpoint(epoch_record={**metrics, "confusion_matrix": matrix}, best=best)
        faults.check("announce_epoch", epoch=epoch)
        self.run.record_epoch(metrics, matrix, evaluation.per_class_metrics(matrix, self.classes))
        if improved:
            self.run.update(best_val_accuracy=val_acc, best_epoch=epoch, best_confusion=matrix,
                            model_path=str(path))
        self.run.update(epoch=epoch, advice=self._overfitting_advice())
        patience = self.cfg.patience or 0
        if patience and self._epochs_without_gain >= patience and not last:
            best_epoch = self.run.snapshot()["best_epoch"]
            self.run.update(stopped_early=(f"Stopped early after epoch {epoch} of {self.run.snapshot()['epochs']}: validation "
                                           f"results had not improved for {patience} epochs. The best model "
                                           f"(epoch {best_epoch}) is kept."))
            return False
        return True

    def _overfitting_advice(self) -> str | None:
        """Plain words when training accuracy races ahead of validation while validation loss rises."""
        history = self.run.snapshot()["history"]
        if len(history) < 2:
            return None
        last = history[-1]
        gap = last["train_accuracy"] - last["val_accuracy"]
        rising = last["val_loss"] > min(h["val_loss"] for h in history[:-1])
        if gap < OVERFIT_GAP or not rising:
            return None
        return (f"The model is starting to memorise your training photos: {last['train_accuracy']:.0%} right on "
                f"them, {last['val_accuracy']:.0%} on photos it has not seen, and the validation loss is rising. "
                "More photos per class, freezing more layers or fewer epochs usually help; the best epoch is "
                "kept either way.")

    def _restore_best(self) -> None:
        """Leave the in-memory model at the best epoch, as the saved model file is."""
        if self._best_state is not None:
            self.model.load_state_dict(self._best_state)

    # ------------------------------------------------------------------ resuming
    def _save_checkpoint(self, stage: str, epoch: int, module: torch.nn.Module, optimizer, **extra) -> None:
        """Everything needed to carry on after `epoch`, written whole or not at all (temp file, then rename).

        The head stage keeps only the head: the frozen backbone's features are made again from the
        same seed. Plain tensors, numbers and lists only, so it loads with `weights_only=True`.
        """
        state = {"stage": stage, "epoch": epoch,
                 "weights": {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()},
                 "optimizer": optimizer.state_dict(), "generator": self.generator.get_state(),
                 "best_key": list(self._best_key) if self._best_key else None,
                 "epochs_without_gain": self._epochs_without_gain, **extra}
        faults.check("save_checkpoint", epoch=epoch)
        checkpoints.write(self.run.dir, state)

    def _take_back_best(self) -> None:
        """The best model and its score so far, so a resumed run still keeps the best of all epochs."""
        from safetensors.torch import load_file
        key = self.resume.get("best_key")
        if key is not None and (self.run.dir / MODEL_FILE).is_file():
            self._best_state = load_file(str(self.run.dir / MODEL_FILE))
            self._best_key = tuple(key)

    def _check_same_samples(self, samples) -> None:
        """Resuming on changed data would mix two datasets in one model: refuse, saying what changed."""
        try:
            before = evaluation.read_run_table(self.run.dir / "samples.csv")
        except (OSError, ValueError):
            return   # nothing to compare with: the checkpoint's own shapes still have to fit
        old = set(zip(before.path, before.split, before.label))
        new = set(zip(samples.path, samples.split, samples.label))
        if old != new:
            raise ResumeError(f"The dataset changed since this run started ({len(old ^ new)} photos added, removed "
                              "or moved): resuming would mix two datasets. Train a new run instead.")


def run_training(config: TrainConfig, run: Run, resume: dict | None = None) -> None:
    """Thread body: train, and leave the run finished, stopped or failed (never hanging)."""
    try:
        Trainer(config, run, resume).train()
        run.update(phase="Finished", progress=1.0)
        run.finish("finished")
        (run.dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # nothing left to resume: give the disk back
    except StopRequested:
        run.update(phase="Stopped by you; the best model so far is kept.")
        run.finish("stopped")
    except Exception as exc:  # reported on the page, not raised into a dead thread
        run.log.exception("Training failed")   # the traceback goes to run.log; the page gets words
        run.update(phase="Failed")
        words = failure_words(exc)
        if not _is_user_error(exc):
            words += f" The details are in {run.dir / LOG_FILE}."
        run.finish("failed", error=words)


DISK_WORDS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
              errno.EACCES: "the studio may not write there", errno.EROFS: "the disk is read-only"}


def failure_words(exc: Exception) -> str:
    """Why a run failed, in words a person can act on."""
    if isinstance(exc, OSError) and exc.errno in DISK_WORDS:
        where = f" ({exc.filename})" if exc.filename else ""
        return (f"Could not save{where}: {DISK_WORDS[exc.errno]}. The epochs finished so far and the best "
                "model saved before this are kept; free some space, then resume the run (Resume in the Runs "
                "view, or studio train --resume).")
    if isinstance(exc, MemoryError):
        return str(exc) or "Out of memory: choose a smaller backbone or batch size."
    return str(exc) if _is_user_error(exc) else f"{exc.__class__.__name__}: {exc}"


def _is_user_error(exc: Exception) -> bool:
    from studio.data import DatasetError
    return isinstance(exc, (DatasetError, backbones.BackboneError, ValueError))


def start_training(config: TrainConfig, run_dir: str | Path | None = None) -> Run:
    """Resolve the config and train in a background thread; returns the live Run at once."""
    resolved = config.resolved()
    payload = asdict(resolved)
    return MANAGER.start(payload, lambda run: run_training(resolved, run),
                         Path(resolved.runs_root) if resolved.runs_root else None, run_dir)



def resume_training(run_dir: str | Path, owner: str | None = None) -> Run:
    """Carry on a stopped, failed or interrupted run after its last finished epoch, in its own folder."""
    run_dir = Path(run_dir)
    try:
        saved = json.loads((run_dir / "config.json").read_text())
        status = json.loads((run_dir / "status.json").read_text()).get("status")
    except (OSError, ValueError):
        raise ResumeError(f"{run_dir} is not a run folder the studio can read (config.json or status.json is "
                          "missing or damaged).") from None
    if owner is not None and saved.get("owner") != owner:
        raise ResumeError("That run is not one of yours.")
    live = MANAGER.current
    if live is not None and live.is_active() and live.dir.resolve() == run_dir.resolve():
        raise ResumeError("That run is still training.")
    if status == "finished":
        raise ResumeError("That run finished: there is nothing to resume. Try or export its model instead.")
    checkpoint = checkpoints.read(run_dir)
    known = {f for f in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    if not Path(config.data).exists():
        raise ResumeError(f"The run's data ({config.data}) is no longer there, so it cannot be resumed.")
    return MANAGER.start(asdict(config), lambda run: run_training(config, run, checkpoint), run_dir=run_dir,
                         resume_from=checkpoint)
