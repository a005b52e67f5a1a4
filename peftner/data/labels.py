"""Label schema: the tag set, its tagging scheme, and repair of invalid BIO transitions.

The schema comes from the training data alone. Supported schemes are IOB1, IOB2, IOBES, BILOU and
``none`` (any tag set that is not BIO-style, e.g. part-of-speech tags); ``none`` switches the
metric from entity F1 to token accuracy. The scheme is detected from the training tags, or named
with ``--tag-scheme``, which then wins; a file whose tags follow two schemes (``S-`` and ``U-``,
say) is refused at the line where the second one appears, and so are dev/test tags outside the
training data's scheme.

Invalid-transition policy (documented in docs/data.md): in IOB2 data an ``I-X`` that does not
continue an ``X`` entity is repaired to ``B-X`` and counted in a warning; ``refuse=True`` (``--refuse-invalid-transitions``) refuses
the file instead, naming the first offending line. IOB1 data is converted to IOB2, which is what the
model learns and what predictions are reported in. BILOU tags are kept as they are (the model
predicts them) and scored as the IOBES tags they are (``L-`` = ``E-``, ``U-`` = ``S-``):
:func:`peftner.metrics.seqeval_tags`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass

from peftner.errors import DataError
from peftner.data.readers import Sentence

logger = logging.getLogger(__name__)

_PREFIXED = re.compile(r"^([BIESLU])[-_](.+)$")
OUTSIDE = "O"
# The prefixes each scheme may use ("O" aside); --tag-scheme names one of these, or auto / none.
SCHEME_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES", "BILOU": "BILU"}
TAG_SCHEMES = ("auto", *SCHEME_PREFIXES, "none")
_TO_IOBES = {"L": "E", "U": "S"}


def split_tag(tag: str) -> tuple[str | None, str | None]:
    """``"B-PER"`` → ``("B", "PER")``; ``"O"`` → ``("O", None)``; anything else → ``(None, None)``."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    match = _PREFIXED.match(tag)
    if not match:
        return None, None
    prefix = _TO_IOBES.get(match.group(1), match.group(1))
    return prefix, match.group(2)


def raw_prefix(tag: str) -> str | None:
    """The prefix as written: ``"U-PER"`` → ``"U"`` (:func:`split_tag` reads it as ``"S"``); None for no scheme."""
    if tag == OUTSIDE:
        return OUTSIDE
    match = _PREFIXED.match(tag)
    return match.group(1) if match else None


def _family(prefix: str) -> str | None:
    """Which scheme a prefix belongs to beyond IOB: E/S are IOBES, L/U are BILOU."""
    return "IOBES" if prefix in "ES" else "BILOU" if prefix in "LU" else None


def detect_scheme(sentences: list[Sentence]) -> str:
    """Return ``"IOB2"``, ``"IOB1"``, ``"IOBES"``, ``"BILOU"`` or ``"none"`` for the tags of ``sentences``.

    Tags of both IOBES (``E-``/``S-``) and BILOU (``L-``/``U-``) are refused at the first tag of the
    second kind: scored by either scheme's rules, the other's entities would be miscounted.
    """
    prefixes = Counter()
    i_starts = b_starts = 0
    first_of = {}  # "IOBES"/"BILOU" -> (tag, sentence, index) of its first tag
    for sentence in sentences:
        previous_type = None
        for i, tag in enumerate(sentence.tags):
            prefix, etype = split_tag(tag)
            if prefix is None:
                return "none"
            raw = raw_prefix(tag)
            prefixes[raw] += 1
            family = _family(raw)
            if family and family not in first_of:
                first_of[family] = (tag, sentence, i)
                if len(first_of) == 2:
                    _refuse_mix(first_of, family)
            if prefix == "I" and etype != previous_type:
                i_starts += 1
            elif prefix == "B":
                b_starts += 1
            previous_type = etype
    if not (prefixes.keys() - {OUTSIDE}):
        return "none"  # only "O": no entity scheme can be inferred
    if first_of:
        return next(iter(first_of))
    return "IOB1" if i_starts > b_starts else "IOB2"


def _refuse_mix(first_of: dict, second: str):
    first = next(family for family in first_of if family != second)
    tag0, sentence0, i0 = first_of[first]
    tag, sentence, i = first_of[second]
    path0, line0 = sentence0.where(i0)
    where0 = f"{path0}:{line0}" if line0 is not None else path0
    path, line = sentence.where(i)
    raise DataError(path, f"tag {tag!r} is {second} but {where0} has {tag0!r} ({first}): the file mixes tag "
                          "schemes; convert it to one (peftner reads IOB1, IOB2, IOBES and BILOU)", line)


