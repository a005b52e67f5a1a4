"""Regenerate every figure quoted in README.md and docs/ from committed result files.

Sections between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers are rewritten; nothing
else is touched. Produce the inputs first:

    accelerate launch recipes/lora_ner.py --output-dir benchmarks/results/readme_run   # README sample
    python benchmarks/trainer_baseline.py                                              # docs/training.md
    python benchmarks/update_docs.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from peftner.data.builtin import datasets_doc, describe  # noqa: E402
from peftner.markdown import markdown_table  # noqa: E402
from peftner.report import RunMetrics, format_summary, format_versions  # noqa: E402
from peftner.experiments.plots import COSTS  # noqa: E402
from peftner.experiments.suite_report import PEFT_SHARE, tuned_plot_name  # noqa: E402
from peftner.experiments.tables import f1_text  # noqa: E402


def replace_section(path: Path, name: str, body: str) -> bool:
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(rf"(<!-- {name}:begin -->\n)(?:.*?\n)?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no <!-- {name}:begin/end --> markers")
    new = pattern.sub(lambda m: m.group(1) + body.strip("\n") + "\n" + m.group(2), text)
    path.write_text(new, encoding="utf-8")
    return new != text


def readme_sample() -> str | None:
    path = RESULTS / "readme_run" / "metrics.json"
    if not path.exists():
        return None
    m = RunMetrics.read(path)
    return (f"```text\n$ {m.command}\n{format_summary(m)}\n```\n"
            f"Machine: {m.machine or 'unknown'}; torch {m.versions['torch']}, "
            f"transformers {m.versions['transformers']}, peft {m.versions['peft']}.")


def trainer_baseline() -> str | None:
    path = RESULTS / "trainer_baseline" / "result.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    p, t = r["peftner_full"], r["transformers_trainer"]
    return "\n".join([
        f"Command: `{r['command'].strip()}` — machine: {r['machine']}; {r['epochs']} epochs, seed {r['seed']}.",
        "",
        *markdown_table(
            {"recipe": "l", "learning rate": "r", "batch": "r", "test F1": "r", "test P": "r", "test R": "r"},
            ([name, f"{x['learning_rate']:g}", x["batch_size"], f"{x['test_f1']:.4f}", f"{x['test_precision']:.4f}",
              f"{x['test_recall']:.4f}"]
             for name, x in (("peftner full fine-tuning (defaults)", p), ("Transformers `Trainer` tutorial recipe", t)))),
    ])


def results_table(name: str, plot: str, caption: str, link_prefix: str) -> str | None:
    """A compare results folder's table.md and one of its plots; ``link_prefix`` leads from the
    page's folder to the repository root."""
    folder = RESULTS / name
    if not (folder / "table.md").exists():
        return None
    rel = folder.relative_to(ROOT)
    return (folder / "table.md").read_text(encoding="utf-8").strip() + f"\n\n![{caption}]({link_prefix}{rel}/{plot})"


def compare_table(link_prefix: str = "../") -> str | None:
    """All methods on all training data: F1 vs trainable parameters."""
    return results_table("wnut16", "f1_vs_params.png", "F1 vs trainable parameters", link_prefix)


def data_efficiency() -> str | None:
    """The nested-subset runs at equal optimizer steps (``--train-sizes ... --steps 600``): F1 vs
    training-set size."""
    return results_table("wnut16_steps600_sizes", "f1_vs_train_size.png", "F1 vs training-set size", "../")


