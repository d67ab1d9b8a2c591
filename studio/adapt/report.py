"""What an adaptation did, and why it said no, in numbers and plain words.

The class-mix check: self-training assumes the new site shows the same classes in roughly the same
shares. The model's (calibrated) answers on the new photos, averaged, estimate the new site's mix;
a class that gets under a quarter of its share of the training photos is "missing". When half the
classes or more are missing, the new photos hold a very different mix (or other things altogether),
and adapting would push photos into the wrong classes, so it is refused. The estimate comes from a
model that is itself less accurate on the new site, which blurs the mix: the rule errs towards
adapting, and catches the cases the literature warns of (one or two classes only, other objects).
"""
from __future__ import annotations

import torch

MISSING_BELOW = 0.25      # a class whose estimated share is under this part of its training share is missing


def class_mix(probabilities: torch.Tensor, known_labels: torch.Tensor, classes: list[str]) -> dict:
    """{different, missing: [class], shares: {class: estimated share}, words}."""
    expected = torch.bincount(known_labels, minlength=len(classes)).float()
    expected = expected / expected.sum()
    estimated = probabilities.float().mean(0)
    missing = [classes[k] for k in range(len(classes)) if estimated[k] < MISSING_BELOW * expected[k]]
    different = len(classes) >= 2 and len(missing) * 2 >= len(classes)
    shares = {name: round(float(share), 4) for name, share in zip(classes, estimated)}
    if different:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        words = (f"The new photos seem to hold a very different mix of classes from the training photos: the model "
                 f"finds almost none of {len(missing)} of the {len(classes)} classes ({shown}) among them, so they "
                 "may show only a few of the classes, or other things altogether.")
    elif missing:
        words = (f"The model finds few new photos of {', '.join(missing[:8])}; the mix of classes looks a little "
                 "different from the training photos, which is fine.")
    else:
        words = "The new photos seem to hold the same classes as the training photos, in similar shares."
    return {"different": different, "missing": missing, "shares": shares, "words": words}


def worse_words(before: float, after: float, allowed: float) -> str:
    return (f"Adapting was refused: the labelled validation photos would drop from {before:.1%} to {after:.1%} "
            f"correct, more than the {allowed:.1%} allowed. The new photos pulled the model somewhere wrong "
            "(they may show other classes or look too different to learn from without labels). Label a few of "
            "them and add them to the training photos instead; the model was left as it is.")


def site_worse_words(photos: int, before: float, after: float) -> str:
    return (f"Adapting was refused: on your {photos} labelled photos from the new site the adapted model would be "
            f"right {after:.1%} of the time, against {before:.1%} for the model as it is. Its most confident "
            "answers on the new photos were too often wrong to learn from. Label more of them and add them to the "
            "training photos instead; the model was left as it is.")


def refused(base: dict, reason: str) -> dict:
    return {**base, "refused": True, "reason": reason, "words": reason}


def _views_words(views: dict | None) -> str:
    if not views:
        return ""
    return f" While adapting, {views['words']}."


def accepted(base: dict) -> dict:
    """The report of an adaptation that was kept, with its words."""
    shift = ""
    if base.get("shift_before") is not None and base.get("shift_after") is not None:
        shift = (f" The new photos' shift went from {base['shift_before']:.2f} to {base['shift_after']:.2f} "
                 "(about 1 is as familiar as the validation photos).")
    skipped = f" {len(base['unreadable'])} could not be read and were left out." if base["unreadable"] else ""
    check = base.get("site_check")
    checked = (f" On your {check['photos']} labelled new-site photos: {check['before']:.1%} right before, "
               f"{check['after']:.1%} after." if check else
               " Without labelled photos from the new site nothing can confirm it works better there: check its "
               "answers on a few before relying on it (studio adapt --check-with).")
    words = (f"Adapted on {base['photos_used']} new photos; {base['pseudo_labelled']} of them were learnt from "
             f"with the label the model was surest of.{skipped}{shift}{_views_words(base.get('views'))}"
             f" Validation accuracy (labelled photos) "
             f"{base['val_accuracy_before']:.1%} before, {base['val_accuracy_after']:.1%} after (at most "
             f"{base['allowed_drop']:.1%} worse was allowed).{checked} {base['class_mix']['words']}")
    return {**base, "refused": False, "reason": None, "words": words}
