"""`llamaslots check-config`: output and exit codes (0 ok, 1 warnings, 2 errors)."""
import io
from pathlib import Path

from compat import check

SEED = Path(__file__).parent / "data" / "seed-config.yaml"
CORRECTED = Path(__file__).resolve().parents[2] / "configs" / "seed-models.yaml"


def run(argv, env=None):
    out = io.StringIO()
    code = check.main([str(a) for a in argv], environ=env or {}, out=out)
    return code, out.getvalue()


def models_dir(tmp_path, *files):
    models = tmp_path / "models"
    models.mkdir()
    for name in files:
        (models / name).write_bytes(b"GGUF")
    return models


def test_clean_config_exits_0_and_shows_effective_settings(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- name: m\n  context_size: 2048\n  f16: true\n  parameters:\n    model: m.gguf\n"
                   "    temperature: 0.2\n  options: [parallel:4]\n")
    code, out = run([cfg, "--models-path", models])
    assert code == 0, out
    assert "model m" in out
    assert "parameters.temperature" in out and "0.2" in out
    assert "parameters.top_p" in out and "0.95   (default)" in out
    assert "f16" in out and "no effect here" in out
    assert "all of context_size" in out  # unified KV: one request may use all 2048
    assert "1 model(s), 0 error(s), 0 warning(s)" in out
    split = tmp_path / "split.yaml"
    split.write_text("- name: m\n  context_size: 2048\n  parameters:\n    model: m.gguf\n"
                     "  options: [parallel:4, kv_unified:false]\n")
    code, out = run([split, "--models-path", models])
    assert "512 tokens (context_size / 4" in out  # LocalAI's split


def test_missing_model_file_is_a_warning_exit_1(tmp_path):
    models = models_dir(tmp_path)
    code, out = run([CORRECTED, "--models-path", models])
    assert code == 1
    assert "vicuna-13b-v1.5.Q8_0.gguf is not in the models path" in out
    assert "3 model(s), 0 error(s), 3 warning(s)" in out


def test_seed_config_exits_2_with_the_fix(tmp_path):
    models = models_dir(tmp_path)
    code, out = run([SEED, "--models-path", models])
    assert code == 2
    assert f"{SEED}:38:11: error:" in out and "chat: |-" in out
    assert "no usable models" in out


def test_models_path_from_env_and_models_dir_only(tmp_path):
    models = models_dir(tmp_path, "x.gguf")
    (models / "x.yaml").write_text("name: x\nparameters:\n  model: x.gguf\n")
    code, out = run([], {"LOCALAI_MODELS_PATH": str(models)})
    assert code == 0 and "model x" in out


def test_no_file_and_no_models_dir_is_an_error(tmp_path):
    code, out = run(["--models-path", tmp_path / "absent"])
    assert code == 2 and "does not exist" in out


def test_tool_call_settings_take_effect_and_xml_formats_do_not(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- name: m\n  parameters:\n    model: m.gguf\n  function:\n    disable_no_action: true\n"
                   "    response_regex: ['(?P<name>\\\\w+)']\n    xml_format_preset: qwen3-coder\n"
                   "    grammar:\n      parallel_calls: true\n      triggers: [{word: '<tool_call>'}]\n")
    code, out = run([cfg, "--models-path", models])
    assert code == 0, out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  function")}
    assert "XML tool-call formats are not implemented" in lines["function.xml_format_preset"]
    assert "lazy grammars are not implemented" in lines["function.grammar.triggers"]
    for applied in ("function.grammar.parallel_calls", "function.response_regex", "function.disable_no_action"):
        assert "no effect" not in lines.get(applied, ""), lines[applied]


def test_tool_call_regex_go_refuses_is_an_error_at_its_line(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- name: m\n  parameters: {model: m.gguf}\n  function:\n    json_regex_match:\n"
                   "      - '(?<=x)\\{.*\\}'\n    replace_llm_results:\n      - {key: '(a', value: b}\n")
    code, out = run([cfg, "--models-path", models])
    assert code == 2, out
    assert "function.json_regex_match[0] '(?<=x)\\\\{.*\\\\}' is not a Go regexp" in out
    assert "function.replace_llm_results[0] '(a' is not a Go regexp: error parsing regexp: missing closing )" in out
    assert "c.yaml:4:" in out or "c.yaml:5:" in out


