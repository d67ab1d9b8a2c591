"""`HeadOnFeatures`: the new head trained alone on the frozen backbone's features.

The backbone runs once per photo (and once per extra augmented view), so an epoch costs
milliseconds instead of a full forward pass. A checkpoint keeps only the head: the features are
made again from the same seed on resume, so they come out the same.
"""
from __future__ import annotations

import math

import torch

from studio import augment, familiarity, optim
from studio.models.features import KeptFeatures, backbone_fingerprint
from studio.training import unlabeled
from studio.training.context import DECODE_SHARE, TrainContext

MIN_HEAD_STEPS = 25   # fewest head updates per epoch
FEATURES_SHARE = 0.6  # of the progress bar: the feature passes (the head's epochs get what is left)


class HeadOnFeatures:
    name = "head"

    def __init__(self, epochs: int, lr: float, early_stop: bool = True):
        self.first_epoch, self.last_epoch, self.lr, self.early_stop = 1, epochs, lr, early_stop

    def setup(self, ctx: TrainContext, checkpoint: dict | None) -> int:
        cfg = ctx.cfg
        self.ctx = ctx
        self.features, self.labels, self.val_features = self._features(ctx)
        ctx.lap("features")
        rows = familiarity.reference_sample(len(ctx.train_px), ctx.cfg.seed)
        ctx.kept_features = KeptFeatures(self.val_features, rows, self.features[rows].clone(),
                                         backbone_fingerprint(ctx.model),
                                         self.features[:len(ctx.train_px)].to("cpu", copy=True))
        self.unlabeled_plain = self.unlabeled_augmented = None
        if ctx.unlabeled is not None:
            self.unlabeled_plain, self.unlabeled_augmented = self._unlabeled_features(ctx)
            self.early_stop = False   # the pseudo-labelled share grows to the last epoch (milliseconds each)
            ctx.lap("unlabeled_features")
        self.head = ctx.model.get_classifier()
        # an epoch of the head costs milliseconds, so small datasets get several passes per epoch:
        # 3 updates an epoch (48 photos, batch 32) leave the head half-trained
        batches_per_pass = math.ceil(len(self.features) / ctx.batch_size)
        self.passes = math.ceil(MIN_HEAD_STEPS / batches_per_pass)
        steps_per_epoch = self.passes * batches_per_pass
        self.optimizer = optim.make_optimizer(cfg.optimizer, self.head.parameters(), self.lr, cfg.weight_decay)
        self.schedule = optim.make_schedule(cfg.schedule, self.optimizer, steps_per_epoch * self.last_epoch)
        if not checkpoint:
            return 1
        self.head.load_state_dict(checkpoint["weights"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        ctx.generator.set_state(checkpoint["generator"])
        done = checkpoint["epoch"] * steps_per_epoch
        self.schedule = optim.resumed_schedule(cfg.schedule, self.optimizer, done,
                                               steps_per_epoch * self.last_epoch - done)
        return checkpoint["epoch"] + 1

    @staticmethod
    def _features(ctx: TrainContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training features (the clean photos, then each augmented view) with their labels, and
        the validation features."""
        views = max(1, ctx.cfg.feature_views if ctx.cfg.augment else 1)
        span = FEATURES_SHARE / (views + 1 + (ctx.unlabeled is not None))

        def extract(source, augmented: bool, phase: str, start: float) -> torch.Tensor:
            return ctx.features.extract(source, lambda batch: ctx.input(batch, augmented), ctx.check_stop,
                                        lambda done, total: ctx.progress(phase, done, total, start, span))

        train = [extract(ctx.train_px, False, "Computing features (original images)", DECODE_SHARE)]
        for v in range(1, views):
            train.append(extract(ctx.train_px, True, f"Computing features (augmented copy {v})",
                                 DECODE_SHARE + span * v))
        val = extract(ctx.val_px, False, "Computing features (validation)", DECODE_SHARE + span * views)
        return torch.cat(train), ctx.train_y.repeat(views, *[1] * (ctx.train_y.dim() - 1)), val

    def _unlabeled_features(self, ctx: TrainContext) -> tuple[torch.Tensor, torch.Tensor]:
        views = max(1, ctx.cfg.feature_views if ctx.cfg.augment else 1)
        span = FEATURES_SHARE / (views + 2)
        start = DECODE_SHARE + span * (views + 1)
        plain, augmented = unlabeled.features(
            ctx, ctx.unlabeled, lambda done, total: ctx.progress("Computing features (unlabeled photos)", done,
                                                                 total, start, span))
        ctx.run.update(unlabeled={**ctx.unlabeled.summary(), "pseudo_labelled": 0})
        ctx.run.add_choice("unlabeled", unlabeled.words(len(ctx.unlabeled.files), len(ctx.unlabeled.left_out),
                                                        fine_tuned_after=ctx.cfg.freeze != "all"))
        return plain, augmented

    def _pseudo_labelled(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(features, labels) of the unlabeled photos this epoch also learns from (the augmented copies of
        the surest share of each predicted class), or None (no unlabeled photos, or the first epoch)."""
        fraction = unlabeled.share(epoch, self.last_epoch) if self.unlabeled_plain is not None else 0.0
        if not fraction or not len(self.unlabeled_plain):
            return None
        chosen, pseudo = unlabeled.pseudo_labels(self.head, self.unlabeled_plain, fraction)
        per_class = torch.bincount(pseudo.cpu(), minlength=len(self.ctx.classes)).tolist()
        self.ctx.run.update(unlabeled={**self.ctx.unlabeled.summary(), "pseudo_labelled": len(chosen),
                                       "share": round(fraction, 3),
                                       "per_class": dict(zip(map(str, self.ctx.classes), per_class))})
        return self.unlabeled_augmented[chosen], pseudo

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        ctx, head = self.ctx, self.head
        self.epoch = epoch
        pseudo = self._pseudo_labelled(epoch)
        head.train()
        loss_sum = correct = seen = 0
        batches = [b for _ in range(self.passes) for b in ctx.batches(len(self.features), ctx.batch_size, shuffle=True)]
        # with pseudo-labels, every step also takes a batch of them: the labelled photos weigh the same
        # in each step however many unlabeled photos there are
        extra = unlabeled.batches(ctx, len(pseudo[1]), len(batches)) if pseudo is not None else None
        for step, index in enumerate(batches):
            ctx.check_stop()
            index = augment.to_device(index, self.features.device)
            logits = head(self.features[index])
            loss = ctx.loss(logits, self.labels[index])
            if extra is not None:
                rows = augment.to_device(extra[step], self.features.device)
                loss = loss + unlabeled.PSEUDO_WEIGHT * ctx.loss(head(pseudo[0][rows]), pseudo[1][rows])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            loss_sum = loss_sum + loss.detach() * len(index)
            correct = correct + ctx.task.correct(logits, self.labels[index])
            seen += len(index)
        return float(loss_sum) / seen, int(correct) / seen

    def predict_val(self) -> torch.Tensor:
        self.head.eval()
        with torch.no_grad():
            logits = self.head(self.val_features)
        start = DECODE_SHARE + FEATURES_SHARE
        self.ctx.progress("Training the new head", self.epoch, self.last_epoch, start, 1 - start)
        return logits

    def state(self) -> dict:
        return {"weights": {k: v.detach().to("cpu", copy=True) for k, v in self.head.state_dict().items()},
                "optimizer": self.optimizer.state_dict()}

    def out_of_time(self, epoch_seconds: float) -> bool:
        return False    # an epoch on stored features costs milliseconds

    def lap_name(self, epoch: int) -> str:
        return "head_epochs"
