"""How long one "where the model looked" (Grad-CAM) takes for one photo, per backbone, on this machine.

Warm figures (the explainer made once, as Try it keeps it): the median of 7 photos after one warm-up,
beside one plain prediction of the same photo, so the price of the heatmap reads as a ratio.

    python benchmarks/explain_latency.py [--backbones mobilenetv2_100,resnet50,...]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import timm
import torch

from studio import backbones, paths
from studio.explain import Explainer


def photos(count: int) -> list[Path]:
    return sorted((paths.EXAMPLE_DATASET / "val" / "bees").glob("*.jpg"))[:count]


def measure(name: str) -> dict:
    if backbones.lookup(name) is not None and backbones.lookup(name).package:
        model = backbones.create_model(name, num_classes=2)
    else:
        model = timm.create_model(name, pretrained=False, num_classes=2)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.05)
    model.eval()
    prep = backbones.preprocessing(model)
    explainer = Explainer(model, ["ants", "bees"], prep)
    shots = photos(8)
    explainer.explain(shots[0])   # warm-up: the first call builds the hooks
    explain_ms, predict_ms = [], []
    for photo in shots[1:]:
        started = time.perf_counter()
        explainer.explain(photo)
        explain_ms.append((time.perf_counter() - started) * 1000)
        x = torch.randn(1, 3, prep["input_size"], prep["input_size"])
        started = time.perf_counter()
        with torch.inference_mode():
            model(x)
        predict_ms.append((time.perf_counter() - started) * 1000)
    return {"backbone": name, "explain_ms": round(statistics.median(explain_ms)),
            "forward_ms": round(statistics.median(predict_ms)), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="mobilenetv2_100,tf_efficientnet_lite0,resnet50,convnext_tiny,"
                                               "vit_small_patch16_224")
    for name in parser.parse_args().backbones.split(","):
        print(json.dumps(measure(name)), flush=True)


if __name__ == "__main__":
    main()
