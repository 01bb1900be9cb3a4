"""The acoustic evaluate stage end to end on a tiny real project: synthetic corpus -> vocoder features ->
acoustic features (eSpeak durations) -> phoneme statistics -> a few steps of tiny acoustic models of the
three priors (the library's trainer, a checkpoint kept at each budget) -> trials.json -> evaluation."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from experiments import acoustic_evaluate as ae
from eval.contract import (ACOUSTIC_CONDITIONS, SCORE_COLUMNS, VOCODED_REFERENCE_AUDIO, base_metric,
                                  qualified_metric, split_metric)
from experiments.testset import EvaluateError
from priorgrad.core.schema import ConfigError, read_params

from support.project import write_params

TINY = ["acoustic.model.size=tiny", "acoustic.train.batch_size=4", "acoustic.train.window_frames=32",
        "acoustic.train.threads=1", "acoustic.train.valid_utterances=1", "acoustic.train.valid_steps=2",
        "acoustic.train.log_every=5", "acoustic.train.warmup_steps=20", "acoustic.train.lr_scale=0.1",
        "acoustic.train.device=cpu", "acoustic.train.validate_every=100", "acoustic.train.checkpoint_every=100"]
PRIORS = ("standard", "trainable", "phoneme")
BUDGETS = (2, 4)
SYSTEM = {"standard": "b1-normal", "trainable": "b2-trainable", "phoneme": "priorgrad-am"}


def _params(dest: Path, tracking: bool = True, **section) -> Path:
    """The smoke profile with the test's acoustic_evaluate settings, written as dest/params.yaml, or as the
    file ``dest`` (e.g. <project>/params-t3.yaml: relative checkpoint paths resolve from the project root)."""
    raw = read_params(Path(__file__).resolve().parents[1] / "params.yaml", profile="smoke")
    raw["acoustic_evaluate"].update({"t_infer": [2, 6], "n_utterances": 2, "max_frames": 40,
                                     "audio_metrics": ["mrstft", "stoi"], "n_audio_examples": 1, **section})
    raw["acoustic"]["infer"]["device"] = "cpu"
    # the unclipped sampler (the spec's): 2-4 training steps then give diverged mels, so these tests exercise
    # the refusal path (a recorded failure, never a score); the clipped sampler's renders are scored in the
    # smoke pipeline (test_pipeline_acoustic_e2e) and its sampler in test_acoustic_model_spec
    raw["acoustic"]["infer"]["clip_x0"] = "none"
    raw["evaluate"]["workers"] = 1
    raw["evaluate"]["n_boot"] = 200
    raw["tracking"]["enabled"] = tracking
    if dest.suffix == ".yaml":
        raw["tracking"]["uri"] = f"sqlite:///{dest.parent.resolve()}/mlflow.db"
        dest.write_text(yaml.safe_dump({**raw, "profile": "default"}, sort_keys=False))
        return dest
    raw["tracking"]["uri"] = f"sqlite:///{dest.resolve()}/mlflow.db"
    return write_params(dest, raw)


def _build(root: Path) -> dict[str, Path]:
    from priorgrad.acoustic.data_config import load_data_config
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.acoustic.phoneme_stats import prior_stats_from_features
    from priorgrad.acoustic.preprocess import preprocess_acoustic
    from priorgrad.acoustic.train import train_acoustic
    from priorgrad.core.config import load_params
    from priorgrad.corpus.synth import make_corpus
    from priorgrad.vocoder.preprocess import preprocess

    params = _params(root)
    p = load_params(params, {"corpus.n_valid": 1, "corpus.n_test": 2})
    make_corpus(root / "corpus", n_utterances=7, seed=3, progress=False)
    preprocess(root / "corpus", root / "data" / "features", p, progress=False)
    dcfg = load_data_config(params, {"acoustic.features.durations": "espeak"})
    preprocess_acoustic(root / "corpus", root / "data" / "features", root / "data" / "acoustic", p, dcfg,
                        progress=False)
    stats = root / "data" / "phoneme_stats.npz"
    prior_stats_from_features(root / "data" / "acoustic", stats, dcfg.prior.std_min, dcfg.prior.std_max,
                              dcfg.prior.min_frames)
    # the MLflow run the sweep would have made for the PriorGrad trial (the others have none)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root.resolve()}/mlflow.db")
    run_id = client.create_run(client.create_experiment("acoustic-test")).info.run_id
    trials = []
    for prior in PRIORS:
        name = f"{SYSTEM[prior]}-tiny-s0"
        run_dir = root / "runs" / "acoustic" / "sweep" / "trials" / name
        ckpts = {}
        for b in BUDGETS:  # the ladder: one run, a checkpoint kept at each budget
            cfg = load_acoustic_config(str(params), TINY + [f"acoustic.model.prior={prior}",
                                                            f"acoustic.train.max_steps={b}"])
            res = train_acoustic(cfg, root / "data" / "acoustic", run_dir, prior=stats, progress=False)
            kept = run_dir / f"budget-{b}.pt"
            shutil.copyfile(res["checkpoint"], kept)
            ckpts[str(b)] = str(kept.relative_to(root)) if prior != "phoneme" else str(kept)  # both forms
        trials.append({"trial": name, "prior": prior, "system": SYSTEM[prior], "size": "tiny",
                       "n_params": res["n_params"], "seed": 0, "budget": BUDGETS[-1], "checkpoints": ckpts,
                       "mlflow_run_id": run_id if prior == "phoneme" else None, "mlflow_experiment": "acoustic-test",
                       "family": "acoustic"})
    sweep = root / "runs" / "acoustic" / "sweep"
    (sweep / "trials.json").write_text(json.dumps(trials, indent=2))
    return {"root": root, "params": params, "features": root / "data" / "acoustic", "stats": stats,
            "recordings": root / "data" / "features", "sweep": sweep, "run_id": run_id}


def _run(p: dict[str, Path], out: Path, params: Path | None = None, sweep: Path | None = None) -> dict:
    return ae.run_acoustic_evaluate(params or p["params"], p["features"], p["stats"], sweep or p["sweep"], out,
                                    p["recordings"])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict[str, Path]:
    p = _build(tmp_path_factory.mktemp("aceval"))
    p["out"] = p["root"] / "runs" / "acoustic" / "eval"
    p["result"] = _run(p, p["out"])
    return p


@pytest.mark.slow
def test_scores_rows_and_qualified_metric_names(project):
    df = pd.read_csv(project["out"] / "scores.csv", keep_default_na=False)
    assert list(df.columns) == SCORE_COLUMNS
    model = df[df["kind"] == "model"]
    mel = {f"{c}/{m}" for c in ("E1", "E2") for m in ("mel_l1", "mel_cd", "gv_ratio", "gv_dist")}
    audio = {f"E1/{m}{r}" for m in ("mrstft", "stoi") for r in ("", "@rec")}
    e3 = {f"E3/{m}" for m in ("dur_mae_ms", "len_dist", "mcd", "f0_rmse", "vuv_error")}  # wer, cer: recordings only
    assert set(model["metric"]) == mel | audio | e3  # E2 is not vocoded (audio_conditions: [E1])
    # every trial x budget x T x utterance x metric, once; E3 at each run's largest budget and e3_t_infer only
    is_e3 = model["metric"].isin(e3)
    assert len(model[~is_e3]) == 3 * len(BUDGETS) * 2 * 2 * len(mel | audio)
    assert len(model[is_e3]) == 3 * 2 * len(e3)
    assert set(model[is_e3]["budget"]) == {BUDGETS[-1]} and set(model[is_e3]["t_infer"]) == {6}
    model = model[~is_e3]
    assert set(model["system"]) == set(SYSTEM.values()) and set(model["budget"]) == set(BUDGETS)
    assert set(model["t_infer"]) == {2, 6}
    is_mel = model["metric"].isin(mel)
    assert np.isfinite(pd.to_numeric(model[is_mel]["value"])).all()
    # 2-4 training steps: the sampler's x0 estimate divides an untrained network's error by sqrt(alpha_bar_T)
    # = 0.006, so these mels reach +-700 (ln-mel; data: about -11..2). Griffin-Lim cannot render them
    # (exp overflows): each such utterance is a recorded failure (empty value), never a silent score.
    assert (pd.to_numeric(model[model["metric"] == "E1/mel_l1"]["value"]) > 10).all()
    audio_vals = model[~is_mel]["value"]
    assert (audio_vals == "").all()
    assert all(e for e in _vocoder_errors(project["out"]))
    rtf = pd.read_csv(project["out"] / "rtf.csv")
    assert set(rtf["t_infer"]) == {2, 6} and (rtf["rtf"] > 0).all() and len(rtf) == 3 * 2


def _vocoder_errors(out: Path) -> list[str]:
    """The recorded errors of the models' renders (the floor and ground-truth renders excluded)."""
    metas = [json.loads(p.read_text()) for p in (out / "work" / "voc").glob("*.json")]
    return [m["error"] for m in metas if not m["label"].startswith(("mean-reference", VOCODED_REFERENCE_AUDIO, "floor-"))]


