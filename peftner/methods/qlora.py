"""QLoRA (Dettmers et al. 2023): LoRA on a 4-bit NormalFloat backbone with double quantization."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.errors import require
from peftner.methods.base import Method
from peftner.methods.lora import LoraMethodConfig, lora_apply, lora_for_model
from peftner.models.loading import bitsandbytes_config, prepare_kbit_model

COMPUTE_DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class QLoraConfig(LoraMethodConfig):  # LoRA's knobs and learning rate, plus:
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"choices": ("nf4", "fp4"), "help": "nf4 (the paper's NormalFloat) or fp4"})
    double_quant: bool = field(default=True, metadata={"help": "quantize the per-block scales too"})
    compute_dtype: str = field(default="auto", metadata={"choices": COMPUTE_DTYPES,
        "help": "dtype of the de-quantized matmuls: auto (bfloat16 on a GPU, float32 on CPU), "
                "bfloat16, float16 or float32"})


def resolve_compute_dtype(name: str):
    import torch

    require(name in COMPUTE_DTYPES, "compute_dtype", f"one of {', '.join(COMPUTE_DTYPES)}", name)
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def qlora_load_kwargs(config: QLoraConfig) -> dict:
    require(config.bnb_4bit_quant_type in ("nf4", "fp4"), "bnb_4bit_quant_type", "nf4 or fp4",
            config.bnb_4bit_quant_type)
    return {"quantization_config": bitsandbytes_config(
        load_in_4bit=True, bnb_4bit_quant_type=config.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=resolve_compute_dtype(config.compute_dtype))}


QLORA = Method(
    name="qlora",
    summary="LoRA on a 4-bit NF4 double-quantized backbone (QLoRA), head in full precision",
    config_cls=QLoraConfig,
    apply=lora_apply("qlora", prepare_kbit_model),
    for_model=lora_for_model,
    load_kwargs=qlora_load_kwargs,
)
