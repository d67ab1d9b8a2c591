"""The data side of the engine: from the user's files to the pixels a run trains on.

- `sources`: read a folder, zip or labels CSV into a `Dataset` (samples: path, label, split),
  listing every file not used and why; `open_dataset`, `check_trainable`, `DatasetError`.
- `imaging`: open any image file as RGB and decode the square a network sees.
- `checks`: the dataset doctor (`diagnose`), and leaving files out (`apply_exclusions`, `leave_out_files`).
- `outliers`: the optional embedding-based suggestion of photos that look out of place.
- `pixels`: the one pixel cache (decoded squares in memory, or streamed from disk) and its memory budgets.
- `workspace`: datasets made in the browser, kept in the workspace.

Import from the modules; this package re-exports nothing.
"""
