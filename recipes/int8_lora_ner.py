"""LoRA on an LLM.int8 backbone (Dettmers et al. 2022) for NER.

Run: ``accelerate launch recipes/int8_lora_ner.py [--help]``.
"""

from peftner.recipe import main

if __name__ == "__main__":
    main("int8_lora")
