"""The acoustic evaluate stage's inputs and cached work: the test set, mel synthesis, the floor, vocoding.

- Test set: the first N test utterances of the acoustic features, their ground-truth mels cropped to
  ``max_frames``, the floor (the phoneme prior's mean mu_ph gathered by the ground-truth durations,
  the same crop) and the recordings (from the vocoder's features directory) cut to the same frames.
- Mel synthesis: ``priorgrad.acoustic.synthesize.synthesize`` (the library's one synthesis routine) on
  WHOLE utterances, so the encoder sees each utterance's full text; the crop is applied when scoring.
  A synthesised set is reused only when its checkpoint bytes, schedule, condition, inputs, seed, batch
  size, device-independent settings and the acoustic sampler's code are unchanged.
- Vocoding: content-addressed per utterance (the mel's bytes, the utterance key that seeds the
  vocoder, the vocoder's settings and code), so the ground-truth mel, the floor and every generated mel
  go through the same cache and a re-run renders nothing twice.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from experiments.acoustic_eval_config import AcousticEvaluateConfig
from experiments.synthesis import _cached  # synthesis.json (written last) marks a finished set
from experiments.testset import EvaluateError
from priorgrad.core.config import params_hash
from priorgrad.core.fileio import file_digest, save_npy_atomic, write_json_atomic

log = logging.getLogger(__name__)

# The project's ln-mel is ln(max(mel, 1e-5)) of peak-normalised audio: about -11.5..3. A mel beyond +-30
# (e^30 = 1e13, ten orders of magnitude above any recording) comes from a diverged sampler; Griffin-Lim's
# magnitude fit overflows on it and returns NaN after ~1.5 s per utterance, so it is refused up front as
# that utterance's recorded failure.
MAX_ABS_LN_MEL = 30.0
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class AcousticTestSet:
    utts: list[str]
    gt: dict[str, np.ndarray]        # cropped ground-truth ln-mels (80, frames)
    mu: dict[str, np.ndarray]        # cropped floor mels: mu_ph by the ground-truth durations
    full_frames: dict[str, int]      # each utterance's whole length (frames)
    recordings: Path                 # <utt>.wav, the recording cut to the cropped frames
    inputs: dict[str, Any] = field(default_factory=dict)  # what every synthesis depends on (cache keys)
    # condition E3 (predicted durations; its length is the model's): its audio is scored on the utterance's
    # first words (e3_crop_tokens: the same tokens in every set, whatever their predicted durations)
    gt_e3: dict[str, np.ndarray] = field(default_factory=dict)       # ground-truth ln-mel of those words
    recordings_e3: Path | None = None                                # <utt>.wav, the recording of those words
    texts: dict[str, str] = field(default_factory=dict)              # what those words say (the corpus text)
    tokens: dict[str, np.ndarray] = field(default_factory=dict)      # phoneme ids of the whole utterance
    durations: dict[str, np.ndarray] = field(default_factory=dict)   # reference durations per token (frames)
    e3_crop_tokens: dict[str, int] = field(default_factory=dict)     # tokens of E3's scored audio (<= n_tokens)
    table: Any = None                                                # the phoneme prior (mu_ph, s_ph per token)

    def crop_e3(self, utt: str, mel: np.ndarray, durations: np.ndarray) -> np.ndarray:
        """An E3 mel (predicted durations) cut to the frames of the utterance's scored tokens."""
        return mel[:, :int(durations[:self.e3_crop_tokens[utt]].sum())]

    def crop(self, utt: str, mel: np.ndarray, what: str) -> np.ndarray:
        """A generated whole-utterance mel cut to the scored frames; a length mismatch is an error."""
        n = self.full_frames[utt]
        if mel.ndim != 2 or mel.shape[1] != n:
            raise EvaluateError(f"{what}: mel of shape {mel.shape} for {utt}, expected (80, {n}) (ground-truth "
                                f"durations give the ground truth's length)")
        return mel[:, :self.gt[utt].shape[1]]


