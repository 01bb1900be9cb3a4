"""experiments.gpu_comparison on CPU: the plan and its argument checks, and (slow) the whole
run -> pack -> import round trip with a tiny network, ending in a sweep directory evaluate reads."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.gpu_comparison import MAX_FILES, main, parse_args, plan
from tests.test_gpu_paths import write_features

ROOT = Path(__file__).resolve().parents[1]


def test_plan_has_one_fast_trial_per_size_and_prior(tmp_path: Path, capsys) -> None:
    args = parse_args(["run", "--features", str(tmp_path / "f"), "--stats", str(tmp_path / "s.json"),
                       "--out", str(tmp_path / "out"), "--steps", "3000", "--checkpoint-every", "1000"])
    p = plan(args)
    assert [(t["size"], t["prior"]) for t in p["trials"]] == [
        ("base", "standard"), ("base", "energy"), ("small", "standard"), ("small", "energy")]
    cmd = " ".join(p["trials"][1]["cmd"])
    for s in ("model.residual_channels=64", "prior.type=energy", "train.max_steps=3000", "train.precision=bf16",
              "train.compile=false", "train.features_on_device=true", "train.keep_checkpoints=4",
              "profile=gpu"):
        assert s in cmd
    assert "model.residual_channels=32" in " ".join(p["trials"][2]["cmd"])
    # --dry-run prints the plan and touches nothing (the features dir does not even exist)
    assert main(["run", "--features", str(tmp_path / "f"), "--stats", str(tmp_path / "s.json"),
                 "--out", str(tmp_path / "out"), "--dry-run"]) == 0
    assert len(json.loads(capsys.readouterr().out)["commands"]) == 4 and not (tmp_path / "out").exists()


def test_bad_arguments_are_named(tmp_path: Path) -> None:
    base = ["run", "--features", str(tmp_path), "--stats", str(tmp_path / "s.json")]
    with pytest.raises(ValueError, match="sizes \\['huge'\\]"):
        plan(parse_args(base + ["--sizes", "huge"]))
    with pytest.raises(ValueError, match="--priors"):
        plan(parse_args(base + ["--priors", "gaussian"]))
    assert main(base + ["--device", "cpu"]) == 1  # no manifest in the features dir: an error, exit 1
    assert main(["import", "--from", str(tmp_path), "--out", str(tmp_path / "sweep")]) == 1


@pytest.mark.slow
def test_run_pack_import_round_trip_on_cpu(tmp_path: Path) -> None:
    feats = write_features(tmp_path / "f")
    bring = tmp_path / "bring"
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.gpu_comparison", "run", "--params", str(ROOT / "params.yaml"), "--profile", "smoke",
         "--set", "train.crop=frames",  # the fixture's clips are too few and short for official epochs
         "--features", str(feats), "--stats", str(feats / "stats.json"), "--out", str(tmp_path / "out"),
         "--bring-back", str(bring), "--sizes", "tiny", "--steps", "2", "--checkpoint-every", "1",
         "--validate-every", "2", "--precision", "fp32", "--no-compile", "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(p.name for p in bring.iterdir())
    assert files == ["diffwave-tiny-s0-gpu.pt", "logs.tar.gz", "priorgrad-tiny-s0-gpu.pt"] and len(files) <= MAX_FILES
    sweep = tmp_path / "sweep"
    assert main(["import", "--from", str(bring), "--out", str(sweep)]) == 0
    trials = json.loads((sweep / "trials.json").read_text())
    assert {t["prior"] for t in trials} == {"standard", "energy"} and {t["budget"] for t in trials} == {2}
    from experiments.evaluate import load_trials
    from priorgrad.vocoder.model import load_model

    for t in load_trials(sweep):
        model, ckpt = load_model(t["checkpoints"]["2"])
        assert ckpt["step"] == 2 and "optimizer" not in ckpt
    final = json.loads((sweep / "final_valid.json").read_text())
    assert set(final) == {"priorgrad-tiny-s0-gpu", "diffwave-tiny-s0-gpu"}
    assert all("ls_mae" in v for v in final.values())
    assert (sweep / "convergence.csv").read_text().count("\n") > 1


def test_shell_wrapper_dry_run_and_argument_errors(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "gpu_comparison.sh"

    def sh(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "bring")})

    proc = sh("--dry-run", "--features", "F", "--stats", "S.json", "--steps", "500")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("+ ")]
    assert len(lines) == 3 and "bench_gpu.py --device cuda --size base" in lines[0]
    assert f"--bring-back {tmp_path / 'bring'} --steps 500" in lines[2] and not (tmp_path / "bring").exists()
    proc = sh("--dry-run", "--features", "F", "--stats", "S.json", "--phase", "pack")
    assert proc.stdout.count("+ ") == 1 and "--pack-only" in proc.stdout
    proc = sh("--dry-run", "--wheels", "W", "--phase", "train", "--out", str(tmp_path / "work"))
    assert "pip install --no-index --find-links W" in proc.stdout and "priorgrad prior-stats" in proc.stdout
    for bad, msg in ((["--dry-run"], "give --features"), (["--features", "F"], "needs --stats"),
                     (["--phase", "x"], "--phase must be"), (["--bogus"], "unknown option")):
        proc = sh(*bad)
        assert proc.returncode == 2 and msg in proc.stderr


def test_import_refuses_names_that_escape_the_sweep_directory(tmp_path: Path) -> None:
    """The brought-back files come from another machine: a trial name from packed.json never becomes a path
    outside the sweep directory."""
    import io
    import tarfile

    bring = tmp_path / "bring"
    bring.mkdir()
    (bring / "x.pt").write_bytes(b"")
    for name, file in (("../../escape", "x.pt"), ("ok", "../x.pt")):
        packed = json.dumps({"trials": {name: {"file": file, "prior": "energy", "size": "tiny", "seed": 0,
                                               "step": 1, "n_params": 1}}}).encode()
        with tarfile.open(bring / "logs.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo("packed.json")
            info.size = len(packed)
            tar.addfile(info, io.BytesIO(packed))
        assert main(["import", "--from", str(bring), "--out", str(tmp_path / "sweep" / "a" / "b")]) == 1
        assert not (tmp_path / "sweep" / "a" / "escape").exists()  # where trials/../../escape would land
