"""QLoRA (Dettmers et al. 2023): LoRA on a 4-bit NormalFloat backbone with double quantization."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.methods.base import Method
from peftner.methods.lora import LORA, LoraMethodConfig, apply_kbit_lora, bitsandbytes_config

COMPUTE_DTYPES = ("auto", "bfloat16", "float16", "float32")


@dataclass
class QLoraConfig(LoraMethodConfig):
    bnb_4bit_quant_type: str = field(default="nf4", metadata={"help": "nf4 (the paper's NormalFloat) or fp4"})
    double_quant: bool = field(default=True, metadata={"help": "quantize the per-block scales too"})
    compute_dtype: str = field(default="auto", metadata={
        "help": "dtype of the de-quantized matmuls: auto (bfloat16 on a GPU, float32 on CPU), "
                "bfloat16, float16 or float32"})


def resolve_compute_dtype(name: str):
    import torch

    from peftner.errors import PeftnerError

    if name not in COMPUTE_DTYPES:
        raise PeftnerError(f"--compute-dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {name!r}")
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)


def qlora_load_kwargs(config: QLoraConfig) -> dict:
    from peftner.errors import PeftnerError

    if config.bnb_4bit_quant_type not in ("nf4", "fp4"):
        raise PeftnerError(f"--bnb-4bit-quant-type must be nf4 or fp4, got {config.bnb_4bit_quant_type!r}")
    return {"quantization_config": bitsandbytes_config(
        load_in_4bit=True, bnb_4bit_quant_type=config.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=resolve_compute_dtype(config.compute_dtype))}


QLORA = Method(
    name="qlora",
    summary="LoRA on a 4-bit NF4 double-quantized backbone (QLoRA), head in full precision",
    config_cls=QLoraConfig,
    apply=apply_kbit_lora,
    train_defaults=dict(LORA.train_defaults),
    load_kwargs=qlora_load_kwargs,
)