@pytest.mark.slow
def test_floors_are_each_systems_prior_draw_and_mu_alone_is_a_reference(project):
    """Floor rows (kind prior_noise) are each system's own prior draw, mu + s n (PriorGrad-AM), the learned
    mean + n (B2), n (B1): draw 0 is bit-identical to the x_S the system's sampler starts from (the real
    sampler, run here on the same checkpoint, seeds and utterances), and its scores are those of that mel.
    mu alone is the mean reference (kind mean_reference), identical per seed index, never compared."""
    import torch

    from priorgrad.acoustic.dataset import FeatureSet
    from priorgrad.acoustic.metrics_mel import mel_cd, mel_l1
    from priorgrad.acoustic.model import TablePrior
    from priorgrad.acoustic.synthesize import (load_acoustic_checkpoint, load_frame_prior, make_schedule,
                                               sample_mels, table_from_ckpt)
    from priorgrad.core.diffusion import Diffusion
    from priorgrad.vocoder.infer import utterance_seed

    df = pd.read_csv(project["out"] / "scores.csv", keep_default_na=False)
    floor = df[df["kind"] == "prior_noise"]
    assert set(floor["system"]) == set(SYSTEM.values())
    assert (floor["size"] == "").all() and (floor["budget"] == 0).all() and (floor["t_infer"] == 0).all()
    assert set(floor["seed"]) == {0}  # one training seed per system in this sweep: one draw
    fs = FeatureSet(project["features"])
    test = fs.utterances("test")[:2]
    trials = {t["prior"]: t for t in json.loads((project["sweep"] / "trials.json").read_text())}
    seed = 0  # acoustic.infer.seed of the smoke params
    draws = {}
    for prior, system in SYSTEM.items():
        ck = Path(trials[prior]["checkpoints"][str(BUDGETS[-1])])
        model, cfg, ckpt = load_acoustic_checkpoint(ck if ck.is_absolute() else project["root"] / ck)
        diffusion = Diffusion(400, 1e-4, 0.05)
        res = sample_mels(model, diffusion, cfg.model, table_from_ckpt(ckpt), test, make_schedule(diffusion, "strided", 2),
                          [utterance_seed(seed, f"E1:{u.utt}") for u in test], "E1",
                          (float(ckpt["f0_stats"]["mean"]), float(ckpt["f0_stats"]["std"])), torch.device("cpu"))
        saved = sorted((project["out"] / "work" / "floor").glob(f"{trials[prior]['trial']}-b{BUDGETS[-1]}-draw0-E1-*"))
        assert len(saved) == 1
        for u, r in zip(test, res):
            draw = np.load(saved[0] / "E1" / f"{u.utt}.npy")
            assert np.array_equal(draw, r["x_start"]), (system, u.utt)   # draw 0 = the sampler's x_S
            gt, d = u.mel[:, :40], draw[:, :40]
            row = floor[(floor["system"] == system) & (floor["utt"] == u.utt) & (floor["metric"] == "E1/mel_l1")]
            assert np.allclose(pd.to_numeric(row["value"]), mel_l1(d, gt), rtol=1e-6)
            draws[(prior, u.utt)] = r
    u = test[0]
    table = TablePrior.from_prior(load_frame_prior(project["stats"]), len(fs.vocab))
    mu, s = table.frame_stats(u.frame_ids())
    b1, pg = draws[("standard", u.utt)], draws[("phoneme", u.utt)]
    assert np.allclose(pg["x_start"], mu + s * (b1["x_start"]), atol=1e-5)  # the same n: mu + s n vs n
    assert not np.allclose(draws[("trainable", u.utt)]["x_start"], b1["x_start"])  # learned mean + n
    assert {"E1/mrstft", "E1/mrstft@rec", "E1/stoi@rec"} <= set(floor["metric"])  # the draws are vocoded
    assert "E2/mrstft" not in set(floor["metric"])
    ref = df[df["kind"] == "mean_reference"]
    assert set(ref["system"]) == {"priorgrad-am"}
    for u in test:
        mu = table.frame_stats(u.frame_ids())[0][:, :40]
        gt = u.mel[:, :40]
        for cond in ("E1", "E2"):
            rows = ref[(ref["utt"] == u.utt) & (ref["metric"] == f"{cond}/mel_l1")]
            assert len(rows) == 1 and np.allclose(pd.to_numeric(rows["value"]), mel_l1(mu, gt), rtol=1e-6)
        cd = ref[(ref["utt"] == u.utt) & (ref["metric"] == "E1/mel_cd")]["value"]
        assert np.allclose(pd.to_numeric(cd), mel_cd(mu, gt), rtol=1e-6)
    comps = json.loads((project["out"] / "comparisons.json").read_text())
    assert all(c["b"] != "mean_reference" and c.get("prior_b") != "mean_reference" for c in comps)
    summary = json.loads((project["out"] / "summary.json").read_text())
    assert any(s["kind"] == "mean_reference" for s in summary)


