"""Deterministic English sentences for the synthetic corpus.

A tiny phrase-structure grammar over hand-written word lists: a clause (subject, verb, object,
prepositional phrases, adverb) grown by random expansions until it reaches a target word count drawn
uniformly from [min_words, max_words]. Sentence types (statements, questions, exclamations, requests)
are mixed because eSpeak NG changes its intonation with the final punctuation, which gives the
vocoder's training data prosodic variety beyond the rate/pitch settings.

Everything is driven by ``numpy.random.default_rng`` so a seed always gives the same sentences.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# ----------------------------------------------------------------------------- word lists
# Nouns are countable, singular; plurals are formed by rule unless listed in _IRREGULAR_PLURALS.
# No noun or adjective starts with a vowel letter that is pronounced as a consonant ("uniform",
# "hour"), so the a/an rule below can look at the first letter only.
NOUNS: tuple[str, ...] = (
    "apple", "anchor", "artist", "baker", "basket", "beach", "bell", "bicycle", "bird", "blanket",
    "boat", "book", "bottle", "bridge", "brother", "bucket", "butterfly", "cabin", "camera", "candle",
    "captain", "carpet", "castle", "cat", "chair", "child", "city", "clock", "cloud", "coat",
    "cottage", "cousin", "crown", "cup", "curtain", "daughter", "desk", "doctor", "dog", "dragon",
    "drum", "eagle", "engine", "envelope", "farmer", "feather", "fence", "field", "flower", "forest",
    "fountain", "fox", "friend", "garden", "gate", "giant", "guitar", "hammer", "harbor", "hat",
    "horse", "island", "jacket", "kettle", "key", "king", "kitchen", "ladder", "lamp", "lantern",
    "letter", "library", "lion", "map", "market", "meadow", "merchant", "mirror", "monkey", "mountain",
    "museum", "neighbor", "nurse", "ocean", "orchard", "owl", "painter", "palace", "parcel", "pencil",
    "piano", "pilot", "planet", "pocket", "poet", "potato", "queen", "rabbit", "radio", "river",
    "robot", "rocket", "sailor", "scientist", "shadow", "sheep", "shelf", "ship", "shoe", "singer",
    "sister", "soldier", "spider", "station", "stone", "storm", "student", "sweater", "table", "teacher",
    "telescope", "tiger", "tower", "town", "train", "traveler", "tree", "trumpet", "tunnel", "turtle",
    "umbrella", "valley", "village", "violin", "wagon", "wall", "whale", "window", "wizard", "wolf",
    "woman", "man", "writer", "yard", "zebra",
)
_IRREGULAR_PLURALS: dict[str, str] = {
    "child": "children", "woman": "women", "man": "men", "sheep": "sheep", "shelf": "shelves",
    "wolf": "wolves", "potato": "potatoes", "fox": "foxes", "beach": "beaches",
}

NAMES: tuple[str, ...] = (
    "Anna", "Benjamin", "Clara", "Daniel", "Eleanor", "Felix", "Grace", "Henry", "Isabel", "Jacob",
    "Katherine", "Leonard", "Margaret", "Nathan", "Olivia", "Patrick", "Rachel", "Samuel", "Theodore",
    "Victoria", "William", "Martha", "Oscar", "Lucy", "George", "Hannah", "Edward", "Sophie",
)

PRONOUNS: tuple[str, ...] = ("he", "she", "they", "we", "I", "you")

ADJECTIVES: tuple[str, ...] = (
    "ancient", "angry", "bright", "broken", "busy", "calm", "careful", "cheerful", "clever", "cold",
    "curious", "dark", "distant", "dusty", "eager", "empty", "enormous", "famous", "fancy", "fragile",
    "friendly", "gentle", "golden", "green", "heavy", "hidden", "humble", "huge", "hungry", "little",
    "lonely", "loud", "lucky", "modern", "mysterious", "narrow", "noisy", "old", "orange", "patient",
    "peaceful", "polite", "proud", "purple", "quiet", "rapid", "rusty", "shiny", "silent", "silver",
    "sleepy", "small", "smooth", "strange", "strong", "tall", "tiny", "tired", "wealthy", "wooden",
    "yellow", "young", "brave", "wise", "wild", "warm", "frozen", "crooked", "elegant", "icy",
)

INTENSIFIERS: tuple[str, ...] = ("very", "rather", "quite", "extremely", "surprisingly", "remarkably")

# (base form, past tense) of transitive verbs; the object follows directly.
TRANSITIVE: tuple[tuple[str, str], ...] = (
    ("find", "found"), ("open", "opened"), ("carry", "carried"), ("paint", "painted"),
    ("build", "built"), ("sell", "sold"), ("buy", "bought"), ("follow", "followed"),
    ("watch", "watched"), ("repair", "repaired"), ("borrow", "borrowed"), ("hide", "hid"),
    ("lift", "lifted"), ("push", "pushed"), ("pull", "pulled"), ("clean", "cleaned"),
    ("describe", "described"), ("remember", "remembered"), ("visit", "visited"), ("catch", "caught"),
    ("bring", "brought"), ("drop", "dropped"), ("measure", "measured"), ("explore", "explored"),
    ("admire", "admired"), ("examine", "examined"), ("deliver", "delivered"), ("chase", "chased"),
    ("draw", "drew"), ("hold", "held"), ("lose", "lost"), ("notice", "noticed"),
    ("protect", "protected"), ("wrap", "wrapped"), ("polish", "polished"), ("discover", "discovered"),
    ("guard", "guarded"), ("greet", "greeted"), ("photograph", "photographed"), ("weigh", "weighed"),
)

# (base form, past tense) of intransitive verbs.
INTRANSITIVE: tuple[tuple[str, str], ...] = (
    ("sleep", "slept"), ("laugh", "laughed"), ("wait", "waited"), ("sing", "sang"),
    ("run", "ran"), ("arrive", "arrived"), ("disappear", "disappeared"), ("smile", "smiled"),
    ("travel", "traveled"), ("whisper", "whispered"), ("dance", "danced"), ("rest", "rested"),
    ("shout", "shouted"), ("wander", "wandered"), ("listen", "listened"), ("vanish", "vanished"),
    ("shiver", "shivered"), ("return", "returned"), ("fall", "fell"), ("swim", "swam"),
)

ADVERBS: tuple[str, ...] = (
    "quietly", "quickly", "slowly", "carefully", "happily", "suddenly", "yesterday", "again",
    "eventually", "gladly", "nervously", "patiently", "proudly", "secretly", "gently", "today",
    "at dawn", "at midnight", "last winter", "every morning", "on Sunday", "before dinner",
)

PREPOSITIONS: tuple[str, ...] = (
    "near", "behind", "under", "beside", "across", "inside", "above", "beyond", "toward", "around",
    "along", "past", "through", "without", "with", "from", "into", "over",
)

DETERMINERS: tuple[str, ...] = ("the", "the", "the", "a", "a", "this", "that", "every", "her", "his",
                                "our", "my", "their", "one")
PLURAL_DETERMINERS: tuple[str, ...] = ("the", "two", "three", "several", "many", "some", "those", "these")

SUBORDINATORS: tuple[str, ...] = ("when", "because", "after", "before", "although", "while", "since")
COORDINATORS: tuple[str, ...] = ("and", "but", "so", "yet")
QUESTION_WORDS: tuple[str, ...] = ("where", "why", "when", "how")
MODALS: tuple[str, ...] = ("could", "should", "would", "might", "will", "can", "must")

_SUBJECT_TO_OBJECT = {"he": "him", "she": "her", "they": "them", "we": "us", "I": "me", "you": "you"}


def plural(noun: str) -> str:
    if noun in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


# ----------------------------------------------------------------------------- grammar
@dataclass
class NounPhrase:
    head: list[str]                  # a name / pronoun (one word) or [det, noun]
    adjectives: list[list[str]] = field(default_factory=list)  # each: [intensifier?, adjective]
    pp: list[str] = field(default_factory=list)        # "with the red hat"
    relative: list[str] = field(default_factory=list)  # "that the farmer built"
    expandable: bool = True          # False for names and pronouns

    def words(self) -> list[str]:
        if not self.expandable:
            return list(self.head)
        det, noun = self.head
        adjs = [w for a in self.adjectives for w in a]
        core = [*adjs, noun]
        if det == "a" and core[0][0].lower() in "aeiou":
            det = "an"
        return [det, *core, *self.pp, *self.relative]

    def __len__(self) -> int:
        return len(self.words())


@dataclass
class Clause:
    subject: NounPhrase
    verb: tuple[str, str]
    obj: NounPhrase | None
    pps: list[list[str]] = field(default_factory=list)
    adverb: list[str] = field(default_factory=list)

    def words(self, form: str = "past") -> list[str]:
        verb = self.verb[1] if form == "past" else self.verb[0]
        out = [*self.subject.words(), verb]
        if self.obj is not None:
            out += self.obj.words()
        for pp in self.pps:
            out += pp
        return out + self.adverb

    def __len__(self) -> int:
        return len(self.words())


class SentenceGenerator:
    """Draws sentences of a target length from the grammar with a numpy Generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def _pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def _chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    # --- phrases
    def noun_phrase(self, role: str = "subject") -> NounPhrase:
        r = self.rng.random()
        if role == "subject" and r < 0.15:
            return NounPhrase([self._pick(PRONOUNS)], expandable=False)
        if r < 0.3:
            return NounPhrase([self._pick(NAMES)], expandable=False)
        if r < 0.42:
            return NounPhrase([self._pick(PLURAL_DETERMINERS), plural(self._pick(NOUNS))])
        return NounPhrase([self._pick(DETERMINERS), self._pick(NOUNS)])

    def object_phrase(self) -> NounPhrase:
        np_ = self.noun_phrase(role="object")
        if len(np_.head) == 1 and np_.head[0] in _SUBJECT_TO_OBJECT:
            np_.head = [_SUBJECT_TO_OBJECT[np_.head[0]]]
        return np_

    def prepositional_phrase(self) -> list[str]:
        # mostly places and things ("under the bridge"); people only sometimes ("with Anna")
        if self._chance(0.12):
            obj = NounPhrase([self._pick(NAMES)], expandable=False)
        elif self._chance(0.15):
            obj = NounPhrase([self._pick(PLURAL_DETERMINERS), plural(self._pick(NOUNS))])
        else:
            obj = NounPhrase([self._pick(DETERMINERS), self._pick(NOUNS)])
        if self._chance(0.3):
            obj.adjectives.append([self._pick(ADJECTIVES)])
        return [self._pick(PREPOSITIONS), *obj.words()]

    def clause(self, transitive: bool | None = None) -> Clause:
        if transitive is None:
            transitive = self._chance(0.7)
        subj = self.noun_phrase("subject")
        if transitive:
            return Clause(subj, self._pick(TRANSITIVE), self.object_phrase())
        return Clause(subj, self._pick(INTRANSITIVE), None)

    # --- growth
    def _expansions(self, clauses: list[Clause]) -> list[tuple[int, Callable[[], None]]]:
        """(word cost, apply) for every expansion that applies to the current sentence."""
        options: list[tuple[int, Callable[[], None]]] = []
        for c in clauses:
            for np_ in [c.subject, c.obj]:
                if np_ is None or not np_.expandable:
                    continue
                if len(np_.adjectives) < 2:
                    options.append((1, lambda np_=np_: np_.adjectives.insert(0, [self._pick(ADJECTIVES)])))
                # at most one intensifier per noun phrase ("a very old boat", not "a very old quite red boat")
                if np_.adjectives and all(len(a) == 1 for a in np_.adjectives):
                    a = np_.adjectives[0]
                    options.append((1, lambda a=a: a.insert(0, self._pick(INTENSIFIERS))))
                if not np_.pp and np_ is c.obj:
                    pp = self.prepositional_phrase()
                    options.append((len(pp), lambda np_=np_, pp=pp: np_.pp.extend(pp)))
                if not np_.relative and np_ is c.obj and not np_.pp:
                    inner = self.clause(transitive=False)
                    subj = inner.subject.words()
                    rel = ["which" if subj[0] == "that" else "that", *subj, self._pick(TRANSITIVE)[1]]
                    options.append((len(rel), lambda np_=np_, rel=rel: np_.relative.extend(rel)))
            if len(c.pps) < 2:
                pp = self.prepositional_phrase()
                options.append((len(pp), lambda c=c, pp=pp: c.pps.append(pp)))
            if not c.adverb:
                adv = self._pick(ADVERBS).split()
                options.append((len(adv), lambda c=c, adv=adv: c.adverb.extend(adv)))
        return options

    def _grow(self, clauses: list[Clause], target: int, fixed_words: int) -> None:
        while True:
            have = fixed_words + sum(len(c) for c in clauses)
            room = target - have
            if room <= 0:
                return
            fitting = [o for o in self._expansions(clauses) if o[0] <= room]
            if not fitting:
                return
            fitting[int(self.rng.integers(len(fitting)))][1]()

    # --- sentences
    def sentence(self, target: int) -> str:
        kind = self.rng.random()
        if kind < 0.62 or target < 4:
            words, end = self._statement(target), "."
        elif kind < 0.8:
            words, end = self._question(target), "?"
        elif kind < 0.9:
            words, end = self._request(target), "."
        else:
            words, end = self._statement(target), "!"
        return _render(words, end)

    def _statement(self, target: int) -> list[str]:
        # Long targets sometimes become two clauses (coordinated or subordinate) for phrase breaks.
        if target >= 9 and self._chance(0.45):
            first, second = self.clause(), self.clause()
            if self._chance(0.5):
                link = self._pick(COORDINATORS)
                self._grow([first, second], target, fixed_words=1)
                return [*first.words(), ",", link, *second.words()]
            sub = self._pick(SUBORDINATORS)
            self._grow([first, second], target, fixed_words=1)
            return [sub.capitalize(), *first.words(), ",", *second.words()]
        c = self.clause(transitive=None if target >= 4 else False)
        self._grow([c], target, fixed_words=0)
        return c.words()

    def _question(self, target: int) -> list[str]:
        c = self.clause(transitive=True)
        if self._chance(0.5):
            lead = ["did"]
        elif self._chance(0.5):
            lead = [self._pick(MODALS)]
        else:
            lead = [self._pick(QUESTION_WORDS).capitalize(), "did"]
        self._grow([c], target, fixed_words=len(lead))
        return [*lead, *c.words(form="base")]

    def _request(self, target: int) -> list[str]:
        c = self.clause(transitive=True)
        c.subject = NounPhrase([], expandable=False)  # imperative: no subject
        self._grow([c], target, fixed_words=1)
        return ["please", *c.words(form="base")]


