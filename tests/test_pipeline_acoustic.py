"""The acoustic sweep's design: acoustic_sweep params, trial expansion, trial identity (settings and code)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from experiments.spec import ACOUSTIC_TRIAL_KEYS, acoustic_sweep_config, expand_trials
from priorgrad.core.config import ConfigError, Params
from priorgrad.core.schema import read_params
from support.project import ROOT


def _params(**dotted) -> Params:
    """params.yaml (default profile) with dotted keys replaced: _params(**{"acoustic.train.threads": 2})."""
    d = read_params(ROOT / "params.yaml")
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        cur = d
        for k in parents:
            cur = cur[k]
        cur[leaf] = value
    return Params.from_dict(d)


def _dirs(p: Params) -> dict[str, str]:
    return {t.name: t.dirname for t in expand_trials(p, "acoustic")}


def test_default_acoustic_sweep_compares_the_three_priors_with_a_ladder() -> None:
    trials = expand_trials(_params(), "acoustic")
    a = acoustic_sweep_config(_params())
    assert len(trials) == len(a.priors) * len(a.sizes) * len(a.seeds)
    assert {t.system for t in trials} == {"priorgrad-am", "b1-normal", "b2-trainable"}
    assert {t.family for t in trials} == {"acoustic"} and len({t.dirname for t in trials}) == len(trials)
    t = next(t for t in trials if t.prior == "phoneme" and t.seed == 1)
    assert t.name == "priorgrad-am-tiny_c80-s1" and t.budgets == sorted(a.budgets) and t.budget == max(a.budgets)
    assert set(t.overrides) == set(ACOUSTIC_TRIAL_KEYS)
    assert t.overrides["acoustic.train.keep_steps"] == sorted(a.budgets)
    assert t.overrides["acoustic.train.max_steps"] == max(a.budgets)
    assert t.overrides["acoustic.model.size"] == "tiny_c80" and t.overrides["acoustic.train.seed"] == 1


def test_budgets_are_sorted_and_sizes_outermost() -> None:
    p = _params(**{"acoustic_sweep.budgets": [40, 20], "acoustic_sweep.sizes": ["tiny", "cpu"],
                   "acoustic_sweep.seeds": [3]})
    trials = expand_trials(p, "acoustic")
    assert [t.name for t in trials] == ["b1-normal-tiny-s3", "b2-trainable-tiny-s3", "priorgrad-am-tiny-s3",
                                        "b1-normal-cpu-s3", "b2-trainable-cpu-s3", "priorgrad-am-cpu-s3"]
    assert all(t.budgets == [20, 40] for t in trials)


@pytest.mark.parametrize("key, value, needle", [
    ("acoustic_sweep.priors", ["phoneme", "energy"], r"acoustic_sweep\.priors.*energy"),  # a vocoder prior
    ("acoustic_sweep.sizes", ["base"], r"acoustic_sweep\.sizes.*base"),  # a vocoder size, not an acoustic one
    ("acoustic_sweep.budgets", [0, 10], r"acoustic_sweep\.budgets"),
    ("acoustic_sweep.budgets", [], r"acoustic_sweep\.budgets"),
    ("acoustic_sweep.seeds", [0, 0], r"acoustic_sweep\.seeds"),
    ("acoustic_sweep.seeds", [-1], r"acoustic_sweep\.seeds"),
    ("acoustic_sweep.name", "a b", r"acoustic_sweep\.name"),
    ("acoustic_sweep.backend", "ray", r"acoustic_sweep.*unknown.*backend"),  # resources live in sweep:
])
def test_bad_acoustic_sweep_params_name_the_key(key: str, value, needle: str) -> None:
    d = read_params(ROOT / "params.yaml")
    d["acoustic_sweep"][key.split(".")[1]] = value
    with pytest.raises(ConfigError, match=needle):
        expand_trials(Params.from_dict(d), "acoustic")


def test_a_trial_setting_the_acoustic_model_rejects_is_caught_before_training() -> None:
    # every trial's settings go through the acoustic config's validation at expansion time
    with pytest.raises(ConfigError, match=r"acoustic_sizes\.tiny_c80\.hidden"):
        expand_trials(_params(**{"acoustic_sizes.tiny_c80.hidden": 33}), "acoustic")  # not divisible by 2 heads


def test_acoustic_trial_identity_follows_training_settings_only() -> None:
    base = _dirs(_params())
    # speed-only keys and inference settings do not make new trials
    for key, value in (("acoustic.train.threads", 2), ("acoustic.train.device", "cpu"),
                       ("acoustic.train.compile", True), ("acoustic.features.mas.threads", 3), ("acoustic.infer.steps", 12),
                       ("acoustic_sizes.paper.decoder_channels", 64),  # a size no trial uses
                       ("sweep.max_concurrent_trials", 1), ("train.learning_rate", 1e-3)):  # the vocoder's
        assert _dirs(_params(**{key: value})) == base, key
    # what shapes the data or the training does
    for key, value in (("acoustic.train.lr_scale", 0.5), ("acoustic.train.precision", "bf16"),
                       ("acoustic.prior.std_min", 0.2),
                       ("acoustic.model.heads", 4), ("acoustic.diffusion.num_steps", 200),
                       ("acoustic_sizes.tiny_c80.decoder_channels", 96), ("corpus.n_utterances", 100),
                       ("acoustic.features.durations", "mas")):
        changed = _dirs(_params(**{key: value}))
        assert changed.keys() == base.keys() and all(changed[n] != base[n] for n in base), key


def test_trial_identity_covers_each_familys_training_code_only(monkeypatch: pytest.MonkeyPatch) -> None:
    import priorgrad.core.fingerprint as fp

    p = _params()
    vocoder, acoustic = {t.name: t.dirname for t in expand_trials(p)}, _dirs(p)
    monkeypatch.setattr(fp, "acoustic_training_fingerprint", lambda: "acoustic-trainer-changed")
    assert {t.name: t.dirname for t in expand_trials(p)} == vocoder
    assert all(_dirs(p)[n] != acoustic[n] for n in acoustic)
    monkeypatch.undo()
    monkeypatch.setattr(fp, "training_fingerprint", lambda: "vocoder-trainer-changed")
    assert _dirs(p) == acoustic
    assert all(d != vocoder[n] for n, d in ((t.name, t.dirname) for t in expand_trials(p)))


def test_fingerprints_follow_source_edits_of_their_own_family(tmp_path: Path) -> None:
    """On a copy of the sources: an acoustic trainer edit changes the acoustic trials' code fingerprint and not
    the vocoder's; an edit of the vocoder's trial side or of an eval metric (its validation hook) the other way round; an edit
    of code both families run (the one trial function and sweep spec, the diffusion maths) changes both."""
    from priorgrad.core.fingerprint import acoustic_training_fingerprint, training_fingerprint

    for pkg in ("priorgrad", "eval", "experiments"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))

    def both() -> tuple[str, str]:
        return training_fingerprint(tmp_path), acoustic_training_fingerprint(tmp_path)

    def edit(rel: str) -> None:
        with open(tmp_path / rel, "a") as f:
            f.write("\n# edited\n")

    v0, a0 = both()
    edit("priorgrad/acoustic/train.py")
    v1, a1 = both()
    assert v1 == v0 and a1 != a0
    edit("experiments/acoustic_trial.py")
    v2, a2 = both()
    assert v2 == v0 and a2 != a1
    edit("experiments/vocoder_trial.py")
    v3, a3 = both()
    assert v3 != v0 and a3 == a2
    edit("eval/metrics/spectral.py")  # a validation metric of the vocoder's trials only
    v4, a4 = both()
    assert v4 != v3 and a4 == a3
    v3 = v4
    for shared in ("experiments/trial.py", "experiments/spec.py", "priorgrad/core/diffusion.py"):
        edit(shared)
        v4, a4 = both()
        assert v4 != v3 and a4 != a3, shared
        v3, a3 = v4, a4


@pytest.mark.parametrize("size, decoder", [("paper_c64", 1_528_272), ("paper", 3_522_384),
                                           ("paper_c192", 6_311_120), ("paper_c256", 9_894_480)])
def test_paper_decoder_sizes_have_the_spec_parameter_counts(size: str, decoder: int) -> None:
    """The named decoder sizes of the GPU profile's comparison (spec section 9, H=256, L=12)."""
    from priorgrad.acoustic.model import MelDecoder
    from priorgrad.vocoder.model import count_parameters

    s = read_params(ROOT / "params.yaml")["acoustic_sizes"][size]
    assert s["hidden"] == 256 and s["decoder_layers"] == 12
    assert count_parameters(MelDecoder(s["hidden"], s["decoder_channels"], s["decoder_layers"], 400)) == decoder


