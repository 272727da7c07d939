"""Model config loading: typing rules, teaching messages, sources and precedence, lookup, options."""
import textwrap
from pathlib import Path

import pytest

from compat.config import ConfigError, ModelConfig, check_model_files, load_configs


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(tmp_path, text, strict=False):
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    cfg = write(tmp_path / "config.yaml", text)
    return load_configs(cfg, models, strict=strict)


def problems_at(cs, line, level=None):
    return [p for p in cs.problems if p.line == line and (level is None or p.level == level)]


# --- did you mean / wrong level ------------------------------------------------------------------

@pytest.mark.parametrize("text, line, expected", [
    ("- name: m\n  mlock: true\n", 2, "mmlock"),
    ("- name: m\n  parameters:\n    templature: 0.1\n", 3, "temperature"),
    ("- name: m\n  templature: 0.1\n", 2, "parameters.temperature"),
    ("- name: m\n  contxt_size: 4096\n", 2, "context_size"),
    ("- name: m\n  stop: ['</s>']\n", 2, "stopwords"),
    ("- name: m\n  n_gpu_layers: 99\n", 2, "gpu_layers"),
])
def test_unknown_keys_get_did_you_mean(tmp_path, text, line, expected):
    cs = load(tmp_path, text)
    found = problems_at(cs, line, "warning")
    assert len(found) == 1, cs.problems
    assert f"`{expected}`" in found[0].hint
    assert "silently ignores" in found[0].message
    # An unknown key is not an error: LocalAI ran such configs, so we do too.
    assert "m" in cs.models


@pytest.mark.parametrize("text, line, key, where", [
    ("- name: m\n  temperature: 0.2\n", 2, "temperature", "parameters.temperature"),
    ("- name: m\n  parameters:\n    context_size: 8192\n", 3, "context_size", "context_size"),
    ("- name: m\n  parameters:\n    mirostat: 2\n", 3, "mirostat", "mirostat"),
    ("- name: m\n  parameters:\n    stopwords: ['x']\n", 3, "stopwords", "stopwords"),
    ("- name: m\n  chat: '{{.Input}}'\n", 2, "chat", "template.chat"),
])
def test_known_key_at_wrong_level_says_where_it_belongs(tmp_path, text, line, key, where):
    cs = load(tmp_path, text)
    (p,) = problems_at(cs, line, "warning")
    assert f"`{key}` has no effect" in p.message
    assert f"`{where}`" in p.hint
    m = cs.models["m"]
    # Misplaced keys really are ignored, as in LocalAI.
    assert m.context_size is None and m.mirostat is None and m.parameters.temperature is None


def test_parallel_as_config_key_points_to_options(tmp_path):
    cs = load(tmp_path, "- name: m\n  parallel: 8\n")
    (p,) = problems_at(cs, 2, "warning")
    assert "options" in p.hint and "parallel" in p.hint


# --- types -------------------------------------------------------------------------------------

def test_yaml_v3_typing_rules(tmp_path):
    cs = load(tmp_path, """
        - name: 123
          mmap: no
          mmlock: yes
          main_gpu: 0
          flash_attention: true
          context_size: 4096.0
          parameters:
            model: m.gguf
            temperature: 0
            top_k: 20
            logprobs: 3
          template:
            join_chat_messages_by_character: ""
    """)
    assert [p for p in cs.problems if p.level != "info"] == []
    m = cs.models["123"]
    assert m.mmap is False and m.mmlock is True and m.main_gpu == "0"
    assert m.flash_attention == "on" and m.context_size == 4096
    # Explicit 0 is kept (greedy); absent stays None until defaults are applied.
    from compat.request_params import merge_generation_params

    sampling = merge_generation_params(m, {}, endpoint="chat").sampling
    assert m.parameters.temperature == 0.0 and sampling.temperature == 0.0
    assert m.parameters.top_p is None and sampling.top_p == 0.95
    assert m.parameters.logprobs is True
    assert m.template.join_chat_messages_by_character == "" and m.template.join_character == ""
    assert ModelConfig().template.join_character == "\n"


@pytest.mark.parametrize("value, expected", [("enabled", "on"), ("off", "off"), ("auto", "auto"),
                                             ("false", "off"), ("'on'", "on")])
def test_flash_attention_bool_or_string(tmp_path, value, expected):
    cs = load(tmp_path, f"- name: m\n  flash_attention: {value}\n")
    assert cs.models["m"].flash_attention == expected


