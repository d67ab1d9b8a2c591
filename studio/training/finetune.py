"""`FineTune`: some backbone layers trained along with the head, on augmented batches of the
cached pixels.

BatchNorm layers keep their pretrained statistics unless the config says "adapt". Out of GPU
memory, the batch halves and the epoch starts over, rather than the run failing.
"""
from __future__ import annotations

import time

import torch

from studio import augment, backbones, faults, optim, recipe
from studio.training.context import DECODE_SHARE, TrainContext

SEARCH_END = 0.45    # of the progress bar: the head and Auto's search are behind a stage that starts later
MIN_BATCH_SIZE = 2    # out of GPU memory below this: give up with a message


def train_size(ctx: TrainContext) -> int:
    """Crop size for fine-tuning steps; validation always runs at the pretrained input size.

    On a CPU, training on 3/4-size random crops costs about half the compute (MobileNetV2:
    64 vs 33 img/s at 160 vs 224 px, 2 cores) and, with random-resized crops that enlarge
    objects, matches the apparent object size of full-size evaluation ("FixRes", Touvron
    et al. 2019). BatchNorm keeps its pretrained statistics, so the two sizes do not clash.
    Other-cameras views break that premise (they shrink the object in the frame); trained on smaller crops
    they collapse (benchmarks/SHIFT.md: 39% against 85% on real signs), so they train at the full size.
    """
    full = ctx.prep["input_size"]
    if ctx.cfg.train_size != "auto":
        return int(ctx.cfg.train_size)
    if ctx.device.type == "cuda" or not ctx.cfg.augment or ctx.cfg.augment_strength == "other-cameras":
        return full
    return max(96, int(round(full * 0.75 / 32)) * 32)


