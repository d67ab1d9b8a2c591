"""Training photos probably in the wrong folder: the ones whose given class a model that never saw them
strongly disagrees with.

Why out-of-fold: the trained model has learnt every training photo's label, right or wrong, so its own
answers on them hide the mistakes. Here each photo is judged by a linear classifier trained on the other
folds' frozen-backbone features (seconds, no backbone pass: the head stage computed the features).

Which disagreements count is confident learning's rule (Northcutt, Jiang and Chuang, JAIR 2021): a photo
labelled `a` is suspect when its probability for another class `b` reaches `b`'s own threshold (how sure
the classifier is, on average, of the photos labelled `b`) and `b` is the likeliest such class. This
adapts to classes that are easy or hard; a photo is listed only when the other class also beats the given
one by MIN_MARGIN (a strong disagreement, not a photo the classifier hesitates over). They are listed the
widest disagreement first (probability of `b` less that of `a`): with 5% of the labels flipped on purpose,
23 of the 24 shown first were flipped ones on clothing and CIFAR-10 (benchmarks/RESULTS.md, "Photos in
the wrong folder").
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from studio.runs.folder import WRONG_FOLDER_FILE as FILE   # every suspect, widest disagreement first

FOLDS = 5
WEIGHT_DECAY = 0.1            # on standardized features: kept the out-of-fold answers from overconfidence
LBFGS_STEPS = 100
MIN_MARGIN = 0.5   # the other class's probability at least this far above the given one's: "strongly disagrees"
                   # (with 5% of clothing's labels flipped: precision 0.51 -> 0.69 for recall 0.67 -> 0.62)
COLUMNS = ("path", "label", "suggested", "label_probability", "suggested_probability", "reason")


@dataclass
class WrongFolder:
    """What the check found: `suspects` (a table of COLUMNS), how many photos it judged, and `skipped_why`
    when it could not judge (too few photos in a class)."""
    suspects: object
    judged: int
    skipped_why: str | None = None

    def summary(self) -> dict:
        """For status.json: counts and words (the photos themselves are in FILE)."""
        return {"suspects": len(self.suspects), "judged": self.judged, "file": FILE, "words": self.words()}

    def words(self) -> str:
        if self.skipped_why:
            return f"Not checked for photos in the wrong folder: {self.skipped_why}."
        if not len(self.suspects):
            return (f"None of the {self.judged:,} training photos looks like it is in the wrong folder (each was "
                    "judged by a model that had not seen it).")
        count = len(self.suspects)
        return (f"{count} of the {self.judged:,} training photos {'look' if count != 1 else 'looks'} like "
                f"{'they are' if count != 1 else 'it is'} in the wrong folder: a model that had not seen "
                f"{'them' if count != 1 else 'it'} gives another class clearly more. Look at them, most certain "
                "first; leave out the ones that really are wrong (or move them) and train again.")


def folds(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """A fold number per photo, each class spread evenly over the folds (stratified), reproducibly."""
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        members = (labels == c).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        fold[members] = torch.arange(len(members)) % count
    return fold


def _linear_probabilities(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                          classes: int) -> torch.Tensor:
    """Softmax probabilities for `test_x` from a regularised linear classifier fitted on the training part
    (standardized with the training part's statistics; a convex fit, so it starts at zero and is exact to
    repeat)."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    linear = torch.nn.Linear(train_x.shape[1], classes)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=LBFGS_STEPS, history_size=10,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(train_x), train_y) + WEIGHT_DECAY * linear.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return linear(test_x).softmax(1)


def out_of_fold_probabilities(features: torch.Tensor, labels: torch.Tensor, classes: int,
                              seed: int = 0) -> torch.Tensor:
    """[photos, classes]: each photo's probabilities from a classifier trained without its fold."""
    features, labels = features.float().cpu(), labels.long().cpu()
    fold = folds(labels, FOLDS, seed)
    probabilities = torch.zeros(len(labels), classes)
    for f in range(FOLDS):
        held = fold == f
        if held.any():
            probabilities[held] = _linear_probabilities(features[~held], labels[~held], features[held], classes)
    return probabilities


def suspects(probabilities: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, suggested class) of the photos confident learning counts as labelled wrong and whose other class
    is at least MIN_MARGIN likelier than the given one, widest disagreement first."""
    labels = labels.long().cpu()
    classes = probabilities.shape[1]
    thresholds = torch.stack([probabilities[labels == c, c].mean() if (labels == c).any() else torch.tensor(1.0)
                              for c in range(classes)])
    above = probabilities >= thresholds
    likeliest = torch.where(above, probabilities, torch.full_like(probabilities, -1.0)).argmax(1)
    rows_all = torch.arange(len(labels))
    margin = probabilities[rows_all, likeliest] - probabilities[rows_all, labels]
    flagged = above.any(1) & (likeliest != labels) & (margin >= MIN_MARGIN)
    rows = flagged.nonzero().squeeze(1)
    rows = rows[margin[rows].argsort(descending=True, stable=True)]
    return rows, likeliest[rows]


def too_few_photos(labels: torch.Tensor, classes: list[str]) -> str | None:
    """Why the photos can't be judged out-of-fold (a class with fewer photos than folds), or None."""
    counts = torch.bincount(labels.long().cpu(), minlength=len(classes))
    smallest = int(counts.argmin())
    if len(classes) < 2 or counts[smallest] < FOLDS:
        return (f"class '{classes[smallest]}' has {int(counts[smallest])} training photo"
                f"{'s' if counts[smallest] != 1 else ''}, and each class needs at least {FOLDS} for the check")
    return None


def find(features: torch.Tensor, labels: torch.Tensor, files: list[str], classes: list[str],
         seed: int = 0) -> WrongFolder:
    """The training photos probably in the wrong folder, from their frozen-backbone features."""
    import pandas as pd
    empty = pd.DataFrame(columns=list(COLUMNS))
    why = too_few_photos(labels, classes)
    if why:
        return WrongFolder(empty, 0, why)
    probabilities = out_of_fold_probabilities(features, labels, len(classes), seed)
    rows, suggested = suspects(probabilities, labels)
    labels = labels.long().cpu()
    records = []
    for row, other in zip(rows.tolist(), suggested.tolist()):
        given = int(labels[row])
        p_given, p_other = float(probabilities[row, given]), float(probabilities[row, other])
        records.append({"path": files[row], "label": classes[given], "suggested": classes[other],
                        "label_probability": round(p_given, 4), "suggested_probability": round(p_other, 4),
                        "reason": f"in '{classes[given]}', but looks like '{classes[other]}' ({p_other:.0%} against "
                                  f"{p_given:.0%} for '{classes[given]}', from a model that had not seen it)"})
    return WrongFolder(pd.DataFrame(records, columns=list(COLUMNS)) if records else empty, len(labels))


def save(found: WrongFolder, run_dir: str | Path) -> None:
    found.suspects.to_csv(Path(run_dir) / FILE, index=False)


def read(run_dir: str | Path):
    """The run's suspects (a table of COLUMNS, widest disagreement first), or None when the run has none
    written (an older run, or one trained without a frozen-backbone stage)."""
    from studio.evaluation import read_run_table
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    return read_run_table(path)