def check_scheme(sentences: list[Sentence], scheme: str, named: bool) -> None:
    """Every tag of ``sentences`` uses a prefix of ``scheme`` (IOB1/IOB2/IOBES/BILOU), else the first
    that does not is refused at its line. ``named``: the scheme came from ``--tag-scheme`` (the
    message says so) rather than from the training data."""
    allowed = SCHEME_PREFIXES.get(scheme)
    if allowed is None:
        return
    for sentence in sentences:
        for i, tag in enumerate(sentence.tags):
            raw = raw_prefix(tag)
            if raw is None or raw == OUTSIDE or raw in allowed:
                continue
            path, line = sentence.where(i)
            if named:
                problem = (f"tag {tag!r} is outside {scheme} (--tag-scheme {scheme} allows O and "
                           f"{', '.join(p + '-' for p in allowed)}); fix the tag, or name the file's scheme "
                           "(or drop --tag-scheme to detect it)")
            else:
                problem = (f"tag {tag!r} is {_family(raw)} but the training data is {scheme}: the files mix tag "
                           "schemes; convert them to one")
            raise DataError(path, problem, line)


def check_mixed_scheme(sentences: list[Sentence]) -> None:
    """Refuse training tags that mix BIO/IOBES tags with tags of no scheme (e.g. ``0`` typed for ``O``).

    Without this check one stray tag would switch the whole run from entity F1 to token accuracy.
    The error names the first offending line; ``--tag-scheme none`` scores such data by token accuracy.
    """
    counts = Counter(split_tag(tag)[0] is None for s in sentences for tag in s.tags)
    bio = sum(split_tag(tag)[0] not in (None, OUTSIDE) for s in sentences for tag in s.tags)
    if not counts[True] or not bio:
        return
    for sentence in sentences:
        for i, tag in enumerate(sentence.tags):
            if split_tag(tag)[0] is None:
                path, line = sentence.where(i)
                share = 100.0 * counts[False] / (counts[False] + counts[True])
                raise DataError(path, f"tag {tag!r} is not a BIO/IOBES tag (O, B-X, I-X, E-X, S-X) but "
                                      f"{share:.1f}% of the training tags are; fix it, or pass "
                                      "--tag-scheme none to score every tag by token accuracy", line)


def repair_transitions(sentences: list[Sentence], scheme: str, refuse: bool = False) -> int:
    """Make every entity start with ``B-`` (IOB1 → IOB2, broken IOB2 repaired). Returns repairs made."""
    if scheme not in ("IOB1", "IOB2"):
        return 0
    repairs = 0
    for sentence in sentences:
        previous_type = None
        for i, tag in enumerate(sentence.tags):
            prefix, etype = split_tag(tag)
            if prefix == "I" and etype != previous_type:
                if refuse and scheme == "IOB2":
                    path, line = sentence.where(i)
                    raise DataError(path, f"invalid transition: {tag!r} does not continue an entity "
                                          "(--refuse-invalid-transitions refuses; drop it to repair I- to B-)", line)
                sentence.tags[i] = f"B-{etype}"
                repairs += scheme == "IOB2"
            previous_type = etype if prefix != OUTSIDE else None
    return repairs


@dataclass
class LabelSchema:
    """The label vocabulary, ``id ↔ tag``, and the tagging scheme it follows."""

    labels: list[str]
    scheme: str  # of the labels: IOB2 (also for IOB1 data, converted), IOBES, BILOU or none
    source_scheme: str | None = None  # of the data files, when it differs (IOB1)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def metric(self) -> str:
        return "token_accuracy" if self.scheme == "none" else "entity_f1"

    @property
    def strict_scheme(self) -> str | None:
        """seqeval's scheme for strict entity rules (``--scheme-f1``): BILOU is scored as IOBES."""
        return {"IOB2": "IOB2", "IOBES": "IOBES", "BILOU": "IOBES"}.get(self.scheme)

    @property
    def entity_types(self) -> list[str]:
        return sorted({split_tag(t)[1] for t in self.labels if split_tag(t)[1]})

    @classmethod
    def from_sentences(cls, sentences: list[Sentence], scheme: str, source_scheme: str | None = None) -> "LabelSchema":
        tags = {tag for s in sentences for tag in s.tags}
        if len(tags) < 2:
            only = next(iter(tags)) if tags else "nothing"
            raise DataError(sentences[0].source if sentences else "<training data>",
                            f"the training data has a single tag ({only!r}); a tagger needs at least two")
        # "O" first, then entity types grouped with B before I (stable, readable label ids).
        order = {"O": 0, "B": 1, "I": 2, "E": 3, "L": 3, "S": 4, "U": 4}

        def key(tag):
            prefix, etype = split_tag(tag)
            if prefix is None:
                return (1, tag, 0)
            return (0 if prefix == OUTSIDE else 1, etype or "", order.get(raw_prefix(tag), 9))

        return cls(sorted(tags, key=key), scheme, source_scheme)

    def check_known(self, sentences: list[Sentence], allow_unseen: bool = False) -> int:
        """Reject (or with ``allow_unseen`` map to ``O``) tags never seen in training; returns the count mapped."""
        known = set(self.labels)
        mapped = 0
        for sentence in sentences:
            for i, tag in enumerate(sentence.tags):
                if tag in known:
                    continue
                if not allow_unseen or OUTSIDE not in known:
                    path, line = sentence.where(i)
                    raise DataError(path, f"tag {tag!r} never occurs in the training data "
                                          "(pass --allow-unseen-tags to score it as 'O')", line)
                sentence.tags[i] = OUTSIDE
                mapped += 1
        return mapped
