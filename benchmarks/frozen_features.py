"""Pooled features of a frozen pretrained backbone for a list of photos, preprocessed the way timm evaluates
(resize, centre crop, normalise): the one pass benchmarks that study a head on frozen features share."""
from __future__ import annotations

import torch

from studio import backbones, fastpath
from studio.data.imaging import open_rgb


def features(files: list[str], model, prep: dict, batch: int = 64) -> torch.Tensor:
    import torchvision.transforms.v2 as T
    side = prep["input_size"]
    to_input = T.Compose([T.ToImage(), T.Resize(side), T.CenterCrop(side), T.ToDtype(torch.float32, scale=True),
                          T.Normalize(prep["mean"], prep["std"])])
    out = []
    with torch.inference_mode():
        for start in range(0, len(files), batch):
            photos = torch.stack([to_input(open_rgb(f)) for f in files[start:start + batch]])
            out.append(backbones.pooled_features(model, fastpath.channels_last(photos)).float())
    return torch.cat(out)
