"""'Suggest a learning rate': the learning-rate range test (L. Smith, 2017; fastai's lr_find).

A throw-away copy of the model trains for a few dozen steps while the rate grows
geometrically from tiny to huge; the loss first barely moves, then falls, then
explodes. A tenth of the rate at the lowest (smoothed) loss is fast and safe.
Nothing is kept: the run that follows starts from the pretrained weights.

With every backbone layer frozen (or Auto, whose first stage is that) the test
runs on stored features of the new head, so it takes a second or two; with a
chosen depth it runs through the trainable layers on real augmented batches.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from studio import augment, backbones, fastpath, hardware
from studio.data.samples import one_class_only
from studio.data.sources import check_trainable, open_dataset
from studio.hardware import pick_device
from studio.data.pixels import CachedPixels, cache_side, decode_all
from studio.models.features import FeatureExtractor

SMOOTHING = 0.9           # exponential moving average of the loss (the raw loss is too noisy to read)
EXPLODED = 4.0            # stop once the smoothed loss is this many times its best
WINDOW = 7                # steps in the centred average the suggestion is read from


def sweep(loss_at: Callable[[float], float], start: float, end: float, steps: int) -> list[tuple[float, float]]:
    """(rate, smoothed loss) for rates from `start` to `end`, stopping when the loss explodes.

    The explosion check uses a running average; the returned curve a centred one, which
    does not lag behind the rate (a running average puts the minimum several steps late).
    """
    rates, losses, average, best = [], [], 0.0, math.inf
    for i in range(steps):
        lr = start * (end / start) ** (i / max(1, steps - 1))
        loss = loss_at(lr)
        rates.append(lr)
        losses.append(loss)
        average = SMOOTHING * average + (1 - SMOOTHING) * loss
        running = average / (1 - SMOOTHING ** (i + 1))
        best = min(best, running)
        if i > 5 and running > EXPLODED * best:
            break
    half = WINDOW // 2
    centred = [sum(losses[max(0, i - half):i + half + 1]) / len(losses[max(0, i - half):i + half + 1])
               for i in range(len(losses))]
    return list(zip(rates, centred))


def suggestion(curve: list[tuple[float, float]]) -> float:
    """A tenth of the rate where the smoothed loss was lowest."""
    lowest = min(curve, key=lambda point: point[1])[0]
    return lowest / 10


def find_lr(data: str, backbone: str, freeze: str = "auto", steps: int = 60, batch_size: int = 16,
            seed: int = 0, device: str = "auto", start: float = 1e-6, end: float = 1.0,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the range test; returns {"lr", "curve": [(rate, loss)], "words"}."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    target = pick_device(device)
    dataset = open_dataset(data, seed=seed)
    check_trainable(dataset)
    one_class_only(dataset, "The learning-rate test")
    classes = dataset.classes
    train = dataset.split("train").sample(frac=1.0, random_state=seed).head(max(batch_size * 8, 128))
    name = backbone or backbones.default_backbone()
    model = backbones.create_model(name, len(classes))
    prep = backbones.preprocessing(model)
    head_only = str(freeze).lower() in ("all", "auto")
    backbones.apply_freeze(model, "all" if head_only else freeze)
    model.to(target, memory_format=torch.channels_last)
    pixels, failures = decode_all(train.path.tolist(), cache_side(prep))
    failed = {f["index"] for f in failures}
    labels = torch.tensor([classes.index(c) for i, c in enumerate(train.label) if i not in failed], device=target)
    if head_only:
        # the same feature pass as training's head stage, so the rate is tested on the features it will see
        extractor = FeatureExtractor(model, name, prep, target,
                                     amp=hardware.fast_bf16(target))
        features = extractor.extract(CachedPixels(pixels), lambda batch: fastpath.channels_last(
            augment.eval_batch(batch, prep)))
        trained = model.get_classifier()
    else:
        trained = model
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=start)
    done = [0]

    def loss_at(lr: float) -> float:
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(len(labels), (batch_size,), generator=generator).to(target)
        if head_only:
            logits = trained(features[index])
        else:
            model.train()
            backbones.keep_norms_in_eval(model)
            x = augment.train_batch(pixels[index.cpu()].to(target), prep, generator)
            logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done[0] += 1
        if progress:
            progress(done[0], steps)
        return loss.item()

    curve = sweep(loss_at, start, end, steps)
    lr = suggestion(curve)
    what = "the new head on frozen features" if head_only else f"the layers below group {freeze} kept frozen"
    words = (f"Suggested learning rate: {lr:.2g}. The loss fell lowest at {lr * 10:.2g} while the rate grew from "
             f"{start:g}; a tenth of that is fast and safe. (Tested on {what}, {len(curve)} steps.)")
    return {"lr": lr, "curve": curve, "words": words}