def e3_crop(tokens: list[str], durations: np.ndarray, text: str, max_frames: int) -> tuple[int, str, str]:
    """(tokens kept, their text, why) of E3's scored audio: the longest run of whole words from the start whose
    reference frames fit in ``max_frames`` (0 = the whole utterance), cut after a word or clause boundary
    token, so the kept words are the same in every set whatever its predicted durations. The text is the
    first words of the corpus text, counted from eSpeak's words ('|' between words in a clause, a clause
    token after its last); where eSpeak's word count differs from the text's (it joined or split words) the
    whole utterance is kept, since no word boundary of the text is known."""
    from eval.metrics.asr import normalise
    from priorgrad.acoustic.text import CLAUSE_TOKENS, WORD

    n = len(tokens)
    words = normalise(text).split()
    ends = [i + 1 for i, t in enumerate(tokens) if t == WORD or t in CLAUSE_TOKENS]  # cut after these
    if len(ends) != len(words):
        return n, text, f"eSpeak has {len(ends)} words, the text {len(words)}: whole utterance"
    if max_frames <= 0 or int(durations.sum()) <= max_frames:
        return n, text, ""
    cum = np.cumsum(durations)
    fit = [k for k in ends if cum[k - 1] <= max_frames] or ends[:1]  # at least one word
    k = fit[-1]
    m = sum(1 for t in tokens[:k] if t == WORD or t in CLAUSE_TOKENS)
    return k, " ".join(words[:m]), ""


def prepare_test_set(features: Path, stats: Path, recordings: Path, cfg: AcousticEvaluateConfig,
                     hop_length: int, sample_rate: int, work: Path) -> AcousticTestSet:
    """Reads the test utterances, the phoneme statistics and the recordings; writes work/inputs/recording."""
    from priorgrad.acoustic.dataset import FeatureSet
    from priorgrad.acoustic.model import TablePrior
    from priorgrad.acoustic.synthesize import load_frame_prior
    from priorgrad.core.audio import write_wav
    from priorgrad.vocoder.data import load_item_arrays, read_manifest

    fs = FeatureSet(features)
    utts = fs.utterances("test")
    if not utts:
        raise EvaluateError(f"{features / 'manifest.jsonl'}: no test utterances")
    if cfg.n_utterances:
        utts = utts[:cfg.n_utterances]
    table = TablePrior.from_prior(load_frame_prior(stats), len(fs.vocab))
    items = {it.utt: it for it in read_manifest(recordings)}
    rec_dir, rec_e3 = work / "inputs" / "recording", work / "inputs" / "recording-E3"
    for d in (rec_dir, rec_e3):
        if d.exists():  # leftovers of an earlier, larger selection must not be scored
            shutil.rmtree(d)
    gt, mu, full = {}, {}, {}
    gt_e3, texts, tokens, durations, crop_tokens = {}, {}, {}, {}, {}
    for u in utts:
        if u.utt not in items:
            raise EvaluateError(f"{recordings / 'manifest.jsonl'}: test utterance {u.utt} of {features} has no "
                                f"recording (--recordings must be the features directory the acoustic features came from)")
        audio, mel = load_item_arrays(items[u.utt], hop_length)
        if mel.shape[1] != u.n_frames:
            raise EvaluateError(f"{items[u.utt].mel_path}: {mel.shape[1]} frames, but {features}/utts/{u.utt}.npz "
                                f"has {u.n_frames} (features from another preprocessing run?)")
        frames = u.n_frames if cfg.max_frames <= 0 else min(cfg.max_frames, u.n_frames)
        gt[u.utt] = np.ascontiguousarray(u.mel[:, :frames])
        mu[u.utt] = np.ascontiguousarray(table.frame_stats(u.frame_ids())[0][:, :frames], dtype=np.float32)
        full[u.utt] = u.n_frames
        write_wav(rec_dir / f"{u.utt}.wav", np.asarray(audio[:frames * hop_length], dtype=np.float32), sample_rate)
        if cfg.e3_t_infer:
            if not u.text.strip():
                raise EvaluateError(f"{features}/utts/{u.utt}.npz: no text for test utterance {u.utt} (E3's "
                                    f"WER / CER need the corpus text; set acoustic_evaluate.e3_t_infer: 0 to skip E3)")
            tokens[u.utt] = np.asarray(u.tokens)
            durations[u.utt] = np.asarray(u.durations, dtype=np.int64)
            k, texts[u.utt], why = e3_crop([fs.vocab[i] for i in u.tokens], durations[u.utt], u.text,
                                           cfg.e3_max_frames)
            if why:
                log.info("E3 %s: %s", u.utt, why)
            crop_tokens[u.utt] = k
            frames_e3 = int(durations[u.utt][:k].sum())
            gt_e3[u.utt] = np.ascontiguousarray(u.mel[:, :frames_e3])
            write_wav(rec_e3 / f"{u.utt}.wav", np.asarray(audio[:frames_e3 * hop_length], dtype=np.float32),
                      sample_rate)
    names = [u.utt for u in utts]
    inputs = {"utts": names, "max_frames": cfg.max_frames,
              "features": [file_digest(features / "utts" / f"{n}.npz", 12) for n in names],
              "vocab": file_digest(features / "vocab.json", 12), "f0": file_digest(features / "f0_stats.json", 12)}
    return AcousticTestSet(names, gt, mu, full, rec_dir, inputs, gt_e3, rec_e3 if cfg.e3_t_infer else None,
                           texts, tokens, durations, crop_tokens, table)


