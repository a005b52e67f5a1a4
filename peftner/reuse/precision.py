"""The numerics a run was scored with, recorded in ``peftner.json`` and replayed when it is reloaded.

An adapter trained on an 8-bit or 4-bit backbone was scored on that backbone: on a full-precision
copy its tags can differ, and it takes the memory the quantization was meant to save. So a run
records how its backbone was loaded (the ``BitsAndBytesConfig``, whose ``llm_int8_skip_modules``
keep the head in full precision), the mixed-precision mode its forward passes ran under, and the
window length and evaluation batch size of its test pass (LLM.int8 picks its 16-bit outlier
columns per batch, so even the batching matters). :class:`~peftner.reuse.Tagger` replays all of it
by default; ``full_precision=True`` (``--full-precision``) loads the backbone unquantized and runs
in float32 instead.
"""

from __future__ import annotations

import contextlib

from peftner.errors import PeftnerError

PRECISION_KEY = "precision"


def describe_backbone(quantization: dict | None, dtype: str) -> str:
    """``int8``, ``nf4``/``fp4`` or the floating dtype: a one-word name for logs and the model card."""
    if not quantization:
        return dtype
    if quantization.get("load_in_8bit"):
        return "int8"
    return str(quantization.get("bnb_4bit_quant_type", "4bit"))