def _render(words: list[str], end: str) -> str:
    text = " ".join(words).replace(" ,", ",")
    return text[0].upper() + text[1:] + end


def word_count(sentence: str) -> int:
    return len([w for w in sentence.replace(",", " ").split() if any(ch.isalpha() for ch in w)])


def generate_sentences(n: int, seed: int, min_words: int = 3, max_words: int = 25) -> list[str]:
    """``n`` distinct sentences, each with a word count drawn uniformly from [min_words, max_words].

    Deterministic for (n, seed, min_words, max_words); the first k sentences of a larger n are the same
    as for n = k, so growing a corpus keeps its existing sentences.
    """
    if n < 0:
        raise ValueError(f"number of sentences must be >= 0, got {n}")
    if not 3 <= min_words <= max_words:
        raise ValueError(f"need 3 <= min_words <= max_words, got {min_words}..{max_words}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E47]))
    gen = SentenceGenerator(rng)
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise RuntimeError(f"could not generate {n} distinct sentences of {min_words}..{max_words} words")
        target = int(rng.integers(min_words, max_words + 1))
        s = gen.sentence(target)
        if s in seen or not min_words <= word_count(s) <= max_words:
            continue
        seen.add(s)
        out.append(s)
    return out


def replacement_sentence(seed: int, index: int, attempt: int, min_words: int) -> str:
    """A deterministic substitute for sentence ``index`` (used when its audio came out too short)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E47, index, attempt]))
    gen = SentenceGenerator(rng)
    target = int(rng.integers(min_words, min_words + 8))
    for _ in range(100):
        s = gen.sentence(target)
        if word_count(s) >= min_words:
            return s
    raise RuntimeError(f"no replacement sentence of >= {min_words} words for index {index}")
