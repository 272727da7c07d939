"""Checks on a decoded ModelConfig: LocalAI's Validate rules plus mistakes LocalAI lets pass silently."""
from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path

from compat.config_decode import LEVELS
from compat.config_schema import (
    BACKEND_NAME, CACHE_TYPES, KNOWN_OPTIONS, LLAMA_BACKENDS, ROPE_SCALING, ModelConfig,
    split_option,
)
from compat.gotemplate import ExecError, ParseError
from compat.postprocess import validate_postprocess
from compat.tool_calls import validate_tool_regexes
from compat.problems import Problem
from compat.prompt_data import ChatMessageTemplateData, Function, PromptTemplateData
from compat.prompt_templates import TemplateOutsidePath, template_cache, template_source

TEMPLATE_KINDS = ("chat", "chat_message", "completion", "edit", "function")

# Fields that exist only in per-message data (ChatMessageTemplateData) and only in whole-prompt
# data (PromptTemplateData): the template engine refuses a field its data type lacks.
_MESSAGE_ONLY = tuple(f.name for f in dataclasses.fields(ChatMessageTemplateData)
                      if f.name not in {g.name for g in dataclasses.fields(PromptTemplateData)})
_PROMPT_ONLY = tuple(f.name for f in dataclasses.fields(PromptTemplateData)
                     if f.name not in {g.name for g in dataclasses.fields(ChatMessageTemplateData)})
_NAME_LIKE = re.compile(r"^[\w.\-/]+$")

# Turn markers in a template and the stop words that end a turn for them.
_TURN_MARKERS = (
    ("### Human", ["### Human:", "</s>"]),
    ("[INST]", ["</s>", "[INST]"]),
    ("<|im_start|>", ["<|im_end|>"]),
    ("<|start_header_id|>", ["<|eot_id|>"]),
    ("<start_of_turn>", ["<end_of_turn>"]),
    ("USER:", ["USER:", "</s>"]),
)


def path_escapes(relative: str) -> bool:
    """LocalAI's "invalid file path": absolute, or any `..` component."""
    parts = re.split(r"[\\/]", relative)
    return relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative) is not None or ".." in parts


