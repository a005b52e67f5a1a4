"""Every PEFT method reports PEFT's errors the same way: one line naming the method, the model type
and the layer names a target could match (peftner.tuners.get_peft_model)."""

import pytest
from conftest import memorise_argv

from peftner.recipe import main


@pytest.mark.parametrize("name, argv", [
    ("lora", ["--target-modules", "nothing"]),
    ("int8_lora", ["--target-modules", "nothing"]),
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
    assert "on this bert model; its layers: " in lines[0]
    assert "attention.self.query" in lines[0] and "output.dense" in lines[0]
