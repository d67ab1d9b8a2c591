"""Auto's fine-tuning plan found by trying, not by a rule.

After the new head has trained on frozen features, candidate plans (how deep to unfreeze, how fast the
head learns; deeper groups always get less, see `recipe.group_learning_rates`) each train briefly from
that head. The weaker half is cut and the rest train again for twice as long (successive halving,
Jamieson & Talwalkar 2016); the winner then carries on, from where its tries left it, as the run's
fine-tuning stage. Plans are scored on a fixed sample of the validation photos, never on the test split.

The old depth rule (`recipe.fine_tune_depth`) now only orders the plans, so when time runs short the one
it would have picked is tried first, and a tie goes to it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from studio import backbones, budgets, optim, recipe
from studio.training.context import TrainContext
from studio.training.finetune import SEARCH_END, param_groups, train_size, train_steps

TRAINABLE_SHARES = (0.25, 0.5, 1.0)        # the top quarter of the layer groups, the top half, every one
RATES = (recipe.GENTLE_LR, recipe.BOLD_LR)  # the head's rate while fine-tuning (times LR_SCALE for SGD)
SEARCH_VAL_PHOTOS = 512     # the validation sample plans are scored on (all of them when fewer)
ROUND_EPOCH_SHARE = 1 / 6   # a plan's first try: this part of an epoch ...
MIN_ROUND_STEPS, MAX_ROUND_STEPS = 3, 40   # ... in these bounds (fewer steps say nothing, more cost minutes)
BALANCED_SEARCH_SHARE = 0.75  # Balanced: the search's steps, at most, as a part of the recipe's epochs' steps
WARMUP_STEPS = 3            # each plan's rate rises over its first steps (a fresh optimizer's first moments)
FIRST_ROUND_SHARE = 0.3     # time budgets: of the time the search starts with, for the first round ...
SECOND_ROUND_SHARE = 0.25   # ... and the second; the winner gets the rest
MIN_BALANCED_EPOCHS = 2      # Balanced: the winner's own epochs, at least
MAX_BUDGET_EPOCHS = 40      # a time budget never plans more fine-tuning epochs than this
RESERVE_SECONDS = 3.0       # a time budget keeps this back for saving the model


@dataclass
class Candidate:
    """One plan and how its tries went. Weights and optimizer state are kept between rounds."""
    frozen: int
    lr: float
    total_groups: int
    weights: dict | None = None
    optimizer: dict | None = None
    steps: int = 0
    seconds: float = 0.0
    accuracy: float = -1.0
    loss: float = math.inf
    rounds: int = 0

    @property
    def trainable(self) -> int:
        return self.total_groups - self.frozen

    def words(self) -> str:
        depth = ("every layer group" if self.frozen == 0 else
                 f"the top {self.trainable} of {self.total_groups} layer groups")
        return f"{depth} at {self.lr:g}"

    def key(self) -> tuple:
        return (round(self.accuracy, 6), -self.loss)

    def record(self) -> dict:
        return {"plan": self.words(), "frozen_groups": self.frozen, "lr": self.lr, "steps": self.steps,
                "seconds": round(self.seconds, 2), "rounds": self.rounds,
                "val_accuracy": round(self.accuracy, 5), "val_loss": round(self.loss, 5)}


@dataclass
class Outcome:
    """What the search decided: the winning plan (its weights already in the model) and the epochs."""
    winner: Candidate | None
    epochs: int
    deadline: float | None
    tried: list[Candidate] = field(default_factory=list)


def candidates(ctx: TrainContext, head_accuracy: float) -> list[Candidate]:
    """The plans, the one the depth rule and the size rule would pick first, then the nearest ones."""
    total = len(backbones.layer_groups(ctx.model))
    rule_frozen, _ = recipe.fine_tune_depth(head_accuracy, len(ctx.classes), total)
    rule_lr, _ = recipe.fine_tune_lr(len(ctx.train_y))
    depths = sorted({total - max(1, math.ceil(total * share)) for share in TRAINABLE_SHARES}, reverse=True)
    rates = [ctx.cfg.lr] if ctx.cfg.lr else list(RATES)
    plans = [Candidate(frozen, lr, total) for frozen in depths for lr in rates]
    return sorted(plans, key=lambda c: (abs(c.frozen - rule_frozen), abs(math.log(c.lr / rule_lr))))


def first_round_steps(batches_per_epoch: int) -> int:
    return min(MAX_ROUND_STEPS, max(MIN_ROUND_STEPS, math.ceil(batches_per_epoch * ROUND_EPOCH_SHARE)))


class Search:
    """Successive halving over `candidates`, within the config's budget; `run()` returns the Outcome."""

    def __init__(self, ctx: TrainContext, plans: list[Candidate]):
        self.ctx, self.plans = ctx, plans
        self.size = train_size(ctx)
        self.scale = optim.LR_SCALE[ctx.cfg.optimizer]
        self.batches_per_epoch = max(1, len(ctx.train_px) // ctx.batch_size)
        self.first_steps = first_round_steps(self.batches_per_epoch)
        if budgets.wall_seconds(ctx.cfg.budget) is None:   # Balanced: even the first round within its share
            self.first_steps = max(1, min(self.first_steps, int(self._allowance()) // max(1, len(plans))))
        order = torch.randperm(len(ctx.val_px), generator=torch.Generator().manual_seed(ctx.cfg.seed))
        self.val_rows = order[:SEARCH_VAL_PHOTOS].sort().values
        self.start_weights = _copy(ctx.model.state_dict())    # the trained head on the frozen backbone
        self.eval_seconds_per_photo = 0.0
        self.started = time.perf_counter()
        budget = budgets.wall_seconds(ctx.cfg.budget)
        self.deadline = None if budget is None else ctx.started + budget - RESERVE_SECONDS
        self.done_steps = 0
        self.planned_steps = self.first_steps * len(plans) + 2 * self.first_steps * (len(plans) // 2)

    # -- the rounds

    def run(self) -> Outcome:
        tried = self._first_round()
        if not tried:
            return Outcome(None, 0, self.deadline)
        tried.sort(key=Candidate.key, reverse=True)   # stable: a tie keeps the rule's order
        survivors = tried[:max(1, len(tried) // 2)] if len(tried) >= 3 else tried[:1]
        if len(survivors) > 1 and self.ctx.agree(self._second_round_fits(survivors)):
            for candidate in survivors:
                self._try(candidate, 2 * self.first_steps)
            survivors.sort(key=Candidate.key, reverse=True)
        winner = survivors[0]
        self.ctx.model.load_state_dict(winner.weights)
        backbones.apply_freeze(self.ctx.model, winner.frozen)
        return Outcome(winner, self.ctx.agree(self._epochs(winner)), self.deadline, tried)

    def _first_round(self) -> list[Candidate]:
        tried = []
        for candidate in self.plans:
            # the clock decides, so under torchrun rank 0's answer holds everywhere (ctx.agree)
            if tried and not self.ctx.agree(self._fits([candidate], self.first_steps, FIRST_ROUND_SHARE)):
                break
            if not tried and self.ctx.agree(self.deadline is not None and time.perf_counter() >= self.deadline):
                break   # the photos and the head took the whole budget
            self._try(candidate, self.first_steps)
            tried.append(candidate)
        return tried

    def _second_round_fits(self, survivors: list[Candidate]) -> bool:
        """Balanced: when both rounds stay within its share of the recipe's fine-tuning steps (a few hundred
        photos make short epochs, whose validation sample cannot tell close plans apart anyway)."""
        if self.deadline is not None:
            return self._fits(survivors, 2 * self.first_steps, FIRST_ROUND_SHARE + SECOND_ROUND_SHARE)
        return self.done_steps + 2 * self.first_steps * len(survivors) <= self._allowance()

    def _allowance(self) -> float:
        """Balanced: the most steps the search may take, a share of the recipe's fine-tuning steps."""
        return BALANCED_SEARCH_SHARE * self._recipe_epochs() * self.batches_per_epoch

    def _recipe_epochs(self) -> int:
        return self.ctx.cfg.epochs or recipe.fine_tune_epochs(len(self.ctx.train_y))[0]

    def _fits(self, plans: list[Candidate], steps: int, share_until: float) -> bool:
        """Balanced: always. A time budget: when these tries would end within `share_until` of the time
        the search started with (step times as measured; a plan not yet tried costs the slowest one's)."""
        if self.deadline is None:
            return True
        slowest = max(c.seconds / c.steps for c in self.plans if c.steps)
        cost = sum(steps * (c.seconds / c.steps if c.steps else slowest) + self._eval_seconds() for c in plans)
        return time.perf_counter() + cost <= self.started + share_until * (self.deadline - self.started)

    def _epochs(self, winner: Candidate) -> int:
        """Balanced: the recipe's epochs (or the person's). A time budget: as many as fit in what is left."""
        cfg = self.ctx.cfg
        if self.deadline is None:   # the winner's tries count towards the recipe's epochs
            tried = winner.steps // self.batches_per_epoch
            return cfg.epochs or max(MIN_BALANCED_EPOCHS, self._recipe_epochs() - tried)
        epoch = winner.seconds / winner.steps * self.batches_per_epoch + self._eval_seconds(len(self.ctx.val_px))
        final_test = 2 * self._eval_seconds(len(self.ctx.test_files))   # read from disk, then measured
        fit = int((self.deadline - final_test - time.perf_counter()) // max(epoch, 1e-6))
        return max(0, min(fit, cfg.epochs or MAX_BUDGET_EPOCHS))

    # -- one try

    def _try(self, candidate: Candidate, steps: int) -> None:
        ctx = self.ctx
        ctx.model.load_state_dict(candidate.weights or self.start_weights)
        backbones.apply_freeze(ctx.model, candidate.frozen)
        lr = candidate.lr * self.scale
        optimizer = optim.make_optimizer(ctx.cfg.optimizer, param_groups(ctx.model, lr), lr, ctx.cfg.weight_decay)
        if candidate.optimizer is not None:
            optimizer.load_state_dict(candidate.optimizer)
        before = candidate.steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min(1.0, (before + step + 1) / WARMUP_STEPS))
        batches = self._batches(steps)
        self._progress(candidate)
        started = time.perf_counter()
        train_steps(ctx, optimizer, schedule, self.size, batches)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        candidate.seconds += time.perf_counter() - started
        candidate.steps += steps
        candidate.rounds += 1
        self.done_steps += steps
        candidate.accuracy, candidate.loss = self._score()
        candidate.weights, candidate.optimizer = _copy(ctx.model.state_dict()), optimizer.state_dict()

    def _batches(self, steps: int) -> list[torch.Tensor]:
        """`steps` whole batches of shuffled training photos (a new shuffle whenever a pass runs out)."""
        batches = []
        while len(batches) < steps:
            drawn = self.ctx.batches(len(self.ctx.train_px), self.ctx.batch_size, shuffle=True)
            batches += drawn[:self.batches_per_epoch]
        return batches[:steps]

    @torch.inference_mode()
    def _score(self) -> tuple[float, float]:
        """The task's score (accuracy, or mAP for multi-label) and loss on the validation sample."""
        ctx = self.ctx
        started = time.perf_counter()
        ctx.model.eval()
        chunks = list(self.val_rows.split(ctx.eval_batch_size))
        logits = []
        for batch in ctx.val_px.batches(chunks, ctx.device):
            with ctx.autocast():
                logits.append(ctx.model(ctx.input(batch, False)).float())
        logits = torch.cat(logits)
        y = ctx.val_y[self.val_rows.to(ctx.val_y.device)]
        self.eval_seconds_per_photo = (time.perf_counter() - started) / len(self.val_rows)
        return ctx.task.score(logits, y)

    def _eval_seconds(self, photos: int | None = None) -> float:
        return self.eval_seconds_per_photo * (len(self.val_rows) if photos is None else photos)

    def _progress(self, candidate: Candidate) -> None:
        number = sum(1 for c in self.plans if c.rounds) + (candidate.rounds == 0)
        phase = (f"Trying plan {number} of {len(self.plans)}: {candidate.words()}" if candidate.rounds == 0 else
                 f"Second round: {candidate.words()}")
        self.ctx.progress(phase, self.done_steps, self.planned_steps, 0.3, SEARCH_END - 0.3)


def _copy(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


# ---------------------------------------------------------------- in words

def summary(outcome: Outcome, seconds: float) -> str:
    """'Tried 6 plans in 48 s; fine-tuning every layer group at 0.001 won by 3.1 points.'"""
    tried = sorted(outcome.tried, key=Candidate.key, reverse=True)
    winner = outcome.winner
    plans = f"{len(tried)} plan{'s' * (len(tried) != 1)}"
    if len(tried) == 1:
        return f"Tried 1 plan in {budgets.duration_words(seconds)}: fine-tuning {winner.words()}."
    runner_up = next(c for c in tried if c is not winner)
    margin = (winner.accuracy - runner_up.accuracy) * 100
    if margin >= 0.05:
        by = f"won by {margin:.1f} points over {runner_up.words()}"
    elif winner.loss < runner_up.loss:
        by = f"tied with {runner_up.words()} on accuracy and won on validation loss"
    else:
        by = f"tied with {runner_up.words()} and was tried first (the depth rule's pick)"
    return f"Tried {plans} in {budgets.duration_words(seconds)}; fine-tuning {winner.words()} {by}."


def choice_words(outcome: Outcome, val_photos: int, first_steps: int) -> dict[str, str]:
    """The search's decisions for `choices`, without times (the same seed and data give the same words)."""
    winner, tried = outcome.winner, outcome.tried
    second = [c for c in tried if c.rounds > 1]
    rounds = (f"{len(tried)} plans for {first_steps} steps each from the trained head" +
              (f", then the best {len(second)} for {2 * first_steps} more" if second else ""))
    ranked = sorted(tried, key=Candidate.key, reverse=True)
    scores = "; ".join(f"{c.words()}: {c.accuracy:.1%}" for c in ranked)
    return {
        "search": f"Tried {rounds}, scored on {val_photos} validation photos ({scores}).",
        "depth": (f"fine-tuning {winner.words()} did best in the search "
                  f"({winner.trainable} of {winner.total_groups} layer groups trained)."),
        "lr": (f"learning rate {winner.lr:g} for the head while fine-tuning (the search's pick), "
               f"{recipe.BODY_LR_FACTOR:g} of it for the top pretrained layers, down to "
               f"{recipe.BODY_LR_FACTOR * recipe.DEEPEST_LR_FACTOR:g} of it for the deepest trained ones."),
    }
