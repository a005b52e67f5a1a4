"""Speed of peftner against the plain Transformers recipe, measured side by side in one process.

Machines are noisy, so every figure is a ratio of runs made in the same process, interleaved:

1. training: peftner full fine-tuning (defaults, and with the opt-in fused AdamW kernel) and
   LoRA vs the Transformers ``Trainer`` tutorial recipe, default and with
   ``train_sampling_strategy="group_by_length"`` — same model, data, epochs, batch size and seed;
   non-pad training tokens per second and the final test F1 of each;
2. step time on the very same batches (forward, backward, clipping, optimizer step): LoRA vs full
   fine-tuning, fused vs foreach AdamW, ``--compile`` vs eager (and its compilation time);
3. inference: tokens/s of ``Tagger.predict`` on the test split, and merged LoRA vs the base model.

    python benchmarks/throughput.py                 # default epochs, 1 round
    python benchmarks/throughput.py --epochs 1 --rounds 2
    python benchmarks/throughput.py --recipes peftner_full,trainer_group_by_length

Writes benchmarks/results/throughput/result.json; docs/benchmarks.md quotes it through
benchmarks/update_docs.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hf_trainer_recipe import run_trainer  # noqa: E402

from peftner.config import default_model, parse_args  # noqa: E402
from peftner.data import encode_sentences, load_corpus  # noqa: E402
from peftner.data.collator import LengthGroupedBatchSampler, PaddingCollator, length_sorted_batches  # noqa: E402
from peftner.methods import get_method  # noqa: E402
from peftner.models.loading import load_token_classifier, load_tokenizer  # noqa: E402
from peftner.recipe import run  # noqa: E402
from peftner.training.loop import build_optimizer, compiled  # noqa: E402
from peftner.integrity import write_json_atomic
from peftner.report import library_versions, machine_description  # noqa: E402

RESULT = Path(__file__).parent / "results" / "throughput" / "result.json"


RECIPES = ("peftner_full", "peftner_full_fused", "peftner_lora", "trainer_default", "trainer_group_by_length")
TARGETS = {"full_vs_trainer_default": 2.0, "full_vs_trainer_group_by_length": 1.3}


def train_speed(epochs: int | None, rounds: int, seed: int, tmp: str, names=RECIPES) -> dict:
    """Whole training runs of the recipes, alternating order each round.

    ``peftner_full_fused`` is full fine-tuning with the opt-in fused AdamW kernel on CPU (the kernel
    the ``Trainer`` uses by default); the others use every default. ``--compile`` is measured in
    the step-time part, where its compilation time does not swamp a short run.
    """
    def peftner_run(name, extra=()):
        def go(label):
            method = get_method(name)
            flags = ["--seed", str(seed), "--output-dir", f"{tmp}/{label}", "--keep-checkpoints", "0", *extra]
            cfg, method_cfg = parse_args(method, flags + (["--epochs", str(epochs)] if epochs else []))
            m = run(method, cfg, method_cfg, command="benchmarks/throughput.py")
            return {"train_tokens_per_second": m["train_tokens_per_second"], "test_f1": m["test_f1"],
                    "train_seconds": m["train_seconds"], "epochs": cfg.epochs, "batch_size": cfg.batch_size,
                    "flags": list(extra)}
        return go

    def trainer_run(grouped):
        def go(label):
            cfg, _ = parse_args(get_method("full"), ["--epochs", str(epochs)] if epochs else [])
            corpus = load_corpus(cfg.dataset, seed=seed)
            return run_trainer(corpus, default_model(), f"{tmp}/{label}", epochs=cfg.epochs, seed=seed,
                               batch_size=cfg.batch_size, group_by_length=grouped)
        return go

    available = {"peftner_full": peftner_run("full"), "peftner_full_fused": peftner_run("full", ["--optimizer-kernel", "fused"]),
                 "peftner_lora": peftner_run("lora"), "trainer_default": trainer_run(False),
                 "trainer_group_by_length": trainer_run(True)}
    recipes = {name: available[name] for name in names}
    results = {name: [] for name in recipes}
    for r in range(rounds):
        order = list(recipes) if r % 2 == 0 else list(reversed(recipes))
        for name in order:
            print(f"[train round {r + 1}/{rounds}] {name}", flush=True)
            results[name].append(recipes[name](f"{name}-{r}"))
    summary = {name: {"train_tokens_per_second": statistics.fmean(x["train_tokens_per_second"] for x in runs),
                      "test_f1": statistics.fmean(x["test_f1"] for x in runs), "runs": runs}
               for name, runs in results.items()}
    summary["ratios"] = ratios(summary)
    return summary


def ratios(summary: dict) -> dict:
    """Tokens/s ratio and F1 difference of each peftner full variant against each Trainer recipe."""
    out = {}
    for mine in ("peftner_full", "peftner_full_fused"):
        for theirs in ("trainer_default", "trainer_group_by_length"):
            if mine in summary and theirs in summary:
                key = f"{mine.removeprefix('peftner_')}_vs_{theirs.removeprefix('trainer_')}"
                out[key] = {"speed": summary[mine]["train_tokens_per_second"] / summary[theirs]["train_tokens_per_second"],
                            "f1_difference": summary[mine]["test_f1"] - summary[theirs]["test_f1"],
                            "target": TARGETS[f"full_vs_{theirs}"]}
                out[key]["met"] = out[key]["speed"] >= out[key]["target"] and out[key]["f1_difference"] >= -0.01
    return out


def _batches(corpus, tokenizer, schema, n_batches: int, batch_size: int, seed: int):
    features = encode_sentences([s.tokens for s in corpus.train], [s.tags for s in corpus.train], tokenizer,
                                schema.label2id, 512)
    sampler = LengthGroupedBatchSampler([len(f["input_ids"]) for f in features], batch_size, seed=seed)
    collate = PaddingCollator(tokenizer.pad_token_id)
    batches = [collate([features[i] for i in idx]) for idx in list(sampler)[:n_batches]]
    return [{k: b[k] for k in ("input_ids", "attention_mask", "labels")} for b in batches]


STEP_VARIANTS = {  # name: (method, optimizer kernel, compiled)
    "full": ("full", "foreach", False),
    "full_fused": ("full", "fused", False),
    "full_fused_compiled": ("full", "fused", True),
    "lora": ("lora", "foreach", False),
}


def step_time(n_batches: int, rounds: int, seed: int) -> dict:
    """Seconds per optimizer step on identical batches (interleaved), through peftner's optimizer and
    compile helpers: LoRA vs full fine-tuning, and what the fused kernel and ``--compile`` buy."""
    corpus = load_corpus(seed=seed)
    tokenizer = load_tokenizer(default_model())
    batches = _batches(corpus, tokenizer, corpus.schema, n_batches, 16, seed)
    steps = {}
    for name, (method_name, kernel, compile_step) in STEP_VARIANTS.items():
        method = get_method(method_name)
        _, method_cfg = parse_args(method, [])
        torch.manual_seed(seed)
        model = method.apply(load_token_classifier(default_model(), corpus.schema.id2label), method_cfg).train()
        steps[name] = (compiled(model) if compile_step else model, model,
                       build_optimizer(model, 1e-5, 0.01, kernel))

    def one_pass(name):
        forward, model, optimizer = steps[name]
        started = time.perf_counter()
        for batch in batches:  # the loop's step: forward, backward, clipping, AdamW
            forward(**batch).loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - started) / len(batches)

    first_pass = {name: one_pass(name) for name in steps}  # warm-up: allocator, thread pools, compilation
    times = {name: [] for name in steps}
    for r in range(rounds):
        for name in (list(steps) if r % 2 == 0 else list(reversed(steps))):
            times[name].append(one_pass(name))
    per_step = {name: statistics.median(t) for name, t in times.items()}
    return {"seconds_per_step": per_step, "times": times, "batches": len(batches), "rounds": rounds,
            "lora_over_full": per_step["lora"] / per_step["full"],
            "fused_over_foreach": per_step["full_fused"] / per_step["full"],
            "compiled_over_eager": per_step["full_fused_compiled"] / per_step["full_fused"],
            "compile_seconds": len(batches) * (first_pass["full_fused_compiled"] - per_step["full_fused_compiled"])}


def inference_speed(rounds: int, seed: int, tmp: str) -> dict:
    """Tagger.predict tokens/s on the test split; merged LoRA vs base model forward time."""
    from peftner.reuse import Tagger

    corpus = load_corpus(seed=seed)
    tokenizer = load_tokenizer(default_model())
    features = encode_sentences([s.tokens for s in corpus.test], [s.tags for s in corpus.test], tokenizer,
                                corpus.schema.label2id, 512)
    collate = PaddingCollator(tokenizer.pad_token_id)
    batches = [collate([features[i] for i in idx])
               for idx in length_sorted_batches([len(f["input_ids"]) for f in features], 64)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    lora = get_method("lora")
    cfg, lora_cfg = parse_args(lora, ["--epochs", "1", "--max-train-samples", "64", "--output-dir", f"{tmp}/lora-inf"])
    run(lora, cfg, lora_cfg, command="benchmarks/throughput.py (inference adapter)")
    adapter = f"{tmp}/lora-inf/adapter"
    tagger = Tagger.from_pretrained(adapter)
    torch.manual_seed(seed)
    base = load_token_classifier(default_model(), corpus.schema.id2label).eval()
    merged = Tagger.from_pretrained(adapter).model.merge_and_unload().eval()

    @torch.inference_mode()
    def forward_all(model):
        started = time.perf_counter()
        for b in batches:
            model(input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        return time.perf_counter() - started

    def predict_all():
        started = time.perf_counter()
        tagger.predict([s.tokens for s in corpus.test])
        return time.perf_counter() - started

    forward_all(base), forward_all(merged), predict_all()  # warm-up
    times = {"base": [], "merged": [], "predict": []}
    for r in range(rounds):
        times["base"].append(forward_all(base))
        times["merged"].append(forward_all(merged))
        times["predict"].append(predict_all())
    base_t, merged_t, predict_t = (statistics.median(times[k]) for k in ("base", "merged", "predict"))
    return {"test_tokens": tokens, "base_tokens_per_second": tokens / base_t,
            "merged_lora_tokens_per_second": tokens / merged_t, "merged_over_base_time": merged_t / base_t,
            "predict_tokens_per_second": tokens / predict_t, "rounds": rounds}


# ---- time to quality -----------------------------------------------------------------------------

TIME_TO_QUALITY = Path(__file__).parent / "results" / "time_to_quality" / "result.json"


class DevCurve:
    """Loop callback: (step, training seconds so far, dev F1) at every dev evaluation."""

    def __init__(self):
        self.points = []

    def on_evaluate(self, entry: dict):
        self.points.append({k: entry[k] for k in ("step", "train_seconds", "dev_f1")})


def first_reaching(history: list[dict], target: float) -> dict | None:
    """The first dev evaluation at or above ``target`` (its training seconds and step), or None."""
    return next((h for h in history if h["dev_f1"] >= target), None)


def time_to_quality(seed: int, tmp: str, epochs: int | None = None, eval_steps: int = 20,
                    methods=("full", "lora")) -> dict:
    """Training seconds peftner full fine-tuning and LoRA need to reach the dev F1 that the Transformers
    ``Trainer`` tutorial recipe reaches after all its epochs, as a ratio to the Trainer's training time.

    The Trainer trains first (its dev F1 after the last epoch is the target); peftner then trains with
    its defaults and a dev evaluation every ``eval_steps`` optimizer steps (evaluation time is not
    counted: the loop's ``train_seconds`` at each evaluation). Both in this process, one after the other.
    """
    cfg, _ = parse_args(get_method("full"), ["--epochs", str(epochs)] if epochs else [])
    corpus = load_corpus(cfg.dataset, seed=seed)
    trainer = run_trainer(corpus, default_model(), f"{tmp}/trainer-ttq", epochs=cfg.epochs, seed=seed,
                          batch_size=cfg.batch_size, score_dev=True)
    target = trainer["dev_f1"]
    result = {"target_dev_f1": target, "trainer": trainer, "eval_steps": eval_steps, "seed": seed}
    for name in methods:
        method = get_method(name)
        flags = ["--seed", str(seed), "--output-dir", f"{tmp}/ttq-{name}", "--keep-checkpoints", "0",
                 "--eval-steps", str(eval_steps), *(["--epochs", str(epochs)] if epochs else [])]
        mcfg, method_cfg = parse_args(method, flags)
        curve = DevCurve()
        metrics = run(method, mcfg, method_cfg, command="benchmarks/throughput.py --time-to-quality",
                      callbacks=[curve])
        hit = first_reaching(curve.points, target)
        result[name] = {"reached": hit is not None, "seconds": hit["train_seconds"] if hit else None,
                        "step": hit["step"] if hit else None, "best_dev_f1": metrics["best_dev_f1"],
                        "train_seconds_total": metrics["train_seconds"], "dev_curve": curve.points,
                        "ratio_to_trainer": hit["train_seconds"] / trainer["train_seconds"] if hit else None}
    return result



# --------------------------------------------------------------------------- serving: Tagger vs pipeline
SERVING_RESULT = Path(__file__).parent / "results" / "serving" / "result.json"
PIPELINE_BATCH_SIZES = (1, 8, 16, 32, 64)  # 1 is the pipeline's default
SERVED_MODEL = ("all-MiniLM-L6-v2 with a seeded random 21-tag head, saved as a plain model directory (what "
                "`peftner export --merge` writes): speed does not depend on the weights, and a random head spreads "
                "predictions over every tag with many close calls, the hardest case for identical tags")


def serving_model(directory: Path, seed: int) -> Path:
    """A plain token-classification model directory both tools load (written once, then reused)."""
    if not (directory / "model.safetensors").is_file():
        corpus = load_corpus(seed=seed)
        torch.manual_seed(seed)
        model = load_token_classifier(default_model(), corpus.schema.id2label)
        model.save_pretrained(directory, safe_serialization=True)
        load_tokenizer(default_model()).save_pretrained(directory)
    return directory


def _serving_inputs(tokenizer, seed: int, split: str = "test"):
    """Test-split sentences as the pipeline's words (pre-tokenizer pieces): both tools tag the same units."""
    from peftner.testing.pipeline_tags import join_words, pipeline_words

    corpus = load_corpus(seed=seed)
    words = [pipeline_words(tokenizer, s.tokens) for s in getattr(corpus, split)]
    joined = [join_words(w) for w in words]
    return words, [t for t, _ in joined], [s for _, s in joined]


# Tagger modes: name -> Tagger.from_pretrained keyword arguments
TAGGER_MODES = {"exact": {"precision": "exact"}, "bf16-checked": {"precision": "bf16-checked"},
                "bf16-checked, compiled": {"precision": "bf16-checked", "compile": True}}
PIPELINE_COMPILED_BATCH_SIZES = (8, 16, 32, 64)  # batch 1 would need a compilation of its own


def compile_pipeline(ner) -> float:
    """The pipeline's model forward through the same ``torch.compile`` settings as ``Tagger(compile=True)``
    (inductor, frozen weights, dynamic shapes), in float32 (the pipeline has no checked bfloat16 mode);
    returns the seconds the first call (the compilation) took."""
    from peftner.reuse.precision import frozen_compile

    ner.model.forward = frozen_compile(ner.model.forward)
    started = time.perf_counter()
    ner(["Alice lives in Paris .", "Bob works at Google in London ."], batch_size=2)
    return time.perf_counter() - started


def tagger_vs_pipeline(model_dir: Path, rounds: int, seed: int, batch_sizes=PIPELINE_BATCH_SIZES) -> dict:
    """Words/s of ``Tagger.predict`` in each precision mode and of ``pipeline(..., aggregation_strategy="first")``
    at several batch sizes on the same merged model and test sentences, interleaved (order reversed every
    round); every mode's word tags are compared with every pipeline batch size's. The Tagger runs at its default
    batch size (the run's evaluation batch size, else 32), as a user would. The headline is the fastest mode
    whose tags equal the pipeline's at every batch size.

    The bf16-checked modes' check margins are calibrated on the dev split (``Tagger.calibrate_check_margin``:
    1.5x the largest bfloat16 margin error there), never on the test split they are measured on. The compiled
    mode and a pipeline whose model forward goes through the same ``torch.compile`` settings (float32) are
    compiled before any pass; their compilation times are reported apart."""
    from transformers import pipeline

    from peftner.reuse import Tagger
    from peftner.testing.pipeline_tags import as_iob2, tags_from_groups

    taggers = {mode: Tagger.from_pretrained(model_dir, device="cpu", **kwargs) for mode, kwargs in TAGGER_MODES.items()}
    ner = pipeline("token-classification", model=str(model_dir), aggregation_strategy="first", device="cpu")
    ner_compiled = pipeline("token-classification", model=str(model_dir), aggregation_strategy="first", device="cpu")
    pipeline_compile_seconds = compile_pipeline(ner_compiled)
    words, texts, spans = _serving_inputs(taggers["exact"].tokenizer, seed)
    tagger_batch_size = taggers["exact"].default_batch_size()
    dev_words, _, _ = _serving_inputs(taggers["exact"].tokenizer, seed, "validation")
    calibration = {mode: tagger.calibrate_check_margin(dev_words, batch_size=tagger_batch_size)
                   for mode, tagger in taggers.items() if tagger.precision != "exact"}
    n_words = sum(len(w) for w in words)
    tags, pipeline_tags, compiled_tags = {}, {}, {}

    def tagger_pass(mode):
        started = time.perf_counter()
        predictions = taggers[mode].predict(words, batch_size=tagger_batch_size)
        seconds = time.perf_counter() - started
        tags[mode] = [as_iob2(p.tags) for p in predictions]
        return seconds

    def pipeline_pass(pipe, batch_size, into):
        """One timed pass of a pipeline; its word tags go to ``into[batch_size]``."""
        started = time.perf_counter()
        groups = pipe(texts, batch_size=batch_size)
        seconds = time.perf_counter() - started
        into[batch_size] = [tags_from_groups(g, s) for g, s in zip(groups, spans)]
        return seconds

    passes = {**{f"tagger_{m}": (lambda m=m: tagger_pass(m)) for m in TAGGER_MODES},
              **{f"pipeline_bs{b}": (lambda b=b: pipeline_pass(ner, b, pipeline_tags)) for b in batch_sizes},
              **{f"pipeline_compiled_bs{b}": (lambda b=b: pipeline_pass(ner_compiled, b, compiled_tags))
                 for b in PIPELINE_COMPILED_BATCH_SIZES}}
    for go in passes.values():  # warm-up (and the tags every pass gives)
        go()
    times = {name: [] for name in passes}
    for r in range(rounds):
        for name in (list(passes) if r % 2 == 0 else list(reversed(passes))):
            times[name].append(passes[name]())
    words_per_second = {name: n_words / statistics.median(t) for name, t in times.items()}
    pipeline_speeds = {b: words_per_second[f"pipeline_bs{b}"] for b in batch_sizes}
    best = max(pipeline_speeds, key=pipeline_speeds.get)
    compiled_speeds = {b: words_per_second[f"pipeline_compiled_bs{b}"] for b in PIPELINE_COMPILED_BATCH_SIZES}
    best_compiled = max(compiled_speeds, key=compiled_speeds.get)

    def differing(a, b):
        return sum(x != y for u, v in zip(a, b) for x, y in zip(u, v))

    modes = {}
    for mode, tagger in taggers.items():
        speed = words_per_second[f"tagger_{mode}"]
        modes[mode] = {
            "words_per_second": speed, "over_pipeline_best": speed / pipeline_speeds[best],
            "over_pipeline_best_per_round": [times[f"pipeline_bs{best}"][r] / times[f"tagger_{mode}"][r]
                                             for r in range(rounds)],
            "over_pipeline_default": speed / pipeline_speeds[1],
            "over_compiled_pipeline_best": speed / compiled_speeds[best_compiled],
            "compiled": tagger.compiled, "compile_seconds": tagger.compile_seconds,
            "differing_from_pipeline": {b: differing(tags[mode], pipeline_tags[b]) for b in batch_sizes},
            "differing_from_exact": differing(tags[mode], tags["exact"])}
        if tagger.last_check is not None:
            check = tagger.last_check
            modes[mode].update(check_margin=check.check_margin, rechecked_inputs=check.rechecked_inputs,
                               rechecked_fraction=check.rechecked_fraction, close_words=check.close_words,
                               changed_by_recheck=check.changed_words, dev_calibration=calibration[mode],
                               bf16_error=tagger.bf16_error(words, batch_size=tagger_batch_size))
    identical = [m for m in TAGGER_MODES if not any(modes[m]["differing_from_pipeline"].values())]
    headline = max(identical, key=lambda m: modes[m]["words_per_second"]) if identical else None
    return {"model": served_model_description(model_dir), "sentences": len(words), "words": n_words,
            "entity_words": sum(t != "O" for x in tags["exact"] for t in x),
            "tagger_batch_size": tagger_batch_size, "rounds": rounds, "seconds": times,
            "dev_sentences": len(dev_words), "pipeline_compile_seconds": pipeline_compile_seconds,
            "pipeline_compiled_best_batch_size": best_compiled,
            "pipeline_compiled_differing_from_pipeline": {b: differing(compiled_tags[b], pipeline_tags[b])
                                                          for b in PIPELINE_COMPILED_BATCH_SIZES},
            "words_per_second": words_per_second, "pipeline_default_batch_size": 1,
            "pipeline_best_batch_size": best, "modes": modes, "headline_mode": headline,
            "tagger_over_pipeline_best": modes[headline]["over_pipeline_best"] if headline else None,
            "identical_tags": headline is not None, "target": 3.0}


def served_model_description(model_dir: Path) -> str:
    """The seeded random-head model, or what the exported directory's peftner.json says it was trained by."""
    import json

    if model_dir.name == "served-model":
        return SERVED_MODEL
    record = model_dir / "peftner.json"
    meta = json.loads(record.read_text()) if record.is_file() else {}
    if not meta.get("command"):
        return str(model_dir)
    return (f"a {meta.get('method')} run (`{meta['command']}`, test F1 {meta.get('test_f1', float('nan')):.4f})"
            + (", merged by `peftner export --merge`" if meta.get("merged_from") else ""))


def quantized_backbones(model_dir: Path, rounds: int, seed: int, batch_size: int = 32) -> dict:
    """Weights in memory, words/s and agreement with fp32 of the same merged model loaded in fp32, 8-bit
    (LLM.int8) and 4-bit (NF4) through the int8_lora / qlora methods' loading settings."""
    from peftner.models.loading import load_token_classifier
    from peftner.reuse import Tagger, read_adapter_dir

    fp32 = Tagger.from_pretrained(model_dir, device="cpu")
    words, _, _ = _serving_inputs(fp32.tokenizer, seed)
    n_words = sum(len(w) for w in words)
    info = read_adapter_dir(model_dir)
    taggers = {"fp32": fp32}
    for name in ("int8_lora", "qlora"):
        method = get_method(name)
        _, method_cfg = parse_args(method, [])
        model = load_token_classifier(str(model_dir), info.id2label, **method.load_kwargs(method_cfg)).eval()
        taggers["8-bit" if name == "int8_lora" else "4-bit"] = Tagger(model, fp32.tokenizer, info, None, None,
                                                                     fp32.device, fp32.max_length)
    reference = [p.tags for p in fp32.predict(words, batch_size=batch_size)]
    result = {}
    for name, tagger in taggers.items():
        tags = [p.tags for p in tagger.predict(words, batch_size=batch_size)]  # warm-up + agreement
        result[name] = {"weights_bytes": int(tagger.model.get_memory_footprint()),
                        "agreement_with_fp32": sum(a == b for x, y in zip(tags, reference) for a, b in zip(x, y)) / n_words}
    times = {name: [] for name in taggers}
    for r in range(rounds):
        for name in (list(taggers) if r % 2 == 0 else list(reversed(taggers))):
            started = time.perf_counter()
            taggers[name].predict(words, batch_size=batch_size)
            times[name].append(time.perf_counter() - started)
    for name in taggers:
        result[name]["words_per_second"] = n_words / statistics.median(times[name])
        result[name]["seconds"] = times[name]
    return {"words": n_words, "rounds": rounds, "batch_size": batch_size, "backbones": result}


def serving(rounds: int, seed: int, model_dir: Path | None, output: Path, command: str) -> dict:
    """Tagger vs pipeline and the quantized backbones on ``model_dir`` (default: the seeded model above)."""
    if model_dir is None:
        model_dir = serving_model(Path(tempfile.gettempdir()) / f"peftner-throughput-{seed}" / "served-model", seed)
    quantized = quantized_backbones(model_dir, rounds, seed)
    result = {"command": command, "machine": machine_description(), "versions": library_versions(),
              "torch_threads": torch.get_num_threads(),
              "note": "machines are noisy: figures are medians of interleaved passes; compare ratios",
              "tagger_vs_pipeline": tagger_vs_pipeline(model_dir, rounds, seed), "quantized": quantized}
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, result)
    print_serving(result)
    return result