def test_gpu_profile_sweeps_the_papers_decoder_sizes(tmp_path: Path) -> None:
    from priorgrad.core.config import load_params
    from support.project import profile_params

    trials = expand_trials(load_params(profile_params(tmp_path, "gpu")), "acoustic")
    assert {t.size for t in trials} == {"paper_c64", "paper", "paper_c256"}
    assert {t.system for t in trials} == {"priorgrad-am", "b1-normal", "b2-trainable"}


def test_acoustic_sweep_names_its_missing_inputs(tmp_path: Path) -> None:
    from experiments.sweep import run_sweep

    feats = tmp_path / "acoustic"
    with pytest.raises(FileNotFoundError, match=r"acoustic/manifest\.jsonl: acoustic feature manifest not found"):
        run_sweep(ROOT / "params.yaml", feats, tmp_path / "phoneme_stats.npz", tmp_path / "out", family="acoustic")
    feats.mkdir()
    (feats / "manifest.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"phoneme_stats\.npz: phoneme statistics not found"):
        run_sweep(ROOT / "params.yaml", feats, tmp_path / "phoneme_stats.npz", tmp_path / "out", family="acoustic")
    with pytest.raises(ValueError, match="--family"):
        run_sweep(ROOT / "params.yaml", feats, tmp_path / "x", tmp_path / "out", family="tts")
