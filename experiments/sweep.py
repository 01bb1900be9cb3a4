"""The sweep stage: prior x size x seed x budget, run by Ray Tune or sequentially, then its tables.

    python -m experiments.sweep --params params.yaml --features data/features \
        --stats data/prior_stats.json --out runs/sweep
    python -m experiments.sweep --family acoustic --params params.yaml --features data/acoustic \
        --stats data/acoustic_stats/phoneme_stats.npz --out runs/acoustic/sweep

The vocoder's design is ``sweep:`` (priors, sizes, seeds, budgets), the acoustic model's is ``acoustic_sweep:``;
each family is a descriptor of experiments/spec.py (``VOCODER``, ``ACOUSTIC``), and both run through the same
machinery below, with the backend, resources, Ray address and retries of ``sweep:``.

Resuming: every trial trains in ``OUT/trials/<trial>-<hash>/`` and continues from its own last
checkpoint; a finished trial (``trial_result.json``) is never trained again. Under Ray the Tune
experiment lives in ``OUT/tune/<sweep>-<id>/`` and an interrupted one is restored
(``Tuner.restore(resume_errored=True)``); a failed trial is retried ``sweep.max_failures`` times.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from experiments.convergence import final_metrics, write_tables
from experiments.spec import (FAMILIES, SweepConfig, Trial, TrialContext, expand_trials, family_of, project_root,
                              sweep_config, sweep_id, tracking_config)
from experiments.trackers import TrackingUnavailable, default_tracking_uri, ensure_experiment
from experiments.trial import finished_result, git_commit, run_dir_of, run_trial
from priorgrad.core.config import Params, load_params
from priorgrad.core.logs import setup_logging

log = logging.getLogger("experiments.sweep")


class SweepFailed(RuntimeError):
    """Some trials did not finish; the message names them and their errors."""


@dataclasses.dataclass
class Design:
    """What a family's sweep trains: its name, trials, validation metrics, inputs and experiment description."""

    family: str
    name: str
    trials: list[Trial]
    validation_metrics: list[str]
    inputs: list[tuple[str, str]]  # (file name under --features or "" for --stats itself, what it is)
    description: str


def design_of(params: Params, family: str) -> Design:
    try:
        fam = family_of(family)
    except ValueError:
        raise ValueError(f"--family: {family!r} is not one of {list(FAMILIES)}") from None
    d = fam.design(params)
    trials = expand_trials(params, fam.name)
    return Design(fam.name, d.name, trials, fam.validation_metrics(d), list(fam.inputs), fam.summary(d, len(trials)))


def make_context(params: Params, design: Design, features: Path, stats: Path, out: Path,
                 root: Path) -> TrialContext:
    s, t = sweep_config(params), tracking_config(params)
    trials = design.trials
    sid = sweep_id(design.name, trials)
    experiment = f"{t.experiment_prefix}-{design.name}-{sid}"
    uri: str | None = None
    if t.enabled:
        uri = default_tracking_uri(root, t.uri)
        try:
            # Created here, once, so concurrent trials never race to create the store or the experiment.
            ensure_experiment(uri, experiment, root / "mlartifacts", t.timeout_s,
                              description=f"{design.description} Sweep id {sid}.")
            log.info("MLflow: experiment %r at %s", experiment, uri)
        except TrackingUnavailable as e:
            log.warning("%s; the sweep runs without MLflow tracking (metrics stay in each trial's "
                        "metrics.jsonl)", e)
            uri = None
    return TrialContext(
        base_params=params.to_dict(), features=str(features.resolve()), stats=str(stats.resolve()),
        trials_dir=str((out / "trials").resolve()), sweep_id=sid, sweep_name=design.name,
        git_commit=git_commit(root), tracking_uri=uri, experiment=experiment,
        artifact_root=str((root / "mlartifacts").resolve()), tracking_timeout_s=t.timeout_s,
        n_audio_samples=t.n_audio_samples, validation_metrics=design.validation_metrics,
        cpus_per_trial=s.cpus_per_trial)


def run_sequential(ctx: TrialContext, trials: list[Trial]) -> dict[str, str]:
    """Runs the trials in this process, one after the other (no Ray import). Returns {trial: error}."""
    errors = {}
    for i, trial in enumerate(trials, 1):
        log.info("trial %d/%d: %s", i, len(trials), trial.name)
        try:
            run_trial(ctx, trial, use_ray=False)
        except Exception as e:  # one failed trial must not lose the others
            log.exception("trial %s failed", trial.name)
            errors[trial.name] = f"{type(e).__name__}: {e}"
    return errors


def _ray_temp_dir() -> str:
    # Ray puts unix sockets under its temp dir and their paths must stay under ~107 bytes,
    # so it cannot live in a deep project path; one per user keeps runs of different users apart.
    return str(Path(tempfile.gettempdir()) / f"ray-{os.getuid()}")


