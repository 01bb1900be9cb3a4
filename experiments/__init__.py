"""The benchmark pipeline around the ``priorgrad`` library.

Modules: ``spec`` (the sweep/tracking/evaluate/sizes params sections and trial expansion),
``trial`` (one trial: train or resume, tracked), ``trackers`` (MLflow and Ray Tune trackers),
``sweep`` (the sweep stage: Ray Tune or sequential backend), ``convergence`` (trials.json and the
convergence table), ``evaluate`` (the evaluate stage), ``corpus`` (the corpus stage). Each stage is
``python -m experiments.<stage> --help``.
"""