@pytest.mark.slow
def test_comparisons_cover_both_acoustic_pairs_and_the_floor(project):
    comps = json.loads((project["out"] / "comparisons.json").read_text())
    systems = {(c["a"], c["b"]) for c in comps if c["kind"] == "systems"}
    assert systems == {("priorgrad-am", "b1-normal"), ("priorgrad-am", "b2-trainable")}
    floors = {c["a"] for c in comps if c["kind"] == "floor"}
    assert floors == set(SYSTEM.values())
    # one seed per system: shown, never judged (the one rule)
    assert all(not c["judged"] and "fewer than" in c["not_judged"] for c in comps)
    summary = json.loads((project["out"] / "summary.json").read_text())
    l1 = [s for s in summary if s["metric"] == "E1/mel_l1"]
    assert l1 and all(s["higher_is_better"] is False for s in l1)
    metrics = json.loads((project["out"] / "metrics.json").read_text())
    assert "tiny-b4-T6" in metrics and "E1/mel_l1" in metrics["tiny-b4-T6"]


@pytest.mark.slow
def test_audio_index_and_provenance(project):
    out = project["out"]
    index = json.loads((out / "audio" / "index.json").read_text())
    utt = index["utts"][0]
    assert len(index["utts"]) == 1 and (out / "audio" / index["reference"] / f"{utt}.wav").exists()
    dirs = {s["dir"]: s for s in index["sets"]}
    assert VOCODED_REFERENCE_AUDIO in dirs
    for system in SYSTEM.values():
        assert f"{system}-floor" in dirs and dirs[f"{system}-floor"]["kind"] == "prior_noise"
        for b in BUDGETS:
            for t in (2, 6):
                s = dirs[f"{system}-tiny-{b}-T{t}-E1"]
                assert s["condition"] == "E1" and s["system"] == system and s["seed"] == 0
                assert s["utts"] == [], "a failed render is absent, and the index says so"
    assert not any(d.endswith("-E2") for d in dirs)  # E2 is not vocoded
    assert dirs["mean-reference"]["kind"] == "mean_reference"
    for d in [VOCODED_REFERENCE_AUDIO, "mean-reference"] + [f"{s}-floor" for s in SYSTEM.values()]:
        assert dirs[d]["utts"] == [utt] and (out / "audio" / d / f"{utt}.wav").exists(), d
    from priorgrad.core.audio import read_wav

    rec, sr = read_wav(out / "audio" / "reference" / f"{utt}.wav")
    voc, sr2 = read_wav(out / "audio" / VOCODED_REFERENCE_AUDIO / f"{utt}.wav")
    assert sr == sr2 == 22050 and len(rec) == len(voc) == 40 * 256  # the crop, time-aligned
    prov = json.loads((out / "provenance.json").read_text())
    v = prov["acoustic"]["vocoder"]
    assert v["vocoder"] == "griffin_lim" and v["griffin_lim_iters"] == 60 and v["rtf"] > 0
    assert prov["acoustic"]["metrics"]["E1/stoi@rec"]["reference"] == "the recording"


