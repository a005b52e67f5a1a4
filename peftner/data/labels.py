"""Label schema: the tag set, its tagging scheme, and repair of invalid BIO transitions.

The schema comes from the training data alone. Supported schemes are IOB1, IOB2, IOBES and
``none`` (any tag set that is not BIO-style, e.g. part-of-speech tags); ``none`` switches the
metric from entity F1 to token accuracy.

Invalid-transition policy (documented in docs/data.md): in IOB2 data an ``I-X`` that does not
continue an ``X`` entity is repaired to ``B-X`` and counted in a warning; ``refuse=True`` (``--refuse-invalid-transitions``) refuses
the file instead, naming the first offending line. IOB1 data is converted to IOB2, which is what the
model learns and what predictions are reported in.
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


def split_tag(tag: str) -> tuple[str | None, str | None]:
    """``"B-PER"`` → ``("B", "PER")``; ``"O"`` → ``("O", None)``; anything else → ``(None, None)``."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    match = _PREFIXED.match(tag)
    if not match:
        return None, None
    prefix = {"L": "E", "U": "S"}.get(match.group(1), match.group(1))
    return prefix, match.group(2)


def detect_scheme(sentences: list[Sentence]) -> str:
    """Return ``"IOB2"``, ``"IOB1"``, ``"IOBES"`` or ``"none"`` for the tags of ``sentences``."""
    prefixes = Counter()
    i_starts = b_starts = 0
    for sentence in sentences:
        previous_type = None
        for tag in sentence.tags:
            prefix, etype = split_tag(tag)
            if prefix is None:
                return "none"
            prefixes[prefix] += 1
            if prefix == "I" and etype != previous_type:
                i_starts += 1
            elif prefix == "B":
                b_starts += 1
            previous_type = etype
    if not (prefixes.keys() - {OUTSIDE}):
        return "none"  # only "O": no entity scheme can be inferred
    if prefixes["E"] or prefixes["S"]:
        return "IOBES"
    return "IOB1" if i_starts > b_starts else "IOB2"


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
    scheme: str

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
    def entity_types(self) -> list[str]:
        return sorted({split_tag(t)[1] for t in self.labels if split_tag(t)[1]})

    @classmethod
    def from_sentences(cls, sentences: list[Sentence], scheme: str) -> "LabelSchema":
        tags = {tag for s in sentences for tag in s.tags}
        if len(tags) < 2:
            only = next(iter(tags)) if tags else "nothing"
            raise DataError(sentences[0].source if sentences else "<training data>",
                            f"the training data has a single tag ({only!r}); a tagger needs at least two")
        # "O" first, then entity types grouped with B before I (stable, readable label ids).
        order = {"O": 0, "B": 1, "I": 2, "E": 3, "S": 4}

        def key(tag):
            prefix, etype = split_tag(tag)
            if prefix is None:
                return (1, tag, 0)
            return (0 if prefix == OUTSIDE else 1, etype or "", order.get(prefix, 9))

        return cls(sorted(tags, key=key), scheme)

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
