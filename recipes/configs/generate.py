"""Write recipes/configs/<method>.yaml for every method from its defaults (peftner.config.config_yaml).

Run after changing a default:  python recipes/configs/generate.py
The method config classes are the only source of the values; tests check these files are current.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from peftner.config import config_yaml  # noqa: E402
from peftner.methods import FILE_METHODS  # noqa: E402


def main():
    for method in FILE_METHODS:  # PEFT-type rows (vera, loha, ...) have no recipe or YAML
        path = HERE / f"{method.name}.yaml"
        text = config_yaml(method)
        changed = not path.exists() or path.read_text(encoding="utf-8") != text
        path.write_text(text, encoding="utf-8")
        print(f"{'wrote' if changed else 'unchanged'} {path.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
