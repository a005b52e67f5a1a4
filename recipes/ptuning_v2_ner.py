"""P-tuning v2 / deep prompt tuning (Liu et al. 2021) for NER.  Run: ``accelerate launch recipes/ptuning_v2_ner.py [--help]``."""

from peftner.recipe import main

if __name__ == "__main__":
    main("ptuning_v2")
