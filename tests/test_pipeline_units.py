"""Pipeline pieces without the full DVC run: params sections, trial expansion, tables, trackers, statistics."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from eval.aggregate import aggregate, headline
from experiments.convergence import convergence_rows, write_tables
from experiments.spec import evaluate_config, expand_trials, sweep_config, tracking_config
from priorgrad.core.config import ConfigError, Params, load_params
from priorgrad.core.schema import read_params
from support.project import profile_params

ROOT = Path(__file__).resolve().parents[1]


def _params(**sections) -> Params:
    d = read_params(ROOT / "params.yaml")
    for name, values in sections.items():
        d[name] = {**d.get(name, {}), **values}
    return Params.from_dict(d)


def _keys(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        if isinstance(v, dict) and prefix.count(".") < 1:
            out |= _keys(v, f"{prefix}{k}.")
        else:
            out.add(f"{prefix}{k}")
    return out


@pytest.mark.parametrize("profile", ["default", "smoke", "gpu", "priors"])
def test_profiles_are_overlays_that_load(profile: str, tmp_path: Path) -> None:
    p = load_params(profile_params(tmp_path, profile))
    sweep_config(p), tracking_config(p), evaluate_config(p)
    assert expand_trials(p), profile
    assert p.profile == profile
    over = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text()) or {}
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    # An overlay holds only keys params.yaml has, and only the ones it changes.
    assert _keys(over) <= _keys(default), profile
    for key in _keys(over):
        section, *rest = key.split(".")
        a, b = default[section], over[section]
        for k in rest:
            a, b = a[k], b[k]
        assert a != b, f"profiles/{profile}.yaml: {key} repeats params.yaml's value"


@pytest.mark.parametrize("profile", ["smoke", "gpu", "priors"])
def test_every_profile_key_says_why(profile: str) -> None:
    """Each leaf line of an overlay carries a comment with its reason."""
    for line in (ROOT / "profiles" / f"{profile}.yaml").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not line.rstrip().endswith((":", ": {}")):
            assert "#" in line, f"profiles/{profile}.yaml: {line.strip()!r} has no reason"


@pytest.mark.parametrize("profile", ["default", "smoke", "gpu", "priors"])
def test_every_profile_names_the_sections_dvc_tracks(profile: str) -> None:
    """DVC tracks each stage's sections of the active profile file (so editing one re-runs only the stages
    that read it); a profile lacking one of those sections would make `dvc repro` fail."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    tracked = set()
    for st in stages.values():
        for entry in st.get("params", []):
            if isinstance(entry, dict) and "profiles/${profile}.yaml" in entry:
                tracked |= set(entry["profiles/${profile}.yaml"])
    over = yaml.safe_load((ROOT / "profiles" / f"{profile}.yaml").read_text())
    assert tracked
    for key in tracked:  # a dotted name (acoustic.train) is a subsection the profile must name too
        d = over
        for k in key.split("."):
            assert isinstance(d, dict) and k in d, f"profiles/{profile}.yaml lacks {key}, which DVC tracks"
            d = d[k]


def test_a_profile_cannot_add_a_key(tmp_path: Path) -> None:
    params = profile_params(tmp_path, "smoke")
    (tmp_path / "profiles" / "smoke.yaml").write_text("train:\n  max_stepz: 3  # typo\n")
    with pytest.raises(ConfigError, match="train.max_stepz"):
        load_params(params)


def test_default_profile_compares_both_priors() -> None:
    trials = expand_trials(load_params(ROOT / "params.yaml"))
    assert {t.prior for t in trials} == {"standard", "energy"}
    assert {t.system for t in trials} == {"diffwave", "priorgrad"}


@pytest.mark.parametrize("section, values, key", [
    ("sweep", {"backnd": "ray"}, "backnd"),
    ("sweep", {"priors": ["energy", "gaussian"]}, "sweep.priors"),
    ("sweep", {"sizes": ["huge"]}, "sweep.sizes"),
    ("sweep", {"backend": "slurm"}, "sweep.backend"),
    ("sweep", {"budgets": [0]}, "sweep.budgets"),
    ("sweep", {"seeds": [0, 0]}, "sweep.seeds"),
    ("sweep", {"max_concurrent_trials": "2"}, "sweep.max_concurrent_trials"),
    ("sweep", {"validation_metrics": ["pesq_xx"]}, "sweep.validation_metrics"),
    ("tracking", {"timeout_s": 0}, "tracking.timeout_s"),
    ("evaluate", {"t_infer": [6, 0]}, "evaluate.t_infer"),
    ("evaluate", {"metrics": ["pesq"]}, "evaluate.metrics"),
    ("sizes", {"tiny": {"residual_layers": 6, "residual_channels": 16}}, "sizes.tiny"),
])
def test_bad_pipeline_params_name_the_key(section: str, values: dict, key: str) -> None:
    p = _params(**{section: values})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        sweep_config(p), tracking_config(p), evaluate_config(p)
        expand_trials(p)


