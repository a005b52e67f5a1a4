"""``peftner push``: share an adapter (or a full / exported model) on the Hugging Face Hub.

The work is in :func:`prepare_upload`, which needs no network and is tested offline: it copies
into a staging folder only what a user needs (weights as safetensors, configs, tokenizer, model
card), says what it leaves out, points ``adapter_config.json`` at the base model's Hub id when the
base is peftner's embedded default (the recorded path is the training machine's site-packages),
and checks that the model card's metadata parses. :func:`push` then only creates the repository
and uploads that folder with ``huggingface_hub``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from peftner.errors import PeftnerError
from peftner.reuse.artifact import EMBEDDED_HUB_ID, read_adapter_dir

# What a reusable model directory holds: weights (safetensors only), configs, tokenizer, card.
UPLOAD_SUFFIXES = (".safetensors", ".json", ".md", ".txt", ".model", ".jinja")


def _check_repo_id(repo_id: str):
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PeftnerError(f"--repo-id {repo_id!r}: not a valid Hub repository id "
                           f"(expected NAME or OWNER/NAME): {str(err).splitlines()[0]}") from None


def _card_text(directory: Path, info) -> str:
    """The directory's README.md, or one written now from ``peftner.json`` and the run's metrics.json."""
    from peftner.report import RunMetrics
    from peftner.reuse.card import model_card

    card = directory / "README.md"
    if card.is_file():
        return card.read_text(encoding="utf-8")
    metrics_file = directory.parent / "metrics.json"
    metrics = RunMetrics.read(metrics_file) if metrics_file.is_file() else None
    return model_card(dict(info.metadata), metrics)


def prepare_upload(adapter_dir, staging) -> dict:
    """Fill ``staging`` with the files to upload; returns ``{"files": [...], "left_out": [...], "notes": [...]}``."""
    from huggingface_hub import ModelCard

    directory = Path(adapter_dir)
    info = read_adapter_dir(directory)  # refuses directories that are not adapters or models
    staging = Path(staging)
    staging.mkdir(parents=True, exist_ok=True)
    files, left_out, notes = [], [], []
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix in UPLOAD_SUFFIXES:
            shutil.copy2(path, staging / path.name)
            files.append(path.name)
        else:
            left_out.append(path.name + ("/" if path.is_dir() else ""))
    if not any(name.endswith(".safetensors") for name in files):
        raise PeftnerError(f"{directory}: no .safetensors weights to upload")
    config_file = staging / "adapter_config.json"
    if info.kind == "peft" and config_file.is_file():
        config = json.loads(config_file.read_text(encoding="utf-8"))
        base = str(config.get("base_model_name_or_path") or "")
        if info.metadata.get("base_model_embedded"):
            config["base_model_name_or_path"] = EMBEDDED_HUB_ID
            config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            notes.append(f"adapter_config.json: base model set to {EMBEDDED_HUB_ID} (the embedded default)")
        elif base and Path(base).is_absolute():
            notes.append(f"adapter_config.json names the local base {base}: users must pass the base model")
    card = _card_text(directory, info)
    try:
        ModelCard(card, ignore_metadata_errors=False)
    except (ValueError, TypeError) as err:
        raise PeftnerError(f"{directory / 'README.md'}: model card metadata does not parse: "
                           f"{str(err).splitlines()[0]}") from None
    (staging / "README.md").write_text(card, encoding="utf-8")
    if "README.md" not in files:
        files.append("README.md")
        notes.append("README.md: model card written from peftner.json and metrics.json")
    return {"files": sorted(files), "left_out": left_out, "notes": notes}


def push(adapter_dir, repo_id: str, private: bool = False, token: str | None = None,
         commit_message: str | None = None) -> str:
    """Create ``repo_id`` (if needed) and upload the prepared folder; returns the repository URL."""
    import tempfile

    from huggingface_hub import HfApi

    _check_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="peftner-push-") as staging:
        prepared = prepare_upload(adapter_dir, staging)
        for note in prepared["notes"]:
            print(f"note: {note}")
        if prepared["left_out"]:
            print("not uploaded: " + ", ".join(prepared["left_out"]))
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(folder_path=staging, repo_id=repo_id, repo_type="model",
                              commit_message=commit_message or f"Upload {Path(adapter_dir).name} with peftner")
        except Exception as err:  # network, authentication, permissions: one line, never a traceback
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise PeftnerError(f"upload to {repo_id} failed ({type(err).__name__}): {first}") from None
    return str(url)


def push_arguments(parser):
    parser.add_argument("--adapter", required=True, metavar="DIR",
                        help="OUTPUT_DIR/adapter of a run, or a directory written by `peftner export`")
    parser.add_argument("--repo-id", required=True, metavar="NAME", help="Hub repository, NAME or OWNER/NAME")
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--token", default=None,
                        help="Hub access token (default: HF_TOKEN or the one saved by `hf auth login`)")
    parser.add_argument("--commit-message", default=None, help="message of the upload commit")


def push_command(args) -> int:
    url = push(args.adapter, args.repo_id, private=args.private, token=args.token,
               commit_message=args.commit_message)
    print(f"uploaded {args.adapter} to {url}")
    return 0
