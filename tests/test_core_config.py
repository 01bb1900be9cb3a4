"""params.yaml loading: every key must be set there; unknown keys, missing keys, invariants and type errors
name the key."""
from pathlib import Path

import pytest

from priorgrad.core.config import ConfigError, Params, load_params, params_hash
from priorgrad.core.schema import read_params
from support.project import ROOT, profile_params, write_params


def test_project_params_yaml_loads_and_round_trips():
    p = load_params(ROOT / "params.yaml")
    assert Params.from_dict(p.to_dict()).to_dict() == p.to_dict()
    assert p.hop_length == 256 and p.n_mels == 80 and p.profile == "default"


def test_gpu_profile_holds_the_papers_values(tmp_path):
    """The spec's (paper / official code) values: params.yaml plus the GPU overlay."""
    p = load_params(profile_params(tmp_path, "gpu"))
    assert (p.model.residual_layers, p.model.residual_channels, p.model.dilation_cycle) == (30, 64, 10)
    assert (p.train.batch_size, p.train.learning_rate, p.train.crop_frames) == (16, 2e-4, 62)
    assert (p.diffusion.num_steps, p.diffusion.beta_start, p.diffusion.beta_end) == (50, 1e-4, 0.05)
    from priorgrad.vocoder.prior import resolve_max_energy

    assert (p.prior.std_min, resolve_max_energy(p.prior.max_energy, p.audio.preset)) == (0.1, 4.0)


def _write(tmp_path, changes):
    raw = read_params(ROOT / "params.yaml")
    for section, values in changes.items():
        if isinstance(raw.get(section), dict) and isinstance(values, dict):
            raw[section] = {**raw[section], **values}
        else:
            raw[section] = values
    return write_params(tmp_path, raw)


@pytest.mark.parametrize("doc,needle", [
    ({"train": {"batchsize": 4}}, "train: unknown key(s) ['batchsize']"),
    ({"trian": {}}, "unknown section 'trian'"),
    ({"model": {"upsample_factors": [16, 8]}}, "model.upsample_factors"),
    ({"prior": {"type": "gaussian"}}, "prior.type"),
    ({"train": {"precision": "fp8"}}, "train.precision"),
    ({"train": {"batch_size": "four"}}, "train.batch_size: expected an integer"),
    ({"train": {"max_steps": -1}}, "train.max_steps"),
    ({"audio": {"sample_rate": 16000}}, "audio.sample_rate"),
    ({"diffusion": {"beta_start": 0.1, "beta_end": 0.01}}, "diffusion.beta_start"),
    ({"prior": {"std_min": 0}}, "prior.std_min"),
    ({"train": {"device": "tpu"}}, "train.device"),
    ({"train": {"seed": None}}, "train.seed: must not be null"),
])
def test_bad_params_name_the_key(tmp_path, doc, needle):
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as e:
        load_params(path)
    assert needle in str(e.value) and str(path) in str(e.value)


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _validate_everything(path: Path) -> None:
    """Every validator of every params section, as the stages run them."""
    from experiments.spec import evaluate_config, expand_trials, sizes_of, sweep_config, tracking_config
    from priorgrad.acoustic.data_config import load_data_config
    from priorgrad.acoustic.model_config import load_acoustic_config
    from reports.config import load_report_config

    p = load_params(path)
    sweep_config(p), tracking_config(p), evaluate_config(p), sizes_of(p)
    expand_trials(p)
    expand_trials(p, "acoustic")  # validates acoustic_sweep and every acoustic trial's settings
    load_report_config(path)
    load_data_config(path)
    load_acoustic_config(path)
    from experiments.acoustic_eval_config import acoustic_evaluate_config
    acoustic_evaluate_config(p)


LEAVES = sorted(_leaves(read_params(ROOT / "params.yaml")))


@pytest.mark.parametrize("key", LEAVES)
def test_deleting_any_key_is_an_error_naming_it(tmp_path, key):
    """No hidden defaults: a key deleted from params.yaml never silently becomes some other value."""
    raw = read_params(ROOT / "params.yaml")
    *parents, leaf = key.split(".")
    d = raw
    for k in parents:
        d = d[k]
    del d[leaf]
    path = write_params(tmp_path, raw) if key != "profile" else None
    if path is None:  # write_params always writes a profile; delete it from the file itself
        path = tmp_path / "params.yaml"
        write_params(tmp_path, raw)
        path.write_text("\n".join(x for x in path.read_text().splitlines() if not x.startswith("profile:")) + "\n")
    with pytest.raises(Exception) as e:
        _validate_everything(path)
    # the message names the key (a size entry is named with its size, e.g. sizes.tiny ... residual_layers)
    assert leaf in str(e.value) and (not parents or parents[-1] in str(e.value)), (key, str(e.value))


def test_yaml_exponent_strings_and_overrides(tmp_path):
    path = _write(tmp_path, {"train": {"learning_rate": "1e-3"}})
    p = load_params(path, ["train.max_steps=7", "prior.max_energy=null"])
    assert p.train.learning_rate == 1e-3 and p.train.max_steps == 7 and p.prior.max_energy is None


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_params(bad)


def test_params_hash_stable_and_sensitive():
    a, b = load_params(ROOT / "params.yaml"), load_params(ROOT / "params.yaml")
    assert params_hash(a) == params_hash(b)
    b.train.seed = 1
    assert params_hash(a) != params_hash(b)


def test_config_registry_and_presets_import_without_torch():
    """Config validation, the registry, presets and the stage contract never import torch (the report and a
    reader of params need no deep-learning stack; a bare config check stays fast)."""
    import subprocess
    import sys

    code = ("import sys, priorgrad.core.config, priorgrad.core.registry, priorgrad.core.audio, experiments.spec, "
            "eval.contract, reports.config; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
