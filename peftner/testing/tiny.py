"""Randomly initialised checkpoints of each supported architecture, built in code (nothing downloads).

Used by the architecture x method test matrix (tiny sizes, seconds per cell), by
``benchmarks/models_doc.py`` and by the GPU benchmark (BERT-base and ~0.5B-decoder sizes). Each is saved
the way real checkpoints are: encoders as their bare model (BERT, DeBERTa-v2, DistilBERT) or masked LM
(ModernBERT, whose ``head`` block then loads), decoders as causal LMs; tokenizers as their real
families have them: WordPiece for the BERT-style encoders, byte-level BPE (no padding token for GPT-2
and Llama) for ModernBERT and the decoders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

# Words of the test corpora (tests/conftest.py's memorisable sentences) and a few common pieces.
WORDS = ["alice", "bob", "carol", "dave", "erin", "frank", "paris", "london", "berlin", "madrid", "rome",
         "oslo", "lives", "in", "works", "near", "visited", "met", "today", "and", "the", "city"]
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDPIECES = ["##s", "##ing", "##er", "un", "##known"]


@dataclass(frozen=True)
class TinySpec:
    """One architecture: its config class arguments and how its checkpoint and tokenizer are saved."""

    name: str
    model_type: str
    checkpoint: str  # "base", "masked_lm", "causal_lm" or "seq2seq": the class real checkpoints are saved from
    tokenizer: str  # "wordpiece" or "bpe"
    config: dict = field(default_factory=dict)
    # config keys that name the hidden size, layers, heads and feed-forward size in this config class
    keys: tuple = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    decoder: bool = False


SPECS = {s.name: s for s in (
    TinySpec("bert", "bert", "base", "wordpiece", {"type_vocab_size": 2}),
    TinySpec("deberta-v2", "deberta-v2", "base", "wordpiece",
             {"relative_attention": True, "position_buckets": 16, "pos_att_type": ["p2c", "c2p"],
              "type_vocab_size": 0, "max_relative_positions": -1}),
    TinySpec("distilbert", "distilbert", "base", "wordpiece", {},
             keys=("dim", "n_layers", "n_heads", "hidden_dim")),
    TinySpec("modernbert", "modernbert", "masked_lm", "bpe",
             {"global_attn_every_n_layers": 2, "local_attention": 16}),
    TinySpec("t5", "t5", "seq2seq", "wordpiece", {"decoder_start_token_id": 0},
             keys=("d_model", "num_layers", "num_heads", "d_ff")),
    TinySpec("gpt2", "gpt2", "causal_lm", "bpe", {}, keys=("n_embd", "n_layer", "n_head", "n_inner"),
             decoder=True),
    TinySpec("llama", "llama", "causal_lm", "bpe", {"num_key_value_heads": 1}, decoder=True),
    TinySpec("qwen2", "qwen2", "causal_lm", "bpe", {"num_key_value_heads": 1}, decoder=True),
    TinySpec("mistral", "mistral", "causal_lm", "bpe", {"num_key_value_heads": 1, "sliding_window": 16},
             decoder=True),
    TinySpec("gemma", "gemma", "causal_lm", "bpe", {"num_key_value_heads": 1}, decoder=True),
    # Gemma 3: no token-classification class in transformers (peftner.models.heads builds one); local
    # sliding-window layers between global ones, as in gemma-3-270m
    TinySpec("gemma3", "gemma3_text", "causal_lm", "bpe",
             {"num_key_value_heads": 1, "sliding_window": 16, "sliding_window_pattern": 2},
             decoder=True),
)}


def build_config(spec: TinySpec, vocab_size: int, hidden: int = 64, layers: int = 2, heads: int = 4,
                 intermediate: int | None = None, max_positions: int = 128, **overrides):
    """The config of ``spec`` at the given size (tiny by default)."""
    from transformers import AutoConfig

    h, n, a, f = spec.keys
    position_key = "n_positions" if spec.model_type == "gpt2" else "max_position_embeddings"
    values = {h: hidden, n: layers, a: heads, f: intermediate or 2 * hidden, position_key: max_positions,
              "vocab_size": vocab_size, **spec.config, **overrides}
    if spec.model_type in ("llama", "qwen2", "mistral", "gemma", "gemma3_text"):
        values.setdefault("head_dim", hidden // heads)
    if spec.model_type == "t5":
        values.setdefault("d_kv", hidden // heads)
    return AutoConfig.for_model(spec.model_type, **values)


def wordpiece_tokenizer(max_length: int = 128):
    from transformers import BertTokenizer

    vocab = {t: i for i, t in enumerate(WORDPIECE_SPECIALS + WORDS + WORDPIECES)}
    tokenizer = BertTokenizer(vocab=vocab)
    tokenizer.model_max_length = max_length
    return tokenizer


def bpe_tokenizer(spec: TinySpec, max_length: int = 128):
    """A byte-level BPE trained on :data:`WORDS` (title and lower case, with and without a space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    encoder = spec.checkpoint == "masked_lm"
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] if encoder else ["<|endoftext|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [" ".join(WORDS), " ".join(w.title() for w in WORDS)] * 4
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    if encoder:  # ModernBERT: [CLS] text [SEP], padding token defined
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))])
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                            cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    else:  # GPT-2 / Llama-3 style: one end-of-text token, no padding token (Qwen2 pads with it)
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
        extra = {"pad_token": "<|endoftext|>"} if spec.model_type == "qwen2" else {}
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                            bos_token="<|endoftext|>", unk_token="<|endoftext|>", **extra)
    tokenizer.model_max_length = max_length
    return tokenizer


