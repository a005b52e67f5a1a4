"""Full fine-tuning for NER (``--train-top-layers K`` trains only the top K layers + head).

Run: ``accelerate launch recipes/full_ner.py [--help]``.
"""

from peftner.recipe import main

if __name__ == "__main__":
    main("full")
