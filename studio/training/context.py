"""Everything a training stage works with, made once per run by `prepare()`.

The dataset is read, checked and decoded in one pass (the doctor), the pretrained model is
loaded, and the photos become two pixel sources (cached in memory or on the GPU, or streamed
from disk when they would not fit). Stages then only train: they never read files.
"""
from __future__ import annotations

import time
from pathlib import Path
from dataclasses import dataclass, field

import torch

from studio import augment, backbones, evaluation, fastpath, hardware, recipe
from studio.runs.checkpoints import ResumeError
from studio.data.checks import apply_exclusions, diagnose, leave_out_files, listed_in_dataset, read_photo_list
from studio.data.outliers import find_outliers
from studio.data.pixels import SquareCache, StreamedPixels, cache_bytes, cache_side, gpu_budget, memory_budget
from studio.data.sources import DatasetError, check_trainable, open_dataset
from studio.hardware import pick_device
from studio.models.features import FeatureExtractor, KeptFeatures
from studio.runs import Run
from studio.training.config import TrainConfig
from studio.training.distributed import Ranks
from studio.training.task import SingleLabel, class_weights, task_for  # noqa: F401 - class_weights named here too
from studio.training.unlabeled import UnlabeledPhotos, find_unlabeled

WEIGHTING_RATIO = evaluation.IMBALANCED_FROM  # largest/smallest class count from which "auto" weights the loss
DECODE_SHARE = 0.15    # of the progress bar: reading, checking and decoding the photos


class StopRequested(Exception):
    """Raised inside a stage when the user pressed Stop."""


def model_input(batch_u8: torch.Tensor, prep: dict, generator: torch.Generator, strength: str | None,
                size: int | None = None) -> torch.Tensor:
    """A uint8 batch as model input: augmented at `strength` (a name of augment.STRENGTHS), or
    clean when `strength` is None; channels_last (2-3x on CPU oneDNN kernels and GPU tensor cores)."""
    if strength is not None:
        spec = {k: v for k, v in augment.STRENGTHS[strength].items() if k != "words"}
        x = augment.train_batch(batch_u8, prep, generator, size=size, **spec)
    else:
        x = augment.eval_batch(batch_u8, prep)
    return fastpath.channels_last(x)