def test_trial_directory_changes_with_training_settings_only() -> None:
    base = {t.name: t.dirname for t in expand_trials(_params())}
    lr = {t.name: t.dirname for t in expand_trials(_params(train={"learning_rate": 1e-3}))}
    threads = {t.name: t.dirname for t in expand_trials(_params(train={"threads": 2}))}
    assert base.keys() == lr.keys()
    assert all(base[n] != lr[n] for n in base)  # a stale checkpoint is never resumed under new settings
    assert base == threads  # speed settings do not make a new trial


def test_trials_expand_prior_size_seed_with_a_budget_ladder() -> None:
    p = _params(sweep={"priors": ["standard", "energy"], "sizes": ["tiny", "cpu"], "seeds": [0, 1, 2],
                       "budgets": [20, 10]})
    trials = expand_trials(p)
    # budgets are checkpoints of one run, not separate runs: no shorter run is trained again
    assert len(trials) == 2 * 2 * 3
    assert len({t.dirname for t in trials}) == len(trials)
    t = next(t for t in trials if t.size == "cpu" and t.seed == 2 and t.prior == "energy")
    assert t.name == "priorgrad-cpu-s2" and t.budgets == [10, 20] and t.budget == 20
    assert t.overrides["model.residual_channels"] == 32 and t.overrides["train.max_steps"] == 20
    assert t.overrides["train.keep_steps"] == [10, 20]


def test_params_yaml_marks_every_per_trial_key() -> None:
    """Editing a key the sweep overrides changes nothing in a sweep: params.yaml must say so (both families)."""
    from experiments.spec import ACOUSTIC_TRIAL_KEYS, TRIAL_KEYS

    lines = (ROOT / "params.yaml").read_text().splitlines()
    for dotted in (*TRIAL_KEYS, *ACOUSTIC_TRIAL_KEYS):
        *sections, key = dotted.split(".")
        start = 0
        for depth, section in enumerate(sections):  # the key's line under its (nested) sections
            start = lines.index(f"{'  ' * depth}{section}:", start) + 1
        line = next(x for x in lines[start:] if x.startswith(f"{'  ' * len(sections)}{key}:"))
        assert "(per trial" in line, f"params.yaml: {dotted} is set per trial but not marked so: {line!r}"


def test_trial_identity_covers_the_training_code(monkeypatch: pytest.MonkeyPatch) -> None:
    import priorgrad.core.fingerprint as fp

    base = {t.name: t.dirname for t in expand_trials(_params())}
    monkeypatch.setattr(fp, "training_fingerprint", lambda: "changed-trainer")
    changed = {t.name: t.dirname for t in expand_trials(_params())}
    assert base.keys() == changed.keys() and all(base[n] != changed[n] for n in base)
    monkeypatch.undo()
    monkeypatch.setattr(fp, "synthesis_fingerprint", lambda: "changed-sampler-only")
    assert {t.name: t.dirname for t in expand_trials(_params())} == base


