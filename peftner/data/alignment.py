"""Word ↔ subword alignment and windowing of long sentences.

A sentence is tokenised once (fast tokenizer, ``word_ids``). Each word's label goes on its *head*:
its first subword that carries some of the word's characters. SentencePiece tokenizers (XLM-R, e5)
often split a word into a bare word-boundary piece ``▁`` and the word's own pieces (``東京`` → ``▁``,
``東京``), and byte-level BPE can do the same with ``Ġ``; such a piece is the same for every word, so a
label there cannot be learnt (and a prediction there says nothing about the word). The other
positions get -100 and are not scored. ``label_all_subwords`` trains the inner
subwords too, with the word's label, except that inner subwords of a ``B-X`` word get ``I-X`` (as the
Transformers token-classification example does): they continue the entity, they do not start one. Sentences longer than the model's limit are cut into overlapping windows: every word is
*owned* by exactly one window, which is the only one that trains on it and predicts it, and the
rest of a window is context on both sides. So every input word gets exactly one tag and nothing is
truncated.

The one exception is a single word with more subwords than fit in a window (e.g. a 600-character
URL): its first ``budget`` subwords are used; its label sits on its head, so it is still tagged.
"""

from __future__ import annotations

from dataclasses import dataclass

from peftner.errors import PeftnerError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SpecialTokens:
    """Tokens the tokenizer puts around one sequence, e.g. ``[CLS] … [SEP]`` for BERT."""

    prefix: list[int]
    suffix: list[int]

    @classmethod
    def of(cls, tokenizer) -> "SpecialTokens":
        encoding = tokenizer(["a"], is_split_into_words=True, add_special_tokens=True)
        word_ids = encoding.word_ids()
        first = word_ids.index(0)
        last = len(word_ids) - 1 - word_ids[::-1].index(0)
        ids = encoding["input_ids"]
        return cls(ids[:first], ids[last + 1:])


def max_sequence_length(tokenizer, model_config=None, requested: int | None = None) -> int:
    """The longest input the model accepts: tokenizer limit, position embeddings, user request."""
    limits = [n for n in (getattr(tokenizer, "model_max_length", None),
                          getattr(model_config, "max_position_embeddings", None), requested)
              if isinstance(n, int) and 0 < n < 1_000_000]
    return min(limits) if limits else 512


def subwords_per_word(tokenizer, sentences_tokens: list[list[str]]) -> list[list[list[int]]]:
    """Tokenise sentences in one batched call; returns, per sentence, the subword ids of each word.

    A word the tokenizer turns into nothing (e.g. a zero-width space) becomes the unknown token so
    it still has a position to be tagged at.
    """
    if not sentences_tokens:
        return []
    encoding = tokenizer(sentences_tokens, is_split_into_words=True, add_special_tokens=False)
    unk = tokenizer.unk_token_id if tokenizer.unk_token_id is not None else 0
    result = []
    for b, words in enumerate(sentences_tokens):
        pieces: list[list[int]] = [[] for _ in words]
        for token_id, word_id in zip(encoding["input_ids"][b], encoding.word_ids(b)):
            if word_id is not None:
                pieces[word_id].append(token_id)
        result.append([p if p else [unk] for p in pieces])
    return result


def head_pieces(tokenizer, pieces_all: list[list[list[int]]]) -> list[list[int]]:
    """Index, within each word's subwords, of the piece its label and prediction sit on.

    The first piece that decodes to more than whitespace: bare word-boundary pieces (``▁``, ``Ġ``)
    are skipped. A word made of such pieces only keeps its first one.
    """
    bare: dict[int, bool] = {}

    def is_bare(token_id: int) -> bool:
        if token_id not in bare:
            text = tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(token_id)])
            bare[token_id] = not text.strip()
        return bare[token_id]

    heads = []
    for pieces in pieces_all:
        row = []
        for ids in pieces:
            k = 0
            while k < len(ids) - 1 and is_bare(ids[k]):
                k += 1
            row.append(k if k < len(ids) and not is_bare(ids[k]) else 0)
        heads.append(row)
    return heads


