"""The field note's config: its syntax error is pinpointed, and the corrected version loads right."""
from pathlib import Path

import pytest

from compat.model_settings import load_settings
from compat.config import ConfigError, load_configs

ROOT = Path(__file__).resolve().parents[2]
SEED = Path(__file__).parent / "data" / "seed-config.yaml"
CORRECTED = ROOT / "configs" / "seed-models.yaml"


def test_seed_config_error_at_line_38_suggests_block_scalar(tmp_path):
    cs = load_configs(SEED, tmp_path, strict=False)
    errors = [p for p in cs.problems if p.level == "error"]
    at_38 = [p for p in errors if p.line == 38]
    assert len(at_38) == 1
    assert at_38[0].file == SEED
    assert at_38[0].col == 11  # the bare dash
    assert "chat: |-" in at_38[0].hint
    assert str(at_38[0]).startswith(f"{SEED}:38:11: error: `chat: -`")
    # The second bare dash (completion, line 40) is reported too, not just the first.
    assert [p.line for p in errors] == [38, 40]
    assert "completion: |-" in errors[1].hint
    # Like LocalAI, nothing from an unparsable file is served.
    assert cs.models == {}


def test_seed_config_strict_refuses_and_names_every_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_configs(SEED, tmp_path)
    text = str(info.value)
    assert f"{SEED}:38:11" in text and f"{SEED}:40:17" in text
    assert len([p for p in info.value.problems if p.level == "error"]) == 2


def test_seed_config_other_mistakes_are_reported_despite_syntax_error(tmp_path):
    cs = load_configs(SEED, tmp_path, strict=False)
    by_line = {(p.line, p.level): p for p in cs.problems}
    # `batch:` at the top level of karakuri-8x7b / -70b is ignored by LocalAI.
    assert "parameters.batch" in by_line[(30, "warning")].hint
    assert "parameters.batch" in by_line[(51, "warning")].hint
    # karakuri-70b's per-message template under `chat`, pointed at inside the block scalar:
    # line 60 column 15 is the `.RoleName` of `      {{if eq .RoleName ...`.
    chat = [p for p in cs.problems if (p.line, p.col) == (60, 15) and "chat_message" in p.hint]
    assert chat and "raw joined messages" in chat[0].message
    # vicuna has no stop words.
    assert any(p.line == 15 and "### Human:" in p.hint for p in cs.problems)


def test_corrected_seed_loads_all_three_models(tmp_path):
    cs = load_configs(CORRECTED, tmp_path)  # strict: would raise on any error
    assert list(cs.models) == ["vicuna-13b", "karakuri-8x7b", "karakuri-70b"]
    assert [p for p in cs.problems if p.level != "info" and p.file == CORRECTED] == []

    v = cs.models["vicuna-13b"]
    assert v.backend == "llama-cpp" and v.embeddings is True
    assert v.context_size == 4095 and v.gpu_layers == 41 and v.f16 is True and v.mmap is True
    assert v.mmlock is False
    assert v.parameters.model == "vicuna-13b-v1.5.Q8_0.gguf"
    assert (v.parameters.temperature, v.parameters.top_k, v.parameters.top_p, v.parameters.seed) == (0.7, 40, 0.7, -1)
    assert v.parameters.batch == 0  # absent: the default applies at load
    assert load_settings(v, tmp_path).n_batch == 512
    assert v.stopwords == ["### Human:", "</s>"]
    # `|` keeps the trailing spaces after "### Human:" and one final newline.
    assert v.template.chat == (
        "A chat between a human and an assistant.\n\n### Human: \n{{.Input }}\n### Assistant: \n"
    )

    k8 = cs.models["karakuri-8x7b"]
    assert k8.gpu_layers == 33 and k8.mmlock is True and k8.parameters.batch == 512
    assert k8.template.chat == "[INST] {{.Input}} [/INST]"
    assert k8.template.completion == "[INST] {{.Input}} [/INST]"
    assert k8.stopwords == ["</s>", "[INST]"]

    k70 = cs.models["karakuri-70b"]
    assert k70.gpu_layers == 81 and k70.parameters.batch == 1024
    assert k70.parameters.model == "karakuri-lm-70b-chat-v0.1-q4_K_M.gguf"
    assert k70.template.chat == ""
    assert k70.template.chat_message.startswith('{{if eq .RoleName "assistant"}}{{.Content}}{{else}}\n[INST]\n')
    assert k70.template.chat_message.endswith("[/INST]\n{{end}}\n")
    assert k70.source is not None and k70.source.file == CORRECTED


@pytest.mark.parametrize("name", ["chatml-tokenizer-template.yaml", "chatml-go-template.yaml"])
def test_example_configs_load_without_warnings(tmp_path, name):
    cs = load_configs(ROOT / "configs" / name, tmp_path)
    assert len(cs.models) == 1
    assert [p for p in cs.problems if p.level != "info"] == []
