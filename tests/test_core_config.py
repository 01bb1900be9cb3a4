"""params.yaml loading: unknown keys, invariants and type errors name the key."""
from pathlib import Path

import pytest
import yaml

from priorgrad.config import ConfigError, Params, load_params, params_hash

ROOT = Path(__file__).resolve().parents[1]


def test_project_params_yaml_loads_and_round_trips():
    p = load_params(ROOT / "params.yaml")
    assert Params.from_dict(p.to_dict()).to_dict() == p.to_dict()
    assert p.hop_length == 256 and p.n_mels == 80


def test_spec_defaults():
    p = Params()
    assert (p.model.residual_layers, p.model.residual_channels, p.model.dilation_cycle) == (30, 64, 10)
    assert (p.train.batch_size, p.train.learning_rate, p.train.crop_frames) == (16, 2e-4, 62)
    assert (p.diffusion.num_steps, p.diffusion.beta_start, p.diffusion.beta_end) == (50, 1e-4, 0.05)
    assert (p.prior.std_min, p.prior.max_energy) == (0.1, 4.0)


def _write(tmp_path, d):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


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
])
def test_bad_params_name_the_key(tmp_path, doc, needle):
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as e:
        load_params(path)
    assert needle in str(e.value) and str(path) in str(e.value)


def test_yaml_exponent_strings_and_overrides(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  learning_rate: 1e-3\n")
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
    a, b = Params(), Params()
    assert params_hash(a) == params_hash(b)
    b.train.seed = 1
    assert params_hash(a) != params_hash(b)
