"""Unlabeled photos, measured: do the groups match the true classes, do a few labels plus many
unlabeled photos beat the labels alone, and does *Label these next* reach good accuracy with fewer labels?

    python benchmarks/unlabeled_bench.py [../shared/datasets/cifar10_subset ...] [--out FILE.jsonl]
    python benchmarks/unlabeled_bench.py --trainer [DATASETS] [--seeds 3]   # `studio train --unlabeled` itself

Each dataset has train/ and val/ class folders. The train photos' folder names are read only to score
and to simulate a person labelling; the studio's functions never see them. All on the pretrained
backbone's frozen features (the studio's default backbone), computed once per dataset.
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from studio.unlabeled import label_next, photo_features, sort_photos
from studio.unlabeled.semisupervised import labelled_only, self_train

DEFAULT = ["../shared/datasets/cifar10_subset", "../shared/datasets/clothing", "../shared/datasets/hymenoptera_data"]


def split_features(root: Path, split: str):
    found = photo_features([root / split])
    labels = [Path(p).parent.name for p in found.paths]
    return found, labels


def accuracy(head, features, labels) -> float:
    with torch.no_grad():
        return float((head(features).argmax(1) == labels).float().mean())


def per_class_sample(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for k in labels.unique():
        members = (labels == k).nonzero().flatten()
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picks)


def clustering(train, names) -> dict:
    out = {}
    for label, groups in (("auto", None), ("true_k", len(set(names)))):
        started = time.perf_counter()
        grouping = sort_photos(train, groups=groups)
        group_of = grouping.labels()
        predicted = [group_of[p] for p in train.paths]
        out[label] = {"groups": len(grouping.groups), "ari": round(adjusted_rand_score(names, predicted), 3),
                      "nmi": round(normalized_mutual_info_score(names, predicted), 3),
                      "seconds": round(time.perf_counter() - started, 1)}
    return out


def semi_supervised(train, y, val, vy, classes: int, per_class: int, seeds=(0, 1, 2)) -> dict:
    rows = []
    for seed in seeds:
        keep = per_class_sample(y, per_class, seed)
        rest = torch.ones(len(y), dtype=torch.bool)
        rest[keep] = False
        alone = accuracy(labelled_only(train.features[keep], y[keep], classes, seed=seed), val.features, vy)
        head, _ = self_train(train.features[keep], y[keep], train.features[rest], classes, seed=seed)
        rows.append((alone, accuracy(head, val.features, vy)))
    alone = sum(r[0] for r in rows) / len(rows)
    semi = sum(r[1] for r in rows) / len(rows)
    return {"labels_per_class": per_class, "labelled_only": round(alone, 4), "with_unlabeled": round(semi, 4),
            "gain": round(semi - alone, 4), "runs": [[round(a, 4), round(b, 4)] for a, b in rows]}


def labels_to_reach(train, y, val, vy, classes: int, order: str, goal: float, step: int, seed: int = 0,
                    most: int = 2000, grouping=None) -> int | None:
    """Labels (added `step` at a time, in the suggested or a random order) until the labelled-only head
    reaches `goal` on the validation photos; None if `most` labels do not."""
    row = {p: i for i, p in enumerate(train.paths)}
    rng = random.Random(seed)
    shuffled = list(train.paths)
    rng.shuffle(shuffled)
    labelled: list[str] = []
    while len(labelled) < min(most, len(train.paths)):
        if order == "random":
            labelled = shuffled[:len(labelled) + step]
        else:
            probabilities = None
            if len({int(y[row[p]]) for p in labelled}) >= 2:
                head = _head_on(train, y, labelled, classes, seed)
                with torch.no_grad():
                    probabilities = head(train.features).softmax(1)
            labelled += [pick["path"] for pick in label_next(grouping, labelled, step, probabilities, seed)]
        if len({int(y[row[p]]) for p in labelled}) >= 2 and \
                accuracy(_head_on(train, y, labelled, classes, seed), val.features, vy) >= goal:
            return len(labelled)
    return None


def _head_on(train, y, labelled, classes, seed):
    row = {p: i for i, p in enumerate(train.paths)}
    rows = torch.tensor([row[p] for p in labelled])
    return labelled_only(train.features[rows], y[rows], classes, seed=seed)


def trainer_runs(folder: Path, per_class: int, seeds, modes=("all", "auto")) -> list[dict]:
    """The studio's own training, labels alone against labels plus the rest of train/ as unlabeled
    photos: `per_class` labelled photos of each class (seeded), the dataset's own val/ (and test/)."""
    from studio import train
    from studio.data.imaging import image_files
    rows = []
    by_class = {c.name: sorted(map(str, image_files([c]))) for c in sorted((folder / "train").iterdir()) if c.is_dir()}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as scratch:
            root, pile = Path(scratch) / "data", Path(scratch) / "unlabeled"
            pile.mkdir()
            rng, counter = random.Random(seed), itertools.count()
            for name, files in by_class.items():
                chosen = set(rng.sample(files, per_class))
                (root / "train" / name).mkdir(parents=True)
                for path in files:   # unlabeled names carry no class: a running number
                    number = next(counter)
                    target = (root / "train" / name / Path(path).name if path in chosen
                              else pile / f"{number:05d}{Path(path).suffix}")
                    target.symlink_to(Path(path).resolve())
            for split in ("val", "test"):
                if (folder / split).is_dir():
                    (root / split).symlink_to((folder / split).resolve())
            for mode in modes:
                row = {"seed": seed, "freeze": mode}
                for label, extra in (("labelled_only", {}), ("with_unlabeled", {"unlabeled": pile})):
                    started = time.perf_counter()
                    model = train(root, freeze=mode, seed=seed, out=Path(scratch) / f"{mode}-{label}", **extra)
                    status = json.loads((model.run_dir / "status.json").read_text())
                    row[label] = {"val": round(model.accuracy, 4),
                                  "test": (status.get("test") or {}).get("accuracy"),
                                  "seconds": round(time.perf_counter() - started, 1),
                                  "pseudo_labelled": (status.get("unlabeled") or {}).get("pseudo_labelled")}
                row["gain"] = round(row["with_unlabeled"]["val"] - row["labelled_only"]["val"], 4)
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=DEFAULT)
    parser.add_argument("--out", default="benchmarks/unlabeled-bench.jsonl")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--trainer", action="store_true", help="measure `studio train --unlabeled` itself")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--modes", default="all,auto", help="freeze settings to compare (comma-separated)")
    args = parser.parse_args()
    if args.trainer:
        for folder in map(Path, args.datasets):
            started = time.perf_counter()
            rows = trainer_runs(folder, args.per_class, range(args.seeds), tuple(args.modes.split(",")))
            record = {"dataset": folder.name, "trainer": rows, "labels_per_class": args.per_class,
                      "seconds": round(time.perf_counter() - started, 1)}
            with open(args.out, "a") as handle:
                handle.write(json.dumps({**record, "date": time.strftime("%Y-%m-%d")}) + "\n")
        return
    for folder in map(Path, args.datasets):
        started = time.perf_counter()
        train, names = split_features(folder, "train")
        val, val_names = split_features(folder, "val")
        classes = sorted(set(names))
        y = torch.tensor([classes.index(n) for n in names])
        vy = torch.tensor([classes.index(n) for n in val_names])
        record = {"dataset": folder.name, "backbone": train.backbone, "train": len(train.paths), "val": len(val.paths),
                  "feature_seconds": round(time.perf_counter() - started, 1)}
        record["clustering"] = clustering(train, names)
        record["semi_supervised"] = semi_supervised(train, y, val, vy, len(classes), args.per_class)
        full = accuracy(labelled_only(train.features, y, len(classes)), val.features, vy)
        step = max(2, len(classes))
        goal, k = 0.9 * full, len(classes)
        record["labels_to_90"] = {"full_accuracy": round(full, 4), "goal": round(goal, 4), "step": step,
                                  "suggested": labels_to_reach(train, y, val, vy, k, "suggested", goal, step,
                                                               grouping=sort_photos(train)),
                                  "random": [labels_to_reach(train, y, val, vy, k, "random", goal, step, s)
                                             for s in (0, 1, 2)]}
        record["seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps(record), flush=True)
        with open(args.out, "a") as handle:
            handle.write(json.dumps({**record, "date": time.strftime("%Y-%m-%d")}) + "\n")


if __name__ == "__main__":
    main()