@pytest.mark.slow
def test_mlflow_run_gets_test_scores_and_comparison_tags(project):
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=f"sqlite:///{project['root'].resolve()}/mlflow.db").get_run(project["run_id"])
    m, tags = run.data.metrics, run.data.tags
    assert {"test/T2/E1/mel_l1", "test/T6/E2/mel_cd", "test/T6/E2/gv_dist"} <= set(m)
    assert "test/T6/E1/stoi_at_rec" not in m  # every render failed: no mean is logged, never a 0
    assert not any("@" in k for k in list(m) + list(tags))
    assert tags["b4/cmp/b1-normal/T6/E1/mel_l1"].startswith("not judged")
    assert "b2/cmp/b2-trainable/T2/E1/mrstft_at_rec" in tags and "b4/floor/T6/E1/mel_l1" in tags


@pytest.mark.slow
def test_rerun_synthesises_nothing_and_a_new_t_infer_only_adds(project, tmp_path, monkeypatch):
    import priorgrad.acoustic.synthesize as synth
    import priorgrad.acoustic.vocode as vocode

    out = tmp_path / "eval"
    shutil.copytree(project["out"], out, symlinks=True)
    calls: list[str] = []
    real = synth.synthesize

    def counting(ckpt, out_dir, *a, **k):
        calls.append(Path(out_dir).name)
        return real(ckpt, out_dir, *a, **k)

    monkeypatch.setattr(synth, "synthesize", counting)
    renders: list[int] = []
    real_gl = vocode.griffin_lim
    monkeypatch.setattr(vocode, "griffin_lim", lambda mel, *a, **k: renders.append(1) or real_gl(mel, *a, **k))
    voc = out / "work" / "voc"
    done = {p.name for p in voc.glob("*.json")}  # one finished render (or recorded failure) each
    quiet = _params(project["root"] / "params-quiet.yaml", tracking=False)  # the same settings, no MLflow
    res = _run(project, out, params=quiet)
    assert calls == [] and renders == [] and res["vocoder_rendered_s"] == 0.0
    assert {p.name for p in voc.glob("*.json")} == done
    before = pd.read_csv(project["out"] / "scores.csv", keep_default_na=False)
    after = pd.read_csv(out / "scores.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(before, after)  # cached work gives the same scores

    params = _params(project["root"] / "params-p3.yaml", tracking=False, t_infer=[2, 3, 6])
    _run(project, out, params=params)
    assert len(calls) == 3 * len(BUDGETS) * 2 and all("-T3-" in c for c in calls)  # only T=3 is new
    # E1 of the new sets only (2 utterances each); the ground truth, the floor and the earlier sets are reused
    # (a failed render is cached too, with its recorded error, so it is not retried)
    assert renders == [] and len({p.name for p in voc.glob("*.json")} - done) == 3 * len(BUDGETS) * 2
    df = pd.read_csv(out / "scores.csv", keep_default_na=False)
    assert set(df[df["kind"] == "model"]["t_infer"]) == {2, 3, 6}


@pytest.mark.slow
def test_bad_inputs_are_errors_naming_the_file_or_key(project, tmp_path):
    with pytest.raises(EvaluateError, match=r"nowhere/trials\.json: acoustic sweep trial list not found"):
        _run(project, tmp_path / "o", sweep=tmp_path / "nowhere")
    trials = json.loads((project["sweep"] / "trials.json").read_text())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "trials.json").write_text(json.dumps([{**trials[0], "prior": "energy"}]))
    with pytest.raises(EvaluateError, match=r"bad/trials\.json: trial b1-normal-tiny-s0: unknown acoustic prior 'energy'"):
        _run(project, tmp_path / "o", sweep=bad)
    (bad / "trials.json").write_text(json.dumps([{**trials[0], "checkpoints": {"2": str(tmp_path / "gone.pt")}}]))
    with pytest.raises(EvaluateError, match=r"gone\.pt: checkpoint of b1-normal-tiny-s0-b2 not found"):
        _run(project, tmp_path / "o", sweep=bad)
    (bad / "trials.json").write_text(json.dumps([{**trials[0], "prior": "phoneme"}]))  # a B1 checkpoint
    with pytest.raises(EvaluateError, match=r"checkpoint of prior 'standard', but .*trials\.json says"):
        _run(project, tmp_path / "o", sweep=bad)
    with pytest.raises(ConfigError, match=r"acoustic_evaluate\.conditions: E3 \(predicted durations\) is not a mel "
                                          r"condition.*set acoustic_evaluate\.e3_t_infer"):
        _run(project, tmp_path / "o", params=_params(project["root"] / "params-p1.yaml", conditions=["E1", "E3"]))
    with pytest.raises(ConfigError, match=r"acoustic_evaluate\.e3_metrics: pesq_wb needs files of the reference's "
                                          r"length"):
        _run(project, tmp_path / "o", params=_params(project["root"] / "params-p5.yaml", e3_metrics=["mcd", "pesq_wb"]))
    with pytest.raises(ConfigError, match=r"acoustic_evaluate\.e3_floor_metrics: \['wer'\] not in"):
        _run(project, tmp_path / "o", params=_params(project["root"] / "params-p6.yaml", e3_metrics=["mcd"],
                                                     e3_floor_metrics=["wer"]))
    with pytest.raises(ConfigError, match=r"acoustic_evaluate\.e3_recording_metrics: 'mcd' is not a reference-free"):
        _run(project, tmp_path / "o", params=_params(project["root"] / "params-p8.yaml", e3_recording_metrics=["mcd"]))
    with pytest.raises(ConfigError, match=r"acoustic_evaluate\.e3_t_infer: .* >= 2 \(or 0: no E3\), got 1"):
        _run(project, tmp_path / "o", params=_params(project["root"] / "params-p7.yaml", e3_t_infer=1))
    with pytest.raises(ConfigError, match=r"acoustic_evaluate\.audio_conditions: \['E2'\] not in"):
        _run(project, tmp_path / "o", params=_params(project["root"] / "params-p2.yaml", conditions=["E1"], audio_conditions=["E2"]))
    with pytest.raises(ConfigError, match=r"acoustic_evaluate\.mel_metrics: unknown mel metric"):
        _run(project, tmp_path / "o", params=_params(project["root"] / "params-p4.yaml", mel_metrics=["mel_l2"]))
    with pytest.raises(ValueError, match=r"nowhere/manifest\.jsonl"):  # --recordings: not a features dir
        ae.run_acoustic_evaluate(project["params"], project["features"], project["stats"], project["sweep"],
                                 tmp_path / "o", tmp_path / "nowhere")
    other = tmp_path / "other"  # a features dir without the test utterances
    other.mkdir()
    (other / "manifest.jsonl").write_text("")
    with pytest.raises(EvaluateError, match=r"other/manifest\.jsonl: test utterance SYN3-\d+ .* has no recording"):
        ae.run_acoustic_evaluate(project["params"], project["features"], project["stats"], project["sweep"],
                                 tmp_path / "o", other)


