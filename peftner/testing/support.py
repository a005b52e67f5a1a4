"""The architecture x method support matrix: one definition for the test matrix and docs/models.md.

Every cell either trains (and its adapter reloads to the same logits) or is refused in one line
before any data is read; ``REFUSALS`` lists the refused cells with a fragment of their message.
``tests/test_architectures.py`` checks every cell against this table on tiny random models of each
architecture (:mod:`peftner.testing.tiny`), and ``benchmarks/models_doc.py`` renders it into docs/models.md.
"""

from __future__ import annotations

from peftner.methods import FILE_METHODS

ARCHITECTURES = ("bert", "deberta-v2", "distilbert", "modernbert", "t5", "gpt2", "llama", "qwen2", "mistral", "gemma", "gemma3")
# Every hand-written method but the config-file route ``peft`` (its cells depend on the file;
# tests/test_methods_peft.py). The PEFT-type rows (vera, loha, ...) are checked on a tiny BERT and a tiny
# Llama by tests/test_peft_coverage.py.
METHODS = tuple(m.name for m in FILE_METHODS if m.name != "peft")

# (architecture, method) -> fragment of the one-line refusal, and why the method cannot apply.
REFUSALS = {
    ("deberta-v2", "ptuning_v2"): ("disentangled attention",
                                   "DeBERTa scores every key by its position relative to the query; a prefix has none"),
    ("t5", "bitfit"): ("no bias terms", "T5 has no biases (only the head would train)"),
    ("t5", "ptuning_v2"): ("relative-position bias", "T5 adds a learned position bias to every key's score; a prefix has none"),
    ("modernbert", "bitfit"): ("no bias terms", "ModernBERT has no biases (only the head would train)"),
    ("llama", "bitfit"): ("no bias terms", "LLaMA has no biases (only the head would train)"),
    ("mistral", "bitfit"): ("no bias terms", "Mistral has no biases (only the head would train)"),
    ("gemma", "bitfit"): ("no bias terms", "Gemma has no biases (only the head would train)"),
    ("gemma3", "bitfit"): ("no bias terms", "Gemma 3 has no biases (only the head would train)"),
}


def expected(architecture: str, method: str) -> str | None:
    """The refusal fragment of a cell, or None when it trains."""
    refusal = REFUSALS.get((architecture, method))
    return refusal[0] if refusal else None


def cells():
    return [(a, m) for a in ARCHITECTURES for m in METHODS]