class _Checker:
    def __init__(self, cfg: ModelConfig, file: Path | None, models_path: Path):
        self.cfg = cfg
        self.file = file
        self.models_path = Path(models_path)
        self.problems: list[Problem] = []

    def add(self, path: str | None, level, message: str, hint: str = "", *, localai_loads: bool = False) -> None:
        line, col = self.cfg.locations.get(path, (0, 0)) if path else (0, 0)
        if not line and self.cfg.source is not None:
            line, col = self.cfg.source.line, 0
        who = f"model `{self.cfg.name}`: " if self.cfg.name else ""
        self.problems.append(Problem(self.file, line, col, level, who + message, hint, localai_loads))

    def run(self) -> list[Problem]:
        c = self.cfg
        if not c.name:
            self.add(None, "error", "model entry has no `name`",
                     "add `name: my-model`; it is the id clients send as `model` "
                     "(LocalAI would fall back to the GGUF's general.name)")
        self.backend()
        self.files()
        self.templates()
        self.options()
        self.values()
        return self.problems

    def backend(self) -> None:
        b = self.cfg.backend
        if b and not BACKEND_NAME.match(b):
            self.add("backend", "error", f"backend name `{b}` is invalid (letters, digits, - and _ only)",
                     "use `llama-cpp`" if "llama" in b.lower() else "")
        elif b not in LLAMA_BACKENDS:
            self.add("backend", "warning", f"backend `{b}` is not served here: this server runs only "
                     "llama-cpp (GGUF); requests for this model will fail",
                     "use `backend: llama-cpp` for a GGUF model")

    def files(self) -> None:
        c = self.cfg
        model = c.parameters.model
        if not model:
            self.add(None, "warning", "no `parameters.model`: there is no model file to load",
                     "set `parameters: {model: file.gguf}` (a file name in the models path)")
        elif "://" in model:
            self.add("parameters.model", "warning", f"`parameters.model` is a URL ({model}); "
                     "nothing is downloaded here", "download the file into the models path and put its name here")
        elif path_escapes(model):
            self.add("parameters.model", "error", f"invalid file path `{model}`: "
                     "`parameters.model` must be relative to the models path, without `..`",
                     "put (or symlink) the file into the models path and give its name")
        if c.mmproj and "://" not in c.mmproj and path_escapes(c.mmproj):
            self.add("mmproj", "error", f"invalid file path `{c.mmproj}` in `mmproj`",
                     "give a path relative to the models path, without `..`")
        for entry in c.download_files:
            name = entry.get("filename", "") if isinstance(entry, dict) else ""
            if isinstance(name, str) and name and path_escapes(name):
                self.add("download_files", "error", f"invalid file path `{name}` in `download_files`")

    def add_at(self, path: str, file: Path | None, line: int, col: int, level, message: str,
               hint: str = "") -> None:
        """A problem at line:col (1-based; col 0 = unknown) of a template: in its .tmpl file, or
        inside the YAML value when the template is written inline. LocalAI loads such a model."""
        who = f"model `{self.cfg.name}`: " if self.cfg.name else ""
        if file is not None:
            self.problems.append(Problem(file, line, col, level, who + message, hint, True))
            return
        span = self.cfg.text_spans.get(path)
        if span is None or not line:
            self.add(path, level, message, hint, localai_loads=True)
            return
        yaml_line, yaml_col = span.locate(line, col)
        self.problems.append(Problem(self.file, yaml_line, yaml_col, level, who + message, hint, True))

    def templates(self) -> None:
        """Each template resolved, parsed and executed by the code that renders prompts."""
        t = self.cfg.template
        for kind in TEMPLATE_KINDS:
            value = getattr(t, kind)
            if not value:
                continue
            path = f"template.{kind}"
            try:
                text, file = template_source(self.models_path, value)
            except TemplateOutsidePath:
                self.add(path, "error", f"`{path}` names a template file outside the models path",
                         "LocalAI refuses it (\"template file outside path\"); keep .tmpl files in the models path")
                continue
            except OSError as exc:
                self.add(path, "error", f"`{path}`: cannot read the template file: {exc}")
                continue
            if file is None and "{{" not in value and "\n" not in value and _NAME_LIKE.match(value):
                self.add(path, "warning", f"`{path}: {value}` is used as literal prompt text, because "
                         f"{value}.tmpl does not exist in the models path",
                         f"create {self.models_path / (value + '.tmpl')} or write the template inline")
            try:
                parsed = template_cache.get(text)
            except ParseError as exc:
                self.add_at(path, file, exc.line, 0, "error", f"`{path}` does not parse: {exc}",
                            "LocalAI fails on it for every request and falls back to the untemplated text")
                continue
            if self.field_use(kind, parsed, path, file):
                self.execute(kind, parsed, path, file)
        self.stopwords()

    def field_use(self, kind: str, parsed, path: str, file: Path | None) -> bool:
        """Warn about fields the template's data type lacks; False when it did."""
        fields = parsed.root_fields()
        wrong_names = _PROMPT_ONLY if kind == "chat_message" else _MESSAGE_ONLY
        wrong = [(name, line, col) for name, line, col in fields if name in wrong_names]
        if not wrong:
            return True
        names = list(dict.fromkeys(name for name, _, _ in wrong))
        _, line, col = wrong[0]
        if kind == "chat_message":
            self.add_at(path, file, line, col + 1, "warning",
                        f"`{path}` uses {_fields(names)}, which per-message templates do not have: LocalAI "
                        "fails on it for every message and falls back to role prefix + content",
                        "use .Content/.RoleName/.Role here; `.Input` belongs in `template.chat`")
        else:
            self.add_at(path, file, line, col + 1, "warning",
                        f"`{path}` uses {_fields(names)}, which only per-message templates have: LocalAI "
                        "fails to render it on every request and sends the raw joined messages as the prompt",
                        f"this is probably a per-message template: move it to `template.chat_message` "
                        f"(and let `template.{kind}` wrap `{{{{.Input}}}}`, or drop it)")
        return False

    def execute(self, kind: str, parsed, path: str, file: Path | None) -> None:
        """Render the template on a sample request's data, as serving would."""
        c = self.cfg
        data: object
        if kind == "chat_message":
            data = ChatMessageTemplateData(SystemPrompt=c.system_prompt, Role=str(c.roles.get("user", "")),
                                           RoleName="user", Content="Hello", LastMessage=True)
        else:
            functions = None
            if kind == "function":
                functions = [Function(Name="get_weather", Description="Weather of a city",
                                      Parameters={"type": "object",
                                                  "properties": {"city": {"type": "string"}}})]
            data = PromptTemplateData(SystemPrompt=c.system_prompt, Input="Hello", Functions=functions)
        try:
            parsed.execute(data)
        except ExecError as exc:
            self.add_at(path, file, exc.line, exc.col + 1 if exc.line else 0, "warning",
                        f"`{path}` fails on a sample request: {exc}",
                        "LocalAI then falls back to the untemplated text; `llamaslots prompt` shows what a "
                        "request gets")

    def stopwords(self) -> None:
        c = self.cfg
        if c.stopwords or c.template.use_tokenizer_template:
            return
        texts = []
        for kind in TEMPLATE_KINDS:
            if getattr(c.template, kind):
                try:
                    texts.append(template_source(self.models_path, getattr(c.template, kind))[0])
                except (TemplateOutsidePath, OSError):
                    pass
        joined = "\n".join(texts)
        for marker, stops in _TURN_MARKERS:
            if marker in joined:
                where = "template.chat" if c.template.chat else None
                self.add(where, "warning", f"the template uses `{marker}` turns but there are no `stopwords`: "
                         "nothing stops the model from writing the next turn itself",
                         "add stopwords: " + ", ".join(f'"{s}"' for s in stops))
                return

    def options(self) -> None:
        for entry in self.cfg.options:
            key, value = split_option(entry)
            if key.startswith("-"):
                self.add("options", "info", f"option `{entry}` (a raw llama-server flag) has no effect here")
                continue
            if key not in KNOWN_OPTIONS:
                guess = difflib.get_close_matches(key, sorted(KNOWN_OPTIONS), 1, 0.75)
                self.add("options", "warning", f"unknown option `{key}` (LocalAI ignores it)",
                         f"did you mean `{guess[0]}`?" if guess else "")
            elif key in ("parallel", "n_parallel"):
                try:
                    n = int(value)
                except ValueError:
                    n = 0
                if n < 1:
                    self.add("options", "error", f"option `{entry}`: parallel needs a whole number >= 1",
                             "e.g. `parallel:4` for four slots")

    def values(self) -> None:
        c = self.cfg
        if c.context_size is not None and (c.context_size < -1 or c.context_size == 0):
            level = "error" if c.context_size < -1 else "warning"
            self.add("context_size", level, f"context_size {c.context_size} is not a context size",
                     "give the total tokens for all slots, e.g. 4096 (-1 = the model's trained maximum)")
        if c.mirostat is not None and c.mirostat not in (0, 1, 2):
            self.add("mirostat", "error", f"mirostat {c.mirostat} is not 0, 1 or 2")
        for name in ("cache_type_k", "cache_type_v"):
            value = getattr(c, name)
            if value and value not in CACHE_TYPES:
                self.add(name, "error", f"{name} `{value}` is not a KV cache type",
                         "one of " + ", ".join(CACHE_TYPES))
        if c.rope_scaling not in ROPE_SCALING:
            self.add("rope_scaling", "warning", f"rope_scaling `{c.rope_scaling}` is not none, linear or yarn")
        if c.tensor_split and not re.fullmatch(r"\s*[\d.]+(\s*[,/]\s*[\d.]+)*\s*", c.tensor_split):
            self.add("tensor_split", "error", f"tensor_split `{c.tensor_split}` is not a list of numbers",
                     'write proportions like "3,1" or "3/1"')
        if c.threads is not None and c.threads < 0:
            self.add("threads", "error", f"threads {c.threads} is negative")
        p = c.parameters
        if p.repeat_penalty and p.repeat_penalty != 1.0 and not p.repeat_last_n:
            self.add("parameters.repeat_penalty", "warning",
                     "repeat_penalty has no effect without repeat_last_n (LocalAI sends repeat_last_n 0, "
                     "which turns the penalty off)", "set `parameters.repeat_last_n`, e.g. 64")
        for name, index, exc in validate_postprocess(c) + validate_tool_regexes(c):
            pattern = exc.pattern
            if exc.unsupported:
                self.add(name, "error", f"{name}[{index}] {pattern!r}: Go accepts it, but this server cannot "
                         f"match it the same way ({exc.fragment})",
                         "Unicode scripts like \\p{Han} are not available here; spell the ranges out",
                         localai_loads=True)
            else:
                self.add(name, "error", f"{name}[{index}] {pattern!r} is not a Go regexp: {exc}",
                         "LocalAI stops with a fatal error when a reply reaches this pattern; "
                         "Go's regexp has no lookaround or backreferences", localai_loads=True)


def _fields(names: list[str]) -> str:
    return ", ".join(f"`.{n}`" for n in names)


def check_model(cfg: ModelConfig, file: Path | None, models_path: Path) -> list[Problem]:
    return _Checker(cfg, file, models_path).run()


def no_effect_fields(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(dotted key, reason) for each key the YAML sets that this server accepts but does not act on."""
    out = []
    for level, cls in LEVELS.items():
        for f in dataclasses.fields(cls):
            reason = f.metadata.get("no_effect")
            path = f"{level}.{f.name}" if level else f.name
            if reason and cfg.given(path):
                out.append((path, reason))
    return out