def _with_durations(src: Path, dest: Path, frames: int) -> Path:
    """A copy of an acoustic checkpoint whose duration predictor says ``frames`` frames for every token (its
    output layer set to ln(1 + frames), the official inverse of round(exp(x) - 1)): a 4-step model's own
    predictor says 0 frames everywhere, which leaves E3 nothing to render. Everything else is the model's."""
    import math

    from priorgrad.core import checkpoint as ckpt_io

    ck = ckpt_io.load(src)
    state = ck["model"]
    state["duration_predictor.linear.weight"].zero_()
    state["duration_predictor.linear.bias"].fill_(math.log(1.0 + frames))
    return ckpt_io.save(dest, ck)


@pytest.fixture(scope="module")
def e3_run(project, tmp_path_factory) -> dict[str, Path]:
    """An evaluation of E1 (mel only) and E3 at T = 6 with the clipped sampler (renderable mels), whole
    utterances, on checkpoints whose predictors say 4 frames per token."""
    root = tmp_path_factory.mktemp("e3")
    trials = json.loads((project["sweep"] / "trials.json").read_text())
    for t in trials:
        src = Path(t["checkpoints"][str(BUDGETS[-1])])
        src = src if src.is_absolute() else project["root"] / src
        t["checkpoints"] = {str(BUDGETS[-1]): str(_with_durations(src, root / f"{t['trial']}.pt", 4))}
    (root / "sweep").mkdir()
    (root / "sweep" / "trials.json").write_text(json.dumps(trials))
    params = _params(project["root"] / "params-e3.yaml", conditions=["E1"], audio_conditions=[], t_infer=[6],
                     e3_t_infer=6, e3_max_frames=0, e3_metrics=["mcd", "f0_rmse", "vuv_error", "wer", "cer"],
                     e3_recording_metrics=["wer", "cer"])
    raw = yaml.safe_load(params.read_text())
    raw["acoustic"]["infer"]["clip_x0"] = "data_range"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = root / "eval"
    _run(project, out, params=params, sweep=root / "sweep")
    return {"out": out, "trials": trials}


