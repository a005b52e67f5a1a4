"""Any PEFT method from a config JSON (--peft-config FILE.json) for NER.

Run: ``accelerate launch recipes/peft_ner.py [--help]``.
"""

from peftner.recipe import main

if __name__ == "__main__":
    main("peft")
