"""eSpeak NG speech synthesis through ctypes, using the library and voices of the `espeakng-loader` wheel.

Nothing is installed system-wide: the wheel ships ``libespeak-ng.so`` and ``espeak-ng-data``. The
library is loaded and initialised once per process (in synchronous mode: ``espeak_Synth`` returns
after the callback has received all samples), and every call goes through one lock because the
library keeps global state and is not thread safe.

Determinism: the same sequence of calls in a fresh process gives the same samples. The library's
wave generator carries state from one utterance to the next (pitch-flutter phase, resonators), which
``espeak_Terminate`` does not reset, so an utterance's samples also depend on what the process
synthesised before. ``priorgrad.corpus.synth`` therefore synthesises a corpus in a fresh worker
process, always in the same order.

Phoneme events: the engine is initialised with ``espeakINITIALIZE_PHONEME_EVENTS`` by default, so every
synthesis also reports eSpeak's phoneme events (type 7: the exact output-sample index where each
phoneme starts, and its mnemonic name with stress). The events only add callbacks; the samples are
bit-identical with them on or off (a test checks this on the whole default corpus). Text-to-phonemes
(:func:`text_to_phonemes`) uses the same voice tables, so its phonemes match the events one for one.
"""
from __future__ import annotations

import ctypes
import logging
import threading
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# speak_lib.h constants
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000      # return an error instead of calling exit() when data is missing
INITIALIZE_PHONEME_EVENTS = 0x0001  # report phoneme events (type 7) to the synth callback
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
POS_CHARACTER = 1
CHARS_UTF8 = 1
ENDPAUSE = 0x1000
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH, PARAM_RANGE = 1, 2, 3, 4
EE_OK = 0

NATIVE_SAMPLE_RATE = 22050

RATE_LIMITS = (80, 450)        # words per minute accepted by eSpeak NG
PITCH_LIMITS = (0, 100)        # base pitch, eSpeak units
RANGE_LIMITS = (0, 100)        # pitch range (intonation excursion), eSpeak units
VOLUME_LIMITS = (0, 200)       # amplitude, eSpeak units (100 = default)


class EspeakError(RuntimeError):
    """eSpeak NG could not be loaded or failed to synthesise."""


