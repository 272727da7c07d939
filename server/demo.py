"""The built-in demo model: a tiny scripted ChatML GGUF, written once into the user's cache."""
from __future__ import annotations

import json
import os
from pathlib import Path

from server.ggufgen import ModelSpec, Special, TokenRef, scripted_spec, spec_digest, unique_pieces, write_gguf

DEMO_MODEL_NAME = "demo"
DEMO_SENTENCE = (
    "Hello! I am the llamaslots demo model. Put your GGUF files in the models path "
    "and list them in a config file to serve real models."
)
DEMO_CONTEXT_SIZE = 2048

# ChatML as Qwen-style GGUFs embed it; llama.cpp's is_eog stops on <|im_end|>.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_FILE_PREFIX = "demo-"


def demo_spec() -> ModelSpec:
    """The demo's spec: any prompt's last token leads to the first word of the sentence."""
    pieces = unique_pieces(DEMO_SENTENCE)
    # Only the last prompt token matters to a successor model. A ChatML prompt ends with
    # '<|im_start|>assistant\n', so '\n' starts the answer; the sentence's pieces are
    # generate-only tokens (no merges), so no prompt can end inside the sentence, and every
    # other token defaults to its start: plain completions get the sentence too.
    chain: list[TokenRef] = ["\n", *pieces, Special("<|im_end|>")]
    return scripted_spec(
        "gpt2",
        [chain],
        eos="<|im_end|>",
        default=pieces[0],
        tokenizable=False,
        chat_template=CHATML_TEMPLATE,
        dtype="F16",
        name="llamaslots-demo",
    )


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/llamaslots, else ~/.cache/llamaslots."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llamaslots"


def ensure_demo_model(cache_dir: Path | None = None) -> Path:
    """Path of the demo GGUF, writing it first if this generator version has not yet.

    The file name carries the spec's digest, so a changed generator or sentence writes a new
    file (atomically) and older demo files are removed.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    spec = demo_spec()
    path = folder / f"{_FILE_PREFIX}{spec_digest(spec)}.gguf"
    if path.is_file():
        return path
    write_gguf(spec, path)
    for old in folder.glob(f"{_FILE_PREFIX}*.gguf"):
        if old != path:
            try:
                old.unlink()
            except OSError:
                pass  # another process may hold or have removed it; stale files are harmless
    return path


def demo_config_yaml(model_path: str | os.PathLike[str]) -> str:
    """A LocalAI model config (YAML list) serving `model_path` as the model named 'demo'.

    `model_path` is written as given: LocalAI resolves parameters.model against the models
    path, so pass the file name when the models path is the demo's folder.
    """
    return (
        f"- name: {DEMO_MODEL_NAME}\n"
        f"  context_size: {DEMO_CONTEXT_SIZE}\n"
        "  parameters:\n"
        f"    model: {json.dumps(os.fspath(model_path))}\n"
        "  template:\n"
        "    use_tokenizer_template: true\n"
    )
