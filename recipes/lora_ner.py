"""LoRA (Hu et al. 2021) for NER.  Run: ``accelerate launch recipes/lora_ner.py [--help]``."""

from peftner.recipe import main

if __name__ == "__main__":
    main("lora")