def record_precision(model, config: dict | None) -> dict:
    """What ``peftner.json`` stores about the numerics of a run (``config``: the run's TrainConfig dict)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    quantization = getattr(base.config, "quantization_config", None)
    if quantization is not None and not isinstance(quantization, dict):
        quantization = quantization.to_dict()
    dtype = str(getattr(base, "dtype", "float32")).replace("torch.", "")
    config = config or {}
    return {
        "backbone": describe_backbone(quantization, dtype),
        "dtype": dtype,
        "quantization_config": quantization,
        "mixed_precision": config.get("mixed_precision") or "no",
        "max_length": config.get("max_length"),
        "eval_batch_size": config.get("eval_batch_size"),
    }


def recorded_precision(metadata: dict) -> dict:
    """The record of :func:`record_precision` (empty for directories written by older versions)."""
    return metadata.get(PRECISION_KEY) or {}


def backbone_load_kwargs(metadata: dict, device, full_precision: bool = False) -> dict:
    """``from_pretrained`` keyword arguments that rebuild the backbone the adapter was trained on."""
    quantization = recorded_precision(metadata).get("quantization_config")
    if not quantization or full_precision:
        return {}
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise PeftnerError("this adapter was trained on a quantized backbone, which needs the package "
                           "bitsandbytes (pip install bitsandbytes); or load it with --full-precision") from None
    from transformers import BitsAndBytesConfig

    kwargs = {"quantization_config": BitsAndBytesConfig.from_dict(dict(quantization))}
    if device.type != "cpu":
        kwargs["device_map"] = {"": device}  # quantized weights are placed at load time, never moved
    return kwargs


def autocast(metadata: dict, device, full_precision: bool = False):
    """The autocast context the run's forward passes ran under (Accelerate's ``--mixed-precision``)."""
    import torch

    mode = recorded_precision(metadata).get("mixed_precision") or "no"
    if full_precision or mode == "no":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    if dtype is None:
        raise PeftnerError(f"peftner.json: unknown mixed_precision {mode!r}")
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- --precision bf16-checked
PRECISIONS = ("exact", "bf16-checked")
# Smallest gap, in log-probability (logit) units, between a word's two best labels in the bfloat16 pass
# for its tag to be kept without the exact re-check: a fixed default, 1.5x the largest bfloat16-vs-float32
# error of that gap on the WNUT-16 *dev* split with the README's LoRA model (benchmarks/results/serving/
# trained.json, `dev_calibration`), rounded up. Models differ: Tagger.calibrate_check_margin sets it from
# held-out inputs.
DEFAULT_CHECK_MARGIN = 0.3
# Tagger.calibrate_check_margin: check margin = this x the largest bfloat16 margin error on held-out inputs.
CALIBRATION_SAFETY_FACTOR = 1.5


def check_precision(precision: str, check_margin: float, model=None, compile: bool = False) -> None:
    """One-line errors for ``--precision`` / ``--check-margin`` / ``--compile`` (and, given the loaded ``model``, a
    quantized backbone, which has no float32 weights to cast)."""
    import math

    from peftner.errors import require

    require(precision in PRECISIONS, "precision", " or ".join(PRECISIONS), precision)
    require(isinstance(check_margin, (int, float)) and math.isfinite(check_margin) and check_margin >= 0,
            "check_margin", "a number >= 0", check_margin)
    require(isinstance(compile, bool), "compile", "True or False", compile)
    if compile and precision == "exact":
        raise PeftnerError("--compile compiles the bfloat16 pass of --precision bf16-checked; the exact mode runs "
                           "uncompiled so that its tags stay the ones the run scored")
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if precision != "exact" and getattr(base, "is_quantized", False):
        raise PeftnerError("--precision bf16-checked needs a full-precision backbone, but this one is 8-bit/4-bit "
                           "as the run was trained; add --full-precision (full_precision=True)")


def bfloat16_copy(model):
    """A bfloat16 copy of the model for the fast pass (AMX / tensor cores run bfloat16 matmuls ~3x faster
    than float32 on the CPUs that have them); the float32 model stays for the re-check."""
    import copy

    import torch

    return copy.deepcopy(model).to(torch.bfloat16).eval()


# Inductor with constant weights ("freezing"): weights prepacked once for oneDNN/AMX, bias and GELU fused into the
# matmuls. Shapes are dynamic (every batch has its own length), so one compilation serves every batch of two or
# more rows and tokens; a one-row batch is run with its row twice and a one-token batch (a one-word input to a
# decoder, which adds no special tokens) with a masked copy of its token after it: a size-1 dimension would be
# compiled again (seconds).
COMPILE_OPTIONS = {"dynamic": True}


def frozen_compile(function):
    """``function`` through ``torch.compile`` with :data:`COMPILE_OPTIONS`, each call run with inductor's
    weight freezing on (the settings ``Tagger(compile=True)`` uses; benchmarks compile baselines the same way)."""
    import torch
    import torch._inductor.config

    compiled = torch.compile(function, **COMPILE_OPTIONS)

    def call(*args, **kwargs):
        with torch._inductor.config.patch(freezing=True):
            return compiled(*args, **kwargs)
    return call


class CompiledForward:
    """The bfloat16 model's forward pass through ``torch.compile`` (inductor, frozen weights), called like the
    model with ``input_ids`` and ``attention_mask``; ``seconds`` is what compiling (the first call) took."""

    def __init__(self, model, warm_up: dict):
        import time

        import torch

        self.model = model
        self._forward = frozen_compile(model)
        started = time.perf_counter()
        with torch.inference_mode():
            self(**warm_up)
        self.seconds = time.perf_counter() - started

    def __call__(self, input_ids, attention_mask):
        import torch

        rows, length = input_ids.shape
        if rows == 1:
            input_ids, attention_mask = input_ids.repeat(2, 1), attention_mask.repeat(2, 1)
        if length == 1:  # padding on the right, masked: the real token's logits are unchanged
            input_ids, attention_mask = input_ids.repeat(1, 2), torch.cat(
                [attention_mask, torch.zeros_like(attention_mask)], dim=1)
        logits = self._forward(input_ids=input_ids, attention_mask=attention_mask).logits
        return _Output(logits[:rows, :length])


class _Output:
    def __init__(self, logits):
        self.logits = logits


def compiled_forward(model, tokenizer, device):
    """:class:`CompiledForward` of ``model``, or ``(None, reason)`` where torch.compile / inductor cannot
    build it here (no C++ compiler, an unsupported platform or model): the caller runs the model uncompiled."""
    import torch

    token = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else (tokenizer.pad_token_id or 0)
    with torch.inference_mode():  # inference tensors, as Tagger.predict makes them (else dynamo compiles twice)
        warm_up = {"input_ids": torch.full((2, 16), token, dtype=torch.long, device=device),
                   "attention_mask": torch.ones(2, 16, dtype=torch.long, device=device)}
    try:
        return CompiledForward(model, warm_up), None
    except Exception as err:  # noqa: BLE001 - dynamo/inductor raise many types; eager always works
        line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return None, f"{type(err).__name__}: {line[:200]}"