def throughput() -> str | None:
    path = RESULTS / "throughput" / "result.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    lines = [f"Command: `{r['command'].strip()}` — machine: {r['machine']}, torch threads {r['torch_threads']}.", "",
             f"Versions: {format_versions(r['versions'])}", ""]
    if "training" in r:
        t = r["training"]
        lines += markdown_table({"recipe": "l", "train tokens/s": "r", "test F1": "r"},
                                ([name, f"{t[name]['train_tokens_per_second']:,.0f}", f"{t[name]['test_f1']:.4f}"]
                                 for name in t if name != "ratios"))
        lines.append("")
        for key, ratio in t["ratios"].items():
            mine, theirs = key.split("_vs_")
            lines.append(f"- peftner {mine.replace('_', ' ')} / Trainer {theirs}: **{ratio['speed']:.2f}×** tokens/s, "
                         f"F1 {ratio['f1_difference']:+.4f} (target ≥ {ratio['target']}× with F1 at most 0.01 lower: "
                         f"{'met' if ratio['met'] else 'missed'})")
    s, i = r["step_time"], r["inference"]
    lines += [f"- step time on the same {s['batches']} batches: LoRA / full **{s['lora_over_full']:.2f}×**; "
              f"fused / foreach AdamW (full) **{s['fused_over_foreach']:.2f}×**; `--compile` / eager (full, fused) "
              f"**{s['compiled_over_eager']:.2f}×** after {s['compile_seconds']:.0f} s of compilation",
              f"- merged LoRA / base model inference time: **{i['merged_over_base_time']:.3f}×**; "
              f"`Tagger.predict` {i['predict_tokens_per_second']:,.0f} tokens/s on the test split"]
    return "\n".join(lines)


def method_defaults() -> str:
    """Every method's learning rate and knobs, from the method config classes (docs/methods.md)."""
    import dataclasses

    from peftner.config import run_defaults, show_default
    from peftner.methods import METHODS

    rows = []
    for method in METHODS.values():
        knobs = method.default_config()
        shown = ", ".join(f"`--{f.name.replace('_', '-')} {show_default(getattr(knobs, f.name))}`"
                          for f in dataclasses.fields(knobs)) or "none"
        rows.append([method.name, f"{run_defaults(method).learning_rate:g}", shown])
    return "\n".join(markdown_table({"method": "l", "learning rate": "r", "knobs (flag: default)": "l"}, rows))


def peft_coverage() -> str:
    """docs/methods.md: every PEFT type and what peftner does with it (peftner/methods/peft_types.py), the
    declarations tests/test_peft_coverage.py checks on a tiny BERT and a tiny Llama."""
    from peft import PeftType

    from peftner.methods import METHODS
    from peftner.methods.peft_types import COVERED, REFUSED

    rows = [[peft_type, f"`peftner train {METHODS[COVERED[peft_type]].name}`", METHODS[COVERED[peft_type]].summary]
            if peft_type in COVERED else [peft_type, "refused", REFUSED[peft_type]]
            for peft_type in sorted(t.value for t in PeftType)]
    columns = dict.fromkeys(["PEFT type", "peftner", "what it trains, or why it is refused"], "l")
    return "\n".join(markdown_table(columns, rows))


def search_spaces() -> str:
    """docs/methods.md: what ``peftner tune`` searches for each method, from the method files."""
    from peftner.methods import METHODS
    from peftner.experiments.search import default_values

    rows = []
    for method in METHODS.values():
        space = method.search_space
        if not space:
            continue
        knobs = "; ".join(f"`{name}`: {spec.describe()}" for name, spec in space.items() if name != "learning_rate")
        defaults = default_values(method, space) or {}
        default = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in defaults.items())
        rows.append([method.name, space["learning_rate"].describe(), knobs or "—", default])
    columns = dict.fromkeys(["method", "learning rate", "structural knob(s)", "recipe default (the first trial)"], "l")
    return "\n".join(markdown_table(columns, rows))


