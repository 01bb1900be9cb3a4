"""Monotonic Alignment Search against brute force; the two-stage aligner on a toy language."""
from __future__ import annotations

import numpy as np
import pytest

from priorgrad.acoustic.mas import (AlignItem, AlignmentError, boundary_agreement, brute_force_path,
                                    durations_from_path, export_durations, maximum_path, path_score,
                                    train_aligner, uniform_durations)


def test_mas_equals_brute_force_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(200):
        nx = int(rng.integers(1, 6))
        ny = int(rng.integers(nx, 11))
        value = rng.normal(size=(nx, ny)).astype(np.float32)
        path = maximum_path(value)
        assert path.dtype == np.int32 and (path.sum(axis=0) == 1).all()  # one token per frame
        d = durations_from_path(path)
        assert (d >= 1).all() and d.sum() == ny
        ref = brute_force_path(value)
        assert d.tolist() == ref.tolist(), (value, d, ref)
        assert path_score(value, d) == pytest.approx(path_score(value, ref), rel=1e-6)


def test_batched_mas_with_padding_equals_one_by_one():
    rng = np.random.default_rng(1)
    vals = [rng.normal(size=(int(rng.integers(2, 9)), int(rng.integers(10, 25)))).astype(np.float32) for _ in range(7)]
    nx, ny = max(v.shape[0] for v in vals), max(v.shape[1] for v in vals)
    batch = np.full((len(vals), nx, ny), 3.0, np.float32)  # padding holds high values: must be ignored
    for i, v in enumerate(vals):
        batch[i, :v.shape[0], :v.shape[1]] = v
    paths = maximum_path(batch, [v.shape[0] for v in vals], [v.shape[1] for v in vals])
    for i, v in enumerate(vals):
        assert (paths[i, :v.shape[0], :v.shape[1]] == maximum_path(v)).all()
        assert paths[i].sum() == v.shape[1]


def test_backtrack_tie_rule_stays_on_equal_values():
    # all-equal values: at every tie the backtrack stays on its token until it must move (x == y)
    d = durations_from_path(maximum_path(np.zeros((3, 6), np.float32)))
    assert d.tolist() == [1, 1, 4]


def test_more_tokens_than_frames_is_an_error_naming_the_utterance():
    with pytest.raises(AlignmentError, match="only 3 frames"):
        maximum_path(np.zeros((4, 3), np.float32))
    item = AlignItem("LJ050-0001", np.arange(3, 9), np.ones(6, bool), np.zeros((80, 4), np.float32))
    with pytest.raises(AlignmentError, match=r"utterance LJ050-0001: 6 tokens need at least one frame"):
        train_aligner([item], 10, 1, 1, 8, 1, 3, 1e-3, 0, progress=False)


def _toy_corpus(n: int, seed: int) -> tuple[list[AlignItem], dict[str, np.ndarray]]:
    """A toy language: 8 tokens with distinct mel patterns (no token twice in a row), random durations 2..7, plus noise; token 3
    plays '|' (0 frames, left out of the alignment)."""
    rng = np.random.default_rng(seed)
    patterns = rng.normal(0, 2.0, size=(12, 80)).astype(np.float32)
    items, truth = [], {}
    for i in range(n):
        toks = rng.integers(4, 12, size=int(rng.integers(5, 12)))
        while (np.diff(toks) == 0).any():  # repeated neighbours would make their boundary ambiguous
            toks = rng.integers(4, 12, size=len(toks))
        toks = np.insert(toks, 2, 3)  # one word boundary
        mask = toks != 3
        dur = np.where(mask, rng.integers(2, 8, size=len(toks)), 0)
        mel = np.repeat(patterns[toks].T, dur, axis=1) + rng.normal(0, 0.5, size=(80, int(dur.sum())))
        items.append(AlignItem(f"T{i}", toks.astype(np.int64), mask, mel.astype(np.float32)))
        truth[f"T{i}"] = dur
    return items, truth


def test_aligner_recovers_toy_durations():
    items, truth = _toy_corpus(24, seed=0)
    model = train_aligner(items, vocab_size=12, steps=150, batch_size=8, hidden=32, layers=1, kernel=3,
                          learning_rate=1e-2, seed=0, threads=1, progress=False)
    est = export_durations(model, items)
    for it in items:
        d = est[it.utt]
        assert d.sum() == it.mel.shape[1] and (d[~it.align_mask] == 0).all() and (d[it.align_mask] >= 1).all()
    agree = boundary_agreement({u: truth[u][truth[u] > 0] for u in truth},
                               {u: est[u][truth[u] > 0] for u in truth})
    # distinct patterns 4 sd apart: the alignment should be nearly exact
    assert agree["within_1"] >= 0.95, agree


