"""QLoRA (Dettmers et al. 2023) for NER.  Run: ``accelerate launch recipes/qlora_ner.py [--help]``."""

from peftner.recipe import main

if __name__ == "__main__":
    main("qlora")
