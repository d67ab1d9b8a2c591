"""The Auto recipe's decisions, each returned with the plain words the page shows.

Auto trains in two stages, after fastai's `fine_tune` and the Keras fine-tuning
guide: first only the new head, on features of the frozen backbone (seconds, and
the new head stops sending random gradients into pretrained layers); then the top
of the backbone is unfrozen and fine-tuned with lower learning rates the deeper a
layer sits. How deep to unfreeze follows how well the frozen features already
separate the classes: a high head-only score means the photos look like what the
network was trained on, so a light touch on the top layers is enough; a low one
means the photos are far from it, and deeper layers must adapt.
"""
from __future__ import annotations

import math

HEAD_EPOCHS = 5               # stage 1: head only, on cached features (milliseconds each)
CLOSE_SKILL = 0.85            # head-only skill above this: unfreeze the top quarter
MIDDLE_SKILL = 0.6            # above this: the top half; below: everything
BODY_LR_FACTOR = 0.1          # top trainable group's rate, relative to the head's
DEEPEST_LR_FACTOR = 0.1       # the deepest trainable group gets this times the top group's rate


def skill(accuracy: float, classes: int) -> float:
    """Accuracy rescaled so chance is 0 and perfect is 1 (comparable across class counts)."""
    chance = 1.0 / max(2, classes)
    return max(0.0, (accuracy - chance) / (1 - chance))


def fine_tune_depth(head_accuracy: float, classes: int, total_groups: int) -> tuple[int, str]:
    """Frozen layer groups for stage 2, from the head-only validation accuracy."""
    score = skill(head_accuracy, classes)
    if score >= CLOSE_SKILL:
        trainable = max(1, math.ceil(total_groups / 4))
        why = "your photos look like what the network was trained on, so only its top layers need to adapt"
    elif score >= MIDDLE_SKILL:
        trainable = max(1, math.ceil(total_groups / 2))
        why = "your photos differ somewhat from what the network was trained on, so its upper half adapts"
    else:
        trainable = total_groups
        why = "your photos are far from what the network was trained on, so every layer adapts"
    words = (f"with the backbone frozen the new head reached {head_accuracy:.0%} on validation; {why} "
             f"({trainable} of {total_groups} layer groups trained).")
    return total_groups - trainable, words


def fine_tune_epochs(train_images: int) -> tuple[int, str]:
    """Fewer passes over big datasets (each already gives many updates), more over small ones."""
    epochs = min(8, max(3, math.ceil(2000 / max(1, train_images))))
    return epochs, (f"{epochs} fine-tuning epochs for {train_images:,} training photos (at most; early "
                    "stopping ends sooner when validation stops improving).")


GENTLE_LR, BOLD_LR = 3e-4, 1e-3   # stage-2 head rate below / from BOLD_FROM training images
BOLD_FROM = 1000


def fine_tune_lr(train_images: int) -> tuple[float, str]:
    """Stage 2's head rate: gentle on small datasets, bolder on large ones.

    Measured (benchmarks/RECIPE.md): on three sets of 245 photos a first fine-tuning epoch at
    1e-3 lost 6-13 points of validation accuracy and 3e-4 did not; on 5,000 CIFAR photos 1e-3
    gained 4 points over the head alone and 3e-4 gained nothing.
    """
    lr = BOLD_LR if train_images >= BOLD_FROM else GENTLE_LR
    size = "many" if lr == BOLD_LR else "few"
    why = ('their average gradient is steady enough for bigger steps' if size == 'many'
           else 'small steps keep what the network knows')
    return lr, (f"learning rate {lr:g} for the head while fine-tuning ({size} training photos: "
                f"{why}), "
                f"{BODY_LR_FACTOR:g} of it for the top pretrained layers, down to "
                f"{BODY_LR_FACTOR * DEEPEST_LR_FACTOR:g} of it for the deepest trained ones.")


CPU_BATCH = 32           # photos per training step on a CPU, and the smallest on a GPU
GPU_MAX_BATCH = 256      # the largest a GPU gets
MIN_STEPS_PER_EPOCH = 32  # a GPU batch only grows while an epoch still makes this many updates


def batch_size(train_images: int, gpu: bool) -> tuple[int, str]:
    """Photos per training step: 32, or on a GPU as many as keep an epoch at 32+ updates.

    Measured on an H100 (benchmarks/RESULTS.md): at 32 photos per step the GPU waits
    on the CPU launching kernels (MobileNetV2 trains at 1,100-1,600 img/s at batch 32,
    6,300 at 256); 4,800 photos at batch 128 trained 4x faster per epoch with the same
    validation accuracy. Small datasets keep 32 so each epoch still makes enough updates.
    """
    size = CPU_BATCH
    while gpu and size * 2 <= GPU_MAX_BATCH and train_images // (size * 2) >= MIN_STEPS_PER_EPOCH:
        size *= 2
    if size == CPU_BATCH:
        return size, f"{size} photos per training step."
    return size, (f"{size} photos per training step: on a GPU bigger batches keep the card busy, and "
                  f"{train_images:,} training photos still give {train_images // size} updates per epoch.")


def group_learning_rates(head_lr: float, trainable_groups: int) -> list[float]:
    """Learning rates of the trainable backbone groups, deepest first (geometric, smaller deeper)."""
    top = head_lr * BODY_LR_FACTOR
    if trainable_groups <= 1:
        return [top] * trainable_groups
    ratio = DEEPEST_LR_FACTOR ** (1 / (trainable_groups - 1))
    return [top * ratio ** (trainable_groups - 1 - i) for i in range(trainable_groups)]


FREEZE_WORDS = ("auto (the recipe decides), all (only the new head trains) or a whole number of leading "
                "layer groups to keep frozen (0 = fine-tune everything)")


def freeze_setting(value) -> str:
    """A freeze setting as the engine takes it: 'auto', 'all' or a whole number of frozen layer groups.

    Checked where it is typed (the CLI, a config), so a wrong one fails before any data is read or
    backbone loaded, not inside the training thread. A number beyond the backbone's groups means all.
    """
    text = str(value).strip().lower()
    if text in ("auto", "all"):
        return text
    if text.isascii() and text.isdigit():
        return str(int(text))
    raise ValueError(f"{value!r} is not a freeze setting: use {FREEZE_WORDS}.")