def tuned_results(link_prefix: str = "../") -> str | None:
    """The tuned table once winners have test runs, and the state of every method's sweep."""
    import csv

    folder = RESULTS / "wnut16_tuned"
    table = results_table("wnut16_tuned", "f1_vs_params.png", "F1 vs trainable parameters, tuned", link_prefix)
    csvs = sorted(folder.glob("trials_*.csv"))
    if table is None and not csvs:
        return None
    lines = [table, "", "Each method's sweep (its trials as CSV):", ""] if table else ["No tuned method has its 3-seed test runs yet; the search so far:", ""]
    studies = []
    for path in csvs:
        with open(path, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        count = {state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "RUNNING")}
        interrupted = sum(r["state"] == "FAIL" and r.get("interrupted") == "True" for r in rows)
        failed = sum(r["state"] == "FAIL" and r.get("interrupted") != "True" for r in rows)
        complete = [r for r in rows if r["state"] == "COMPLETE"]
        best = max(complete, key=lambda r: float(r["value"]), default=None)
        studies.append([f"[{path.stem.removeprefix('trials_')}]({link_prefix}{path.relative_to(ROOT)})", count["COMPLETE"],
                     count["PRUNED"], failed, interrupted, count["RUNNING"],
                     *([f"{float(best['value']):.4f}", f"`{best['flags']}`"] if best else ["—", "—"])])
    lines += markdown_table({"study": "l", "complete": "r", "pruned": "r", "failed": "r",
                             "interrupted (its settings requeued)": "r", "running": "r", "best dev F1 so far": "r",
                             "its settings": "l"}, studies)
    return "\n".join(lines)


def time_to_quality() -> str | None:
    path = RESULTS / "time_to_quality" / "result.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    t = r["trainer"]
    lines = [f"Command: `{r['command'].strip()}` — machine: {r['machine']}, torch threads {r['torch_threads']}.", "",
             f"Target: the Transformers `Trainer` tutorial recipe's dev F1 after its {t['epochs']} epochs, "
             f"**{r['target_dev_f1']:.4f}**, reached in {t['train_seconds']:.0f} s of training.", ""]
    lines += markdown_table(
        {"peftner": "l", "reached at step": "r", "training seconds": "r", "/ Trainer's time": "r", "best dev F1": "r"},
        ([name, m["step"] if m["reached"] else "not reached",
          *([f"{m['seconds']:.0f}", f"**{m['ratio_to_trainer']:.2f}×**"] if m["reached"] else ["—", "—"]),
          f"{m['best_dev_f1']:.4f}"] for name, m in ((name, r[name]) for name in ("full", "lora"))))
    return "\n".join(lines)


