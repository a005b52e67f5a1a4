"""Prompt tuning (Lester et al. 2021) for NER.  Run: ``accelerate launch recipes/prompt_ner.py [--help]``."""

from peftner.recipe import main

if __name__ == "__main__":
    main("prompt")