@pytest.mark.parametrize("text, line, words", [
    ("- name: m\n  context_size: '4096'\n", 2, ["whole number", "remove the quotes"]),
    ("- name: m\n  mmap: 'true'\n", 2, ["true or false", "remove the quotes"]),
    ("- name: m\n  stopwords: '</s>'\n", 2, ["expected a list"]),
    ("- name: m\n  flash_attention: maybe\n", 2, ["auto, on or off"]),
    ("- name: m\n  parameters:\n    top_k: [1]\n", 3, ["whole number", "a list"]),
    ("- name: m\n  template: '{{.Input}}'\n", 2, ["expected a mapping"]),
    ("- name: m\n  options:\n    - parallel: 8\n", 3, ["`- parallel:8`"]),
    ("- name: m\n  name: n\n", 2, ["already defined at line 1"]),
])
def test_wrong_types_are_errors_with_position(tmp_path, text, line, words):
    cs = load(tmp_path, text)
    found = problems_at(cs, line, "error")
    assert len(found) == 1, cs.problems
    shown = str(found[0])
    for word in words:
        assert word in shown
    # yaml.v3 fails the whole decode, so LocalAI drops every model of the file.
    assert cs.models == {}


def test_wrong_type_in_one_entry_drops_the_file_but_invalid_entry_only_itself(tmp_path):
    cs = load(tmp_path, "- name: a\n- name: b\n  parameters:\n    model: ../x.gguf\n")
    assert list(cs.models) == ["a"]
    cs = load(tmp_path, "- name: a\n- name: b\n  threads: many\n")
    assert cs.models == {}


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["../outside.gguf", "/abs/model.gguf", "sub/../../x.gguf"])
def test_model_path_escape_is_an_error(tmp_path, model):
    cs = load(tmp_path, f"- name: m\n  parameters:\n    model: {model}\n")
    (p,) = problems_at(cs, 3, "error")
    assert "invalid file path" in p.message
    assert "m" not in cs.models
    with pytest.raises(ConfigError):
        load(tmp_path, f"- name: m\n  parameters:\n    model: {model}\n", strict=True)


def test_template_name_outside_models_path_is_an_error(tmp_path):
    cs = load(tmp_path, "- name: m\n  template:\n    chat: ../../secret\n")
    (p,) = problems_at(cs, 3, "error")
    assert "outside the models path" in p.message


@pytest.mark.parametrize("backend, level", [("llama.cpp", "error"), ("my backend", "error"),
                                            ("whisper", "warning")])
def test_backend_names(tmp_path, backend, level):
    cs = load(tmp_path, f"- name: m\n  backend: {backend}\n")
    assert [p.level for p in problems_at(cs, 2)] == [level]


def test_entry_without_name_is_an_error(tmp_path):
    cs = load(tmp_path, "- parameters:\n    model: x.gguf\n")
    assert any("no `name`" in p.message for p in cs.problems if p.level == "error")


def test_chat_template_with_message_fields_warns_and_chat_message_does_not(tmp_path):
    bad = load(tmp_path, "- name: m\n  template:\n    chat: '{{.Role}}{{.Content}}'\n")
    (p,) = problems_at(bad, 3, "warning")
    assert "`.Role`" in p.message and "`.Content`" in p.message and "chat_message" in p.hint
    good = load(tmp_path, "- name: m\n  parameters: {model: m.gguf}\n  template:\n"
                          "    chat_message: '{{.Role}}{{.Content}}'\n    chat: '{{.Input}}'\n")
    assert [p for p in good.problems if p.level != "info"] == []
    wrong_way = load(tmp_path, "- name: m\n  template:\n    chat_message: '{{.Input}}'\n")
    assert "`.Input`" in problems_at(wrong_way, 3, "warning")[0].message


def test_template_name_without_tmpl_file_warns_literal_use(tmp_path):
    cs = load(tmp_path, "- name: m\n  template:\n    chat: chatml\n")
    (p,) = problems_at(cs, 3, "warning")
    assert "literal prompt text" in p.message
    write(tmp_path / "models" / "chatml.tmpl", "{{.Input}}")
    cs = load(tmp_path, "- name: m\n  template:\n    chat: chatml\n")
    assert problems_at(cs, 3) == []


def test_options_validation(tmp_path):
    cs = load(tmp_path, "- name: m\n  options:\n    - parallel:x\n    - paralel:4\n")
    assert any("parallel needs a whole number" in p.message for p in cs.problems if p.level == "error")
    assert any("`parallel`" in p.hint for p in cs.problems if p.level == "warning")