def serving(name: str = "result.json") -> str | None:
    """Tagger (each precision mode) vs transformers.pipeline on the same merged model, and quantized
    backbones (benchmarks/throughput.py --serving-only; ``name``: the file under results/serving/)."""
    path = RESULTS / "serving" / name
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    t, q = r["tagger_vs_pipeline"], r["quantized"]
    speeds, best = t["words_per_second"], t["pipeline_best_batch_size"]
    lines = [f"Command: `{r['command'].strip()}` — machine: {r['machine']}, torch threads {r['torch_threads']}; "
             f"{r['note']}.", "", f"Versions: {format_versions(r['versions'])}", "",
             f"Served model: {t['model']}; {t['sentences']} test sentences, {t['words']:,} words "
             f"({t['entity_words']:,} tagged as entities), split into the pipeline's words; median of "
             f"{t['rounds']} interleaved passes each.", ""]
    rows = []
    for mode, m in t["modes"].items():
        rechecked = (f"{m['rechecked_inputs']} ({100 * m['rechecked_fraction']:.1f}%)" if "rechecked_inputs" in m
                     else "—")
        label = (f"`Tagger` precision `{mode.split(',')[0]}`"
                 + (", `compile=True` (torch.compile)" if m.get("compiled") else ""))
        rows.append([label, t["tagger_batch_size"], f"{m['words_per_second']:,.0f}", f"**{m['over_pipeline_best']:.2f}×**",
                     max(m["differing_from_pipeline"].values()), rechecked])
    for key, speed in speeds.items():
        if key.startswith("pipeline_bs"):
            size = int(key.removeprefix("pipeline_bs"))
            notes = [n for n, on in (("default", size == t["pipeline_default_batch_size"]), ("best", size == best))
                     if on]
            label = "`pipeline(aggregation_strategy=\"first\")`" + (f" ({', '.join(notes)})" if notes else "")
            rows.append([label, size, f"{speed:,.0f}", f"{speed / speeds[f'pipeline_bs{best}']:.2f}×", "—", "—"])
    for key, speed in speeds.items():
        if key.startswith("pipeline_compiled_bs"):
            size = int(key.removeprefix("pipeline_compiled_bs"))
            label = ("`pipeline(aggregation_strategy=\"first\")`, model forward compiled (float32)"
                     + (" (best compiled)" if size == t["pipeline_compiled_best_batch_size"] else ""))
            rows.append([label, size, f"{speed:,.0f}", f"{speed / speeds[f'pipeline_bs{best}']:.2f}×",
                         t["pipeline_compiled_differing_from_pipeline"][str(size)], "—"])
    lines += markdown_table({"tagger": "l", "batch size": "r", "words/s": "r", "/ pipeline at its best batch size": "r",
                             "word tags differing from the pipeline's (all its batch sizes)": "r",
                             "sentences re-checked exactly": "r"}, rows)
    lines.append("")
    headline = t["headline_mode"]
    if headline is None:
        lines.append("No Tagger mode gave the pipeline's word tags: no headline ratio.")
    else:
        m = t["modes"][headline]
        per_round = ", ".join(f"{x:.2f}" for x in m["over_pipeline_best_per_round"])
        met = m["over_pipeline_best"] >= t["target"]
        lines.append(f"Fastest Tagger mode with the pipeline's word tags (`{headline}`) / pipeline at its best batch "
                     f"size: **{m['over_pipeline_best']:.2f}×** (per round: {per_round}; target ≥ {t['target']:g}× "
                     f"with identical word tags: {'met' if met else 'missed'}).")
    for mode, m in t["modes"].items():
        if "bf16_error" in m:
            lines.append("")
            e, dev = m["bf16_error"], m["dev_calibration"]
            lines.append(f"`{mode}`: check margin {m['check_margin']:.3f}, calibrated on the dev split "
                         f"({t['dev_sentences']} sentences: {dev['safety_factor']:g}× its largest bfloat16 error of a "
                         f"word's margin, {dev['largest_margin_error']:.3f}; `Tagger.calibrate_check_margin`); on the "
                         f"test split {m['close_words']} of {t['words']:,} words fell below it, and re-checking "
                         f"changed {_count(m['changed_by_recheck'], 'tag')}; bfloat16 alone would have tagged "
                         f"{_count(e['differing_tags'], 'word')} differently from `exact`, and the largest bfloat16 error of a "
                         f"word's margin there was {e['largest_margin_error']:.3f}.")
        if m.get("compiled"):
            lines.append("")
            lines.append(f"`{mode}`: compiled once when the Tagger loads, in {m['compile_seconds']:.1f} s (not in the "
                         f"words/s; a server compiles once). The pipeline with its model forward compiled the same way "
                         f"(float32; {t['pipeline_compile_seconds']:.1f} s to compile) is fastest at batch size "
                         f"{t['pipeline_compiled_best_batch_size']}; this mode is "
                         f"**{m['over_compiled_pipeline_best']:.2f}×** that.")
    lines += ["", f"Quantized backbones (same merged model loaded through the int8_lora / qlora settings, "
              f"`Tagger.predict` batch {q['batch_size']}, median of {q['rounds']} interleaved passes):", ""]
    lines += markdown_table(
        {"backbone": "l", "weights in memory": "r", "words/s": "r", "word tags equal to fp32": "r"},
        ([name, f"{b['weights_bytes'] / 2**20:.1f} MiB", f"{b['words_per_second']:,.0f}",
          f"{100 * b['agreement_with_fp32']:.2f}%"] for name, b in q["backbones"].items()))
    return "\n".join(lines)


