"""Entity-level precision/recall/F1 for sequence labelling, as an offline `evaluate` metric module.

The Hub's ``seqeval`` metric script cannot be downloaded offline, so peftner ships this module and
loads it by path: ``evaluate.load("<peftner>/metrics/seqeval_metric")``. It is backed by the
``seqeval`` package: default mode follows conlleval (an I- tag may open an entity); ``mode="strict"``
with a ``scheme`` (IOB2, IOBES) only counts entities that are well-formed in that scheme.
"""

import datasets
import evaluate
from seqeval.metrics import accuracy_score, classification_report
from seqeval.scheme import IOB1, IOB2, IOBES, IOE1, IOE2, BILOU

_SCHEMES = {"IOB1": IOB1, "IOB2": IOB2, "IOBES": IOBES, "IOE1": IOE1, "IOE2": IOE2, "BILOU": BILOU}

_DESCRIPTION = "Entity-level micro precision/recall/F1 and per-type scores (seqeval), offline."
_KWARGS = """
Args:
    predictions: list of tag sequences, one per sentence.
    references: list of gold tag sequences, same shapes.
    mode: None (conlleval behaviour) or "strict".
    scheme: tagging scheme for strict mode: IOB1, IOB2, IOBES, IOE1, IOE2, BILOU.
    zero_division: value for 0/0 ratios (default 0).
Returns:
    overall_precision, overall_recall, overall_f1, overall_accuracy (token level), and for each
    entity type a dict with precision, recall, f1, number (gold count).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class SeqevalMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Nakayama, seqeval: A Python framework for sequence labeling evaluation (2018).",
            inputs_description=_KWARGS,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("string")),
                "references": datasets.Sequence(datasets.Value("string")),
            }),
        )

    def _compute(self, predictions, references, mode=None, scheme=None, zero_division=0):
        if any(len(p) != len(r) for p, r in zip(predictions, references)):
            raise ValueError("each prediction must have as many tags as its reference")
        kwargs = {}
        if mode == "strict":
            if scheme not in _SCHEMES:
                raise ValueError(f"strict mode needs a scheme among {sorted(_SCHEMES)}, got {scheme!r}")
            kwargs = {"mode": "strict", "scheme": _SCHEMES[scheme]}
        report = classification_report(y_true=references, y_pred=predictions, output_dict=True,
                                       zero_division=zero_division, **kwargs)
        report.pop("macro avg", None)
        report.pop("weighted avg", None)
        micro = report.pop("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
        scores = {
            entity_type: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                          "f1": float(v["f1-score"]), "number": int(v["support"])}
            for entity_type, v in report.items()
        }
        scores["overall_precision"] = float(micro["precision"])
        scores["overall_recall"] = float(micro["recall"])
        scores["overall_f1"] = float(micro["f1-score"])
        scores["overall_accuracy"] = float(accuracy_score(y_true=references, y_pred=predictions))
        return scores