def test_repeat_penalty_without_repeat_last_n_warns(tmp_path):
    cs = load(tmp_path, "- name: m\n  parameters:\n    repeat_penalty: 1.1\n")
    (p,) = problems_at(cs, 3, "warning")
    assert "repeat_last_n" in p.hint


def test_strict_error_lists_every_error_across_files(tmp_path):
    models = tmp_path / "models"
    write(models / "a.yaml", "name: a\nmmap: maybe\n")
    cfg = write(tmp_path / "c.yaml", "- name: b\n  backend: llama.cpp\n")
    with pytest.raises(ConfigError) as info:
        load_configs(cfg, models)
    text = str(info.value)
    assert "a.yaml:2:7" in text and "c.yaml:2:3" in text


# --- files, precedence, lookup ------------------------------------------------------------------

def test_models_dir_mapping_and_list_files_and_config_file_precedence(tmp_path):
    models = tmp_path / "models"
    write(models / "single.yaml", "name: single\nparameters:\n  model: s.gguf\n  temperature: 0.1\n")
    write(models / "listed.yml", "- name: l1\n- name: l2\n")
    write(models / ".hidden.yaml", "name: hidden\n")
    write(models / "notes.txt", "name: txt\n")
    cfg = write(tmp_path / "config.yaml", "name: single\nparameters:\n  model: s.gguf\n  temperature: 0.2\n")
    cs = load_configs(cfg, models)
    assert sorted(cs.models) == ["l1", "l2", "single"]
    # --config-file is read after the models dir, so it wins.
    assert cs.models["single"].parameters.temperature == 0.2
    assert cs.models["single"].source.file == cfg and cs.models["single"].source.line == 1
    assert any("replaces the definition" in p.message for p in cs.problems if p.level == "info")
    assert cs.models["l2"].source.line == 2


def test_broken_models_dir_file_is_skipped_when_not_strict(tmp_path):
    models = tmp_path / "models"
    write(models / "bad.yaml", "name: bad\ntemplate:\n  chat: -\n    x\n")
    write(models / "good.yaml", "name: good\n")
    cs = load_configs(None, models, strict=False)
    assert list(cs.models) == ["good"]
    assert any(p.level == "error" and p.line == 3 for p in cs.problems)


def test_duplicate_name_in_one_file_warns_and_later_wins(tmp_path):
    cs = load(tmp_path, "- name: m\n  threads: 1\n- name: m\n  threads: 2\n")
    assert cs.models["m"].threads == 2
    assert problems_at(cs, 3, "warning")


