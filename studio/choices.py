"""The named choices a person makes (optimizer, schedule, augmentation strength, what to leave out),
each with its words.

Why apart: the command line and the Advanced panel are built from these, and `studio --help` or a
wrong flag must answer before torch loads (seconds); the modules that act on them import them from here.
"""

OPTIMIZERS = {
    "adamw": "AdamW: adapts each weight's step size; forgiving of the learning rate (default).",
    "sgd": "SGD with Nesterov momentum 0.9: the classic choice; wants a larger learning rate.",
}
SCHEDULES = {
    "warmup-cosine": "warm up over the first 10% of steps, then glide down along a cosine (default).",
    "one-cycle": "rise to the rate over the first 30% of steps, then fall far below it (fastai's one-cycle).",
    "constant": "the same rate from the first step to the last.",
}
# Auto's rates were tuned for AdamW; SGD's steps are not normalised per weight and need
# about ten times the rate for a similar effect (the tutorial's 0.001 SGD barely moves a head)
LR_SCALE = {"adamw": 1.0, "sgd": 10.0}

STRENGTHS = {
    "light": {"scale": (0.6, 1.0), "jitter": 0.05,
              "words": "crops keep at least 60% of each photo, mirror images, faint colour changes."},
    "normal": {"scale": (0.35, 1.0), "jitter": 0.1,
               "words": "crops keep at least 35% of each photo, mirror images, light colour changes."},
    "strong": {"scale": (0.15, 1.0), "jitter": 0.25,
               "words": "crops as small as 15% of a photo, mirror images, clear colour changes."},
    # for a model that will meet photos from other cameras or places: how such photos differ (the object's
    # size in the frame, sharpness, light), never a mirror image (arrows, text and hands keep their sense)
    "other-cameras": {"smallest": 0.6, "softest": 0.25, "jitter": 0.4, "mirror": False,
                      "words": "for photos from other cameras or places: the object shown smaller in the frame "
                               "and off centre, softer and in other light; never mirrored."},
}

DEFAULT_EXCLUDE = ("exact_duplicates", "train_val_leak")  # safe to leave out without asking
EXCLUDABLE = ("exact_duplicates", "near_duplicates", "conflicting_labels", "train_val_leak", "tiny_images",
              "unreadable", "outliers")
