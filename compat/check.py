"""`llamaslots check-config`: validate LocalAI model configs and show what each model will run with."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Mapping, TextIO

from compat.config import ConfigSet, ModelConfig, check_model_files, load_configs, no_effect_fields
from compat.model_settings import ServerDefaults, gguf_context_length, load_settings
from compat.prompt_templates import TemplateOutsidePath, template_source
from compat.request_params import merge_generation_params
from compat.settings import SettingsError, settings_from_env
from compat.problems import Problem

EXIT_OK, EXIT_WARNINGS, EXIT_ERRORS = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamaslots check-config",
        description="Check LocalAI model configs (the --config-file list and the models path's *.yaml) "
                    "and print each model's effective settings. Exit 0: fine, 1: warnings, 2: errors.",
    )
    parser.add_argument("file", nargs="?", type=Path,
                        help="config file (a YAML list of models, as for --config-file); "
                             "without it only the models path's *.yaml files are checked")
    parser.add_argument("--models-path", type=Path, default=None,
                        help="models directory (default: $LOCALAI_MODELS_PATH, $MODELS_PATH or ./models)")
    return parser


def main(argv: list[str], environ: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    out = out or sys.stdout
    models_path = args.models_path or Path(env.get("LOCALAI_MODELS_PATH") or env.get("MODELS_PATH") or "models")
    if args.file is None and not models_path.is_dir():
        print(f"error: no config file given and the models path {models_path} does not exist", file=out)
        return EXIT_ERRORS

    configset = load_configs(args.file, models_path, strict=False)
    missing = check_model_files(configset, "warning") if models_path.is_dir() else []
    problems = sorted(configset.problems + missing, key=Problem.sort_key)
    try:
        defaults = settings_from_env(env).model_defaults()
    except SettingsError as exc:
        print(f"error: {exc}", file=out)
        return EXIT_ERRORS

    for cfg in configset.models.values():
        _print_model(cfg, configset, defaults, out)
    if not configset.models:
        print("no usable models", file=out)

    shown = [p for p in problems if p.level != "info"] + [p for p in problems if p.level == "info"]
    if shown:
        print("\nproblems:", file=out)
        for p in shown:
            print(f"  {p}", file=out)
    n_err = sum(p.level == "error" for p in problems)
    n_warn = sum(p.level == "warning" for p in problems)
    print(f"\n{len(configset.models)} model(s), {n_err} error(s), {n_warn} warning(s)", file=out)
    if n_err:
        return EXIT_ERRORS
    return EXIT_WARNINGS if n_warn else EXIT_OK


def _print_model(cfg: ModelConfig, configset: ConfigSet, defaults: ServerDefaults, out: TextIO) -> None:
    """The settings `run` would load and sample this model with, from the functions it uses."""
    rows: list[tuple[str, str, str]] = []

    def row(key: str, value, note: str = "") -> None:
        if not note and not cfg.given(key):
            note = "default"
        rows.append((key, _show(value), note))

    try:
        load = load_settings(cfg, configset.models_path, defaults)
    except ValueError as exc:
        print(f"\nmodel {cfg.name}  ({cfg.source})\n  cannot be loaded: {exc}", file=out)
        return
    params = merge_generation_params(cfg, {}, endpoint="chat")
    sampling = params.sampling
    model_file = load.model_path
    row("backend", cfg.backend or "(auto: llama-cpp)")
    row("parameters.model", cfg.parameters.model,
        "" if not cfg.parameters.model else ("found" if model_file.is_file() else f"missing: {model_file}"))
    trained = gguf_context_length(model_file) if model_file.is_file() else None
    if load.n_ctx:
        row("context_size", load.n_ctx, "" if cfg.given("context_size") else "--context-size")
    elif trained:
        rows.append(("context_size", str(load.context_for(trained)),
                     f"from the GGUF: trained {trained}, capped at {load.default_ctx_cap}"))
    else:
        rows.append(("context_size", "(from the GGUF)",
                     f"its trained context, capped at {load.default_ctx_cap}"))
    slot_note = ("options parallel" if cfg.option("parallel")
                 else "LLAMACPP_PARALLEL" if defaults.parallel else "default")
    rows.append(("slots", str(load.n_slots), slot_note))
    n_ctx = load.n_ctx or (load.context_for(trained) if trained else None)
    if load.kv_unified:
        per_request = "all of context_size (one KV pool shared by the slots)"
    else:
        ctx = f"{load.per_request_context(n_ctx)} tokens" if n_ctx else "context_size"
        per_request = f"{ctx} (context_size / {load.n_slots}: kv_unified:false, LocalAI's split)"
    rows.append(("context per request", per_request, ""))
    row("gpu_layers", load.n_gpu_layers, "" if cfg.given("gpu_layers") else "default: all layers")
    row("threads", load.n_threads, "" if cfg.given("threads") else
        "--threads" if defaults.threads else "default: physical cores")
    row("mmap", load.use_mmap)
    row("mmlock", load.use_mlock)
    row("flash_attention", load.flash_attention)
    row("cache_type_k", load.cache_type_k or "f16")
    row("cache_type_v", load.cache_type_v or "f16")
    row("embeddings", load.embeddings)
    row("parameters.batch", load.n_batch)
    for key in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
        row(f"parameters.{key}", getattr(sampling, key))
    row("parameters.seed", "random per request" if sampling.seed is None else sampling.seed)
    row("parameters.max_tokens", "unlimited" if params.max_tokens is None else params.max_tokens)
    for key in ("repeat_penalty", "repeat_last_n", "frequency_penalty", "presence_penalty"):
        row(f"parameters.{key}", getattr(sampling, key))
    row("mirostat", sampling.mirostat)
    if sampling.mirostat:
        row("mirostat_tau", sampling.mirostat_tau)
        row("mirostat_eta", sampling.mirostat_eta)
    row("stopwords", list(params.stop))
    for key in ("chat", "chat_message", "completion", "edit", "function"):
        value = getattr(cfg.template, key)
        if value:
            rows.append((f"template.{key}", _describe_template(configset, value), ""))
    if not cfg.template.has_template():
        row("template", "(none)", "the GGUF's own chat template is used")
    if cfg.given("template.use_tokenizer_template"):
        row("template.use_tokenizer_template", cfg.template.use_tokenizer_template)
    if cfg.given("template.join_chat_messages_by_character"):
        row("template.join_chat_messages_by_character", cfg.template.join_character)
    if cfg.system_prompt:
        row("system_prompt", cfg.system_prompt)
    if cfg.roles:
        row("roles", cfg.roles)
    if cfg.options:
        row("options", cfg.options)
    shown = {r[0] for r in rows}
    for path, reason in no_effect_fields(cfg):
        value = _get(cfg, path)
        if path in shown:
            rows = [(k, v, f"no effect here: {reason}" if k == path else n) for k, v, n in rows]
        else:
            rows.append((path, _show(value), f"no effect here: {reason}"))

    print(f"\nmodel {cfg.name}  ({cfg.source})", file=out)
    width = max(len(r[0]) for r in rows)
    for key, value, note in rows:
        line = f"  {key.ljust(width)}  {value}"
        if note:
            line += f"   ({note})"
        print(line, file=out)


def _describe_template(configset: ConfigSet, value: str) -> str:
    try:
        text, file = template_source(configset.models_path, value)
    except TemplateOutsidePath:
        return "(outside the models path)"
    except OSError as exc:
        return f"(unreadable: {exc})"
    if file is not None:
        return f"file {file}"
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"inline, {lines} line(s): {first[:50]!r}"


def _get(cfg: ModelConfig, path: str):
    obj = cfg
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value and "\n" not in value and len(value) <= 60 else repr(value[:60])
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