# ----------------------------------------------------------------------------- MAS vs eSpeak on real speech
# (c) of spec section 2: all-zero frames on pause / clause / <UNK> / <EOS> tokens or stop closures (which eSpeak
# renders as digital silence inside words); the spec's target (UNVERIFIED). Measured on the default 300-utterance
# corpus with the default 600 aligner steps: 99.9% (eSpeak's own durations: 100%; without closures 70% / 71%);
# in this test (32 utterances, 300 steps) 95.5% (eSpeak 100%), so the bound leaves room for platform differences.
MAS_SILENT_SHARE = 0.9
@pytest.mark.slow
def test_mas_boundaries_agree_with_espeak_events(tmp_path):
    """The aligner on 32 synthetic utterances (real code path: corpus, vocoder features, acoustic
    preprocess with durations = mas, 300 aligner steps) against eSpeak's own phoneme boundaries.

    Thresholds, from measurements on this corpus: the floor is a uniform split of each utterance
    (7.1 frames mean error, 13% within 1, 22% within 2 on these 32 utterances); this test measured MAS at
    3.7 frames / 52% / 72% (the full 300-utterance corpus with the default 600 steps: 1.69 / 61% / 80%).
    A perfect match is not expected: eSpeak reports stop closures and liquid/nasal onsets with the
    preceding phoneme, and a few misplaced pauses inflate the mean. The bounds require MAS to be clearly
    closer than the uniform split (mean error < 0.7x; measured 0.53x) with ~3x its share within 2 frames,
    leaving ~20% room below the measured shares for BLAS / platform differences (the run is seeded).
    """
    from pathlib import Path

    from priorgrad.acoustic.data_config import load_data_config
    from priorgrad.acoustic.preprocess import iter_utterances, preprocess_acoustic, read_acoustic_manifest
    from priorgrad.acoustic.text import Vocabulary
    from priorgrad.core.config import load_params
    from priorgrad.corpus.synth import make_corpus
    from priorgrad.vocoder.preprocess import preprocess

    params_path = Path(__file__).resolve().parents[1] / "params.yaml"
    make_corpus(tmp_path / "corpus", n_utterances=32, progress=False)
    params = load_params(params_path, {"corpus.n_valid": 2, "corpus.n_test": 2})
    preprocess(tmp_path / "corpus", tmp_path / "feats", params, progress=False)
    durs = {}
    for source in ("espeak", "mas"):
        cfg = load_data_config(params_path, {"acoustic.features.durations": source,
                                             "acoustic.features.mas.steps": 300, "acoustic.features.mas.threads": 1})
        out = tmp_path / source
        preprocess_acoustic(tmp_path / "corpus", tmp_path / "feats", out, params, cfg, progress=False)
        bar = Vocabulary.load(out / "vocab.json").id("|")
        durs[source] = {r["utt"]: a["durations"][a["tokens"] != bar]
                        for r, a in iter_utterances(out, read_acoustic_manifest(out))}
    agree = boundary_agreement(durs["espeak"], durs["mas"])
    floor = boundary_agreement(durs["espeak"], {u: uniform_durations(len(d), int(d.sum()))
                                                for u, d in durs["espeak"].items()})
    print("MAS vs eSpeak boundaries:", agree, "uniform split:", floor)
    assert agree["n_boundaries"] == floor["n_boundaries"] > 1500
    assert agree["mean_abs_frames"] < 0.7 * floor["mean_abs_frames"], (agree, floor)
    assert agree["within_1"] > 0.4 and agree["within_2"] > max(0.55, 3 * floor["within_2"]), (agree, floor)
    # quality checks (b), (c) of spec section 2 (priorgrad/acoustic/alignment_quality.py)
    from priorgrad.acoustic.alignment_quality import report_features_dirs
    from priorgrad.core.audio import PRESETS

    q = report_features_dirs({"espeak": str(tmp_path / "espeak"), "mas": str(tmp_path / "mas")},
                             PRESETS["hifigan"].silence)
    print("alignment quality:", q)
    for name in ("espeak", "mas"):
        assert q[name]["heldout_nll"] < q[name]["uniform_within_words_nll"], q
    assert q["mas"]["zero_frames"] == q["espeak"]["zero_frames"] > 50
    assert q["mas"]["zero_frames_on_silent_or_stop_closure"] >= MAS_SILENT_SHARE, q
