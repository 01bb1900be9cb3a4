"""Digests of training losses and samples for every registered prior of both families (tiny configs, fixed seeds).

Run before and after a change to the diffusion / prior code: equal digests mean bit-identical results
(the prior-contract refactor of issue 20 was checked this way). Usage:
    python scripts/prior_golden.py OUT.json
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.residual_layers=2", "model.residual_channels=8", "model.dilation_cycle=1",
        "train.batch_size=2", "train.crop_frames=8", "train.valid_utterances=1", "train.valid_max_frames=8",
        "train.threads=1", "train.log_every=5", "corpus.n_valid=2", "corpus.n_test=2", "train.valid_infer_steps=6"]
A_TINY = ["acoustic.model.size=tiny", "acoustic.train.batch_size=4", "acoustic.train.window_frames=32",
          "acoustic.train.threads=1", "acoustic.train.valid_utterances=2", "acoustic.train.valid_steps=2",
          "acoustic.train.device=cpu", "acoustic.infer.device=cpu"]


def digest(x) -> str:
    if isinstance(x, (list, tuple)):
        return hashlib.sha256(b"".join(bytes.fromhex(digest(v)) for v in x)).hexdigest()
    if isinstance(x, dict):
        return digest([digest(x[k]) for k in sorted(x)])
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(np.asarray(x))
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def vocoder(d: Path, out: dict[str, str]) -> None:
    from priorgrad.core.config import load_params
    from priorgrad.corpus.synth import make_corpus
    from priorgrad.vocoder.infer import generate, prior_noise, utterance_seed
    from priorgrad.vocoder.preprocess import preprocess, prior_stats
    from priorgrad.vocoder.train import Trainer

    base = load_params(ROOT / "params.yaml", TINY)
    make_corpus(d / "corpus", n_utterances=8, seed=0)
    preprocess(d / "corpus", d / "feats", base, progress=False)
    prior_stats(d / "feats", d / "stats.json", base.audio.preset)
    for prior in ("standard", "energy"):
        for crop, resident in (("official", False), ("frames", True), ("official", True)):
            p = load_params(ROOT / "params.yaml", TINY + [f"prior.type={prior}", f"train.crop={crop}",
                                                          f"train.features_on_device={str(resident).lower()}"])
            tr = Trainer(p, d / "feats", d / "stats.json", d / f"run-{prior}-{crop}-{resident}", progress=False)
            losses = [tr.train_step() for _ in range(2)]
            key = f"vocoder/{prior}/{crop}/{'resident' if resident else 'host'}"
            out[f"{key}/train_loss"] = digest(np.asarray(losses, np.float64))
            out[f"{key}/params"] = digest([v for v in tr.model.state_dict().values()])
            if crop == "official" and not resident:
                out[f"vocoder/{prior}/valid"] = digest(tr.validate())
                mels = [v["mel"] for v in tr.valid] + [v["mel"][:, :5] for v in tr.valid]
                seeds = [utterance_seed(0, f"u{i}") for i in range(len(mels))]
                out[f"vocoder/{prior}/generate"] = digest(generate(tr.model.eval(), tr.diffusion, tr.prior, mels,
                                                                   seeds, 6, p.audio.preset))
                out[f"vocoder/{prior}/prior_noise"] = digest(prior_noise(tr.prior, mels, seeds, p.audio.preset))


def acoustic(d: Path, out: dict[str, str]) -> None:
    from priorgrad.acoustic.model_config import load_acoustic_config
    from priorgrad.acoustic.sampler import make_schedule, sample_mels
    from priorgrad.acoustic.toydata import make_toy_features
    from priorgrad.acoustic.train import AcousticTrainer

    toy = make_toy_features(d / "toy", n_train=8, n_valid=2, n_test=2)
    for prior in ("phoneme", "standard", "trainable"):
        for mode in (("mean_std", "mean_only", "std_only") if prior == "phoneme" else ("mean_std",)):
            cfg = load_acoustic_config(ROOT / "params.yaml", A_TINY + [f"acoustic.model.prior={prior}",
                                                                        f"acoustic.model.prior_mode={mode}"])
            tr = AcousticTrainer(cfg, toy, d / f"arun-{prior}-{mode}", prior=toy / "phoneme_stats.npz",
                                 progress=False)
            key = f"acoustic/{prior}/{mode}"
            out[f"{key}/train"] = digest([tr.train_step() for _ in range(2)])
            out[f"{key}/params"] = digest([v for v in tr.model.state_dict().values()])
            out[f"{key}/valid"] = digest(tr.validate())
            tr.model.eval()
            utts = tr.valid_utts
            sched = make_schedule(tr.diffusion, "strided", 4)
            for clip in ("none", "data_range"):
                clipped: list[float] = []
                res = sample_mels(tr.model, tr.diffusion, cfg.model, tr.table, utts, sched, [3, 4], "E1", tr.f0_stats,
                                  torch.device("cpu"), clip_x0=clip, clipped=clipped)
                out[f"{key}/sample/{clip}"] = digest([digest(r) for r in res] + [digest(np.asarray(clipped))])
            res = sample_mels(tr.model, tr.diffusion, cfg.model, tr.table, utts, sched, [3, 4], "E2", tr.f0_stats,
                              torch.device("cpu"), start_only=True)
            out[f"{key}/start_only"] = digest([digest(r) for r in res])


if __name__ == "__main__":
    torch.set_num_threads(1)
    result: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        vocoder(Path(tmp), result)
        acoustic(Path(tmp), result)
    Path(sys.argv[1]).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"{len(result)} digests -> {sys.argv[1]}")