def plan_windows(lengths: list[int], budget: int) -> list[tuple[int, int, int, int]]:
    """Split words with the given subword ``lengths`` into windows of at most ``budget`` subwords.

    Returns ``(start, end, own_start, own_end)`` word ranges: the window covers ``[start, end)`` and
    owns ``[own_start, own_end)``. Owned ranges partition the sentence. Each window owns about half
    its budget and fills the rest with context split between the two sides.
    """
    lengths = [min(n, budget) for n in lengths]
    if sum(lengths) <= budget:
        return [(0, len(lengths), 0, len(lengths))]
    own_budget = max(1, budget // 2)
    windows = []
    own_start = 0
    while own_start < len(lengths):
        own_end, used = own_start, 0
        while own_end < len(lengths) and (used + lengths[own_end] <= own_budget or own_end == own_start):
            used += lengths[own_end]
            own_end += 1
        start, end = own_start, own_end
        left_turn = True
        while True:  # grow context alternately left and right while it fits
            grew = False
            for side in ((0, 1) if left_turn else (1, 0)):
                if side == 0 and start > 0 and used + lengths[start - 1] <= budget:
                    start -= 1
                    used += lengths[start]
                    grew = True
                    break
                if side == 1 and end < len(lengths) and used + lengths[end] <= budget:
                    used += lengths[end]
                    end += 1
                    grew = True
                    break
            left_turn = not left_turn
            if not grew:
                break
        windows.append((start, end, own_start, own_end))
        own_start = own_end
    return windows


def window_budget(tokenizer, max_length: int, special: SpecialTokens | None = None) -> int:
    """Subwords of words that fit in a window of ``max_length`` (refused when none fit)."""
    special = special or SpecialTokens.of(tokenizer)
    specials = len(special.prefix) + len(special.suffix)
    if max_length - specials < 1:
        raise PeftnerError(f"--max-length {max_length} leaves no room for words after the model's {specials} "
                           f"special tokens; use at least {specials + 1}")
    return max_length - specials


def inner_subword_labels(label2id: dict) -> dict[int, int]:
    """Label id of a word → label id of its inner subwords: ``B-X`` → ``I-X`` where the tag set has it."""
    return {i: label2id[f"I-{tag[2:]}"] for tag, i in label2id.items()
            if tag.startswith("B-") and f"I-{tag[2:]}" in label2id}


def encode_sentences(sentences_tokens, sentences_tags, tokenizer, label2id, max_length: int,
                     label_all_subwords: bool = False, subword_owner: bool = False) -> list[dict]:
    """Turn word-level sentences into model features, one per window.

    Each feature has ``input_ids``, ``attention_mask``, ``labels`` (or all -100 when tags are None),
    and for mapping predictions back: ``example_id`` (sentence index) and ``word_index`` (the word a
    position predicts: the word's head piece, -1 elsewhere). ``subword_owner`` adds ``subword_word``:
    the owned word of every subword from its head on (-1 elsewhere), for predictions that aggregate
    the subwords of a word.
    """
    special = SpecialTokens.of(tokenizer)
    budget = window_budget(tokenizer, max_length, special)
    pieces_all = subwords_per_word(tokenizer, sentences_tokens)
    heads_all = head_pieces(tokenizer, pieces_all)
    inner = inner_subword_labels(label2id) if label_all_subwords else {}
    features = []
    for example_id, (pieces, heads) in enumerate(zip(pieces_all, heads_all)):
        tags = sentences_tags[example_id] if sentences_tags is not None else None
        for start, end, own_start, own_end in plan_windows([len(p) for p in pieces], budget):
            input_ids = list(special.prefix)
            labels = [IGNORE_INDEX] * len(special.prefix)
            word_index = [-1] * len(special.prefix)
            owner = [-1] * len(special.prefix)
            for w in range(start, end):
                ids = pieces[w][:budget]
                head = heads[w] if heads[w] < len(ids) else 0
                owned = own_start <= w < own_end
                label = label2id[tags[w]] if (tags is not None and owned) else IGNORE_INDEX
                inner_label = inner.get(label, label) if label_all_subwords else IGNORE_INDEX
                for k, token_id in enumerate(ids):
                    input_ids.append(token_id)
                    # pieces before the head are bare word-boundary markers: never trained or scored
                    labels.append(label if k == head else inner_label if k > head else IGNORE_INDEX)
                    word_index.append(w if (owned and k == head) else -1)
                    owner.append(w if (owned and k >= head) else -1)
            input_ids += special.suffix
            labels += [IGNORE_INDEX] * len(special.suffix)
            word_index += [-1] * len(special.suffix)
            features.append({
                "input_ids": input_ids,
                "attention_mask": [1] * len(input_ids),
                "labels": labels,
                "example_id": example_id,
                "word_index": word_index,
            })
            if subword_owner:
                features[-1]["subword_word"] = owner + [-1] * len(special.suffix)
    return features


class WordSlots:
    """One flat slot per word of a list of sentences, and where predictions at positions go.

    Every consumer of position-level predictions (evaluation in the training loop, ``Tagger.predict``)
    maps them to words through :meth:`at`: a position whose ``word_index`` (or ``subword_word``) is
    ``w >= 0`` in a row of sentence ``e`` predicts slot ``offsets[e] + w``; :meth:`split` turns the
    flat slots back into one list per sentence.
    """

    def __init__(self, num_words: list[int]):
        import torch

        self.num_words = list(num_words)
        self.total = sum(self.num_words)
        self.offsets = torch.tensor([0] + self.num_words[:-1], dtype=torch.long).cumsum(0)

    def at(self, example_ids, word_index):
        """``(mask, slots)``: the positions of a ``(rows, length)`` batch that predict a word, and its slot."""
        mask = word_index >= 0
        rows = mask.nonzero(as_tuple=True)[0]
        return mask, self.offsets[example_ids[rows]] + word_index[mask]

    def split(self, flat: list) -> list[list]:
        result, start = [], 0
        for n in self.num_words:
            result.append(flat[start:start + n])
            start += n
        return result