def synthesis_key(ckpt: Path, t_infer: int, condition: str, inputs: dict[str, Any], infer: Any) -> str:
    from priorgrad.core.fingerprint import acoustic_synthesis_fingerprint

    return params_hash({"ckpt": file_digest(ckpt, 12), "t": t_infer, "schedule": infer.schedule,
                        "clip_x0": infer.clip_x0, "search_max_candidates": infer.search_max_candidates,
                        "condition": condition, "inputs": inputs, "seed": infer.seed,
                        "batch_size": infer.batch_size, "code": acoustic_synthesis_fingerprint()})


def synthesize_mels(name: str, ckpt: Path, t_infer: int, condition: str, test: AcousticTestSet, features: Path,
                    infer: Any, work: Path) -> tuple[Path, dict[str, Any]]:
    """Mels of the test utterances from one checkpoint at T_infer under one condition (or the cached ones).

    Returns (directory of <utt>.npy whole-utterance mels, the library's synthesis summary: mel RTF, device,
    prior, schedule). ``infer``: the params' acoustic.infer (seed, batch size, device, schedule kind)."""
    from priorgrad.core import checkpoint as ckpt_io
    from priorgrad.acoustic.model_config import AcousticConfig
    from priorgrad.acoustic.synthesize import make_schedule, synthesize
    from priorgrad.core.diffusion import Diffusion

    if not ckpt.exists():
        raise EvaluateError(f"{ckpt}: checkpoint of {name} not found")
    gen_dir = work / "gen" / f"{name}-T{t_infer}-{condition}-{synthesis_key(ckpt, t_infer, condition, test.inputs, infer)}"
    summary = _cached(gen_dir)
    if summary is None:
        ck = ckpt_io.load(ckpt, map_location="cpu")
        if "vocab" not in ck:
            raise EvaluateError(f"{ckpt}: not an acoustic model checkpoint (no vocabulary)")
        d = AcousticConfig.from_dict(ck["params"], source=f"{ckpt} params").diffusion
        del ck
        if t_infer > d.num_steps:
            raise EvaluateError(f"{ckpt}: T_infer={t_infer} exceeds the checkpoint's {d.num_steps} diffusion steps")
        diffusion = Diffusion(d.num_steps, d.beta_start, d.beta_end)
        if infer.schedule == "searched":
            schedule, search = _searched(ckpt, diffusion, features, t_infer, infer)
        else:
            schedule, search = make_schedule(diffusion, infer.schedule, t_infer), None
        summary = synthesize(ckpt, gen_dir, features, split="test", conditions=(condition,), schedule=schedule,
                             seed=infer.seed, batch_size=infer.batch_size, device=infer.device,
                             max_utterances=len(test.utts), vocoder=None, progress=False, clip_x0=infer.clip_x0)
        if search is not None:  # the search record beside the set (written before synthesis.json is re-read)
            summary["schedule_search"] = search
            write_json_atomic(gen_dir / "synthesis.json", summary)
    return gen_dir / condition, summary


