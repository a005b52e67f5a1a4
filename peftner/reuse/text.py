"""Raw text → words with character offsets, tags → entities, and the input formats of ``peftner predict``.

Tokenisation rule for raw text (the models were trained on word-tokenised corpora, so raw text is
split into words first; each word keeps its ``(start, end)`` character offsets). In order of priority:

1. URLs (``http://…``, ``https://…``, ``www.…``) up to the next whitespace;
2. ``@handles`` and ``#hashtags`` (a ``@``/``#`` followed by word characters);
3. numbers with inner ``.`` or ``,`` (``3.5``, ``1,000``);
4. words: runs of letters/digits/underscore, joined across inner apostrophes and hyphens
   (``don't``, ``state-of-the-art``);
5. any other non-space character on its own (punctuation: ``Paris.`` → ``Paris`` ``.``).

Whitespace only separates. Pass pre-tokenised word lists instead when the text follows a different
convention (e.g. CoNLL files).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from peftner.data.labels import OUTSIDE, split_tag
from peftner.data.readers import (ASCII_BLANKS, conll_sentences, decode_lines,
                                   parse_json_line, read_bytes, token_problem)
from peftner.errors import DataError, PeftnerError

TOKEN_PATTERN = re.compile(
    r"(?:https?://|www\.)\S+"
    r"|[@#]\w+"
    r"|\d+(?:[.,]\d+)+"
    r"|\w+(?:['’-]\w+)*"
    r"|[^\w\s]"
)


def tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split raw text into words and their ``(start, end)`` character offsets (rule above)."""
    matches = list(TOKEN_PATTERN.finditer(text))
    return [m.group() for m in matches], [(m.start(), m.end()) for m in matches]


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` word spans (end exclusive) of the entities in a tag sequence.

    Decoding is lenient, like the IOB repair of the training data: an entity starts at ``B-``/``S-``
    or at an ``I-``/``E-`` whose type differs from the running entity, and ends before ``O``, before a
    new start, or after ``E-``/``S-``. Tags that are not BIO-style (e.g. part of speech) give no entities.
    """
    spans: list[tuple[str, int, int]] = []
    current: list | None = None  # [type, start]
    for i, tag in enumerate(tags):
        prefix, etype = split_tag(tag)
        if prefix is None or prefix == OUTSIDE:
            if current:
                spans.append((current[0], current[1], i))
            current = None
            continue
        if prefix in ("B", "S") or current is None or current[0] != etype:
            if current:
                spans.append((current[0], current[1], i))
            current = [etype, i]
        if prefix in ("E", "S"):
            spans.append((current[0], current[1], i + 1))
            current = None
    if current:
        spans.append((current[0], current[1], len(tags)))
    return spans


def read_inputs(source: str, fmt: str | None = None) -> tuple[list, str]:
    """Read texts or token lists for prediction from a file (or ``-`` for standard input).

    One item per input record, so that outputs line up with inputs: ``text`` (one text per line,
    blank lines included: they get an empty prediction; a final line break ends the last line),
    ``conll`` (read exactly as training reads CoNLL files, :func:`peftner.data.readers.conll_sentences`,
    except that the tag column may be absent; other columns such as gold tags are ignored),
    ``jsonl`` (one object per non-blank line with ``"tokens"`` (a list) or ``"text"`` (a string), or
    a bare JSON string; ``{"text": ""}`` gets an empty prediction). Without
    ``fmt`` the file suffix decides (``.jsonl``/``.json`` → jsonl, ``.conll``/``.iob``/``.bio``/
    ``.tsv`` → conll, anything else and ``-`` → text). Returns the items and the format used.
    """
    if fmt is None:
        suffix = Path(source).suffix.lower() if source != "-" else ""
        fmt = {".jsonl": "jsonl", ".json": "jsonl", ".conll": "conll", ".iob": "conll", ".bio": "conll",
               ".tsv": "conll", ".conllu": "conll"}.get(suffix, "text")
    name = "<stdin>" if source == "-" else source
    raw = _stdin_bytes() if source == "-" else read_bytes(Path(source))
    lines = decode_lines(raw, name)  # LF, CRLF and CR-only alike; BOMs; UTF-8 checked line by line
    if fmt == "text":
        return (lines[:-1] if lines and lines[-1] == "" else lines), fmt
    if fmt == "conll":
        if not any(line.strip(ASCII_BLANKS) for line in lines):
            return [], fmt
        return [s.tokens for s in conll_sentences(lines, name, tagged=False)], fmt
    if fmt == "jsonl":
        items = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            record = parse_json_line(line, name, number)
            if isinstance(record, dict) and isinstance(record.get("tokens"), list):
                record = record["tokens"]
                problem = next(filter(None, map(token_problem, record)), None) or (
                    None if record else "empty sentence (no tokens)")
                if problem:
                    raise DataError(name, problem, number)
            elif isinstance(record, dict) and isinstance(record.get("text"), str):
                record = record["text"]
            elif not isinstance(record, str):
                raise DataError(name, 'expected {"tokens": [...]}, {"text": "..."} or a JSON string', number)
            items.append(record)
        return items, fmt
    raise PeftnerError(f"unknown input format {fmt!r} (choose text, conll or jsonl)")


def _stdin_bytes() -> bytes:
    """Standard input as bytes (decoded by :func:`decode_lines`, so binary input gets a one-line error)."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # replaced by a text stream (tests, notebooks)
        return sys.stdin.read().encode("utf-8", "surrogateescape")
    return stream.read()


def write_tagged_conll(path, sentences: list[list[str]], *columns: list[list[str]]):
    """``token<TAB>column…`` lines, a blank line between sentences (``peftner predict``'s CoNLL layout).

    A run writes its test predictions this way (``token gold predicted``), so what was scored can be
    compared with what a reloaded adapter predicts, and read by any CoNLL evaluation script.
    """
    lines = []
    for i, tokens in enumerate(sentences):
        lines += ["\t".join([token, *(column[i][j] for column in columns)]) for j, token in enumerate(tokens)]
        lines.append("")
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")


def read_tagged_conll(path) -> list[list[list[str]]]:
    """The sentences of a :func:`write_tagged_conll` file, each a list of its lines' columns."""
    sentences, current = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            current.append(line.split("\t"))
        elif current:
            sentences.append(current)
            current = []
    return sentences + ([current] if current else [])
