"""After training: look for training photos that are probably in the wrong folder (`studio.data.wrong_folder`),
from the features the head stage already computed with the pretrained backbone (no extra backbone pass)."""
from __future__ import annotations

from studio.data import wrong_folder

NOT_COMPUTED = ("Not checked for photos in the wrong folder: the check judges each training photo from the "
                "pretrained backbone's features, and this run did not compute them (it fine-tuned from the first "
                "epoch, or was resumed after its head stage). Runs that train the new head alone first (Auto, "
                "the default) do.")


def run(ctx) -> dict | None:
    """Write the suspects to the run folder; returns the summary for status.json (None on a rank other than 0,
    which writes no run folder of its own)."""
    if ctx.ranks is not None and not ctx.ranks.is_main:
        return None
    if ctx.task.name == "multi-label":
        return None   # a photo with several labels has no one folder to be wrong about
    kept = ctx.kept_features
    if kept is None or kept.every_train is None:
        return {"suspects": 0, "judged": 0, "words": NOT_COMPUTED}
    ctx.run.update(phase="Looking for training photos in the wrong folder")
    try:
        found = wrong_folder.find(kept.every_train, ctx.train_y, ctx.train_files, ctx.classes, ctx.cfg.seed)
        wrong_folder.save(found, ctx.run.folder.path)
    except Exception:   # an optional check after the model is kept: its failure must not fail the run
        ctx.run.log.exception("The wrong-folder check failed")
        return {"suspects": 0, "judged": 0, "words": "Not checked for photos in the wrong folder: the check failed "
                f"(the details are in {ctx.run.folder.log}); the model is not affected."}
    return found.summary()
