"""Multi-label tasks: photos that show several things at once (issue 22).

- `labels`: read a labels CSV whose label column holds several labels (`cat;dog`, the separator detected or
  given) or one 0/1 column per label; recognise such data; the data check's multi-label figures.
- `metrics`: mAP, micro and macro F1, per-label precision, recall, F1, support and ROC AUC; per-label decision
  thresholds tuned on validation; the loss weights for rare labels.

Import from the modules; this package re-exports nothing.
"""
