"""Word tags from ``transformers.pipeline("token-classification", aggregation_strategy=...)`` output.

The pipeline returns entity groups (type and character span), not one tag per word. To compare it
word for word with :class:`peftner.reuse.Tagger`, the words are joined with single spaces (what a user
passes as text) and each group is mapped back onto the words it covers, as IOB2 tags. The comparison
is exact for words the tokenizer does not split further (its pre-tokenizer: e.g. BERT splits
``@user`` into ``@`` ``user``, which the pipeline then tags as two words); :func:`pipeline_words`
re-splits sentences that way so both tools tag the same units.
"""

from __future__ import annotations

from peftner.data.labels import split_tag


def join_words(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text a user would pass (words joined by single spaces) and each word's character span."""
    spans, position = [], 0
    for word in words:
        spans.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), spans


def pipeline_words(tokenizer, words: list[str]) -> list[str]:
    """``words`` re-split as the tokenizer's pre-tokenizer splits text (the pipeline's notion of a word)."""
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    if pre is None:
        return list(words)
    return [piece for word in words for piece, _ in pre.pre_tokenize_str(word)]


def tags_from_groups(groups: list[dict], spans: list[tuple[int, int]]) -> list[str]:
    """IOB2 word tags from the pipeline's entity groups over words at character ``spans``.

    A group of bare word-boundary pieces only (SentencePiece's ``▁``, whose text is empty) is skipped:
    the pipeline treats that piece as a word of its own, while peftner predicts each word on its first
    piece with characters (:func:`peftner.data.alignment.head_pieces`).
    """
    tags = ["O"] * len(spans)
    starts = {start: i for i, (start, _) in enumerate(spans)}
    for group in groups:
        if not str(group["word"]).strip():
            continue
        first = starts.get(int(group["start"]))
        if first is None:
            raise ValueError(f"entity group {group['word']!r} starts inside a word (character {group['start']})")
        tags[first] = f"B-{group['entity_group']}"
        k = first + 1
        while k < len(spans) and spans[k][1] <= int(group["end"]):
            tags[k] = f"I-{group['entity_group']}"
            k += 1
    return tags


def as_iob2(tags: list[str]) -> list[str]:
    """Tags as the pipeline's grouping reads them: an ``I-`` after ``O`` or another type starts an entity."""
    out, previous = [], None
    for tag in tags:
        prefix, etype = split_tag(tag)
        if prefix in (None, "O"):
            out.append("O")
            previous = None
            continue
        begins = prefix in ("B", "S") or previous != etype
        out.append(f"{'B' if begins else 'I'}-{etype}")
        previous = None if prefix in ("E", "S") else etype
    return out