@pytest.mark.slow
def test_e3_renders_differ_in_length_from_the_reference_and_are_scored_under_dtw(project, e3_run):
    """E3 (durations, f0, energy predicted): its mels have the predicted length (4 frames per token here), not
    the recording's, and are still scored: MCD / F0 / V/UV on eval's DTW path, WER / CER against the text."""
    from priorgrad.acoustic.dataset import FeatureSet

    out = e3_run["out"]
    utts = {u.utt: u for u in FeatureSet(project["features"]).utterances("test")[:2]}
    for t in e3_run["trials"]:
        gen = sorted((out / "work" / "gen").glob(f"{t['trial']}-b{BUDGETS[-1]}-T6-E3-*"))
        assert len(gen) == 1
        for u in utts.values():
            mel, dur = np.load(gen[0] / "E3" / f"{u.utt}.npy"), np.load(gen[0] / "E3-durations" / f"{u.utt}.npy")
            assert dur.tolist() == [4] * len(u.tokens) and mel.shape == (80, 4 * len(u.tokens))
            assert mel.shape[1] != u.n_frames  # another length than the recording's
    df = pd.read_csv(out / "scores.csv", keep_default_na=False)
    e3 = df[(df["kind"] == "model") & df["metric"].str.startswith("E3/")]
    for m in ("E3/mcd", "E3/f0_rmse", "E3/vuv_error", "E3/wer", "E3/cer"):
        vals = pd.to_numeric(e3[e3["metric"] == m]["value"])
        # f0_rmse may fail where no frame is voiced in both (a recorded failure, an empty value), never a 0
        assert len(vals) == 3 * 2 and (m == "E3/f0_rmse" or np.isfinite(vals).all()), m
    assert (pd.to_numeric(e3[e3["metric"] == "E3/mcd"]["value"]) > 0).all()
    # duration error against the features' durations, by hand
    for (system, utt), g in e3.groupby(["system", "utt"]):
        ref = utts[utt].durations
        got = dict(zip(g["metric"], pd.to_numeric(g["value"])))
        assert got["E3/dur_mae_ms"] == pytest.approx(np.mean(np.abs(4 - ref)) * 256 / 22050 * 1000)
        assert got["E3/len_dist"] == pytest.approx(abs(np.log(4 * len(ref) / ref.sum())))
    prov = json.loads((out / "provenance.json").read_text())["acoustic"]
    assert prov["e3"]["t_infer"] == 6 and "DTW" in prov["metrics"]["E3/mcd"]["description"]


