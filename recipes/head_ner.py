"""Linear probe (only the classifier head trains) for NER.

Run: ``accelerate launch recipes/head_ner.py [--help]``.
"""

from peftner.recipe import main

if __name__ == "__main__":
    main("head")