def test_convergence_table_is_tidy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    recs = [{"step": 0, "valid/loss": 1.0, "valid/ls_mae": 4.0},
            {"step": 5, "train/loss": 0.9, "train/steps_per_s": 3.0},
            {"step": 10, "valid/loss": 0.8, "valid/ls_mae": 3.5, "valid/mrstft": 9.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    result = {"trial": "priorgrad-tiny-s0", "prior": "energy", "system": "priorgrad", "size": "tiny",
              "n_params": 123, "seed": 0, "budget": 10, "checkpoints": {"5": "x/kept-5.pt", "10": "x/kept-10.pt"},
              "mlflow_run_id": None, "mlflow_experiment": None}
    rows = convergence_rows(result, run / "metrics.jsonl")
    assert {(r["step"], r["metric"]) for r in rows} == {(0, "loss"), (0, "ls_mae"), (5, "train_loss"),
                                                        (10, "loss"), (10, "ls_mae"), (10, "mrstft")}
    trials_path, conv_path = write_tables([(result, run)], tmp_path)
    header = conv_path.read_text().splitlines()[0]
    assert header == "trial,prior,size,n_params,seed,budget,step,metric,value"
    assert json.loads(trials_path.read_text())[0]["checkpoints"] == {"5": "x/kept-5.pt", "10": "x/kept-10.pt"}


def test_evaluate_aggregates_over_seeds_then_utterances() -> None:
    """The evaluate stage's tables come from eval.aggregate: seeds are the unit (a seed's offset is
    seed-level variance, not noise to average away first), failures are counted and dropped from the
    comparison for both systems."""
    from eval.aggregate import Rule

    rows = []
    # priorgrad is better (lower) by exactly 1.0 on every utterance once its seeds are averaged
    for u, base in (("u1", 3.0), ("u2", 5.0), ("u3", 4.0), ("u4", 6.0)):
        for seed, noise in ((0, -0.5), (1, 0.5), (2, 0.0)):
            rows.append({"system": "priorgrad", "prior": "energy", "size": "tiny", "n_params": 1, "seed": seed,
                         "budget": 10, "t_infer": 6, "utt": u, "metric": "ls_mae", "value": base - 1.0 + noise})
            rows.append({"system": "diffwave", "prior": "standard", "size": "tiny", "n_params": 1, "seed": seed,
                         "budget": 10, "t_infer": 6, "utt": u, "metric": "ls_mae", "value": base})
    rows.append({**rows[-1], "utt": "u5", "value": None})  # a failed utterance counts, never scores 0
    import pandas as pd

    from eval.contract import SCORE_COLUMNS

    scores = pd.DataFrame([{**r, "kind": "model"} for r in rows], columns=SCORE_COLUMNS)
    summary, comparisons = aggregate(scores, {"ls_mae": False}, Rule(min_seeds=3, min_utts=4, n_boot=500, seed=0,
                                                                     level=0.95))
    assert len(comparisons) == 1
    c = comparisons[0]
    assert (c["n"], c["n_dropped"], c["n_seeds_a"], c["n_seeds_b"]) == (4, 1, 3, 3)
    assert c["mean_diff"] == pytest.approx(-1.0) and c["judged"]
    # the seed offsets (-0.5, +0.5, 0) are seed-level variance: the interval is not a point
    assert c["ci_low"] < -1.0 < c["ci_high"]
    dw = next(s for s in summary if s["system"] == "diffwave")
    assert dw["n"] == 4 and dw["n_failed"] == 1 and dw["mean"] == pytest.approx(4.5) and dw["n_seeds"] == 3
    cell = headline(summary, comparisons)["tiny-b10-T6"]["ls_mae"]
    assert cell["diff"] == pytest.approx(-1.0) and cell["n_seeds"] == 3


def test_mlflow_tracker_logs_and_resumes_its_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from experiments.trackers import MLflowTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    t = MLflowTracker(uri, "exp", "trial-a", tags={"prior": "energy"}, artifact_root=tmp_path / "art")
    assert t.active
    t.log_params({"train.seed": 0, "model.residual_channels": 16})
    t.log_metrics({"valid/ls_mae": 3.0, "valid/bad": float("nan")}, step=0)
    t.log_metrics({"valid/ls_mae": 2.5}, step=10)
    (tmp_path / "config.yaml").write_text("a: 1\n")
    t.log_artifact(tmp_path / "config.yaml")
    t.close("KILLED")
    # a resumed trial continues the same run; params already there are not logged twice
    t2 = MLflowTracker(uri, "exp", "trial-a", run_id=t.run_id)
    t2.log_params({"train.seed": 0, "extra": "x"})
    t2.log_metrics({"valid/ls_mae": 2.0}, step=20)
    t2.close()
    c = MlflowClient(uri)
    run = c.get_run(t.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["prior"] == "energy"
    assert run.data.params == {"train.seed": "0", "model.residual_channels": "16", "extra": "x"}
    assert [(m.step, m.value) for m in c.get_metric_history(t.run_id, "valid/ls_mae")] == [(0, 3.0), (10, 2.5),
                                                                                          (20, 2.0)]
    assert [a.path for a in c.list_artifacts(t.run_id)] == ["config.yaml"]
    assert len(c.search_runs([run.info.experiment_id])) == 1


def test_unreachable_mlflow_is_a_warning_not_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    from experiments.trackers import MLflowTracker

    with caplog.at_level(logging.WARNING):
        t = MLflowTracker("http://127.0.0.1:9", "exp", "trial", timeout_s=2)
        t.log_params({"a": 1})
        t.log_metrics({"valid/ls_mae": 1.0}, step=0)
        t.close()
    assert not t.active
    assert any("MLflow tracking lost" in r.getMessage() and "127.0.0.1:9" in r.getMessage() for r in caplog.records)


def test_synthesis_cache_key_covers_code_batch_size_and_checkpoint(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthesised test set is reused only when checkpoint bytes, T, inputs, seed, batch size and the
    sampler's code are all unchanged (a sampler fix re-synthesises; nothing else does)."""
    import priorgrad.core.fingerprint as fp
    from experiments.synthesis import synthesis_key

    ckpt = tmp_path / "last.pt"
    ckpt.write_bytes(b"weights")
    p = _params()
    inputs = {"utts": ["a"], "max_frames": 0, "features": "x"}
    base = synthesis_key(ckpt, 6, inputs, p)
    assert synthesis_key(ckpt, 6, inputs, p) == base
    assert synthesis_key(ckpt, 12, inputs, p) != base
    assert synthesis_key(ckpt, 6, inputs, _params(infer={"batch_size": 1})) != base  # padding changes tails
    monkeypatch.setattr(fp, "training_fingerprint", lambda: "trainer-changed")
    assert synthesis_key(ckpt, 6, inputs, p) == base  # the trainer's code does not enter a synthesis
    monkeypatch.setattr(fp, "synthesis_fingerprint", lambda: "sampler-changed")
    assert synthesis_key(ckpt, 6, inputs, p) != base
    monkeypatch.undo()
    ckpt.write_bytes(b"other weights")
    assert synthesis_key(ckpt, 6, inputs, p) != base


def test_adding_a_prior_touches_only_the_registry_and_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new prior is one registry entry plus its own builder: config validation, the sweep's trials and
    make_prior accept it without any other edit."""
    import sys
    import types

    from priorgrad.core import registry
    from priorgrad.vocoder.prior import StandardPrior, make_prior

    module = types.ModuleType("priorgrad_test_prior")
    module.build = lambda cfg, stats, preset: StandardPrior(name="half")
    monkeypatch.setitem(sys.modules, "priorgrad_test_prior", module)
    entry = registry.PriorEntry(name="half", system="halfwave", label="HalfWave (test)", short="HalfWave",
                                colour="#000000", family="vocoder", role="baseline",
                                builder="priorgrad_test_prior:build", needs_stats=False, doc="a test prior",
                                floor="n")
    monkeypatch.setitem(registry.PRIORS, "half", entry)
    p = _params(prior={"type": "half"}, sweep={"priors": ["half", "energy"]})
    assert make_prior(p.prior, None, "hifigan").name == "half"
    trials = expand_trials(p)
    assert {t.system for t in trials} == {"halfwave", "priorgrad"}
    assert any(t.name.startswith("halfwave-tiny-") for t in trials)


def test_the_local_ray_is_always_a_new_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without address="local", ray.init joins the latest instance started under the same temp dir (another
    sweep running beside this one) instead of starting the sweep's own."""
    import ray

    from experiments import sweep

    seen: dict = {}

    class Stop(Exception):
        pass

    def fake_init(**kwargs):
        seen.update(kwargs)
        raise Stop

    from ray._private import ray_constants

    monkeypatch.setattr(ray, "init", fake_init)
    # what _start_local_ray switches for Ray's own processes, restored after the test
    monkeypatch.setenv(sweep._RAY_LOCAL_ONLY_ENV, os.environ.get(sweep._RAY_LOCAL_ONLY_ENV, "1"))
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", ray_constants.ENABLE_RAY_CLUSTER)
    with pytest.raises(Stop):
        sweep._start_local_ray(2)
    assert seen["address"] == "local" and seen["num_cpus"] == 2 and seen["_node_ip_address"] == "127.0.0.1"


def test_a_local_ray_reachable_from_the_network_is_refused() -> None:
    """The check the sweep runs on Ray's own state after starting its local instance (the smoke repro shows
    it passing on a real one: test_the_sweeps_local_ray_was_bound_to_loopback)."""
    from experiments.sweep import SweepFailed, loopback_check

    assert loopback_check([{"NodeManagerAddress": "127.0.0.1"}], "127.0.0.1:6379") == "127.0.0.1"
    with pytest.raises(SweepFailed, match=r"reachable from the network \(192\.0\.2\.2, not 127\.0\.0\.1 only\)"):
        loopback_check([{"NodeManagerAddress": "192.0.2.2"}], "192.0.2.2:6379")
    with pytest.raises(SweepFailed, match=r"127\.0\.0\.1, 192\.0\.2\.2"):
        loopback_check([{"NodeManagerAddress": "127.0.0.1"}], "192.0.2.2:6379")