def _use_cluster_token() -> None:
    """Ray >= 2.5x starts clusters with token authentication when a token exists (~/.ray/auth_token,
    RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH), but ray.init(address=...) only picks the token up by itself
    for address="auto": without this, connecting to such a cluster fails with a bare ConnectionError.
    RAY_AUTH_MODE, when set, is respected as it is."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available)
    except ImportError:  # a Ray without token authentication
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _trainable(config: dict[str, Any]) -> None:
    """The Tune function trainable: one trial, reporting to Tune through RayTuneTracker."""
    setup_logging()
    ctx = TrialContext(**config["ctx"])
    run_trial(ctx, Trial.from_dict(config["trial"]), use_ray=True)


LOOPBACK = "127.0.0.1"
# Ray's single-machine switch (named for the platforms where it is the default): with it off, Ray takes
# the loopback address as the node's address instead of the host's reachable one, and Ray 2.60 binds its
# GCS, raylet, object manager and worker gRPC servers and its agents to the node's address.
# ray.init(_node_ip_address="127.0.0.1") alone is not enough: Ray turns a loopback address back into the
# reachable one (ray._private.services.resolve_ip_for_localhost) unless this switch is off.
_RAY_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def loopback_check(nodes: list[dict[str, Any]], gcs_address: str) -> str:
    """The address a local Ray instance listens on, read from Ray's own state (ray.nodes(), the GCS
    address); a SweepFailed when any of it is not the loopback address."""
    addrs = {str(n.get("NodeManagerAddress")) for n in nodes} | {gcs_address.rsplit(":", 1)[0]}
    if addrs != {LOOPBACK}:
        raise SweepFailed(f"the local Ray instance is reachable from the network ({', '.join(sorted(addrs))}, not "
                          f"{LOOPBACK} only); refusing to run a sweep on it (set RAY_ADDRESS to use a cluster)")
    return LOOPBACK


def _start_local_ray(num_cpus: int) -> None:
    """ray.init of a local instance bound to 127.0.0.1 (no listener on another interface, no dashboard)."""
    import ray
    from ray._private import ray_constants

    # ray reads the switch when it is imported: the environment for Ray's own processes (they inherit it),
    # the module constant for this one, which has imported ray already
    os.environ[_RAY_LOCAL_ONLY_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    # address="local": always a new instance. Without an address, ray.init joins the latest instance
    # started under the same temp dir (Ray's ray_current_cluster file), e.g. another sweep running beside
    # this one (two `dvc repro`s, or parallel test workers), with that sweep's code and CPUs.
    ray.init(address="local", num_cpus=num_cpus, num_gpus=None, _temp_dir=_ray_temp_dir(), include_dashboard=False,
             log_to_driver=True, _node_ip_address=LOOPBACK)
    try:
        bound = loopback_check(ray.nodes(), ray.get_runtime_context().gcs_address)
    except SweepFailed:
        ray.shutdown()
        raise
    log.info("Ray: a local instance bound to %s (GCS %s, %d CPU(s))", bound, ray.get_runtime_context().gcs_address,
             num_cpus)


def run_ray(ctx: TrialContext, trials: list[Trial], s: SweepConfig, out: Path, root: Path) -> dict[str, str]:
    import ray
    from ray import tune

    address = os.environ.get("RAY_ADDRESS") or s.ray_address
    # Workers import this project's packages; they inherit the driver's environment on a local Ray,
    # and get it through the runtime env on a cluster (which must see the same paths).
    pythonpath = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    os.environ["PYTHONPATH"] = pythonpath
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # trials use absolute paths; keep cwd
    if address:
        log.info("Ray: connecting to the cluster at %s", address)
        _use_cluster_token()
        ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}}, log_to_driver=True)
    else:
        _start_local_ray(s.num_cpus or os.cpu_count() or 1)
    try:
        have = ray.cluster_resources()
        for kind, need in (("CPU", s.cpus_per_trial), ("GPU", s.gpus_per_trial)):
            # Tune would otherwise keep such trials PENDING forever
            if need > have.get(kind, 0):
                raise SweepFailed(f"params: sweep.{kind.lower()}s_per_trial = {need}, but the Ray cluster has "
                                  f"{have.get(kind, 0)} {kind}(s)")
        storage = (out / "tune").resolve()
        storage.mkdir(parents=True, exist_ok=True)
        name = f"{ctx.sweep_name}-{ctx.sweep_id}"
        trainable = tune.with_resources(_trainable, {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})
        path = storage / name
        if tune.Tuner.can_restore(str(path)):
            log.info("Ray Tune: restoring the interrupted sweep at %s", path)
            tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            tuner = _new_tuner(tune, trainable, ctx, trials, s, storage, name)
        errors = _fit(tuner)
        # Tune's saved state can call a trial done whose directory is gone (deleted by hand): run
        # those again under a fresh experiment rather than report them missing forever.
        lost = [t for t in trials if t.name not in errors and finished_result(run_dir_of(ctx, t), t) is None]
        if lost:
            log.warning("Ray Tune's saved state has %d trial(s) without results (%s); running them again",
                        len(lost), ", ".join(t.name for t in lost))
            errors.update(_fit(_new_tuner(tune, trainable, ctx, lost, s, storage,
                                          f"{name}-rerun-{sweep_id_of(lost)}")))
        return errors
    finally:
        ray.shutdown()


def _new_tuner(tune: Any, trainable: Any, ctx: TrialContext, trials: list[Trial], s: SweepConfig, storage: Path,
               name: str) -> Any:
    space = {"ctx": dataclasses.asdict(ctx), "trial": tune.grid_search([t.to_dict() for t in trials])}
    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=s.max_concurrent_trials,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=s.max_failures)))


def _fit(tuner: Any) -> dict[str, str]:
    errors = {}
    for r in tuner.fit():
        if r.error is not None:
            errors[r.config["trial"]["name"]] = f"{type(r.error).__name__}: {r.error}"
    return errors


def sweep_id_of(trials: list[Trial]) -> str:
    from priorgrad.core.config import params_hash

    return params_hash({"trials": sorted(t.dirname for t in trials)})[:8]


def _trial_name(trial: Any) -> str:
    return str(trial.config["trial"]["name"])


def collect(ctx: TrialContext, trials: list[Trial], root: Path) -> tuple[list[tuple[dict[str, Any], Path]], list[str]]:
    results, missing = [], []
    for t in trials:
        run_dir = run_dir_of(ctx, t)
        res = finished_result(run_dir, t)
        if res is None:
            missing.append(t.name)
        else:
            res = {**res, "checkpoints": {b: _relative(c, root) for b, c in res["checkpoints"].items()}}
            results.append((res, run_dir))
    return results, missing


def _relative(path: str, root: Path) -> str:
    """A path under the project root relative to it: trials.json then stays valid in any clone."""
    p = Path(path).resolve()
    return str(p.relative_to(root)) if p.is_relative_to(root) else str(p)


def run_sweep(params_path: Path, features: Path, stats: Path, out: Path, backend: str | None = None,
              family: str = "vocoder") -> Path:
    params = load_params(params_path)
    s = sweep_config(params)
    tracking_config(params)  # validate now, not in the middle of a trial
    backend = backend or s.backend
    design = design_of(params, family)
    for name, what in design.inputs:
        p = features / name if name else stats
        if not p.exists():
            raise FileNotFoundError(f"{p}: {what} not found (run the stages before the {family} sweep first)")
    root = project_root(params_path.resolve().parent)
    trials = design.trials
    out.mkdir(parents=True, exist_ok=True)
    (out / "tune").mkdir(exist_ok=True)  # a DVC output under both backends
    ctx = make_context(params, design, features, stats, out, root)
    log.info("%s sweep %s (%s): %d trials, backend %s", family, design.name, ctx.sweep_id, len(trials), backend)
    pending = [t for t in trials if finished_result(run_dir_of(ctx, t), t) is None]
    if not pending:
        log.info("all %d trials already finished; nothing to train", len(trials))
        errors: dict[str, str] = {}
    elif backend == "sequential":
        errors = run_sequential(ctx, trials)
    else:
        errors = run_ray(ctx, pending, s, out, root)  # finished trials need no Ray worker at all
    results, missing = collect(ctx, trials, root)
    write_tables(results, out)
    final_metrics(results, out)
    if missing:
        detail = "; ".join(f"{n}: {errors.get(n, 'did not finish')}" for n in missing)
        raise SweepFailed(f"{len(missing)} of {len(trials)} trial(s) did not finish: {detail}. "
                          f"Re-run to resume them from their checkpoints.")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.sweep", description=__doc__.split("\n")[0])
    ap.add_argument("--family", choices=list(FAMILIES), default="vocoder",
                    help="vocoder (design: sweep:) or acoustic (design: acoustic_sweep:)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--features", type=Path, required=True,
                    help="features dir (priorgrad preprocess --out; acoustic: priorgrad acoustic preprocess --out)")
    ap.add_argument("--stats", type=Path, required=True,
                    help="prior statistics (priorgrad prior-stats JSON; acoustic: phoneme_stats.npz)")
    ap.add_argument("--out", type=Path, required=True, help="sweep output dir, e.g. runs/sweep")
    ap.add_argument("--backend", choices=["ray", "sequential"], help="override sweep.backend")
    args = ap.parse_args(argv)
    setup_logging()
    try:
        run_sweep(args.params, args.features, args.stats, args.out, args.backend, args.family)
    except (SweepFailed, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
