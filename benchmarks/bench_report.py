"""The bench's ratios, the goals they are held to, and the table a person reads."""
from __future__ import annotations

# name -> (direction, threshold, devices it is a goal on)
GOALS = {
    "frozen_total_vs_tutorial": ("<=", 0.25, ("cpu",)),
    "frozen_best_val_accuracy": (">=", 0.95, ("cpu", "cuda")),
    "finetune_epoch_vs_tutorial": ("<=", 0.6, ("cpu",)),
    # issue 5: Auto at least as accurate as the better tutorial run, in no more time than the tutorial fine-tune
    "auto_accuracy_minus_best_tutorial": (">=", 0.0, ("cpu", "cuda")),
    "auto_total_vs_tutorial_finetune_total": ("<=", 1.0, ("cpu", "cuda")),
    "finetune_vs_raw_bf16": (">=", 0.7, ("cuda",)),
    "finetune_vs_tutorial_speedup": (">=", 14.0, ("cuda",)),
    "frozen_run_vs_one_pass": ("<=", 1.5, ("cuda",)),
}
ACCURACY_GOALS = ("frozen_best_val_accuracy", "auto_accuracy_minus_best_tutorial")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def ratios_and_goals(runs: dict, device: str, data_images: int) -> tuple[dict, dict, dict]:
    """Ratios from the unrounded measurements, and the goals that apply on this device."""
    def get(run: str, key: str):
        return runs[run][key] if run in runs else None

    ratios = {
        "frozen_total_vs_tutorial": _ratio(get("studio_frozen", "_total"), get("tutorial_frozen", "_total")),
        "finetune_epoch_vs_tutorial": _ratio(get("studio_finetune", "_steady"), get("tutorial_finetune", "_steady")),
    }
    extra = {}
    if device == "cuda":
        ratios["finetune_vs_raw_bf16"] = _ratio(get("studio_finetune", "_ips"), get("raw_bf16", "_train_ips"))
        ratios["finetune_vs_tutorial_speedup"] = _ratio(get("studio_finetune", "_ips"),
                                                        get("tutorial_finetune", "_ips"))
        ratios["finetune_vs_raw_bf16_at_engine_batch"] = _ratio(get("studio_finetune", "_ips"),
                                                                get("raw_bf16", "_engine_ips"))
        forward_ips = get("raw_bf16", "_forward_ips")
        synthetic = data_images / forward_ips if forward_ips else None
        ratios["frozen_run_vs_synthetic_forward"] = _ratio(get("studio_frozen", "_total"), synthetic)
        if synthetic is not None:
            extra = {"synthetic_forward_seconds": round(synthetic, 4), "synthetic_forward_images": data_images}
    ratios["frozen_run_vs_one_pass"] = _ratio(get("studio_frozen", "_total"), get("one_pass", "_total"))
    ratios = {k: (None if v is None else round(v, 4)) for k, v in ratios.items()}

    tutorial_best = max((get(t, "best_val_accuracy") for t in ("tutorial_frozen", "tutorial_finetune")
                         if get(t, "best_val_accuracy") is not None), default=None)
    auto_accuracy = get("studio_auto", "best_val_accuracy")
    ratios["auto_total_vs_tutorial_finetune_total"] = (
        None if get("studio_auto", "_total") is None or not get("tutorial_finetune", "_total")
        else round(get("studio_auto", "_total") / get("tutorial_finetune", "_total"), 4))
    values = dict(ratios, frozen_best_val_accuracy=get("studio_frozen", "best_val_accuracy"),
                  auto_accuracy_minus_best_tutorial=None if auto_accuracy is None or tutorial_best is None
                  else round(auto_accuracy - tutorial_best, 5))
    goals = {}
    for name, (direction, threshold, devices) in GOALS.items():
        value = values.get(name)
        if device not in devices or value is None:
            continue
        met = value <= threshold if direction == "<=" else value >= threshold
        goals[name] = {"value": value, "goal": f"{direction} {threshold:g}", "met": bool(met)}
    return ratios, goals, extra


# ---------------------------------------------------------------- the whole bench
# ---------------------------------------------------------------- the table

def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"studio bench: {report['backbone']} on {report['dataset']} "
        f"({report['images']['train']} train / {report['images']['val']} val images), {report['epochs']} epoch(s)"
        + (", RANDOM weights (timing only)" if report.get("weights", "").startswith("random") else ""),
        f"machine: {machine['device_name']} ({machine['device']}), {machine['cores']} cores, torch {machine['torch']}",
        "",
        f"{'run':<20} {'epoch seconds':<28} {'total s':>9} {'img/s':>10} {'best val acc':>13}",
    ]
    for name, run in report["runs"].items():
        if name == "raw_bf16":
            lines.append(f"{'raw bf16 (synthetic)':<20} {'batch ' + str(run['batch_size']):<28} {'-':>9} "
                         f"{_fmt(run['train_images_per_second'], 1):>10} {'-':>13}"
                         f"   forward {_fmt(run['forward_images_per_second'], 1)} img/s")
            if run.get("train_images_per_second_at_engine_batch"):
                lines.append(f"{'raw bf16 (synthetic)':<20} {'batch ' + str(run['engine_batch_size']):<28} "
                             f"{'-':>9} {_fmt(run['train_images_per_second_at_engine_batch'], 1):>10} {'-':>13}")
            continue
        if name == "one_pass":
            timings = 'decode ' + _fmt(run['decode_seconds']) + ' + forward ' + _fmt(run['forward_seconds'])
            lines.append(f"{'one pass over data':<20} {timings:<28} "
                         f"{_fmt(run['seconds']):>9} {_fmt(run['images_per_second'], 1):>10} {'-':>13}")
            continue
        epochs = ", ".join(f"{s:.2f}" for s in run["epoch_seconds"])
        if len(epochs) > 28:
            epochs = epochs[:25] + "..."
        lines.append(f"{name:<20} {epochs:<28} {_fmt(run['total_seconds']):>9} "
                     f"{_fmt(run['images_per_second'], 1):>10} {_fmt(run['best_val_accuracy'], 3):>13}")
    lines += ["", "ratios:"]
    for name, value in report["ratios"].items():
        goal = report["goals"].get(name)
        verdict = f"   goal {goal['goal']}: {'met' if goal['met'] else 'NOT met'}" if goal else ""
        lines.append(f"  {name:<34} {_fmt(value, 3):>8}{verdict}")
    accuracy = report["goals"].get("frozen_best_val_accuracy")
    if accuracy:
        lines.append(f"  {'frozen_best_val_accuracy':<34} {_fmt(accuracy['value'], 3):>8}   goal {accuracy['goal']}: "
                     f"{'met' if accuracy['met'] else 'NOT met'}")
    lines += [f"warning: {text}" for text in report.get("warnings", [])]
    return "\n".join(lines)
