"""Acoustic text front-end: eSpeak NG phonemes -> tokens (spec section 1), Vocabulary, bad text."""
from __future__ import annotations

import json

import pytest

from priorgrad.acoustic.text import (EOS, PAD, UNK, TextError, Vocabulary, clause_token, encode_text, is_phoneme,
                                     strip_stress, text_to_tokens, tokens_from_clauses)
from priorgrad.corpus import espeak


def test_espeak_version_is_the_pinned_one():
    # phoneme tables are version specific: the measured vocabulary below holds for eSpeak NG 1.52.0
    from importlib.metadata import version

    assert espeak.version().startswith("1.52.0")
    assert version("espeakng-loader") == "0.2.4"


def test_text_to_phonemes_clause_by_clause():
    clauses = espeak.text_to_phonemes("Hello, world!")
    assert [p for _, p in clauses] == ["h|@|l|'oU", "w|'3:|l|d"]
    assert clause_token(clauses[0][0]) == "<,>" and clause_token(clauses[1][0]) == "<!>"
    assert clause_token("no mark here") == "<.>"


def test_tokens_follow_the_spec_rules():
    toks = text_to_tokens("Hello, world! How are you today?")
    assert toks == [UNK, "h", "@", "l", "'oU", "<,>", "w", "'3:", "l", "d", "<!>",
                    "h", ",aU", "|", "A@", "|", "j", "u:", "|", "t", "@", "d", "'eI", "<?>", EOS]
    # quotes and dashes are pauses (_: runs) that collapse to one '_'; a clause mark absorbs a '_'
    q = text_to_tokens('I said "no" -- twice.')
    assert q == [UNK, "aI", "|", "s", "'E", "d", "_", "|", "n", "'oU", "_", "|", "t", "w", "'aI", "s", "<.>", EOS]
    # ';' is an eSpeak phoneme name, so clause marks are bracketed
    assert "<;>" in text_to_tokens("The quick brown fox; jumps over the dog.")


def test_pause_names_split_and_collapse():
    toks = tokens_from_clauses([("a b, ", "_:|_:|k|_!t _^_|'a _"), ("c.", "s")])
    assert toks == [UNK, "_", "k", "_", "t", "|", "_", "'a", "<,>", "s", "<.>", EOS]


def test_vocabulary_reserved_ids_sorted_union_and_round_trip(tmp_path):
    v = Vocabulary.build([[UNK, "b", "'a", "|", EOS], [UNK, "a", "_", "<.>", EOS]])
    assert v.tokens[:3] == (PAD, EOS, UNK) and (v.id(PAD), v.id(EOS), v.id(UNK)) == (0, 1, 2)
    assert list(v.tokens[3:]) == sorted(v.tokens[3:])
    v.save(tmp_path / "vocab.json")
    assert json.loads((tmp_path / "vocab.json").read_text()) == {"tokens": list(v.tokens)}
    assert Vocabulary.load(tmp_path / "vocab.json") == v
    assert v.decode(v.encode([UNK, "a", EOS])) == [UNK, "a", EOS]


def test_oov_backs_off_to_stress_stripped_name_else_names_utterance_and_symbol():
    v = Vocabulary.build([[UNK, "a", "oU", EOS]])
    assert v.encode([",oU", "'a"], "U1") == [v.id("oU"), v.id("a")]
    with pytest.raises(TextError, match=r"utterance U7: symbol \"'Z\" is not in the vocabulary"):
        v.encode(["a", "'Z"], "U7")
    assert strip_stress("'oU") == "oU" and is_phoneme("'oU") and not is_phoneme("<,>") and not is_phoneme("|")


def test_encode_text_user_input():
    v = Vocabulary.build([text_to_tokens("Hello, world! Hello world.")])
    ids = encode_text("hello, world", v, "user")
    assert v.decode(ids) == text_to_tokens("Hello, world.") and ids[0] == 2 and ids[-1] == 1


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_transcript_names_the_utterance(text):
    with pytest.raises(TextError, match="utterance LJ999-0001: empty transcript"):
        text_to_tokens(text, "LJ999-0001")


def test_untokenisable_text_names_the_utterance():
    with pytest.raises(TextError, match=r"utterance BAD-1: eSpeak NG found no phonemes"):
        text_to_tokens("... \"\" ()", "BAD-1")


def test_bad_vocab_file_names_it(tmp_path):
    p = tmp_path / "vocab.json"
    p.write_text(json.dumps({"tokens": ["a", "b"]}))
    with pytest.raises(TextError, match=str(p)):
        Vocabulary.load(p)
    with pytest.raises(TextError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
