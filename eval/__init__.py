"""Objective evaluation of vocoder output, to the fixed definitions of ../shared/spec/metrics.md.

Modules: ``registry`` (the metrics and their metadata), ``pair`` (loading a reference/generated pair
and the length policy), ``metrics.*`` (one module per metric family), ``runner`` (batch scoring of two
directories with a cache and worker processes), ``stats`` (bootstrap CIs, paired comparison, tidy
tables), ``mlflow_log`` (logging a summary to the active MLflow run), ``hooks`` (a training-time
validation hook), ``cli`` (``python -m eval``).

Importing the package is cheap: the metric libraries are imported only when a metric is computed.
"""
