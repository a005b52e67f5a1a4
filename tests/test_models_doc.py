"""docs/models.md is generated from the support matrix and the architecture defaults, and the GPU
benchmark script runs (its CPU-safe dry run on tiny configs)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import gpu_models  # noqa: E402
import models_doc  # noqa: E402


def test_models_doc_is_current():
    assert models_doc.DOC.read_text(encoding="utf-8") == models_doc.render(), \
        "docs/models.md is stale: run python benchmarks/models_doc.py"


def test_every_matrix_cell_is_in_the_doc():
    from peftner.testing import support

    text = models_doc.DOC.read_text(encoding="utf-8")
    for arch in support.ARCHITECTURES:
        row = next(line for line in text.splitlines() if line.startswith(f"| {arch} |"))
        assert row.count("✓") + row.count("refused¹") == len(support.METHODS), row


def test_gpu_benchmark_dry_run(tmp_path):
    out = tmp_path / "result.json"
    gpu_models.main(["--dry-run", "--output", str(out)])
    report = json.loads(out.read_text())
    runs = {(r["model"], r["method"]): r for r in report["runs"]}
    assert set(runs) == {(m, k) for m in gpu_models.MODELS for k in gpu_models.METHODS}
    for (model, method), run in runs.items():
        if method == "qlora":  # 4-bit layers need the GPU in this script
            assert "skipped" in run
            continue
        assert run["tokens_per_second"] > 0 and run["model_flops_per_token"] > 0
        assert 0 < run["trainable_params"] <= run["total_params"]
    assert report["dry_run"] is True and report["device"] == "cpu"
