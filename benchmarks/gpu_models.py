"""Training speed of full fine-tuning, LoRA and QLoRA on a BERT-base-sized encoder and a ~0.5B decoder.

Both models are built from configs with random weights (:mod:`peftner.testing.tiny`; no internet needed):
BERT-base (hidden 768, 12 layers, 110M parameters) and a Qwen2-0.5B-shaped decoder (hidden 896,
24 layers, 14 heads / 2 key-value heads, vocabulary 151,936: 494M parameters). Each method is loaded
and applied exactly as the recipes do (``load_token_classifier`` + ``Method.apply``), then trained
for ``--steps`` AdamW steps on fixed-length random batches under bf16 autocast. Recorded per run:
tokens/s (after ``--warmup`` steps), peak CUDA memory, and model FLOPs utilisation

    MFU = tokens/s x (6 N + 12 L d s) / peak bf16 FLOP/s of the GPU

(Chowdhery et al. 2022's model-FLOPs convention: N parameters outside the input embedding (a lookup,
not a matmul), L layers, d hidden size, s sequence length; the same count for every method, so MFU
compares the work done, not the work a frozen backbone skips). Writes benchmarks/results/gpu_models/result.json.

    python benchmarks/gpu_models.py                 # on a CUDA GPU (bash benchmarks/gpu_check.sh runs it)
    python benchmarks/gpu_models.py --dry-run       # CPU, tiny configs, 2 steps: checks the script only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

RESULT = Path(__file__).parent / "results" / "gpu_models" / "result.json"

# name -> (tiny.SPECS architecture, size keyword arguments for build_checkpoint)
MODELS = {
    "bert-base": ("bert", dict(hidden=768, layers=12, heads=12, intermediate=3072, max_positions=512,
                               vocab_size=30522)),
    "decoder-0.5b": ("qwen2", dict(hidden=896, layers=24, heads=14, intermediate=4864, max_positions=4096,
                                   vocab_size=151936, num_key_value_heads=2, tie_word_embeddings=True)),
}
DRY_RUN_MODELS = {
    "bert-base": ("bert", dict(hidden=32, layers=2, heads=2)),
    "decoder-0.5b": ("qwen2", dict(hidden=32, layers=2, heads=2)),
}
METHODS = ("full", "lora", "qlora")
# Dense bf16 tensor-core peaks (vendor data sheets, FLOP/s), matched against torch's device name.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12,
             "RTX 4090": 165e12, "V100": 125e12}


def model_flops_per_token(config, n_params: int, seq_len: int) -> float:
    """6N + 12·L·d·s: forward and backward matmuls of the weights plus attention scores/values."""
    layers = next(getattr(config, k) for k in ("num_hidden_layers", "n_layer") if hasattr(config, k))
    hidden = next(getattr(config, k) for k in ("hidden_size", "n_embd") if hasattr(config, k))
    return 6 * n_params + 12 * layers * hidden * seq_len


def peak_flops(device_name: str) -> float | None:
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def measure(model_dir: Path, method_name: str, device, batch: int, seq_len: int, steps: int, warmup: int,
            autocast_dtype) -> dict:
    import torch

    from peftner.models.facts import inspect_model as inspect
    from peftner.models.loading import never_quantize_head
    from peftner.config import parse_args
    from peftner.methods import count_parameters, get_method
    from peftner.models.loading import load_token_classifier

    method = get_method(method_name)
    _, method_config = parse_args(method, ["--model", str(model_dir)])
    id2label = {i: f"L{i}" for i in range(9)}
    load_kwargs = never_quantize_head(method.load_kwargs(method_config) if method.load_kwargs else {},
                                      inspect(str(model_dir)))
    if "quantization_config" in load_kwargs:
        if device.type != "cuda":
            return {"skipped": "quantized backbones are measured on a GPU only"}
        load_kwargs["device_map"] = {"": device}
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = load_token_classifier(str(model_dir), id2label, **load_kwargs)
    n_total = sum(p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1) for p in model.parameters())
    model = method.apply(model, method_config).to(device) if "device_map" not in load_kwargs else \
        method.apply(model, method_config)
    trainable, _ = count_parameters(model)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=method.train_defaults.get("learning_rate", 5e-5))
    generator = torch.Generator().manual_seed(0)
    vocab = model.get_input_embeddings().num_embeddings
    input_ids = torch.randint(5, vocab, (batch, seq_len), generator=generator).to(device)
    labels = torch.randint(0, len(id2label), (batch, seq_len), generator=generator).to(device)
    mask = torch.ones_like(input_ids)

    def step():
        with torch.autocast(device.type, dtype=autocast_dtype):
            loss = model(input_ids=input_ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens_per_second = batch * seq_len * steps / seconds
    flops = model_flops_per_token(model.config, n_total - model.get_input_embeddings().weight.numel(), seq_len)
    peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    result = {
        "trainable_params": int(trainable), "total_params": int(n_total),
        "tokens_per_second": tokens_per_second, "seconds": seconds, "final_loss": float(loss.detach()),
        "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "model_flops_per_token": flops,
        "mfu": tokens_per_second * flops / peak if peak else None,
    }
    return result  # the model and optimizer go with this frame, before the next model loads


def main(argv=None):
    import torch

    from peftner.integrity import write_json_atomic
    from peftner.report import library_versions, machine_description
    from peftner.testing.tiny import build_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny configs, 2 steps (checks the script)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", default=str(RESULT))
    args = parser.parse_args(argv)
    if args.dry_run:
        models, device, dtype = DRY_RUN_MODELS, torch.device("cpu"), torch.bfloat16
        args.steps, args.warmup, args.batch_size, args.seq_len = 2, 1, 2, 16
    else:
        if not torch.cuda.is_available():
            sys.exit("gpu_models.py needs a CUDA GPU (or --dry-run)")
        models, device, dtype = MODELS, torch.device("cuda"), torch.bfloat16
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            arch, size = models[name]
            directory = build_checkpoint(arch, Path(tmp) / name, max_positions=size.pop("max_positions", 128),
                                         **size)
            for method in args.methods.split(","):
                print(f"{name} {method} ...", flush=True)
                result = measure(directory, method, device, args.batch_size, args.seq_len, args.steps,
                                 args.warmup, dtype)
                runs.append({"model": name, "architecture": arch, "method": method, **result})
                print(json.dumps(runs[-1]), flush=True)
    report = {
        "command": "python benchmarks/gpu_models.py" + (" --dry-run" if args.dry_run else ""),
        "dry_run": args.dry_run, "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "machine": machine_description(), "versions": library_versions(), "batch_size": args.batch_size,
        "seq_len": args.seq_len, "steps": args.steps, "warmup": args.warmup, "autocast": "bf16", "runs": runs,
    }
    write_json_atomic(Path(args.output), report)
    print(f"wrote {args.output}")
    return report


if __name__ == "__main__":
    main()