def build_checkpoint(name: str, directory, seed: int = 0, vocab_size: int | None = None, **size) -> Path:
    """Save a random ``name`` model (see :data:`SPECS`) and its tokenizer to ``directory``.

    ``size`` goes to :func:`build_config` (tiny by default); ``vocab_size`` above the tokenizer's
    gives a real-sized embedding table (benchmarks) whose extra rows the tokenizer never produces.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

    spec = SPECS[name]
    directory = Path(directory)
    max_positions = size.get("max_positions", 128)
    tokenizer = (wordpiece_tokenizer(max_positions) if spec.tokenizer == "wordpiece"
                 else bpe_tokenizer(spec, max_positions))
    ids = {"pad_token_id": tokenizer.pad_token_id}
    if spec.decoder:
        ids.update(bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    elif spec.model_type == "modernbert":
        ids.update(bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                   cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id)
    config = build_config(spec, max(vocab_size or 0, len(tokenizer)), **ids, **size)
    auto = {"base": AutoModel, "masked_lm": AutoModelForMaskedLM, "causal_lm": AutoModelForCausalLM,
            "seq2seq": AutoModelForSeq2SeqLM}[spec.checkpoint]
    torch.manual_seed(seed)
    auto.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# ----------------------------------------------------------------------------- multi-script tokenizers
# Japanese, Turkish and English words for the alignment tests: each tokenizer family splits some of
# them into a bare word-boundary piece and the word's own pieces, as real multilingual tokenizers do.
MULTISCRIPT_WORDS = ["東京", "に", "住んで", "います", "大陸", "İstanbul'da", "yaşıyorum", "Ankara", "Alice", "lives",
                     "in", "Paris", "unknowns"]
_JAPANESE = MULTISCRIPT_WORDS[:5]


def unigram_tokenizer(max_length: int = 128):
    """An XLM-R-style SentencePiece tokenizer (Unigram, ``▁`` word boundaries, ``<s> … </s>``) whose
    Japanese pieces exist only without ``▁``: ``東京`` → ``▁``, ``東京``, as in multilingual-e5-small."""
    from transformers import XLMRobertaTokenizer

    whole = ["▁Ankara", "▁Alice", "▁lives", "▁in", "▁Paris", "東京", "に", "います", "大陸"]
    pieces = whole + ["▁", "'", "da", "▁İstanbul", "▁yaşı", "yor", "um", "▁un", "know", "ns", "住", "んで"]
    chars = sorted({c for w in MULTISCRIPT_WORDS for c in w} - set(pieces))
    vocab = ([("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
             + [(p, -1.0 - 0.01 * i) for i, p in enumerate(dict.fromkeys(pieces))]
             + [(c, -20.0) for c in chars] + [("<mask>", 0.0)])
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    tokenizer.model_max_length = max_length
    return tokenizer


def multiscript_bpe_tokenizer(max_length: int = 128):
    """A byte-level BPE (GPT-2 / SmolLM2 style) that learnt Japanese words without a leading space, so
    ``に`` with a prefix space becomes a bare ``Ġ`` and the word's bytes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    english = " ".join(w for w in MULTISCRIPT_WORDS if w not in _JAPANESE)
    corpus = ["".join(_JAPANESE), " " + english] * 8
    backend.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.model_max_length = max_length
    return tokenizer


def multiscript_wordpiece_tokenizer(max_length: int = 128):
    """A multilingual-BERT-style WordPiece: CJK characters are words of their own, no bare pieces."""
    from transformers import BertTokenizer

    vocab = WORDPIECE_SPECIALS + ["東", "京", "に", "住", "ん", "##で", "い", "##ます", "大", "陸", "İstanbul", "'", "da",
                                  "ya", "##şı", "##yorum", "Ankara", "Alice", "lives", "in", "Paris", "un", "##known",
                                  "##s"]
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False)
    tokenizer.model_max_length = max_length
    return tokenizer