def print_serving(result: dict):
    t = result["tagger_vs_pipeline"]
    for name, speed in t["words_per_second"].items():
        print(f"{name:<20} {speed:>9,.0f} words/s")
    for mode, m in t["modes"].items():
        checked = (f"; re-checked {m['rechecked_inputs']} of {t['sentences']} sentences, largest bf16 margin error "
                   f"{m['bf16_error']['largest_margin_error']:.3f} (check margin {m['check_margin']:.3f} from dev "
                   f"error {m['dev_calibration']['largest_margin_error']:.3f})"
                   if "check_margin" in m else "")
        print(f"Tagger {mode} / pipeline at its best batch size ({t['pipeline_best_batch_size']}): "
              f"{m['over_pipeline_best']:.2f}x (target {t['target']}x); word tags differing from the pipeline "
              f"{m['differing_from_pipeline']}{checked}")
        if m.get("compiled"):
            print(f"  compiled once in {m['compile_seconds']:.1f} s; / compiled pipeline at its best batch size "
                  f"({t['pipeline_compiled_best_batch_size']}): {m['over_compiled_pipeline_best']:.2f}x")
    for name, q in result["quantized"]["backbones"].items():
        print(f"{name:<6} {q['weights_bytes'] / 2**20:8.1f} MiB  {q['words_per_second']:>8,.0f} words/s  "
              f"agreement with fp32 {q['agreement_with_fp32']:.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: peftner's default)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved repetitions of the training runs")
    parser.add_argument("--step-batches", type=int, default=20)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--recipes", default=",".join(RECIPES), help="training recipes to time (comma-separated)")
    parser.add_argument("--skip-training", action="store_true", help="only step time and inference")
    parser.add_argument("--output", default=None, help="default: benchmarks/results/throughput/result.json "
                                                       "(time_to_quality/result.json with --time-to-quality)")
    parser.add_argument("--time-to-quality", action="store_true",
                        help="only the time peftner full and LoRA need to reach the Trainer recipe's final dev F1")
    parser.add_argument("--serving-only", action="store_true",
                        help="only Tagger vs transformers.pipeline and the quantized backbones (serving result file)")
    parser.add_argument("--serving-rounds", type=int, default=5, help="interleaved rounds of the serving comparison")
    parser.add_argument("--served-model", default=None, metavar="DIR",
                        help="plain model directory to serve (e.g. from `peftner export --merge`; default: the "
                             "embedded backbone with a seeded random head)")
    parser.add_argument("--serving-output", default=str(SERVING_RESULT), metavar="FILE",
                        help="where the serving comparison is written (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.time_to_quality:
        return time_to_quality_main(args, argv)
    args.output = args.output or str(RESULT)
    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.serving_only:
        serving(args.serving_rounds, args.seed, args.served_model and Path(args.served_model), Path(args.serving_output),
                command.strip())
        return
    result = {"command": "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine_description(), "versions": library_versions(),
              "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_training:
            names = [n for n in args.recipes.split(",") if n]
            unknown = sorted(set(names) - set(RECIPES))
            if unknown:
                parser.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
            result["training"] = train_speed(args.epochs, args.rounds, args.seed, tmp, names)
        result["step_time"] = step_time(args.step_batches, 3, args.seed)
        result["inference"] = inference_speed(3, args.seed, tmp)
    serving(args.serving_rounds, args.seed, args.served_model and Path(args.served_model), Path(args.serving_output),
                command.strip())
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output, result)
    if "training" in result:
        t = result["training"]
        for name in RECIPES:
            if name in t:
                print(f"{name:<26} {t[name]['train_tokens_per_second']:>9,.0f} train tokens/s   "
                      f"test F1 {t[name]['test_f1']:.4f}")
        for key, ratio in t["ratios"].items():
            print(f"{key:<38} {ratio['speed']:.2f}x tokens/s (target {ratio['target']}x), "
                  f"F1 {ratio['f1_difference']:+.4f}: {'met' if ratio['met'] else 'missed'}")
    print("LoRA / full step time:", round(result["step_time"]["lora_over_full"], 3))
    print("merged LoRA / base inference time:", round(result["inference"]["merged_over_base_time"], 3),
          f"| predict {result['inference']['predict_tokens_per_second']:,.0f} tokens/s")



def time_to_quality_main(args, argv) -> dict:
    """``--time-to-quality``: one run of :func:`time_to_quality`, written to its own result file."""
    with tempfile.TemporaryDirectory() as tmp:
        result = time_to_quality(args.seed, tmp, args.epochs)
    result.update(command="python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  machine=machine_description(), versions=library_versions(), torch_threads=torch.get_num_threads())
    output = Path(args.output or TIME_TO_QUALITY)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, result)
    trainer = result["trainer"]
    print(f"Trainer recipe: dev F1 {result['target_dev_f1']:.4f} after {trainer['epochs']} epochs, "
          f"{trainer['train_seconds']:.0f} s of training")
    for name in ("full", "lora"):
        r = result[name]
        print(f"peftner {name}: " + (f"reached it after {r['seconds']:.0f} s (step {r['step']}), "
                                     f"{r['ratio_to_trainer']:.2f}x the Trainer's time" if r["reached"] else
                                     f"did not reach it (best dev F1 {r['best_dev_f1']:.4f})"))
    return result


if __name__ == "__main__":
    from peftner.errors import PeftnerError

    try:
        main()
    except PeftnerError as err:  # e.g. --served-model that is not a token classifier: one line
        raise SystemExit(f"throughput.py: error: {err}") from None
