"""Training: a config in, a run folder out.

- `config`: `TrainConfig` and what the studio decides for the fields left to it, with reasons.
- `context`: `prepare()` reads, checks and decodes the data and loads the model into a `TrainContext`.
- `loop`: the `Stage` protocol and `run_stage`, the only epoch loop (validate, best, checkpoint, announce).
- `head`, `finetune`: the two stages today (the head on frozen features; fine-tuning).
- `best`: `BestTracker` (best epoch, early stopping) and the overfitting advice.
- `plan`: the config (or Auto's decisions) as a sequence of stages.
- `trainer`: `Trainer`, and starting or resuming a run in the background.
"""