def _searched(ckpt: Path, diffusion: Any, features: Path, t_infer: int, infer: Any) -> tuple[Any, dict[str, Any]]:
    """The 'searched' protocol: the official grid search for this checkpoint on the first VALIDATION utterance
    (held out: never the test set the scores come from), capped by acoustic.infer.search_max_candidates."""
    from priorgrad.acoustic.dataset import FeatureSet
    from priorgrad.acoustic.synthesize import load_acoustic_checkpoint, searched_schedule, table_from_ckpt
    from priorgrad.core.runtime import resolve_device

    valid = FeatureSet(features).utterances("valid")
    if not valid:
        raise EvaluateError(f"{features / 'manifest.jsonl'}: no validation utterance for the 'searched' protocol")
    dev = resolve_device(infer.device)
    model, cfg, ck = load_acoustic_checkpoint(ckpt, dev)
    f0 = (float(ck["f0_stats"]["mean"]), float(ck["f0_stats"]["std"]))
    return searched_schedule(model, diffusion, cfg.model, table_from_ckpt(ck), valid[0], f0, dev, t_infer,
                             infer.search_max_candidates, infer.seed, infer.clip_x0)


def prior_draw_mels(name: str, ckpt: Path, draw: int, condition: str, test: AcousticTestSet, features: Path,
                    infer: Any, work: Path) -> Path:
    """A system's floor: its prior draw ``draw`` (mu + s n for PriorGrad, the learned mean + n for B2, n for
    B1; noise seeded with acoustic.infer.seed + draw, so draw 0 is exactly the x_S its sampler starts from)
    for the test utterances under ``condition``, from the checkpoint (B2's mean is the network's). Cached."""
    from priorgrad.acoustic.synthesize import synthesize
    from priorgrad.core.fingerprint import acoustic_synthesis_fingerprint

    if not ckpt.exists():
        raise EvaluateError(f"{ckpt}: checkpoint of {name} not found")
    key = params_hash({"ckpt": file_digest(ckpt, 12), "draw": draw, "condition": condition, "inputs": test.inputs,
                       "seed": infer.seed, "batch_size": infer.batch_size, "code": acoustic_synthesis_fingerprint()})
    gen_dir = work / "floor" / f"{name}-draw{draw}-{condition}-{key}"
    if _cached(gen_dir) is None:
        from priorgrad.core.diffusion import StepSchedule

        # the schedule is unused by a prior draw (no denoising); any valid one keeps synthesize's contract
        synthesize(ckpt, gen_dir, features, split="test", conditions=(condition,),
                   schedule=StepSchedule(np.array([0.5]), np.array([0.0]), "none"), seed=infer.seed,
                   batch_size=infer.batch_size, device=infer.device, max_utterances=len(test.utts), vocoder=None,
                   progress=False, prior_draw=draw)
    return gen_dir / condition


def load_mels(mel_dir: Path, test: AcousticTestSet, what: str) -> dict[str, np.ndarray]:
    out = {}
    for u in test.utts:
        p = mel_dir / f"{u}.npy"
        if not p.exists():
            raise EvaluateError(f"{p}: synthesised mel missing ({what})")
        out[u] = test.crop(u, np.load(p), what)
    return out


