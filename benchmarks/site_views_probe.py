"""Which lever moves a model of rendered signs onto real photos? Source training in two families of views,
then adaptation variants from the better source, each scored on the real photos after every epoch.

    python benchmarks/site_views_probe.py source "as trained" [--epochs 8]
    python benchmarks/site_views_probe.py source site-like
    python benchmarks/site_views_probe.py adapt site-like --mode control|teacher [--threshold 0.8]

A plain loop on the studio's own pieces (the packaged MobileNetV2, studio.adapt.views.show), at 112 px so a
2-core CPU gets through it in minutes: a probe for choosing the recipe, not the product's run (shift_bench.py
measures `studio adapt` itself). The real photos' folder names are read only to score. Lines go to
benchmarks/site-views-probe.jsonl. "control": the labelled photos alone, with a running-average teacher;
"teacher": the same plus the new photos' pseudo-labels from the teacher (confidence >= threshold), learnt on
site-like views of them.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio import augment, backbones  # noqa: E402
from studio.adapt import views as site_views  # noqa: E402
from studio.data.imaging import image_files  # noqa: E402
from studio.data.pixels import decode_all  # noqa: E402

SIGNS = ROOT.parent / "shared" / "datasets" / "signs_shift"
SIZE = 112
OUT = ROOT / "benchmarks" / "site-views-probe.jsonl"


def load(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    files = [str(p) for p in image_files([folder])]
    pixels, failures = decode_all(files, int(SIZE / 0.875))
    assert not failures, failures
    return pixels, torch.tensor([int(Path(f).parent.name) for f in files])


@torch.inference_mode()
def accuracy(model, pixels, labels, prep) -> float:
    model.eval()
    right = 0
    for start in range(0, len(pixels), 200):
        x = augment.eval_batch(pixels[start:start + 200], prep).contiguous(memory_format=torch.channels_last)
        right += int((model(x).argmax(1) == labels[start:start + 200]).sum())
    return round(right / len(labels), 4)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=("source", "adapt"))
    parser.add_argument("views", choices=[v.name for v in site_views.CANDIDATES] + ["as-trained"])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--mode", choices=("control", "teacher"), default="teacher")
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    views = {v.name: v for v in site_views.CANDIDATES}[args.views.replace("as-trained", "as trained")]
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    rendered, rendered_y = load(SIGNS / "synthetic")
    real, real_y = load(SIGNS / "real")
    order = torch.randperm(len(rendered), generator=generator)
    held = len(rendered) // 5
    val, val_y, train, train_y = rendered[order[:held]], rendered_y[order[:held]], rendered[order[held:]], \
        rendered_y[order[held:]]
    model = backbones.create_model("mobilenetv2_100", 43).to(memory_format=torch.channels_last)
    prep = {**backbones.preprocessing(model), "input_size": SIZE}
    checkpoint = ROOT / "benchmarks" / f".probe-source-{views.name.replace(' ', '-')}.pt"
    started = time.perf_counter()

    def emit(**row) -> None:
        row.update(step=args.step, views=views.name, seconds=round(time.perf_counter() - started))
        print(json.dumps(row), flush=True)
        with open(OUT, "a") as out:
            out.write(json.dumps(row) + "\n")

    if args.step == "source":
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        steps = args.epochs * math.ceil(len(train) / 32)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=steps, pct_start=0.15)
        for epoch in range(1, args.epochs + 1):
            model.train()
            backbones.keep_norms_in_eval(model)
            shuffled = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), 32):
                batch = shuffled[start:start + 32]
                loss = F.cross_entropy(model(site_views.show(train[batch], prep, SIZE, views, generator)),
                                       train_y[batch], label_smoothing=0.1)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
            emit(epoch=epoch, val=accuracy(model, val, val_y, prep), real=accuracy(model, real, real_y, prep))
        torch.save(model.state_dict(), checkpoint)
        return
    model.load_state_dict(torch.load(checkpoint))
    teacher = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    emit(mode=args.mode, epoch=0, real=accuracy(model, real, real_y, prep))
    for epoch in range(1, args.epochs + 1):
        used = right = 0
        shuffled = torch.randperm(len(real), generator=generator)
        for start in range(0, len(real), 32):
            new = shuffled[start:start + 32]
            known = torch.randint(0, len(train), (len(new),), generator=generator)
            model.train()
            backbones.keep_norms_in_eval(model)
            loss = F.cross_entropy(model(site_views.show(train[known], prep, SIZE, views, generator)), train_y[known],
                                   label_smoothing=0.1)
            if args.mode == "teacher":
                with torch.no_grad():
                    x = augment.eval_batch(real[new], prep).contiguous(memory_format=torch.channels_last)
                    confidence, pseudo = teacher(x).softmax(1).max(1)
                keep = (confidence >= args.threshold).float()
                strong = site_views.show(real[new], prep, SIZE, site_views.SITE_LIKE, generator)
                loss = loss + (F.cross_entropy(model(strong), pseudo, reduction="none") * keep).mean()
                used += int(keep.sum())
                right += int(((pseudo == real_y[new]).float() * keep).sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for kept, learnt in zip(teacher.parameters(), model.parameters()):
                    kept.mul_(0.99).add_(learnt.detach(), alpha=0.01)
        emit(mode=args.mode, epoch=epoch, real=accuracy(model, real, real_y, prep),
             teacher_real=accuracy(teacher, real, real_y, prep), teacher_val=accuracy(teacher, val, val_y, prep),
             pseudo_labelled=used, pseudo_right=round(right / max(used, 1), 4))


if __name__ == "__main__":
    main()
