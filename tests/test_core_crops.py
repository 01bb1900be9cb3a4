"""Training crops (``train.crop``): the official mode's mel is the front-end's mel of the cropped
samples, an epoch visits each utterance once, and every batch depends only on (seed, step)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from priorgrad.core.audio import get_preset, log_mel, normalize, trim_to_hops
from priorgrad.vocoder.data import CropSampler, FeatureError, Item, read_manifest
from priorgrad.core.fileio import save_npy_atomic, write_text_atomic

HOP = 256


def _features(root: Path, frames: list[int], preset: str = "hifigan", seed: int = 0) -> list[Item]:
    """A features directory as `priorgrad preprocess` writes it: normalised, hop-trimmed audio (a
    random harmonic signal per utterance), the front-end's full-utterance mel, and the manifest."""
    rng = np.random.default_rng(seed)
    lines = []
    for k, n in enumerate(frames):
        t = np.arange(n * HOP + int(rng.integers(0, HOP))) / 22050
        f0 = rng.uniform(90, 250)
        wav = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
        wav = wav * (0.2 + np.abs(np.sin(2 * np.pi * 1.5 * t))) + 0.01 * rng.standard_normal(len(t))
        audio = trim_to_hops(normalize(wav.astype(np.float32), preset), HOP)
        mel = log_mel(audio, preset)
        utt = f"u{k:02d}"
        save_npy_atomic(root / "audio" / f"{utt}.npy", audio)
        save_npy_atomic(root / "mel" / f"{utt}.npy", mel)
        lines.append(json.dumps({"utt": utt, "split": "train", "audio": f"audio/{utt}.npy", "mel": f"mel/{utt}.npy",
                                 "samples": len(audio), "frames": mel.shape[1]}))
    write_text_atomic(root / "manifest.jsonl", "\n".join(lines) + "\n")
    return read_manifest(root, split="train")


@pytest.mark.parametrize("preset", ["hifigan", "diffwave"])
def test_official_crop_mel_is_the_front_end_mel_of_the_same_samples(tmp_path, preset):
    items = _features(tmp_path, [40, 25, 31, 60], preset)
    sampler = CropSampler(items, crop_frames=12, batch_size=4, preset=preset, seed=3, mode="official")
    off_hop = 0
    for step in range(6):
        idx, starts = sampler.choose(step)
        audio, mel = sampler.batch(step)
        assert audio.shape == (4, 12 * HOP) and mel.shape == (4, 80, 12)
        for b, (i, start) in enumerate(zip(idx, starts)):
            assert 0 <= start <= items[i].samples - 12 * HOP
            off_hop += start % HOP != 0
            np.testing.assert_array_equal(audio[b], np.load(items[i].audio_path)[start:start + 12 * HOP])
            np.testing.assert_array_equal(mel[b], log_mel(audio[b], preset))  # exactly the front-end's mel
    assert off_hop > 0, "crops start at random sample offsets, not only on frame boundaries"


def test_sliced_mel_differs_from_the_crops_own_mel_in_two_edge_frames_each_side(tmp_path):
    """Why the modes differ: a mel sliced from the full utterance sees audio outside the crop."""
    items = _features(tmp_path, [100])
    full, audio = items[0].mel(), np.array(items[0].audio())
    start, n = 20, 62
    own = log_mel(audio[start * HOP:(start + n) * HOP])
    sliced = full[:, start:start + n]
    differs = np.flatnonzero(np.abs(own - sliced).max(axis=0) > 1e-4)
    assert differs.tolist() == [0, 1, n - 2, n - 1]  # 4 of 62 frames (hifigan: window 1024, padding 384)


def test_frames_mode_slices_the_precomputed_mel_on_frame_boundaries(tmp_path):
    items = _features(tmp_path, [40, 25, 31])
    sampler = CropSampler(items, crop_frames=12, batch_size=5, preset="hifigan", seed=0, mode="frames")
    idx, starts = sampler.choose(2)
    audio, mel = sampler.batch(2)
    for b, (i, start) in enumerate(zip(idx, starts)):
        assert start % HOP == 0
        np.testing.assert_array_equal(mel[b], items[i].mel()[:, start // HOP:start // HOP + 12])
        np.testing.assert_array_equal(audio[b], items[i].audio()[start:start + 12 * HOP])
    # with replacement: 5 draws from 3 utterances in one batch
    assert len(idx) == 5 and len(set(idx)) <= 3


@pytest.mark.parametrize("n_items,batch", [(6, 2), (7, 2), (9, 4)])
def test_official_epoch_visits_every_utterance_once_without_replacement(tmp_path, n_items, batch):
    items = _features(tmp_path, [20 + 3 * k for k in range(n_items)])
    sampler = CropSampler(items, crop_frames=8, batch_size=batch, preset="hifigan", seed=1, mode="official")
    per_epoch = n_items // batch  # drop_last: the incomplete last batch of an epoch is dropped
    assert sampler.steps_per_epoch == per_epoch
    epochs = []
    for e in range(3):
        seen = [i for k in range(per_epoch) for i in sampler.choose(e * per_epoch + k)[0]]
        assert len(seen) == len(set(seen)) == per_epoch * batch  # no utterance twice within an epoch
        epochs.append(seen)
        if n_items % batch == 0:
            assert sorted(seen) == list(range(n_items))  # every utterance exactly once
    assert len({tuple(s) for s in epochs}) == 3  # each epoch reshuffles
    # over several epochs the dropped remainder changes, so every utterance is visited
    assert set().union(*epochs) == set(range(n_items))


@pytest.mark.parametrize("mode", ["official", "frames"])
def test_a_batch_depends_only_on_seed_and_step(tmp_path, mode):
    """What bit-identical resume needs: a fresh sampler (a resumed run) draws step k's batch as is."""
    items = _features(tmp_path, [30, 22, 41, 35, 28])
    straight = CropSampler(items, crop_frames=8, batch_size=2, preset="hifigan", seed=7, mode=mode)
    for step in range(7):
        straight.batch(step)
    resumed = CropSampler(items, crop_frames=8, batch_size=2, preset="hifigan", seed=7, mode=mode)
    for a, b in zip(straight.batch(7), resumed.batch(7)):
        np.testing.assert_array_equal(a, b)
    other = CropSampler(items, crop_frames=8, batch_size=2, preset="hifigan", seed=8, mode=mode)
    assert not np.array_equal(straight.batch(7)[0], other.batch(7)[0])


def test_short_clips_skipped_and_too_few_for_a_batch_is_a_clear_error(tmp_path):
    items = _features(tmp_path, [5, 30, 40])
    sampler = CropSampler(items, crop_frames=8, batch_size=2, preset="hifigan", seed=0, mode="official")
    assert sampler.skipped == ["u00"] and [it.utt for it in sampler.items] == ["u01", "u02"]
    with pytest.raises(FeatureError, match="train.batch_size"):
        CropSampler(items, crop_frames=8, batch_size=3, preset="hifigan", seed=0, mode="official")
    assert CropSampler(items, crop_frames=8, batch_size=3, preset="hifigan", seed=0, mode="frames").batch(0)[0].shape \
        == (3, 8 * HOP)  # frames draws with replacement: no such limit
    with pytest.raises(FeatureError, match="train.crop_frames"):
        CropSampler(items, crop_frames=2, batch_size=2, preset="diffwave", seed=0, mode="official")
    with pytest.raises(ValueError, match="train.crop"):
        CropSampler(items, crop_frames=8, batch_size=2, preset="hifigan", seed=0, mode="aligned")
    assert get_preset("diffwave").pad == 512  # centred STFT: n_fft / 2 on each side