@dataclass(eq=False)
class TrainContext:
    cfg: TrainConfig
    run: Run
    device: torch.device
    generator: torch.Generator
    amp: bool
    model: torch.nn.Module | None = None
    prep: dict = field(default_factory=dict)
    classes: list = field(default_factory=list)
    train_files: list = field(default_factory=list)
    val_files: list = field(default_factory=list)
    test_files: list = field(default_factory=list)     # the test split: for final_test alone
    test_labels: list = field(default_factory=list)
    train_px: object = None
    val_px: object = None
    train_y: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    batch_size: int = recipe.CPU_BATCH
    loss_weights: torch.Tensor | None = None
    task: object = field(default_factory=SingleLabel)   # one class per photo, or multi-label (studio.training.task)
    features: FeatureExtractor | None = None
    kept_features: KeptFeatures | None = None   # what the head stage's feature pass leaves for calibration
    unlabeled: UnlabeledPhotos | None = None           # --unlabeled: photos the head may pseudo-label
    ranks: Ranks | None = None                         # torchrun: this process among the training processes
    _wrapped: tuple | None = None                      # (trainable weights, DistributedDataParallel of the model)
    started: float = field(default_factory=time.perf_counter)
    _lap_started: float = field(default_factory=time.perf_counter)

    @property
    def eval_batch_size(self) -> int:
        return fastpath.eval_batch_size(self.device)

    def lap(self, name: str) -> None:
        """Add the seconds since the last lap to the run's `timings` under `name` (where the time goes)."""
        now = time.perf_counter()
        timings = dict(self.run.snapshot().get("timings") or {})
        timings[name] = round(timings.get(name, 0.0) + now - self._lap_started, 3)
        self._lap_started = now
        self.run.update(timings=timings)

    def check_stop(self) -> None:
        """Raise StopRequested when Stop was pressed: in this process, or (a torchrun or Ray run) through the
        run folder's stop request, which rank 0 reads and every rank then hears of at the same batch."""
        asked = self.run.stop_event.is_set()
        if self.ranks is None:
            asked = asked or self.run.folder.stop_request.exists()   # a Ray job's Stop comes as a file
        else:
            asked = self.ranks.any(asked or (self.ranks.is_main and self.run.folder.stop_request.exists()))
        if asked:
            raise StopRequested()

    def agree(self, value):
        """`value` as rank 0 decided it (a decision that depends on the clock); itself in a single process."""
        return value if self.ranks is None else self.ranks.agree(value)

    def part(self, index: torch.Tensor) -> torch.Tensor:
        """This process's share of a global batch (all of it in a single process)."""
        return index if self.ranks is None else self.ranks.part(index)

    def over_ranks(self, *values) -> list[float]:
        """Sums over every training process (the values themselves in a single process)."""
        return [float(v) for v in values] if self.ranks is None else self.ranks.total(*values)

    def training_model(self) -> torch.nn.Module:
        """The model to run training steps through: itself, or under torchrun a DistributedDataParallel
        of it (made again when a plan changes which weights train)."""
        if self.ranks is None:
            return self.model
        trainable = tuple(name for name, p in self.model.named_parameters() if p.requires_grad)
        if self._wrapped is None or self._wrapped[0] != trainable:
            self._wrapped = (trainable, self.ranks.wrap(self.model, self.device,
                                                        buffers=self.cfg.batchnorm == "adapt"))
        return self._wrapped[1]

    def progress(self, phase: str, done: int, total: int, start: float, span: float) -> None:
        """The progress bar at `start + span * done/total` of the whole run, with an estimate of what is left."""
        fraction = start + span * (done / max(1, total))
        elapsed = time.perf_counter() - self.started
        eta = elapsed * (1 - fraction) / fraction if fraction > 0.02 else None
        self.run.update(phase=phase, step=done, steps=total, progress=round(fraction, 4), eta_seconds=eta)

    def autocast(self):
        return fastpath.autocast(self.device, self.amp)

    def input(self, batch_u8: torch.Tensor, augmented: bool, size: int | None = None) -> torch.Tensor:
        strength = ((self.cfg.augment_strength if self.cfg.augment_strength != "auto" else "normal")
                    if augmented else None)
        return model_input(batch_u8, self.prep, self.generator, strength, size)

    def batches(self, n: int, batch_size: int, shuffle: bool) -> list[torch.Tensor]:
        order = torch.randperm(n, generator=self.generator) if shuffle else torch.arange(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.task.loss(logits, y, self.loss_weights, self.cfg.label_smoothing)

    @torch.inference_mode()
    def predict_pixels(self, source) -> torch.Tensor:
        """The whole model's logits for every photo of `source`, at the pretrained input size."""
        self.model.eval()
        out = []
        for batch in source.batches(self.batches(len(source), self.eval_batch_size, shuffle=False), self.device):
            with self.autocast():
                out.append(self.model(self.input(batch, False)).float())
        return torch.cat(out).clone()


def new_context(cfg: TrainConfig, run: Run, ranks: Ranks | None = None) -> TrainContext:
    device = pick_device(cfg.device)
    return TrainContext(cfg=cfg, run=run, device=device, generator=torch.Generator().manual_seed(cfg.seed),
                        amp=hardware.fast_bf16(device), batch_size=cfg.batch_size or recipe.CPU_BATCH, ranks=ranks)


def prepare(ctx: TrainContext, resume: dict | None = None, staged: bool = False) -> None:
    """Read and check the data, load the backbone (frozen whole when `staged`: the head trains
    alone first), decode the photos and fill `ctx`; the run says "running" when this returns."""
    cfg, run = ctx.cfg, ctx.run
    torch.manual_seed(cfg.seed)
    if ctx.device.type == "cuda":
        # cuDNN's autotuner tried every kernel for every new shape: 36 s before MobileNetV2's
        # first fine-tuning epoch on an H100, whose later epochs took 0.2 s (benchmarks/RESULTS.md)
        torch.backends.cudnn.benchmark = False
    run.update(status="preparing", phase="Reading the dataset")
    dataset = open_dataset(cfg.data, cfg.val_fraction, cfg.seed, cfg.prefix_separator, cfg.test_fraction, cfg.task)
    check_trainable(dataset)
    ctx.task = task_for(dataset.task)
    if dataset.is_multilabel:
        run.add_choice("task", ("several labels per photo (as asked)" if cfg.task == "multi-label" else
                                "several labels per photo: the labels CSV gives photos more than one") +
                       ": a multi-label model, each label its own yes/no answer; judged by mAP (how well each "
                       "label's photos rank first) and F1.")
    if dataset.is_multilabel and cfg.unlabeled:
        raise DatasetError("Unlabeled photos are used with one class per photo only; train this multi-label data "
                           "without them.")
    ctx.lap("read_dataset")
    freeze = _load_model(ctx, len(dataset.classes), staged)
    ctx.lap("load_backbone")
    dataset, squares = _check_and_decode(ctx, dataset)
    ctx.classes = dataset.classes
    samples = dataset.samples[dataset.samples.split.isin(["train", "val"])].reset_index(drop=True)
    test = dataset.samples[dataset.samples.split == "test"]   # read only by final_test, after the last epoch
    ctx.test_files, ctx.test_labels = test.path.tolist(), test.label.tolist()
    if resume:
        _check_same_samples(run, samples)
    samples.to_csv(run.folder.samples, index=False)
    files = {split: samples[samples.split == split].path.tolist() for split in ("train", "val")}
    ctx.train_files, ctx.val_files = files["train"], files["val"]
    ctx.train_y, ctx.val_y = (ctx.task.targets(samples[samples.split == split].label, ctx.classes).to(ctx.device)
                              for split in ("train", "val"))
    ctx.train_px, ctx.val_px, where = _pixel_sources(ctx, squares, files["train"], files["val"])
    ctx.lap("check_and_decode")
    if cfg.unlabeled:
        _find_unlabeled(ctx, dataset.samples.path.tolist())
    _choose_class_weighting(ctx)
    _choose_batch_size(ctx, len(files["train"]))
    run.update(status="running", classes=ctx.classes, freeze=freeze, task=ctx.task.name,
               engine={"device": hardware.describe(ctx.device), "precision": "bf16" if ctx.amp else "fp32",
                       "pixels": where, "batchnorm": cfg.batchnorm},
               dataset={"train": len(files["train"]), "val": len(files["val"]), "test": len(ctx.test_files),
                        "classes": ctx.classes,
                        "skipped": dataset.skipped})


def _find_unlabeled(ctx: TrainContext, labelled_files: list[str]) -> None:
    """The --unlabeled photos, less copies of labelled ones; none at all is a mistake worth stopping for."""
    ctx.run.update(phase="Reading the unlabeled photos")
    ctx.unlabeled = find_unlabeled(ctx.cfg.unlabeled, labelled_files)
    if not ctx.unlabeled.files:
        copies = len(ctx.unlabeled.left_out)
        raise DatasetError(f"{ctx.cfg.unlabeled} holds no unlabeled photos to learn from"
                           + (f" ({copies} are copies of your labelled photos)" if copies else "")
                           + ": give a folder or .zip of photos (jpg, png, webp, ...) that have no label yet, "
                             "or train without unlabeled photos.")
    ctx.lap("find_unlabeled")


def _load_model(ctx: TrainContext, num_classes: int, staged: bool) -> dict:
    cfg = ctx.cfg
    ctx.run.update(phase="Loading the pretrained backbone")
    model = backbones.create_model(cfg.backbone, num_classes, pretrained=not cfg.random_weights)
    if cfg.random_weights:
        ctx.run.add_choice("backbone", "random weights: a timing run, not a model to use.")
    ctx.prep = backbones.preprocessing(model)
    freeze = backbones.apply_freeze(model, "all" if staged else cfg.freeze)
    model.to(ctx.device, memory_format=torch.channels_last)
    ctx.model = model
    ctx.features = FeatureExtractor(model, cfg.backbone, ctx.prep, ctx.device, ctx.amp)
    return freeze


def _check_and_decode(ctx: TrainContext, dataset):
    """The doctor's one pass over the photos (decoded into the cache when it fits), the outlier
    check when asked for, and the findings the config leaves out applied."""
    cfg, run = ctx.cfg, ctx.run
    phase = "Checking and decoding the images"
    run.update(phase=phase)
    side = cache_side(ctx.prep)
    wanted = dataset.samples[dataset.samples.split.isin(["train", "val"])].path.tolist()
    sharing = ctx.ranks.local_world if ctx.ranks else 1   # torchrun: every process here holds its own cache
    fits = cache_bytes(len(wanted), side) <= memory_budget(cfg.memory_budget_mb) // sharing
    squares = SquareCache.for_files(wanted, side) if fits else None
    report = diagnose(dataset, lambda d, t: ctx.progress(phase, d, t, 0.0, DECODE_SHARE), squares)
    ctx.check_stop()
    if "outliers" in cfg.exclude:
        run.update(phase="Looking for pictures that don't belong")
        finding = find_outliers(dataset, should_stop=run.stop_event.is_set)
        ctx.check_stop()
        if finding is not None:
            report.findings.append(finding)
    picked = dict(cfg.exclude_files)
    if cfg.leave_out_list:
        listed = read_photo_list(cfg.leave_out_list, cfg.data)
        found = listed_in_dataset(dataset, listed, Path(cfg.leave_out_list).name)
        picked.update(found)
        run.add_choice("leave_out_list", f"{len(found)} of the {len(listed)} photos listed in "
                       f"{Path(cfg.leave_out_list).name} left out (the others are not in this dataset).")
    dataset = leave_out_files(apply_exclusions(dataset, report, cfg.exclude), picked)
    check_trainable(dataset)
    return dataset, squares


def _pixel_sources(ctx: TrainContext, squares: SquareCache | None, train_files: list[str], val_files: list[str]):
    """Cached squares (moved to the GPU when they fit there), or streaming from disk."""
    if squares is None:
        side = cache_side(ctx.prep)
        return StreamedPixels(train_files, side), StreamedPixels(val_files, side), "streamed from disk"
    train, val = squares.sources(train_files, val_files)
    where = "cached in memory"
    if ctx.device.type == "cuda" and squares.pixels.nbytes <= gpu_budget(ctx.device):
        train.pixels = val.pixels = train.pixels.to(ctx.device)
        train.rows, val.rows, where = train.rows.to(ctx.device), val.rows.to(ctx.device), "cached on the GPU"
    return train, val, where


def _choose_class_weighting(ctx: TrainContext) -> None:
    weights, words = ctx.task.loss_weights(ctx.train_y, ctx.classes, ctx.cfg.class_weighting, WEIGHTING_RATIO)
    if weights is not None:
        ctx.loss_weights = weights.to(ctx.device)
        ctx.run.add_choice("class_weighting", words)


def _choose_batch_size(ctx: TrainContext, train_count: int) -> None:
    if ctx.cfg.batch_size:
        ctx.batch_size = int(ctx.cfg.batch_size)
    else:
        ctx.batch_size, words = recipe.batch_size(train_count, ctx.device.type == "cuda")
        ctx.run.record_setting("batch_size", ctx.batch_size, words)
    world = ctx.ranks.world if ctx.ranks else 1
    if ctx.batch_size % world:   # each process takes an equal share of every batch
        asked, ctx.batch_size = ctx.batch_size, max(world, round(ctx.batch_size / world) * world)
        ctx.run.record_setting("batch_size", ctx.batch_size, f"{ctx.batch_size} photos per step (not {asked}): an "
                               f"equal share for each of the {world} training processes.")


def _check_same_samples(run: Run, samples) -> None:
    """Resuming on changed data would mix two datasets in one model: refuse, saying what changed."""
    try:
        before = evaluation.read_run_table(run.folder.samples)
    except (OSError, ValueError):
        return   # nothing to compare with: the checkpoint's own shapes still have to fit
    old = set(zip(before.path, before.split, before.label))
    new = set(zip(samples.path, samples.split, samples.label))
    if old != new:
        raise ResumeError(f"The dataset changed since this run started ({len(old ^ new)} photos added, removed "
                          "or moved): resuming would mix two datasets. Train a new run instead.")