@dataclass(frozen=True)
class Prosody:
    """Per-utterance voice settings."""
    rate: int = 175          # words per minute
    pitch: int = 50          # 0..100
    pitch_range: int = 50    # 0..100
    volume: int = 100        # 0..200

    def check(self) -> None:
        for name, value, (lo, hi) in [("rate", self.rate, RATE_LIMITS), ("pitch", self.pitch, PITCH_LIMITS),
                                      ("pitch_range", self.pitch_range, RANGE_LIMITS),
                                      ("volume", self.volume, VOLUME_LIMITS)]:
            if not lo <= int(value) <= hi:
                raise ValueError(f"eSpeak {name} must be in [{lo}, {hi}], got {value}")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_void_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """speak_lib.h espeak_EVENT (40 bytes on 64-bit): the list passed to the callback ends at type 0."""
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Engine:
    """The process-wide eSpeak NG instance (create through :func:`engine`)."""

    def __init__(self, phoneme_events: bool = True) -> None:
        try:
            import espeakng_loader
        except ImportError as e:  # a dependency of the project, so this means a broken environment
            raise EspeakError("the espeakng-loader package is not installed (pip install espeakng-loader)") from e
        lib_path = espeakng_loader.get_library_path()
        try:
            data_path = espeakng_loader.get_data_path()
        except RuntimeError as e:
            raise EspeakError(f"eSpeak NG voice data missing from the espeakng-loader wheel: {e}") from e
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:
            raise EspeakError(f"{lib_path}: cannot load the eSpeak NG library ({e})") from e

        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p

        options = INITIALIZE_DONT_EXIT | (INITIALIZE_PHONEME_EVENTS if phoneme_events else 0)
        sr = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), options)
        if sr <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {sr}) with data path {data_path}")
        self.sample_rate = int(sr)
        self.version = lib.espeak_Info(None).decode()
        self.lib_path, self.data_path = lib_path, data_path
        self.phoneme_events = bool(phoneme_events)
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._voice: str | None = None

        def on_audio(wav, n_samples, events):  # called from inside espeak_Synth, same thread
            if n_samples > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
            if events:
                i = 0
                while events[i].type != EVENT_LIST_TERMINATED:
                    ev = events[i]
                    if ev.type == EVENT_PHONEME:  # sample = index of the phoneme's first output sample
                        self._events.append((int(ev.sample), ev.id.string.decode("ascii", "replace")))
                    i += 1
            return 0  # 0 = continue synthesis

        self._callback = _CALLBACK(on_audio)  # keep a reference: the library holds only the pointer
        lib.espeak_SetSynthCallback(self._callback)
        log.debug("eSpeak NG %s loaded from %s (%d Hz)", self.version, lib_path, self.sample_rate)

    def _set(self, param: int, value: int, name: str) -> None:
        rc = self._lib.espeak_SetParameter(param, int(value), 0)
        if rc != EE_OK:
            raise EspeakError(f"espeak_SetParameter({name}={value}) failed with code {rc}")

    def _select_voice(self, voice: str) -> None:
        if voice != self._voice:
            rc = self._lib.espeak_SetVoiceByName(voice.encode())
            if rc != EE_OK:
                raise EspeakError(f"eSpeak NG voice {voice!r} not found in {self.data_path} (code {rc})")
            self._voice = voice

    def synth(self, text: str, prosody: Prosody, voice: str) -> np.ndarray:
        prosody.check()
        self._select_voice(voice)
        self._set(PARAM_RATE, prosody.rate, "rate")
        self._set(PARAM_PITCH, prosody.pitch, "pitch")
        self._set(PARAM_RANGE, prosody.pitch_range, "range")
        self._set(PARAM_VOLUME, prosody.volume, "volume")
        data = text.encode("utf-8") + b"\0"
        self._chunks, self._events = [], []
        rc = self._lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8 | ENDPAUSE, None, None)
        if rc != EE_OK:
            raise EspeakError(f"espeak_Synth failed with code {rc} for text {text!r}")
        rc = self._lib.espeak_Synchronize()
        if rc != EE_OK:
            raise EspeakError(f"espeak_Synchronize failed with code {rc} for text {text!r}")
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def take_events(self) -> list[tuple[int, str]]:
        """The phoneme events of the last :meth:`synth` call as (sample, name), in order."""
        events, self._events = self._events, []
        return events

    def text_to_phonemes(self, text: str, voice: str) -> list[tuple[str, str]]:
        """espeak_TextToPhonemes clause by clause: [(consumed text, phonemes)], mnemonic names
        separated by '|' within a word and by spaces between words."""
        self._select_voice(voice)
        raw = text.encode("utf-8")
        buf = ctypes.create_string_buffer(raw + b"\0")
        base = ctypes.addressof(buf)
        ptr = ctypes.c_void_p(base)
        out: list[tuple[str, str]] = []
        while ptr.value is not None:
            start = ptr.value - base
            res = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), CHARS_UTF8, ord("|") << 8)
            end = len(raw) if ptr.value is None else min(len(raw), ptr.value - base)
            if end <= start and ptr.value is not None:  # no progress: never loop forever
                raise EspeakError(f"espeak_TextToPhonemes made no progress at byte {start} of {text!r}")
            out.append((raw[start:end].decode("utf-8", "replace"), (res or b"").decode("utf-8", "replace")))
        return out


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def engine(phoneme_events: bool | None = None) -> _Engine:
    """The process's eSpeak NG instance, loaded on first use (with phoneme events unless
    ``phoneme_events`` is False). Asking for the other events setting once loaded is an error: the
    library is initialised once per process."""
    global _ENGINE
    with _LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine(True if phoneme_events is None else phoneme_events)
        elif phoneme_events is not None and phoneme_events != _ENGINE.phoneme_events:
            raise EspeakError(f"eSpeak NG is already initialised with phoneme_events={_ENGINE.phoneme_events}"
                              " in this process")
        return _ENGINE


def synthesize_int16(text: str, prosody: Prosody = Prosody(), voice: str = "en-us") -> np.ndarray:
    """Speak ``text``; int16 samples at :data:`NATIVE_SAMPLE_RATE`, untrimmed (eSpeak adds an end pause)."""
    if not text.strip():
        raise ValueError("cannot synthesise an empty text")
    eng = engine()
    with _LOCK:
        wav = eng.synth(text, prosody, voice)
    if wav.size == 0:
        raise EspeakError(f"eSpeak NG produced no audio for text {text!r}")
    return wav


def synthesize_with_events(text: str, prosody: Prosody = Prosody(),
                           voice: str = "en-us") -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Like :func:`synthesize_int16`, plus eSpeak's phoneme events [(sample index, name)] (pauses included)."""
    if not text.strip():
        raise ValueError("cannot synthesise an empty text")
    eng = engine()
    if not eng.phoneme_events:
        raise EspeakError("eSpeak NG was initialised without phoneme events in this process")
    with _LOCK:
        wav = eng.synth(text, prosody, voice)
        events = eng.take_events()
    if wav.size == 0:
        raise EspeakError(f"eSpeak NG produced no audio for text {text!r}")
    return wav, events


def text_to_phonemes(text: str, voice: str = "en-us") -> list[tuple[str, str]]:
    """eSpeak NG's phonemes of ``text``, one (consumed text, phoneme string) pair per clause."""
    eng = engine()
    with _LOCK:
        return eng.text_to_phonemes(text, voice)


def synthesize(text: str, prosody: Prosody = Prosody(), voice: str = "en-us") -> np.ndarray:
    """Speak ``text``; float32 samples in [-1, 1) at :data:`NATIVE_SAMPLE_RATE`, untrimmed."""
    return synthesize_int16(text, prosody, voice).astype(np.float32) / 32768.0


def version() -> str:
    return engine().version