# --- check-config runs the serving code (issue: one source of truth) ------------------------------

def test_go_invalid_regex_is_an_error_and_go_valid_named_group_is_clean(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: m\n  parameters: {model: m.gguf}\n  cutstrings:\n    - '(?=x)a'\n")
    code, out = run([bad, "--models-path", models])
    assert code == 2, out
    assert "bad.yaml:3:3: error: model `m`: cutstrings[0] '(?=x)a' is not a Go regexp" in out
    assert "invalid or unsupported Perl syntax: `(?=`" in out
    good = tmp_path / "good.yaml"
    good.write_text("- name: m\n  parameters: {model: m.gguf}\n  extract_regex: ['(?<n>a)']\n")
    code, out = run([good, "--models-path", models])
    assert code == 0, out


def test_inline_template_that_does_not_parse_is_an_error_at_its_line(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    cfg = tmp_path / "c.yaml"
    cfg.write_text('- name: m\n  parameters: {model: m.gguf}\n  template: {chat: "{{ .Input "}\n')
    code, out = run([cfg, "--models-path", models])
    assert code == 2, out
    assert "c.yaml:3:" in out and "`template.chat` does not parse: template: prompt:1: unclosed action" in out


def test_block_template_error_points_into_the_block(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- name: m\n  parameters: {model: m.gguf}\n  template:\n    chat: |\n"
                   "      line one {{.Input}}\n      line two {{ nosuch }}\n")
    code, out = run([cfg, "--models-path", models])
    assert code == 2, out
    # Go's parse errors name a line, not a column: line 2 of the template is line 6 of the file.
    assert 'c.yaml:6: error: model `m`: `template.chat` does not parse: template: prompt:2: function "nosuch" not defined' in out


def test_template_that_fails_when_executed_warns_with_its_position(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- name: m\n  parameters: {model: m.gguf}\n  template:\n    chat: |\n"
                   "      {{.Input}}\n      {{ index .Functions 0 }}\n")
    code, out = run([cfg, "--models-path", models])
    assert code == 1, out
    assert "c.yaml:6:10: warning: model `m`: `template.chat` fails on a sample request" in out
    assert "error calling index" in out


def test_template_file_errors_name_the_tmpl_file(tmp_path):
    models = models_dir(tmp_path, "m.gguf")
    (models / "chat.tmpl").write_text("ok\n{{if .Input}}\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- name: m\n  parameters: {model: m.gguf}\n  template: {chat: chat}\n")
    code, out = run([cfg, "--models-path", models])
    assert code == 2, out
    assert f"{models / 'chat.tmpl'}:3: error: model `m`: `template.chat` does not parse" in out


def test_effective_settings_are_the_ones_run_loads(tmp_path, gguf_path):
    from compat.config import load_configs
    from compat.model_settings import load_settings
    from compat.settings import settings_from_env

    models = tmp_path / "models"
    models.mkdir()
    (models / "m.gguf").write_bytes(gguf_path("spm-random").read_bytes())
    cfg = tmp_path / "c.yaml"
    cfg.write_text("- name: m\n  parameters: {model: m.gguf}\n")
    env = {"LOCALAI_THREADS": "3", "LLAMACPP_PARALLEL": "6"}
    code, out = run([cfg, "--models-path", models], env=env)
    load = load_settings(load_configs(cfg, models).models["m"], models,
                         settings_from_env(env).model_defaults())
    assert (load.n_threads, load.n_slots) == (3, 6)
    shown = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.startswith("  ")}
    assert (shown["threads"], shown["slots"]) == ("3", "6")
    # No context_size: the GGUF's trained context, capped as the runtime caps it.
    assert shown["context_size"] == str(load.context_for(2048))
    assert "(from the GGUF: trained 2048, capped at 8192)" in out
