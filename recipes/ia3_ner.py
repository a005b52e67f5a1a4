"""(IA)³ (Liu et al. 2022) for NER.  Run: ``accelerate launch recipes/ia3_ner.py [--help]``."""

from peftner.recipe import main

if __name__ == "__main__":
    main("ia3")