@pytest.mark.slow
def test_e3_floors_mean_reference_and_the_recordings_own_wer(project, e3_run):
    """Beside E3: each system's floor (its prior draw by its own predicted durations, on the DTW metrics of the
    primary's gate), mu alone by PriorGrad-AM's predicted durations, and the recordings scored by the same
    recogniser (kind recording: its WER on real speech; their durations against themselves: 0)."""
    df = pd.read_csv(e3_run["out"] / "scores.csv", keep_default_na=False)
    floor = df[(df["kind"] == "prior_noise") & df["metric"].str.startswith("E3/")]
    assert set(floor["system"]) == set(SYSTEM.values())
    assert set(floor["metric"]) == {"E3/dur_mae_ms", "E3/len_dist", "E3/mcd", "E3/f0_rmse", "E3/vuv_error"}
    assert np.isfinite(pd.to_numeric(floor[floor["metric"] == "E3/mcd"]["value"])).all()
    ref = df[(df["kind"] == "mean_reference") & df["metric"].str.startswith("E3/")]
    assert {"E3/mcd", "E3/wer", "E3/dur_mae_ms"} <= set(ref["metric"])
    rec = df[df["kind"] == "recording"]
    assert set(rec["metric"]) == {"E3/wer", "E3/cer", "E3/dur_mae_ms", "E3/len_dist"}  # no DTW against itself
    assert len(rec[rec["metric"] == "E3/wer"]) == 2 and np.isfinite(pd.to_numeric(rec[rec["metric"] == "E3/wer"]["value"])).all()
    for m in ("E3/dur_mae_ms", "E3/len_dist"):
        assert (pd.to_numeric(rec[rec["metric"] == m]["value"]) == 0).all()
    comps = json.loads((e3_run["out"] / "comparisons.json").read_text())
    assert {c["a"] for c in comps if c["kind"] == "floor" and c["metric"] == "E3/mcd"} == set(SYSTEM.values())
    assert not any(c["kind"] == "floor" and c["metric"] == "E3/wer" for c in comps)  # floors: no recogniser
    summary = json.loads((e3_run["out"] / "summary.json").read_text())
    assert any(s["kind"] == "recording" and s["metric"] == "E3/wer" for s in summary)


def test_e3_crop_keeps_whole_words_and_their_text():
    """E3's scored audio: the first whole words within e3_max_frames reference frames, the same tokens in every
    set, and the text of those words; eSpeak words that do not match the text's keep the whole utterance."""
    from experiments.acoustic_synthesis import e3_crop

    toks = ["<UNK>", "h", "@", "|", "w", "3:", "l", "d", "<.>", "<EOS>"]
    dur = np.array([2, 5, 5, 0, 6, 6, 6, 6, 3, 0])  # cumulative: 2 7 12 12 18 24 30 36 39 39
    assert e3_crop(toks, dur, "Hello world.", 0) == (10, "Hello world.", "")
    assert e3_crop(toks, dur, "Hello world.", 39) == (10, "Hello world.", "")
    assert e3_crop(toks, dur, "Hello world.", 38) == (4, "hello", "")
    assert e3_crop(toks, dur, "Hello world.", 5) == (4, "hello", "")   # at least one word
    k, text, why = e3_crop(toks, dur, "Hello big world.", 20)
    assert (k, text) == (10, "Hello big world.") and "eSpeak has 2 words, the text 3" in why


