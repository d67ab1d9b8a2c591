"""Transfer Studio engine: data, backbones, training, evaluation, export, runs.

Nothing in this package imports Gradio; the UI in `components/` and the CLI in
`studio.cli` are both thin layers over these modules, and `studio.api` (`from studio
import train, load`) is the same engine as a Python library.
"""

__version__ = "0.1.0"

_API = ("train", "load", "TrainedModel", "TrainingFailed", "AdaptRefused")
_UNLABELED = ("sort_photos", "label_next", "GroupingError")   # photos nobody has labelled (studio.unlabeled)


def __getattr__(name):
    """`from studio import train, load` without making `import studio` load torch (the CLI's start-up)."""
    if name in _API:
        from studio import api
        return getattr(api, name)
    if name in _UNLABELED:
        from studio import unlabeled
        return getattr(unlabeled, name)
    raise AttributeError(f"module 'studio' has no attribute {name!r}")
