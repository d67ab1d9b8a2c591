"""Best's first decision: which backbone, when the person left it to the studio.

With minutes to spend, the backbone matters more than any other setting (on the clothing photos the
advisor's pick trained to 0.911 on test, the default MobileNetV2 to 0.841: benchmarks/RESULTS.md), so a
time budget of ADVISE_FROM_SECONDS or more first ranks the backbones at hand on a sample of the photos
(`models.advisor`, seconds per backbone) and trains the one it ranks first. The time it takes counts in
the budget; the search and the epochs then fit in what is left.
"""
from __future__ import annotations

from studio import backbones, budgets
from studio.runs import Run
from studio.training.config import TrainConfig

ADVISE_FROM_SECONDS = 120     # shorter budgets keep the default backbone: ranking costs 15-50 s on a CPU


def should_advise(cfg: TrainConfig) -> bool:
    seconds = budgets.wall_seconds(cfg.budget)
    left_to_studio = "backbone" in cfg.choices   # resolved() chose the default, so nobody asked for one
    return (cfg.freeze == "auto" and left_to_studio and seconds is not None and seconds >= ADVISE_FROM_SECONDS
            and not cfg.random_weights)


def choose(cfg: TrainConfig, run: Run) -> None:
    """Rank the usable backbones on the run's own training and validation photos; train the first."""
    from studio.models.advisor import advise
    run.update(phase="Ranking the backbones on your photos")
    advice = advise(cfg.data, seed=cfg.seed, prefix_separator=cfg.prefix_separator,
                    val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
                    progress=lambda words: run.update(phase=words))
    ranking = advice["ranking"]
    if not ranking:
        return
    best, default = ranking[0], next((a for a in ranking if a["backbone"] == cfg.backbone), None)
    cfg.backbone = best["backbone"]
    entry = backbones.lookup(best["backbone"])
    title = entry.title if entry else best["backbone"]
    against = (f", against {default['knn_accuracy']:.0%} for the default {default['backbone']}"
               if default and default is not best else "")
    run.record_setting("backbone", cfg.backbone,
                       f"{cfg.backbone} ({title}): the advisor ranked it first of {len(ranking)} on a sample of your "
                       f"training and validation photos ({best['knn_accuracy']:.0%} by nearest neighbours{against}); "
                       "a time budget has room for a slower, stronger backbone.")
