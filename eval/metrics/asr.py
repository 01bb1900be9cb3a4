"""Intelligibility by an offline speech recogniser: WER and CER of pocketsphinx's transcript against the text.

pocketsphinx ships its US English acoustic model, dictionary and language model inside the wheel, so
nothing is downloaded and the transcript is deterministic. It is a weak recogniser (on the 32
ljspeech_mini recordings themselves: mean WER 0.31, median 0.26), so its WER on the recordings is the
floor of what it can measure; compare systems with each other and with that floor, not with 0. On the
project's synthetic eSpeak corpus it hears little (WER 0.96, CER 0.69 on 8 recordings).
Transcript and text are normalised by the same jiwer transforms, so case, punctuation and hyphenation
never count as errors. The generated audio is transcribed as given (``gen_full``): what it says does
not depend on a reference recording.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from eval.pair import Pair
from eval.registry import ASR_MODEL_FILES, ASR_SAMPLE_RATE


@functools.lru_cache(maxsize=1)
def _decoder():
    from pocketsphinx import Decoder, get_model_path

    base = get_model_path()
    paths = {key: os.path.join(base, rel) for key, rel in ASR_MODEL_FILES.items()}
    for key, path in paths.items():
        if not os.path.exists(path):
            raise RuntimeError(f"pocketsphinx model file missing from the installed wheel ({key}): {path}")
    return Decoder(hmm=paths["hmm"], lm=paths["lm"], dict=paths["dict"], samprate=ASR_SAMPLE_RATE,
                   loglevel="FATAL")


def transcribe(wav_16k: np.ndarray) -> str:
    """pocketsphinx's best hypothesis for a 16 kHz waveform in [-1, 1] ("" when it hears no word)."""
    pcm = np.round(np.clip(np.asarray(wav_16k, dtype=np.float64), -1.0, 1.0) * 32767.0).astype("<i2")
    dec = _decoder()
    dec.start_utt()
    dec.process_raw(pcm.tobytes(), full_utt=True)
    dec.end_utt()
    hyp = dec.hyp()
    return "" if hyp is None else str(hyp.hypstr)


@functools.lru_cache(maxsize=2)
def _transform(chars: bool):
    import jiwer

    steps = [jiwer.ToLowerCase(),
             # "wood-blocks" and "wood blocks" are the same words; removing the hyphen would fuse them
             jiwer.SubstituteRegexes({r"[-\u2010-\u2015]": " "}),
             jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()]
    return jiwer.Compose(steps + [jiwer.ReduceToListOfListOfChars() if chars else jiwer.ReduceToListOfListOfWords()])


def normalise(text: str) -> str:
    """The normalisation both sides get, as a string (for reading transcripts; the metrics use the same steps)."""
    return " ".join(_transform(False)(text)[0])


def _texts(pair: Pair) -> tuple[str, str]:
    text = pair.require_text()
    if not normalise(text):
        raise ValueError(f"{pair.gen_name}: the text of utterance {pair.utt!r} is empty after normalisation")
    hyp = pair.memo("asr_transcript", lambda: transcribe(pair.signal("gen_full", ASR_SAMPLE_RATE)))
    return text, hyp


def wer(pair: Pair) -> float:
    import jiwer

    text, hyp = _texts(pair)
    t = _transform(False)
    return float(jiwer.wer(text, hyp, reference_transform=t, hypothesis_transform=t))


def cer(pair: Pair) -> float:
    import jiwer

    text, hyp = _texts(pair)
    t = _transform(True)
    return float(jiwer.cer(text, hyp, reference_transform=t, hypothesis_transform=t))