def bad_input_table() -> str:
    """docs/reliability.md's table of bad inputs, generated from the cases of tests/test_bad_inputs.py."""
    sys.path.insert(0, str(ROOT / "tests"))
    import test_bad_inputs

    return test_bad_inputs.doc_table()


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def suite_tables(link_prefix: str = "../") -> str | None:
    """docs/benchmarks.md: the suite's tables (benchmarks/results/suite/tables.md) and its plots."""
    folder = RESULTS / "suite"
    if not (folder / "tables.md").exists():
        return None
    plots = sorted(folder.glob("f1_vs_params_*.png")) + sorted(folder.glob("pareto_*.png"))
    images = "\n\n".join(f"![{p.stem}]({link_prefix}benchmarks/results/suite/{p.name})" for p in plots)
    return (folder / "tables.md").read_text(encoding="utf-8").strip() + ("\n\n" + images if images else "")


def which_method() -> str | None:
    """README: per backbone, the parameter-efficient method (≤ PEFT_SHARE % trainable) whose defaults have the best
    mean rank across the suite's corpora, its mean gap to full fine-tuning, and how much of the plan ran."""
    path = RESULTS / "suite" / "summary.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = [f"Generated from `benchmarks/results/suite/summary.json` ({data['finished_runs']} of "
             f"{data['planned_runs']} planned runs finished; command `{data['command']}`, machine: "
             f"{data['machine']}). Lower rank is better; the gap is mean test F1 minus full fine-tuning's, in F1 "
             "points, over the corpora where both ran.", ""]
    rows, table = data["across_corpora"], []
    for backbone in dict.fromkeys(r["backbone"] for r in rows):
        efficient = sorted((r for r in rows if r["backbone"] == backbone and r.get("setting", "defaults") == "defaults"
                            and r["trainable_percent"] <= PEFT_SHARE),
                           key=lambda r: r["mean_rank"])
        if not efficient:
            continue
        best, second = efficient[0], (efficient[1]["method"] if len(efficient) > 1 else "—")
        gap = "no full run" if best["mean_gap_to_full"] is None else f"{best['mean_gap_to_full']:+.2f}"
        table.append([backbone, best["method"], best["corpora"], f"{best['mean_rank']:.2f}", gap, second])
    lines += markdown_table({"backbone": "l", f"best method at ≤ {PEFT_SHARE:g} % trainable": "l", "corpora": "r",
                             "mean rank": "r", "mean gap to full": "r", "runner-up": "l"}, table)
    return "\n".join(lines)


def all_methods(top: int = 10, link_prefix: str = "") -> str | None:
    """README: the top of the all-methods comparison (the suite's tuned cells: every method searched
    on dev first, then its winner over seeds on test), by mean test F1, with its Pareto plots."""
    path = RESULTS / "suite" / "summary.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    tuned = [r for r in data["rows"] if r["setting"] != "defaults"]
    if not tuned:
        return None
    lines = []
    for backbone, dataset, setting in dict.fromkeys((r["backbone"], r["dataset"], r["setting"]) for r in tuned):
        rows = sorted((r for r in tuned if (r["backbone"], r["dataset"], r["setting"]) == (backbone, dataset, setting)),
                      key=lambda r: -r["test_f1_mean"])
        lines += [f"{backbone} on {dataset}, each method {setting} on dev, then its winner on test: the top {min(top, len(rows))} "
                  f"of {len(rows)} methods (generated from `benchmarks/results/suite/summary.json`; command "
                  f"`{data['command']}`; machine: {data['machine']}).", ""]
        lines += markdown_table(
            {"#": "r", "method": "l", "test F1 (mean ± std)": "r", "seeds": "r", "trainable params": "r",
             "% of total": "r", "peak memory": "r", "vs full (F1 points)": "r"},
            ([rank, r["method"], f1_text(r["test_f1_mean"], r["test_f1_std"], r["seeds"], r.get("seeds_learned_nothing", 0)),
              r["seeds"],
              f"{r['trainable_params']:,}", f"{r['trainable_percent']:.3f}%", f"{r['peak_memory_mb']:,.0f} MB",
              _gap_to_full(r)] for rank, r in enumerate(rows[:top], start=1)))
        plots = [RESULTS / "suite" / tuned_plot_name(axis.file_part, backbone, dataset) for axis in COSTS.values()]
        lines += [""] + [f"![{p.stem}]({link_prefix}{p.relative_to(ROOT)})" for p in plots if p.exists()] + [""]
    return "\n".join(lines).strip()