def param_groups(model: torch.nn.Module, lr: float) -> list[dict]:
    """The head at `lr`; each trainable backbone group lower, the deeper the lower (see recipe)."""
    head = [p for p in model.get_classifier().parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    named = dict(model.named_parameters())
    body = [[named[n] for n in group if named[n].requires_grad and id(named[n]) not in head_ids]
            for group in backbones.layer_groups(model)]
    body = [g for g in body if g]
    rates = recipe.group_learning_rates(lr, len(body))
    return [{"params": head, "lr": lr}] + [{"params": g, "lr": r} for g, r in zip(body, rates)]


def train_steps(ctx: TrainContext, optimizer, schedule, size: int, batches: list[torch.Tensor],
                on_step=None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One optimizer step per batch of training-photo indices, on augmented `size` px crops; returns the
    summed loss and the correct count (left on the device: reading a number back per step would stall a
    GPU's queue) and the photos seen. `on_step(i)` after each step (the progress bar)."""
    model = ctx.training_model()   # under torchrun: DistributedDataParallel, each process its share of a batch
    ctx.model.train()
    backbones.keep_norms_in_eval(ctx.model, frozen_only=ctx.cfg.batchnorm == "adapt")
    loss_sum = correct = seen = 0
    batches = [ctx.part(index) for index in batches]
    for i, (index, batch) in enumerate(zip(batches, ctx.train_px.batches(batches, ctx.device)), start=1):
        ctx.check_stop()
        faults.check("train_step", batch_size=len(index))
        x = ctx.input(batch, ctx.cfg.augment, size)
        y = ctx.train_y[augment.to_device(index, ctx.train_y.device)]
        with ctx.autocast():
            logits = model(x)
            loss = ctx.loss(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_sum = loss_sum + loss.detach() * len(index)
        correct = correct + ctx.task.correct(logits, y)
        seen += len(index)
        if on_step is not None:
            on_step(i)
    return loss_sum, correct, seen


class FineTune:
    """`plan` says what this stage trains: {"frozen", "lr", "epochs", "first_epoch"}; it goes into
    every checkpoint, so a resumed run needs none of the decisions that led to it."""
    name = "fine_tune"
    early_stop = True

    def __init__(self, plan: dict, deadline: float | None = None):
        self.plan = plan
        self.deadline = deadline    # time.perf_counter() by which a time budget wants the stage done
        self.first_epoch = plan["first_epoch"]
        self.last_epoch = plan["first_epoch"] + plan["epochs"] - 1

    def setup(self, ctx: TrainContext, checkpoint: dict | None) -> int:
        cfg, self.ctx = ctx.cfg, ctx
        self.size = train_size(ctx)
        ctx.run.update(engine={**ctx.run.snapshot().get("engine", {}), "train_size": self.size})
        if self.size != ctx.prep["input_size"]:
            ctx.run.add_choice("train_size", f"training steps on {self.size} px random crops, validation at "
                               f"{ctx.prep['input_size']} px: about half the work on a CPU, same accuracy.")
        elif cfg.train_size == "auto" and cfg.augment and cfg.augment_strength == "other-cameras":
            ctx.run.add_choice("train_size", f"training steps at the full {self.size} px: other-cameras views "
                               "shrink the object, and smaller training crops would leave the network unready "
                               "for full-size photos.")
        lr = self.plan["lr"]
        self.optimizer = optim.make_optimizer(cfg.optimizer, param_groups(ctx.model, lr), lr, cfg.weight_decay)
        self.batch_size, self.steps_done, first = ctx.batch_size, 0, self.first_epoch
        if checkpoint:
            ctx.model.load_state_dict(checkpoint["weights"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            ctx.generator.set_state(checkpoint["generator"])
            self.batch_size, self.steps_done, first = (checkpoint["batch_size"], checkpoint["steps_done"],
                                                       checkpoint["epoch"] + 1)
        self._make_schedule(first)
        return first

    def _make_schedule(self, epoch: int) -> None:
        """Whole batches only (when there is one): a last batch of a few images gives a noisy step
        and, on a CPU, new kernel shapes to prepare in every epoch."""
        self.batches_per_epoch = len(self.ctx.train_px) // self.batch_size or 1
        if self.steps_done:
            self.schedule = optim.resumed_schedule(self.ctx.cfg.schedule, self.optimizer, self.steps_done,
                                                   self.batches_per_epoch * (self.last_epoch - epoch + 1))
        else:
            self.schedule = optim.make_schedule(self.ctx.cfg.schedule, self.optimizer,
                                                self.batches_per_epoch * (self.last_epoch - self.first_epoch + 1))

    def out_of_time(self, epoch_seconds: float) -> bool:
        """True when another epoch like the last one would end after the budget's deadline."""
        return self.deadline is not None and time.perf_counter() + epoch_seconds > self.deadline

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        while True:
            try:
                return self._epoch(epoch)
            except torch.cuda.OutOfMemoryError:
                self._smaller_batch()
                self._make_schedule(epoch)   # this epoch again, in smaller batches

    def _epoch(self, epoch: int) -> tuple[float, float]:
        ctx = self.ctx
        batches = ctx.batches(len(ctx.train_px), self.batch_size, shuffle=True)[:self.batches_per_epoch]
        epochs = self.last_epoch - self.first_epoch + 1
        start = DECODE_SHARE if self.first_epoch == 1 else SEARCH_END

        def progress(i: int) -> None:
            done = (epoch - self.first_epoch) * len(batches) + i
            ctx.progress(f"Epoch {epoch} of {self.last_epoch}: training", done, epochs * len(batches),
                         start, 1 - start)
        loss_sum, correct, seen = ctx.over_ranks(*train_steps(ctx, self.optimizer, self.schedule, self.size, batches,
                                                              progress))
        self.steps_done += len(batches)
        return loss_sum / seen, correct / seen

    def _smaller_batch(self) -> None:
        """Out of GPU memory: halve the batch and say so, rather than failing the run."""
        if self.batch_size <= MIN_BATCH_SIZE:
            raise MemoryError(f"Out of GPU memory even with batch size {self.batch_size}: choose a smaller "
                              "backbone or free the GPU, then start again.")
        self.optimizer.zero_grad(set_to_none=True)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        smaller = max(MIN_BATCH_SIZE, self.batch_size // 2)
        note = (f"Out of GPU memory with batch size {self.batch_size}: continuing with {smaller} "
                "(this epoch starts over).")
        self.ctx.run.update(notes=[*self.ctx.run.snapshot().get("notes", []), note])
        self.ctx.run.add_choice("batch_size", note)
        self.batch_size = smaller

    def predict_val(self) -> torch.Tensor:
        return self.ctx.predict_pixels(self.ctx.val_px)

    def state(self) -> dict:
        return {"weights": {k: v.detach().to("cpu", copy=True) for k, v in self.ctx.model.state_dict().items()},
                "optimizer": self.optimizer.state_dict(), "steps_done": self.steps_done,
                "batch_size": self.batch_size, "plan": self.plan}

    def lap_name(self, epoch: int) -> str:
        return "first_fine_tuning_epoch" if epoch == self.first_epoch else "fine_tuning_epochs"
