"""Scoring: entity-level P/R/F1 through the shipped `evaluate` module, or token accuracy."""

from __future__ import annotations

import functools
from pathlib import Path

METRIC_MODULE = Path(__file__).parent / "seqeval_metric" / "seqeval_metric.py"


@functools.lru_cache(maxsize=1)
def load_seqeval():
    """The packaged seqeval metric, loaded by path (no Hub access)."""
    import evaluate

    return evaluate.load(str(METRIC_MODULE))


_BILOU_AS_IOBES = {"L": "E", "U": "S"}  # BILOU's last / unit tags are IOBES's end / single tags


def seqeval_tags(tags: list[str], scheme: str | None) -> list[str]:
    """Tags as seqeval reads them: BILOU's ``L-``/``U-`` become IOBES's ``E-``/``S-`` (seqeval's
    default mode does not know them and would merge ``U-PER U-PER`` into one entity); other schemes
    unchanged."""
    if scheme != "BILOU":
        return tags
    return [_BILOU_AS_IOBES[t[0]] + t[1:] if len(t) > 2 and t[0] in _BILOU_AS_IOBES and t[1] in "-_" else t
            for t in tags]


def score(predictions: list[list[str]], references: list[list[str]], metric: str = "entity_f1",
          f1_scheme: str | None = None, tag_scheme: str | None = None) -> dict:
    """Return ``{"f1", "precision", "recall", "accuracy", "per_type", "metric"}``.

    For ``metric="token_accuracy"`` (tag sets that are not BIO-style), ``f1``, ``precision`` and
    ``recall`` all equal token accuracy, so tables can sort every run by one column.
    ``f1_scheme`` ("IOB2", "IOBES"): entities follow that scheme's rules (seqeval's strict mode,
    ``--scheme-f1``); None: conlleval's rules (an ``I-`` tag may open an entity). ``tag_scheme``
    "BILOU" (or ``f1_scheme`` "BILOU"): the tags are mapped to IOBES first, which both of seqeval's
    modes read (its default mode does not know ``L-``/``U-``).
    """
    if metric == "token_accuracy":
        total = sum(len(r) for r in references)
        correct = sum(p == g for ps, rs in zip(predictions, references) for p, g in zip(ps, rs))
        accuracy = correct / total if total else 0.0
        return {"metric": metric, "f1": accuracy, "precision": accuracy, "recall": accuracy,
                "accuracy": accuracy, "per_type": {}}
    if "BILOU" in (tag_scheme, f1_scheme):
        predictions = [seqeval_tags(p, "BILOU") for p in predictions]
        references = [seqeval_tags(r, "BILOU") for r in references]
        f1_scheme = "IOBES" if f1_scheme else None
    kwargs = {"mode": "strict", "scheme": f1_scheme} if f1_scheme else {}
    result = load_seqeval().compute(predictions=predictions, references=references, **kwargs)
    per_type = {k: v for k, v in result.items() if isinstance(v, dict)}
    return {"metric": metric, "f1": result["overall_f1"], "precision": result["overall_precision"],
            "recall": result["overall_recall"], "accuracy": result["overall_accuracy"],
            "per_type": per_type}