def _gap_to_full(row: dict) -> str:
    if row["method"] == "full":
        return "reference"
    return "—" if row["vs_full_points"] in (None, "") else f"{float(row['vs_full_points']):+.2f}"


def reload_checks() -> str | None:
    """docs/benchmarks.md: benchmarks/reload_check.py's rows (predict on a run's test words vs its scores)."""
    import csv

    path = RESULTS / "suite" / "reload_checks.csv"
    if not path.exists():
        return None
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [f"From `{path.relative_to(ROOT)}`; machine: {'; '.join(sorted({r['machine'] for r in rows}))}.", ""]
    lines += markdown_table(
        {"run": "l", "backbone": "l", "method": "l", "test words": "r", "test_accuracy (metrics.json)": "r",
         "peftner predict": "r", "tags differing": "r", "exact": "l"},
        ([f"`{r['run']}`", r["backbone"], r["method"], f"{int(r['test_words']):,}", f"{float(r['test_accuracy']):.6f}",
          f"{float(r['predict_accuracy']):.6f}", r["tags_differing"], r["exact"]] for r in rows))
    return "\n".join(lines)


def sections() -> list[tuple[Path, str, str | None]]:
    return [
        (ROOT / "docs" / "methods.md", "method-defaults", method_defaults()),
        (ROOT / "README.md", "readme-sample", readme_sample()),
        (ROOT / "README.md", "compare-table", compare_table(link_prefix="")),
        (ROOT / "README.md", "tuned", tuned_results(link_prefix="")),
        (ROOT / "docs" / "data.md", "wnut16-split", describe("wnut16")),
        (ROOT / "docs" / "data.md", "builtin-datasets", datasets_doc()),
        (ROOT / "docs" / "training.md", "trainer-baseline", trainer_baseline()),
        (ROOT / "docs" / "benchmarks.md", "compare-table", compare_table()),
        (ROOT / "docs" / "benchmarks.md", "suite", suite_tables()),
        (ROOT / "README.md", "which-method", which_method()),
        (ROOT / "README.md", "all-methods", all_methods()),
        (ROOT / "docs" / "benchmarks.md", "reload-checks", reload_checks()),
        (ROOT / "docs" / "benchmarks.md", "data-efficiency", data_efficiency()),
        (ROOT / "docs" / "benchmarks.md", "throughput", throughput()),
        (ROOT / "docs" / "benchmarks.md", "tuned", tuned_results()),
        (ROOT / "docs" / "benchmarks.md", "time-to-quality", time_to_quality()),
        (ROOT / "docs" / "methods.md", "search-spaces", search_spaces()),
        (ROOT / "docs" / "methods.md", "peft-coverage", peft_coverage()),
        (ROOT / "docs" / "benchmarks.md", "serving", serving()),
        (ROOT / "docs" / "benchmarks.md", "serving-trained", serving("trained.json")),
        (ROOT / "docs" / "reliability.md", "bad-input-table", bad_input_table()),
    ]


def current_section(path: Path, name: str) -> str:
    match = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", path.read_text(encoding="utf-8"), re.S)
    return match.group(1).strip("\n") if match else ""


def main():
    for path, name, body in sections():
        if body is None:
            print(f"skipped {path.relative_to(ROOT)} [{name}]: its result file is missing")
            continue
        changed = replace_section(path, name, body)
        print(f"{'updated' if changed else 'unchanged'} {path.relative_to(ROOT)} [{name}]")


if __name__ == "__main__":
    main()