def test_duration_error_of_the_reference_against_itself_is_zero():
    from experiments.acoustic_synthesis import AcousticTestSet, duration_scores

    test = AcousticTestSet(["a", "b"], {}, {}, {}, Path("."), durations={"a": np.array([3, 0, 5]),
                                                                          "b": np.array([1, 2])})
    assert duration_scores(test.durations, test, 256, 22050) == {"a": {"dur_mae_ms": 0.0, "len_dist": 0.0},
                                                                  "b": {"dur_mae_ms": 0.0, "len_dist": 0.0}}
    got = duration_scores({"a": np.array([4, 1, 5]), "b": np.array([0, 0])}, test, 256, 22050)
    assert got["a"]["dur_mae_ms"] == pytest.approx(2 / 3 * 256 / 22050 * 1000)
    assert got["a"]["len_dist"] == pytest.approx(np.log(10 / 8))
    assert got["b"]["len_dist"] is None  # nothing predicted: a recorded failure, never a number


@pytest.mark.slow
def test_cli_reports_errors_with_exit_code_1(project, tmp_path, caplog):
    rc = ae.main(["--params", str(project["params"]), "--features", str(project["features"]), "--stats",
                  str(project["stats"]), "--sweep", str(tmp_path), "--out", str(tmp_path / "o"),
                  "--recordings", str(project["recordings"])])
    assert rc == 1 and "trials.json" in caplog.text


def test_qualified_metric_names_round_trip():
    assert qualified_metric("E1", "mel_l1") == "E1/mel_l1"
    assert qualified_metric("E2", "pesq_wb", "rec") == "E2/pesq_wb@rec"
    for c in ACOUSTIC_CONDITIONS:
        for m in ("mel_cd", "stoi"):
            for r in ("", "rec"):
                assert split_metric(qualified_metric(c, m, r)) == (c, m, r)
    assert split_metric("pesq_wb") == ("", "pesq_wb", "")  # the vocoder's plain names
    assert base_metric("E1/pesq_wb@rec") == "pesq_wb"
    for bad in (("E4", "mel_l1", ""), ("E1", "mel_l1", "gt"), ("E1", "a/b", ""), ("E1", "", ""), ("E1", "x@y", "")):
        with pytest.raises(ValueError):
            qualified_metric(*bad)
    for bad in ("E4/mel_l1", "E1/mel_l1@gt", "E1/", "E1/@rec"):
        with pytest.raises(ValueError, match="malformed acoustic metric name"):
            split_metric(bad)


def test_metric_directions_and_mlflow_names():
    from experiments.acoustic_eval_config import higher_is_better, metric_info, mlflow_name

    d = higher_is_better(["E1/mel_l1", "E1/mel_cd", "E1/gv_ratio", "E1/pesq_wb@rec", "E1/mrstft"])
    assert d == {"E1/mel_l1": False, "E1/mel_cd": False, "E1/gv_ratio": True, "E1/pesq_wb@rec": True,
                 "E1/mrstft": False}
    assert metric_info("E1/pesq_wb")["reference"] == "vocoder(ground-truth mel)"
    assert mlflow_name("E1/pesq_wb@rec") == "E1/pesq_wb_at_rec"
    with pytest.raises(ValueError, match="unknown acoustic metric"):
        metric_info("E1/nope")


@pytest.mark.slow
def test_parallel_griffin_lim_renders_what_the_library_vocoder_renders(project, tmp_path):
    """Worker processes render exactly the in-process vocoder's audio (same mel, utterance seed, iterations)."""
    from experiments.acoustic_synthesis import make_cached_vocoder
    from priorgrad.acoustic.dataset import FeatureSet
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.core.audio import read_wav

    infer = load_acoustic_config(str(project["params"])).infer
    mels = {u.utt: u.mel[:, :30] for u in FeatureSet(project["features"]).utterances("test")[:2]}
    mels["diverged"] = np.full((80, 30), 700.0, np.float32)
    par = make_cached_vocoder(infer, None, tmp_path / "par", workers=2)
    seq = make_cached_vocoder(infer, None, tmp_path / "seq", workers=1)
    (d1, w1, a1), (d2, _, a2) = par.render("x", mels, tmp_path / "a"), seq.render("x", mels, tmp_path / "b")
    assert sorted(p.name for p in d1.glob("*.wav")) == sorted(f"{u}.wav" for u in mels if u != "diverged")
    for u in mels:
        if u != "diverged":
            assert np.array_equal(read_wav(d1 / f"{u}.wav")[0], read_wav(d2 / f"{u}.wav")[0])
    assert a1 == a2 == 2 * 30 * 256 / 22050 and w1 > 0
