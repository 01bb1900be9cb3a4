"""The corpus stage with a user's LJSpeech-layout directory instead of the synthetic corpus."""
from __future__ import annotations

from pathlib import Path

import pytest

from experiments.corpus import CorpusStageError, link_corpus, main

LJ_MINI = Path(__file__).resolve().parents[1].parent / "shared/data/ljspeech_mini"


def test_user_corpus_is_linked_not_copied_and_preprocesses(tmp_path: Path) -> None:
    if not LJ_MINI.exists():
        pytest.skip(f"{LJ_MINI} not found (the shared LJSpeech sample is needed)")
    from priorgrad.core.config import load_params
    from priorgrad.vocoder.data import read_manifest
    from priorgrad.vocoder.preprocess import preprocess

    out = tmp_path / "data" / "corpus"
    link_corpus(LJ_MINI, out, "en-us")
    assert (out / "wavs").is_symlink() and (out / "wavs").resolve() == (LJ_MINI / "wavs").resolve()
    assert (out / "metadata.csv").read_text() == (LJ_MINI / "metadata.csv").read_text()
    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml", {"profile": "smoke"})
    preprocess(out, tmp_path / "features", params, progress=False)
    items = read_manifest(tmp_path / "features")
    assert len(items) == len((LJ_MINI / "metadata.csv").read_text().strip().splitlines())
    assert {it.split for it in items} == {"train", "valid", "test"}


def test_a_path_that_is_not_a_corpus_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusStageError, match="empty.*not an LJSpeech-layout directory"):
        link_corpus(tmp_path / "empty", tmp_path / "out", "en-us")


def test_synthetic_corpus_never_writes_into_a_linked_corpus(tmp_path: Path) -> None:
    user = tmp_path / "user"
    (user / "wavs").mkdir(parents=True)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "wavs").symlink_to(user / "wavs")
    from priorgrad.core.schema import read_params
    from support.project import ROOT, write_params

    raw = read_params(ROOT / "params.yaml")
    raw["corpus"].update(source="synthetic", n_utterances=3, n_valid=1, n_test=1)
    params = write_params(tmp_path / "p", raw)
    assert main(["--params", str(params), "--out", str(tmp_path / "corpus")]) == 0
    assert list((user / "wavs").iterdir()) == []  # the user's directory is untouched
    assert len(list((tmp_path / "corpus" / "wavs").glob("*.wav"))) == 3


def test_a_user_corpus_with_a_phoneme_less_transcript_is_refused_by_the_stage(tmp_path: Path) -> None:
    import numpy as np
    import soundfile as sf

    src = tmp_path / "user"
    (src / "wavs").mkdir(parents=True)
    t = np.arange(int(1.5 * 22050)) / 22050
    for name in ("a", "b"):
        sf.write(src / "wavs" / f"{name}.wav", (0.4 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), 22050,
                 subtype="PCM_16")
    (src / "metadata.csv").write_text("a|Hello there.|Hello there.\nb|...!?;--|...!?;--\n")
    with pytest.raises(CorpusStageError, match=r"utterance b: eSpeak NG found no phonemes in '\.\.\.!\?;--'"):
        link_corpus(src, tmp_path / "out", "en-us")
    assert not (tmp_path / "out").exists()
