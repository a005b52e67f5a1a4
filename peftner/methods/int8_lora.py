"""LoRA on an LLM.int8 backbone (Dettmers et al. 2022): linear weights stored in int8, LoRA trains."""

from __future__ import annotations

from dataclasses import dataclass, field

from peftner.methods.base import Method
from peftner.methods.lora import LoraMethodConfig, lora_apply, lora_for_model
from peftner.models.loading import bitsandbytes_config, prepare_kbit_model


@dataclass
class Int8LoraConfig(LoraMethodConfig):  # LoRA's knobs and learning rate, plus:
    llm_int8_threshold: float = field(default=6.0, metadata={"min": 0,
        "help": "LLM.int8 outlier threshold: input features above it use a 16-bit matmul (0: pure int8)"})


def int8_load_kwargs(config: Int8LoraConfig) -> dict:
    return {"quantization_config": bitsandbytes_config(load_in_8bit=True,
                                                       llm_int8_threshold=config.llm_int8_threshold)}


INT8_LORA = Method(
    name="int8_lora",
    summary="LoRA on an 8-bit (LLM.int8) quantized backbone, head in full precision",
    config_cls=Int8LoraConfig,
    apply=lora_apply("int8_lora", prepare_kbit_model),
    for_model=lora_for_model,
    load_kwargs=int8_load_kwargs,
)
