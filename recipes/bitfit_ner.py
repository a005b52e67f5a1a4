"""BitFit (Ben Zaken et al. 2022) for NER.  Run: ``accelerate launch recipes/bitfit_ner.py [--help]``."""

from peftner.recipe import main

if __name__ == "__main__":
    main("bitfit")
