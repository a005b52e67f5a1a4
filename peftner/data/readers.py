"""Readers that turn files and Hub datasets into :class:`Sentence` lists.

Every reader checks what it reads and raises :class:`~peftner.errors.DataError` naming the file and
line of the first problem, so a bad corpus stops a run before any training starts.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from peftner.errors import DataError

JSONL_SUFFIXES = (".jsonl", ".json")


@dataclass
class Sentence:
    """One sentence: word tokens, one tag per token, and where it came from (for error messages)."""

    tokens: list[str]
    tags: list[str]
    source: str = "<memory>"
    lines: list[int] = field(default_factory=list)  # 1-based line of each token, when known

    def where(self, i: int = 0) -> tuple[str, int | None]:
        return self.source, (self.lines[i] if i < len(self.lines) else None)


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
# Byte-order marks: UTF-32 before UTF-16 (the UTF-32-LE mark starts with the UTF-16-LE one).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF8, "utf-8"))
# Cells of a column line are trimmed of ASCII blanks only: other whitespace characters (no-break
# space U+00A0, ideographic space U+3000, ...) are tokens of their own in some corpora.
ASCII_BLANKS = " \t\r\n\f\v"
BYTE_ORDER_MARK = "\ufeff"
DOCSTART = "-DOCSTART-"  # CoNLL's document marker: a line (or a one-token sentence) that is not text


def conll_cell_problem(token: str) -> str | None:
    """Why ``token`` cannot be written as a CoNLL cell and read back unchanged (None when it can).

    The readers apply it to JSON Lines data too: a run writes its test predictions as CoNLL
    (test_predictions.conll), which must read back as the sentences that were scored.
    """
    if not token:
        return "is empty"
    if any(c in token for c in "\t\r\n"):
        return "holds a tab or line break"
    if token != token.strip(ASCII_BLANKS):
        return "begins or ends with a space"
    if token == DOCSTART:
        return "is the -DOCSTART- marker"
    if token.startswith(BYTE_ORDER_MARK):
        return "begins with a byte-order mark (U+FEFF)"
    return None


def is_document_marker(tokens: list[str]) -> bool:
    """A sentence that is only ``-DOCSTART-``: converted CoNLL corpora keep it as a record (skipped,
    as the CoNLL reader skips the line)."""
    return len(tokens) == 1 and tokens[0] == DOCSTART


def read_bytes(path: Path) -> bytes:
    """The bytes of a data file, or a :class:`DataError` naming it (missing, a directory, unreadable)."""
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a directory, expected a data file")
    try:
        return path.read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot be read ({(err.strerror or str(err)).lower()})") from None


def decode_lines(raw: bytes, name) -> list[str]:
    """Split on every line-ending convention (LF, CRLF, CR-only) and decode UTF-8 line by line.

    A UTF-8 byte-order mark is dropped; a UTF-16/32 one means the file is in that encoding.
    Only CR and LF break lines: other Unicode separators (U+2028, U+0085, ...) stay in the text.
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            if encoding != "utf-8":
                try:
                    raw = raw[len(bom):].decode(encoding).encode("utf-8")
                except UnicodeError:
                    raise DataError(name, f"not valid {encoding.upper()[:6]} after its byte-order mark") from None
            else:
                raw = raw[len(bom):]
            break
    out = []
    for number, line in enumerate(_LINE_BREAK.split(raw), start=1):
        try:
            out.append(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DataError(name, f"not valid UTF-8 (byte {err.start} of the line)", number) from None
        if out[-1].startswith(BYTE_ORDER_MARK):
            # files joined with their marks (cat a.conll b.conll): the mark would glue onto a token
            raise DataError(name, "a byte-order mark (U+FEFF) starts this line: files joined with their "
                                  "marks? Remove it", number)
    return out


def _read_text_lines(path: Path) -> list[str]:
    raw = read_bytes(path)
    if not raw.strip():
        raise DataError(path, "file is empty")
    return decode_lines(raw, path)


def split_columns(line: str) -> list[str]:
    """Columns of a token line: split on tabs when the line has one, else on runs of ASCII blanks."""
    if "\t" in line:
        return [c.strip(ASCII_BLANKS) for c in line.split("\t")]
    return [c for c in re.split(r"[ \f\v]+", line) if c]


def read_conll(path: str | Path) -> list[Sentence]:
    """Read a CoNLL/IOB column file: token in the first column, tag in the last.

    Columns are split on tabs when the line has one, else on runs of ASCII blanks (see
    :func:`split_columns`: other whitespace characters are tokens); every token line of the file
    must have the same number of columns. Lines blank in ASCII separate sentences; ``-DOCSTART-``
    lines are skipped (and end a sentence). Line endings and BOMs: :func:`decode_lines`.
    """
    path = Path(path)
    return conll_sentences(_read_text_lines(path), path)


def conll_sentences(lines: list[str], name, tagged: bool = True) -> list[Sentence]:
    """The sentences of CoNLL lines: the one reading of the format, for training and ``peftner predict``.

    ``tagged=False`` (prediction input): a line may hold the token alone; ``tags`` are then the last
    column where there is one, else empty. Everything else (blank lines, ``-DOCSTART-``, the column
    count, empty cells) is read exactly as for training, so both see the same sentences.
    """
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    line_numbers: list[int] = []
    n_columns: int | None = None
    first_columns_line = 0

    def flush():
        if tokens:
            sentences.append(Sentence(list(tokens), list(tags), str(name), list(line_numbers)))
            tokens.clear(), tags.clear(), line_numbers.clear()

    for number, line in enumerate(lines, start=1):
        if not line.strip(ASCII_BLANKS):
            flush()
            continue
        columns = split_columns(line)
        if columns[0] == DOCSTART:
            flush()
            continue
        if tagged and len(columns) < 2:
            raise DataError(name, f"expected a token and a tag separated by a tab or spaces, got {line!r}", number)
        if n_columns is None:
            n_columns, first_columns_line = len(columns), number
        elif len(columns) != n_columns:
            raise DataError(
                name,
                f"{len(columns)} columns, but line {first_columns_line} has {n_columns} "
                "(inconsistent column count)",
                number,
            )
        token, tag = columns[0], columns[-1] if len(columns) > 1 else ""
        if not token:
            raise DataError(name, "empty token in the first column", number)
        if tagged and not tag:
            raise DataError(name, "empty tag in the last column", number)
        tokens.append(token)
        tags.append(tag)
        line_numbers.append(number)
    flush()
    if not sentences:
        raise DataError(name, "no sentences found (only blank or -DOCSTART- lines)")
    return sentences


def parse_json_line(line: str, name, number: int):
    """``json.loads`` of one line, with every way the parser can fail turned into a :class:`DataError`.

    Besides syntax errors: nesting deep enough to exhaust the recursion limit, integers longer than
    Python converts, and ``NaN``/``Infinity`` literals (not JSON; Python's parser accepts them).
    """
    def no_constants(value):
        raise ValueError(f"{value} is not valid JSON")

    def one_value_per_key(pairs):  # {"tags": [...], "tags": [...]}: json.loads would keep the last
        keys = [key for key, _ in pairs]
        twice = next((key for key in keys if keys.count(key) > 1), None)
        if twice is not None:
            raise ValueError(f"key {twice!r} appears twice in one object")
        return dict(pairs)

    try:
        return json.loads(line, parse_constant=no_constants, object_pairs_hook=one_value_per_key)
    except json.JSONDecodeError as err:
        raise DataError(name, f"invalid JSON: {err.msg} (column {err.colno})", number) from None
    except RecursionError:
        raise DataError(name, "invalid JSON: nested too deeply", number) from None
    except ValueError as err:
        raise DataError(name, f"invalid JSON: {str(err).splitlines()[0]}", number) from None


def token_problem(token, written: bool = False) -> str | None:
    """Why ``token`` cannot be a word (None when it can). Whitespace characters are words too.

    ``written``: the token is training data, whose test predictions are written as CoNLL, so it must
    also be a token a CoNLL file can hold (:func:`conll_cell_problem`)."""
    if not isinstance(token, str) or not token:
        return "every token must be a non-empty string"
    if any("\ud800" <= c <= "\udfff" for c in token):
        return f"token {token!r} holds a lone surrogate (not a character)"
    problem = conll_cell_problem(token) if written else None
    if problem:
        return (f"token {token!r} {problem}, which the run's CoNLL output (test_predictions.conll) cannot "
                "hold; fix the token")
    return None


def tag_problem(tags: list) -> str | None:
    """Why a record's tags cannot be read (None when they can): non-empty text a CoNLL cell holds."""
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            return "every tag must be a non-empty string"
        if any(c in tag for c in "\t\r\n") or tag != tag.strip(ASCII_BLANKS):
            return f"tag {tag!r} holds a tab or line break, or begins or ends with a space; fix the tag"
    return None


def read_jsonl(path: str | Path) -> list[Sentence]:
    """Read JSON Lines, one object per sentence: ``{"tokens": [...], "tags": [...]}``."""
    path = Path(path)
    sentences = []
    for number, line in enumerate(_read_text_lines(path), start=1):
        if not line.strip():
            continue
        record = parse_json_line(line, path, number)
        if not isinstance(record, dict) or "tokens" not in record or "tags" not in record:
            raise DataError(path, 'expected an object with "tokens" and "tags" lists', number)
        tokens, tags = record["tokens"], record["tags"]
        if not isinstance(tokens, list) or not isinstance(tags, list):
            raise DataError(path, '"tokens" and "tags" must be lists', number)
        if not tokens:
            raise DataError(path, "empty sentence (no tokens)", number)
        if len(tokens) != len(tags):
            raise DataError(path, f"{len(tokens)} tokens but {len(tags)} tags", number)
        if is_document_marker(tokens):
            continue  # as the CoNLL reader skips a -DOCSTART- line
        problem = next((p for t in tokens if (p := token_problem(t, written=True))), None) or tag_problem(tags)
        if problem:
            raise DataError(path, problem, number)
        sentences.append(Sentence(list(tokens), list(tags), str(path), [number] * len(tokens)))
    if not sentences:
        raise DataError(path, "no sentences found (only blank or -DOCSTART- lines)")
    return sentences


def read_file(path: str | Path) -> list[Sentence]:
    """Read a data file, choosing the reader from its suffix (.jsonl/.json, else CoNLL columns)."""
    path = Path(path)
    if path.suffix.lower() in JSONL_SUFFIXES:
        return read_jsonl(path)
    return read_conll(path)


def _tag_names(dataset, column: str) -> list[str]:
    feature = dataset.features[column]
    inner = getattr(feature, "feature", None)
    names = getattr(inner, "names", None)
    if names is None and isinstance(feature, list) and feature:
        names = getattr(feature[0], "names", None)
    if names is None:
        raise DataError(f"dataset column {column!r}", "is not a sequence of ClassLabel tags")
    return list(names)


def from_hf_dataset(dataset, name: str = "<hub>", tokens_column: str = "tokens",
                    tags_column: str | None = None) -> list[Sentence]:
    """Convert a ``datasets.Dataset`` with a token column and a ``Sequence(ClassLabel)`` tag column.

    The tag column defaults to ``ner_tags`` (conll2003, wnut_17, …) or else the first column whose
    feature is a sequence of ClassLabel.
    """
    columns = dataset.column_names
    if tokens_column not in columns:
        raise DataError(name, f"has no {tokens_column!r} column (columns: {', '.join(columns)})")
    if tags_column is None:
        candidates = [c for c in columns if c != tokens_column
                      and getattr(getattr(dataset.features[c], "feature", None), "names", None)]
        tags_column = "ner_tags" if "ner_tags" in candidates else (candidates[0] if candidates else None)
        if tags_column is None:
            raise DataError(name, "has no column of ClassLabel tag sequences")
    names = _tag_names(dataset, tags_column)
    sentences = []
    for i, record in enumerate(dataset):
        tokens = list(record[tokens_column])
        if not tokens or is_document_marker(tokens):
            continue  # Hub corpora contain empty rows and -DOCSTART- rows (document separators): no text to tag
        tags = [names[t] for t in record[tags_column]]
        if len(tags) != len(tokens):
            raise DataError(name, f"row {i}: {len(tokens)} tokens but {len(tags)} tags")
        problem = next((p for t in tokens if (p := token_problem(t, written=True))), None)
        if problem:
            raise DataError(name, f"row {i}: {problem}")
        sentences.append(Sentence(tokens, tags, f"{name}[{i}]", []))
    return sentences


def load_hub_split(name: str, split: str, config: str | None = None) -> list[Sentence]:
    """Load one split of a Hub token-classification dataset (needs network access)."""
    import datasets

    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # the Hub raises many types; the user needs the name and the reason
        raise DataError(f"dataset {name!r}", f"could not be loaded from the Hugging Face Hub: {err}") from None
    return from_hf_dataset(dataset, name=f"{name}:{split}")
