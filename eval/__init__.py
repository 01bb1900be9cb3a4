"""Objective evaluation of vocoder and text-to-speech output, to the fixed definitions of ../shared/spec/metrics.md.

Modules: ``registry`` (the metrics and their metadata), ``pair`` (loading a reference/generated pair,
the length policy and the alignments ``--align lag|dtw``), ``metrics.*`` (one module per metric family;
``asr``: wer/cer by an offline recogniser), ``runner`` (batch scoring of two
directories with a cache and worker processes), ``stats`` (bootstrap CIs, paired comparison, tidy
tables), ``mlflow_log`` (logging a summary to the active MLflow run), ``hooks`` (a training-time
validation hook), ``cli`` (``python -m eval``).

Importing the package is cheap: the metric libraries are imported only when a metric is computed.
"""
