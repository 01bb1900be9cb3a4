"""Run one sweep trial of either family: the finished-trial check, the lock, then the family's trainer.

Above both trial modules (``experiments.trial``: the plumbing both families share and the vocoder's trial;
``experiments.acoustic_trial``: the acoustic one), so that neither imports the other.
"""
from __future__ import annotations

import logging
from typing import Any

from experiments.spec import Trial
from experiments.trial import (TrialContext, finished_result, report_to_tune, run_dir_of, train_vocoder_trial,
                               trial_lock)

log = logging.getLogger("experiments.trial")  # the trial's log lines, as before this module existed


def run_trial(ctx: TrialContext, trial: Trial, use_ray: bool = False) -> dict[str, Any]:
    """Train one trial to its budget (resuming), log artefacts, write trial_result.json; returns it."""
    run_dir = run_dir_of(ctx, trial)
    done = finished_result(run_dir, trial)
    if done is not None:
        log.info("trial %s already finished at step %d; not training it again", trial.name, done["step"])
        if use_ray:
            report_to_tune(done)
        return done
    with trial_lock(run_dir, ctx.lock_timeout_s):
        done = finished_result(run_dir, trial)  # another process may have finished it while we waited
        if done is not None:
            if use_ray:
                report_to_tune(done)
            return done
        if trial.family == "acoustic":  # imported on use: a vocoder sweep never loads the acoustic trial code
            from experiments.acoustic_trial import train_acoustic_trial

            return train_acoustic_trial(ctx, trial, run_dir, use_ray)
        return train_vocoder_trial(ctx, trial, run_dir, use_ray)
