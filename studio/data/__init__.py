"""The data side of the engine: from the user's files to the pixels a run trains on.

- `sources`: read a folder, zip or labels CSV into a `Dataset`, listing every file not used and why
  (`open_dataset`, `check_trainable`, `DatasetError`, `prefix_preview`); it picks the layout and
  accounts for everything the readers did not take.
- `samples`: what a source is read into: `Dataset` (the samples table: path, label, split), `DatasetError`,
  the words each skip reason starts with, the stratified split.
- `layouts`: the readers of class folders, split folders, a labels CSV and class-prefixed file names.
- `zips`: unpacking an upload safely, once, and the manifest of what was not unpacked.
- `imaging`: open any image file as RGB and decode the square a network sees.
- `checks`: the dataset doctor (`diagnose`), and leaving files out (`apply_exclusions`, `leave_out_files`);
  `findings`: what it says (`Finding`) and the findings read off the samples table.
- `outliers`: the optional embedding-based suggestion of photos that look out of place.
- `pixels`: the one pixel cache (`SquareCache`, filled by the doctor's pass; `CachedPixels`,
  `StreamedPixels` from disk; `decode_all`) and its memory budgets.
- `workspace`: datasets made in the browser, kept in the workspace.

Import from the modules; this package re-exports nothing.
"""
