"""The model card (``README.md``) and metadata written into every adapter directory."""

from __future__ import annotations

from pathlib import Path

from peftner.markdown import markdown_table
from peftner.report import RunMetrics
from peftner.reuse.artifact import EMBEDDED_HUB_ID, write_metadata


def _fmt(value, digits=4):
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _dataset_name(metrics: RunMetrics) -> str:
    """The dataset as the Hub shows it: a built-in or Hub name as is, a local file by its name only."""
    name = str(metrics.dataset or "unknown")
    return Path(name).name if ("/" in name and Path(name).suffix) else name


def eval_results(metrics: RunMetrics | None) -> list:
    """``huggingface_hub.EvalResult`` entries of a run: test scores (micro and per type) and best dev F1.

    These become the card's ``model-index``, which the Hub renders as an evaluation widget and which
    ``huggingface_hub.ModelCard.load(...).data.eval_results`` reads back.
    """
    from huggingface_hub import EvalResult

    if not metrics or metrics.test_f1 is None:
        return []
    dataset = _dataset_name(metrics)

    def result(split, metric_type, value, name, config=None):
        return EvalResult(task_type="token-classification", task_name="Token Classification",
                          dataset_type=dataset, dataset_name=dataset, dataset_split=split,
                          metric_type=metric_type, metric_value=float(value), metric_name=name,
                          metric_config=config)

    if metrics.metric not in (None, "entity_f1"):  # tag sets without entities: token accuracy
        results = [result("test", "accuracy", metrics.test_f1, "token accuracy")]
    else:
        results = [result("test", "f1", metrics.test_f1, "entity F1 (seqeval, micro)"),
                   result("test", "precision", metrics.test_precision, "entity precision"),
                   result("test", "recall", metrics.test_recall, "entity recall")]
        if metrics.test_accuracy is not None:
            results.append(result("test", "accuracy", metrics.test_accuracy, "token accuracy"))
        for etype, scores in sorted((metrics.per_type or {}).items()):
            results.append(result("test", "f1", scores["f1"], f"F1 {etype}", config=etype))
    if metrics.best_dev_f1 is not None:
        results.append(result("validation", "accuracy" if metrics.metric not in (None, "entity_f1")
                              else "f1", metrics.best_dev_f1, "best dev score (model selection)"))
    return results


def front_matter(meta: dict, metrics: RunMetrics | None = None) -> str:
    """The card's YAML metadata, written by ``huggingface_hub.ModelCardData`` so the Hub parses it."""
    from huggingface_hub import ModelCardData

    base = EMBEDDED_HUB_ID if meta.get("base_model_embedded") else meta.get("base_model")
    tags = ["peftner", "token-classification", "ner"] + ([meta["method"]] if meta.get("method") else [])
    results = eval_results(metrics)
    data = ModelCardData(
        library_name="peft" if meta.get("is_peft") else "transformers",
        pipeline_tag="token-classification", tags=tags,
        base_model=base if base and not Path(str(base)).is_absolute() else None,
        datasets=[_dataset_name(metrics)] if metrics and metrics.dataset else None,
        model_name=f"{meta.get('method', 'peftner')}-token-classifier" if results else None,
        eval_results=results or None)
    return data.to_yaml()


def model_card(meta: dict, metrics: RunMetrics | None = None) -> str:
    """Markdown model card from ``peftner.json`` data and (when known) the run's metrics."""
    metrics = metrics or RunMetrics()
    base = EMBEDDED_HUB_ID if meta.get("base_model_embedded") else meta.get("base_model")
    lines = ["---", front_matter(meta, metrics).strip(), "---", ""]
    lines += [f"# {meta.get('method', 'peftner')} token classifier", ""]
    lines += [f"- **Method:** {meta.get('method')}" + (" (PEFT adapter on a frozen base)" if meta.get("is_peft") else ""),
              f"- **Base model:** {base}" + (" (embedded default of peftner)" if meta.get("base_model_embedded") else "")]
    if metrics.backbone:
        from peftner.report import describe_backbone

        lines.append(f"- **Backbone weights:** {describe_backbone(metrics.backbone)} (license: {metrics.backbone.get('license')})")
    precision = meta.get("precision") or {}
    if precision.get("quantization_config"):
        lines.append(f"- **Backbone precision:** {precision['backbone']} (bitsandbytes; peftner reloads it so, "
                     "`--full-precision` loads it unquantized)")
    if metrics.dataset:
        lines.append(f"- **Dataset:** {metrics.dataset}")
    if meta.get("init_adapter"):
        lines.append(f"- **Continued from:** {meta['init_adapter']}")
    lines.append(f"- **Tags ({meta.get('scheme')}):** the label maps `id2label` / `label2id` in config.json")
    if meta.get("merged_from"):
        lines.append(f"- **Merged from adapter:** {meta['merged_from']}")
    if metrics.test_f1 is not None:
        score = metrics.score_name
        lines += ["", "## Results", ""] + markdown_table(
            dict.fromkeys(["split", score, "precision", "recall"], "l"),
            [["test", _fmt(metrics.test_f1), _fmt(metrics.test_precision), _fmt(metrics.test_recall)],
             [f"dev (best epoch {metrics.best_epoch})", _fmt(metrics.best_dev_f1), "", ""]])
        if metrics.per_type:
            lines += [""] + markdown_table(
                dict.fromkeys(["type", "precision", "recall", "F1", "support"], "l"),
                ([etype, _fmt(s.get("precision")), _fmt(s.get("recall")), _fmt(s.get("f1")), s.get("number", "")]
                 for etype, s in sorted(metrics.per_type.items())))
        lines += ["", "## Parameters", "",
                  f"- trainable: {metrics.trainable_params:,} of {metrics.total_params:,} "
                  f"({metrics.trainable_percent or 0:.3f}%)",
                  f"- weights on disk: {metrics.adapter_bytes or 0:,} bytes",
                  f"- seed {metrics.seed}, {metrics.epochs} epochs"]
    lines += ["", "## Use", "", "```python", "from peftner.reuse import Tagger", "",
              "tagger = Tagger.from_pretrained(\"path/to/this/directory\")",
              "print(tagger.predict([\"Alice lives in Paris\"]))", "```", "",
              "Command line: `peftner predict --adapter path/to/this/directory --input texts.txt`.",
              "Without peftner (transformers + peft only), see docs/reuse.md of peftner."]
    if metrics.command:
        lines += ["", "## Reproduce", "", "```bash", metrics.command, "```"]
    return "\n".join(lines) + "\n"


def write_artifacts(adapter_dir, *, method, model, base_model: str, schema, metrics: RunMetrics | None = None,
                    init_adapter: str | None = None) -> dict:
    """Write ``peftner.json`` and the model card into ``adapter_dir`` (after ``save_pretrained``).

    Called by :func:`peftner.recipe.run`; ``model`` is the trained (unwrapped) model.
    """
    from peftner.reuse.precision import PRECISION_KEY, record_precision

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    extra = {"init_adapter": str(init_adapter)} if init_adapter else {}
    extra[PRECISION_KEY] = record_precision(model, metrics.config if metrics else None)
    if metrics:
        extra["dataset"] = metrics.dataset
        extra["test_f1"] = metrics.test_f1
        extra["command"] = metrics.command
    meta = write_metadata(adapter_dir, method=method.name, is_peft=method.is_peft, base_model=base_model,
                          base=base, scheme=schema.scheme, extra=extra)
    (Path(adapter_dir) / "README.md").write_text(model_card(meta, metrics), encoding="utf-8")
    return meta
