"""Every PEFT method reports unmatched targets in one line naming the method, the model type and the
layer names a target could match (peftner.methods.targets checks LoRA's targets first; PEFT's own
errors go through peftner.tuners.get_peft_model)."""

import pytest
from conftest import memorise_argv

from peftner.recipe import main


@pytest.mark.parametrize("name, argv", [
    ("lora", ["--target-modules", "nothing"]),
    ("ia3", ["--target-modules", "nothing", "--feedforward-modules", "", "--exclude-modules", ""]),
])
def test_unmatched_targets_are_one_line_naming_model_type_and_layers(name, argv, tiny_model, memorisable_files,
                                                                    tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(name, memorise_argv(memorisable_files, tiny_model, tmp_path, "--epochs", 1, *argv))
    stderr = capsys.readouterr().err
    lines = [line for line in stderr.splitlines() if line.startswith("peftner: error:")]
    assert exit_info.value.code == 2 and "Traceback" not in stderr and len(lines) == 1, stderr
    assert lines[0].startswith(f"peftner: error: {name}: ")
    assert "this bert model" in lines[0] and "layers" in lines[0]  # the model type, then its layer names
    assert "query" in lines[0] and "dense" in lines[0]