def test_lookup_known_yaml_and_bare_file(tmp_path):
    models = tmp_path / "models"
    write(models / "known.yaml", "name: known\nparameters:\n  model: k.gguf\n")
    cs = load_configs(None, models)
    # Added after start: found at request time, as LocalAI reads <models>/<name>.yaml.
    write(models / "late.yaml", "name: late-name\nparameters:\n  model: l.gguf\n")
    (models / "raw.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    (models / "notes.bin").write_bytes(b"not a model")
    (models / "old.gguf").write_bytes(b"GGUF\x01\x00\x00\x00")
    assert cs.lookup("known").parameters.model == "k.gguf"
    assert cs.lookup("late").name == "late-name"
    raw = cs.lookup("raw.gguf")
    assert raw.name == "raw.gguf" and raw.parameters.model == "raw.gguf" and raw.source is None
    assert cs.lookup("nothing") is None
    (tmp_path / "secret.gguf").write_bytes(b"x")
    assert cs.lookup("../secret.gguf") is None
    assert cs.lookup("/etc/passwd") is None
    assert cs.loose_files() == ["raw.gguf"]
    # One spelling: a file is one model however the request writes its name.
    for spelling in ("./raw.gguf", ".//raw.gguf", "././raw.gguf"):
        assert cs.lookup(spelling).name == "raw.gguf"
    # A config's own file is that config (one model process for one file).
    (models / "k.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    assert cs.lookup("./k.gguf").name == "known"
    assert "k.gguf" not in cs.loose_files()  # the listing goes by the same spelling as lookup
    # Only GGUF files llama.cpp reads are models; names no file can have are unknown.
    assert cs.lookup("notes.bin") is None and cs.lookup("old.gguf") is None
    assert cs.lookup("x" * 300) is None and cs.lookup("a\0b") is None and cs.lookup("sub/../raw.gguf") is None


def test_check_model_files(tmp_path):
    models = tmp_path / "models"
    write(models / "m.yaml", "name: m\nparameters:\n  model: here.gguf\n")
    write(models / "n.yaml", "name: n\nparameters:\n  model: gone.gguf\n")
    (models / "here.gguf").write_bytes(b"GGUF")
    cs = load_configs(None, models)
    (p,) = check_model_files(cs)
    assert p.level == "warning" and "gone.gguf" in p.message and p.line == 3
    assert check_model_files(cs, "error")[0].level == "error"
    assert cs.models["m"].model_file(models) == models / "here.gguf"


def test_yaml_anchor_and_merge_key(tmp_path):
    cs = load(tmp_path, """
        - &base
          name: a
          context_size: 2048
          parameters: {model: a.gguf}
        - <<: *base
          name: b
    """)
    assert cs.models["b"].context_size == 2048 and cs.models["b"].parameters.model == "a.gguf"


# --- options ------------------------------------------------------------------------------------

def test_option_parsing_and_aliases():
    m = ModelConfig(name="m", options=["n_parallel:4", "jinja", "cache_ram:-1", "grpc_servers:h:1,h:2",
                                       "context_shift:false"])
    assert m.option("parallel") == "4" and m.option_int("parallel") == 4
    assert m.option("use_jinja") == "true" and m.option_bool("use_jinja") is True
    assert m.option_int("cache_ram") == -1
    assert m.option("rpc_servers") == "h:1,h:2"  # split at the first colon only
    assert m.option_bool("context_shift", True) is False
    assert m.option("kv_unified") is None
    m.options.append("parallel:8")
    assert m.option_int("n_parallel") == 8  # the last entry wins


def test_parallel_slots_resolution():
    from compat.model_settings import slot_count

    assert slot_count(ModelConfig(options=["parallel:2"]), 8) == 2  # the model's option wins
    assert slot_count(ModelConfig(), 8) == 8  # then LLAMACPP_PARALLEL
    assert slot_count(ModelConfig(), None) == 4  # then llama-server's default (LocalAI: 1)
    assert ModelConfig().kv_unified is True
    assert ModelConfig(options=["kv_unified:false"]).kv_unified is False


def test_localai_defaults_come_from_the_serving_functions(tmp_path):
    from compat.model_settings import ServerDefaults, load_settings
    from compat.request_params import merge_generation_params

    server = ServerDefaults(threads=8, context_size=1024)
    load = load_settings(ModelConfig(threads=None), tmp_path, server)
    assert (load.n_threads, load.n_ctx, load.n_gpu_layers, load.n_batch) == (8, 1024, 99999999, 512)
    s = merge_generation_params(ModelConfig(), {}, endpoint="chat").sampling
    assert (s.temperature, s.top_p, s.top_k, s.min_p, s.typical_p, s.seed) == (0.9, 0.95, 40, 0.0, 1.0, None)
    assert (s.mirostat, s.mirostat_tau, s.mirostat_eta) == (0, 5.0, 0.1)
    own = load_settings(ModelConfig(threads=2, context_size=4095), tmp_path, server)
    assert (own.n_threads, own.n_ctx) == (2, 4095)


def test_missing_config_file_and_non_config_yaml(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    with pytest.raises(ConfigError, match="config file not found"):
        load_configs(tmp_path / "nope.yaml", models)
    cs = load(tmp_path, "just some text\n")
    assert "expected a list of model configs" in cs.problems[0].message
    cs = load(tmp_path, "- name: a\n- plain\n")
    assert any(p.line == 2 and "not a model config mapping" in p.message for p in cs.problems)
    cs = load(tmp_path, "")
    assert cs.models == {} and cs.problems[0].level == "warning"


def test_config_error_text_has_errors_then_warnings(tmp_path):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "- name: m\n  mlock: true\n  backend: a.b\n", strict=True)
    text = str(info.value)
    assert text.index("error: model `m`: backend name") < text.index("warning: model `m`: unknown key `mlock`")


def test_config_file_inside_models_dir_is_read_once(tmp_path):
    models = tmp_path / "models"
    cfg = write(models / "all.yaml", "- name: a\n- name: b\n")
    cs = load_configs(cfg, models)
    assert sorted(cs.models) == ["a", "b"]
    assert cs.files == [cfg]
    assert not [p for p in cs.problems if "replaces" in p.message or "defined again" in p.message]


def test_a_configs_file_in_another_spelling_is_neither_listed_loose_nor_served_twice(tmp_path):
    models = tmp_path / "models"
    write(models / "m.yaml", "name: m\nparameters:\n  model: ./w.gguf\n")
    (models / "w.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    cs = load_configs(None, models)
    assert cs.loose_files() == []
    assert cs.lookup("w.gguf").name == "m" and cs.lookup(".//w.gguf").name == "m"
