"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021) for NER.  Run: ``accelerate launch recipes/adapter_ner.py [--help]``."""

from peftner.recipe import main

if __name__ == "__main__":
    main("adapter")