def load_e3(mel_dir: Path, test: AcousticTestSet, what: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """E3's whole mels (their length is the model's) and predicted durations per token, checked against each
    other and against the utterance's tokens (synthesize writes <condition>-durations/<utt>.npy beside them)."""
    dur_dir = mel_dir.parent / f"{mel_dir.name}-durations"
    mels, durs = {}, {}
    for u in test.utts:
        p, q = mel_dir / f"{u}.npy", dur_dir / f"{u}.npy"
        for f in (p, q):
            if not f.exists():
                raise EvaluateError(f"{f}: synthesised E3 {'mel' if f == p else 'durations'} missing ({what})")
        mel, dur = np.load(p), np.load(q)
        if dur.shape != test.tokens[u].shape or mel.ndim != 2 or mel.shape[1] != int(dur.sum()):
            raise EvaluateError(f"{q}: {dur.shape[0] if dur.ndim else 0} durations summing to {int(dur.sum())} "
                                f"frames for {len(test.tokens[u])} tokens and a mel of shape {mel.shape} ({what})")
        mels[u], durs[u] = mel, dur.astype(np.int64)
    return mels, durs


def duration_scores(durs: dict[str, np.ndarray], test: AcousticTestSet, hop_length: int, sample_rate: int
                    ) -> dict[str, dict[str, float]]:
    """{utt: {"dur_mae_ms", "len_dist"}} of predicted against reference durations per phoneme (the metrics
    of experiments.acoustic_eval_config.DURATION_METRICS). A prediction of 0 frames in all is a length
    ratio of 0: len_dist is infinite, recorded as a failure (None), never as a number."""
    import math

    ms_per_frame = 1000.0 * hop_length / sample_rate
    out: dict[str, dict[str, float]] = {}
    for u in test.utts:
        pred, ref = durs[u], test.durations[u]
        if pred.shape != ref.shape:
            raise EvaluateError(f"{u}: {len(pred)} predicted durations for {len(ref)} reference tokens")
        total_pred, total_ref = int(pred.sum()), int(ref.sum())
        out[u] = {"dur_mae_ms": float(np.mean(np.abs(pred - ref))) * ms_per_frame,
                  "len_dist": (abs(math.log(total_pred / total_ref)) if total_pred > 0 and total_ref > 0
                               else None)}
    return out


def mean_reference_e3(test: AcousticTestSet, durs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """mu_ph alone gathered by predicted durations (the mean reference of E3): each token's mean repeated
    for its predicted frames, as the ground-truth-duration reference is for its frames."""
    out = {}
    for u in test.utts:
        ids = np.repeat(test.tokens[u], durs[u])
        out[u] = (np.ascontiguousarray(test.table.frame_stats(ids)[0], dtype=np.float32) if ids.size
                  else np.zeros((80, 0), np.float32))
    return out


def mel_scores(mels: dict[str, np.ndarray], test: AcousticTestSet, metrics: list[str]) -> dict[str, dict[str, float]]:
    """{utt: {metric: value}} of cropped mels against the cropped ground truth."""
    from experiments.acoustic_eval_config import mel_metric_function

    fns = {m: mel_metric_function(m) for m in metrics}
    return {u: {m: float(fns[m](mels[u], test.gt[u])) for m in metrics} for u in test.utts}


# ----------------------------------------------------------------------------- vocoding

def _check_mel(mel: np.ndarray) -> None:
    peak = float(np.max(np.abs(mel))) if mel.size else 0.0
    if not peak <= MAX_ABS_LN_MEL:
        raise ValueError(f"ln-mel values up to {peak:.3g} in magnitude, outside any audio's range "
                         f"(|ln mel| <= {MAX_ABS_LN_MEL:g})")


def _attempt(fn: Callable[[np.ndarray, str], np.ndarray], mel: np.ndarray, utt: str
             ) -> tuple[np.ndarray | None, float, str | None]:
    """(waveform or None, seconds, error) of one render; any failure is the utterance's recorded failure."""
    t0 = time.perf_counter()
    try:
        _check_mel(mel)
        y = fn(mel, utt)  # the utterance names the seed: the generated and the GT mel of utt share it
        if not np.all(np.isfinite(y)):
            raise ValueError("the vocoder's output is not finite")
        return np.asarray(y, np.float32), time.perf_counter() - t0, None
    except Exception as e:  # noqa: BLE001 - a third-party vocoder may raise anything on a bad mel
        return None, time.perf_counter() - t0, f"{type(e).__name__}: {e}"


def _griffin_lim_job(job: tuple[np.ndarray, str, int, int]) -> tuple[np.ndarray | None, float, str | None]:
    """A worker process's render: exactly priorgrad.acoustic.vocode.make_vocoder's griffin_lim call."""
    from priorgrad.acoustic.vocode import griffin_lim
    from priorgrad.vocoder.infer import utterance_seed

    mel, utt, iters, seed = job
    return _attempt(lambda m, key: griffin_lim(m, iters, utterance_seed(seed, key) % (2 ** 32)), mel, utt)


@dataclass
class CachedVocoder:
    """A vocoder (priorgrad.acoustic.vocode) with a content-addressed cache of its renders under ``cache``.

    Griffin-Lim (CPU, single-threaded, the stage's largest cost) renders in ``workers`` processes; each
    render is a pure function of (mel, utterance seed, iterations), so the result does not depend on the
    process. A trained vocoder renders in this process (its model is on the stage's device)."""
    fn: Callable[[np.ndarray, str], np.ndarray]
    settings: dict[str, Any]        # name, iterations / steps, seed, checkpoint digest, code (the cache key)
    cache: Path
    sample_rate: int
    hop_length: int
    workers: int = 1
    griffin_lim: tuple[int, int] | None = None  # (iterations, seed) when the vocoder is Griffin-Lim
    rendered_s: float = 0.0         # wall seconds of the renders this run actually did (summed over workers)
    rendered_audio_s: float = 0.0

    def _key(self, mel: np.ndarray, utt: str) -> str:
        return hashlib.sha256(mel.tobytes() + str(mel.shape).encode() + utt.encode()
                              + params_hash(self.settings).encode()).hexdigest()[:20]

    def render(self, label: str, mels: dict[str, np.ndarray], dest: Path) -> tuple[Path, float, float]:
        return self.render_many([(label, mels, dest)])[label]

    def render_many(self, sets: list[tuple[str, dict[str, np.ndarray], Path]]
                    ) -> dict[str, tuple[Path, float, float]]:
        """<utt>.wav of every mel of every (label, mels, dest) set into its dest (links to the cache); per
        label (dest, wall s, audio s) of the renders behind them (cached ones count with their recorded
        time, for the vocoder's RTF). A mel the vocoder cannot render (e.g. a diverged model's ln-mel of
        +-700, whose exp overflows) gets no wav: the scorer records the utterance as failed, and the
        failure is cached like a render."""
        from priorgrad.core.audio import write_wav

        todo: dict[str, tuple[np.ndarray, str, str]] = {}  # key -> (mel, utt, label): each render once
        keyed = []
        for label, mels, dest in sets:
            ks = {}
            for utt, mel in mels.items():
                mel = np.ascontiguousarray(mel, dtype=np.float32)
                k = ks[utt] = self._key(mel, utt)
                if not (self.cache / f"{k}.json").exists():  # the sidecar, written last, marks a finished render
                    todo.setdefault(k, (mel, utt, label))
            keyed.append((label, ks, dest))
        if todo:
            log.info("vocoding %d utterance(s) with %s (%d process(es))", len(todo), self.settings["vocoder"],
                     self.workers if self.griffin_lim else 1)
        for k, (y, seconds, error) in zip(todo, self._run([(m, u) for m, u, _ in todo.values()])):
            if error is None:
                write_wav(self.cache / f"{k}.wav", y, self.sample_rate)
            n = 0 if y is None else len(y)
            write_json_atomic(self.cache / f"{k}.json", {"seconds": seconds, "audio_s": n / self.sample_rate,
                                                         "label": todo[k][2], "error": error})
            self.rendered_s += seconds
            self.rendered_audio_s += n / self.sample_rate
        out = {}
        for label, ks, dest in keyed:
            if dest.exists():
                shutil.rmtree(dest)
            dest.mkdir(parents=True)
            wall = audio_s = 0.0
            failed: list[str] = []
            for utt, k in ks.items():
                info = json.loads((self.cache / f"{k}.json").read_text())
                if info.get("error"):  # no wav: the scorer records a failed utterance (never a silent 0)
                    failed.append(f"{utt} ({info['error'][:120]})")
                    continue
                wall += float(info["seconds"])
                audio_s += float(info["audio_s"])
                os.symlink((self.cache / f"{k}.wav").resolve(), dest / f"{utt}.wav")
            if failed:
                log.warning("%s: vocoding failed for %d of %d utterance(s), scored as failures: %s", label,
                            len(failed), len(ks), "; ".join(failed[:3]))
            out[label] = (dest, wall, audio_s)
        return out

    def _run(self, jobs: list[tuple[np.ndarray, str]]) -> list[tuple[np.ndarray | None, float, str | None]]:
        from tqdm import tqdm

        from priorgrad.core.logs import show_progress

        show = show_progress(None)
        if self.griffin_lim is None or self.workers <= 1 or len(jobs) < 2:
            return [_attempt(self.fn, m, u) for m, u in tqdm(jobs, desc="vocode", unit="utt", disable=not show)]
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        iters, seed = self.griffin_lim
        # One BLAS thread per worker: Griffin-Lim's matrices are small, and two BLAS threads per process made a
        # render 2.4x dearer in CPU time here (1.04 vs 0.43 s per 1.5 s utterance) besides oversubscribing
        # the cores. Spawned workers import numpy afresh, so the variables set here reach them.
        saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARS}
        os.environ.update({k: "1" for k in BLAS_THREAD_VARS})
        try:
            with ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
                it = pool.map(_griffin_lim_job, [(m, u, iters, seed) for m, u in jobs], chunksize=4)
                return list(tqdm(it, total=len(jobs), desc="vocode", unit="utt", disable=not show))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def make_cached_vocoder(infer: Any, vocoder_checkpoint: Path | None, work: Path, workers: int = 1) -> CachedVocoder:
    """acoustic.infer.vocoder (griffin_lim by default, in ``workers`` processes; priorgrad with
    --vocoder-checkpoint), seeded by acoustic.infer.seed and the utterance."""
    from priorgrad.acoustic.vocode import make_vocoder
    from priorgrad.core.audio import get_preset
    from priorgrad.core.fingerprint import code_fingerprint, synthesis_fingerprint
    from priorgrad.core.runtime import resolve_device

    if infer.vocoder == "priorgrad" and vocoder_checkpoint is None:
        raise EvaluateError("params: acoustic.infer.vocoder is 'priorgrad': give its checkpoint (--vocoder-checkpoint)")
    if vocoder_checkpoint is not None and not vocoder_checkpoint.exists():
        raise EvaluateError(f"{vocoder_checkpoint}: vocoder checkpoint not found")
    device = resolve_device(infer.device)
    voc = make_vocoder(infer.vocoder, vocoder_checkpoint, infer, infer.seed, device)
    settings: dict[str, Any] = {"vocoder": voc.name, "seed": infer.seed,
                                "code": code_fingerprint(("priorgrad.acoustic.vocode",))}
    if infer.vocoder == "griffin_lim":
        settings["griffin_lim_iters"] = infer.griffin_lim_iters
    else:
        settings.update({"vocoder_steps": infer.vocoder_steps, "checkpoint": file_digest(vocoder_checkpoint, 12),
                         "vocoder_code": synthesis_fingerprint()})
    preset = get_preset("hifigan")  # the acoustic model's mel (priorgrad.acoustic.preprocess requires it)
    gl = (infer.griffin_lim_iters, infer.seed) if infer.vocoder == "griffin_lim" else None
    return CachedVocoder(voc, settings, work / "voc", preset.sample_rate, preset.hop_length, workers, gl)


def save_floor_mels(test: AcousticTestSet, work: Path) -> Path:
    """The floor's mels as files (kept for inspection beside the generated ones)."""
    d = work / "floor" / "mu"
    for u in test.utts:
        save_npy_atomic(d / f"{u}.npy", test.mu[u])
    return d
