"""YAML nodes -> config dataclasses, with yaml.v3's typing rules and teaching messages for mistakes."""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compat.config_schema import (
    FLASH_ATTENTION_VALUES, KNOWN_USECASES, FunctionsConfig, GrammarConfig, ModelConfig,
    PredictionOptions, TemplateConfig, TextSpan,
)
from compat.problems import Problem
from compat.yamlsource import is_null, pos, to_python

_TAG = "tag:yaml.org,2002:"
# yaml.v3 accepts these YAML 1.1 words only when decoding into a bool field.
_TRUE = {"true", "True", "TRUE", "y", "Y", "yes", "Yes", "YES", "on", "On", "ON"}
_FALSE = {"false", "False", "FALSE", "n", "N", "no", "No", "NO", "off", "Off", "OFF"}

# Dotted prefix -> the dataclass decoded there.
LEVELS: dict[str, type] = {
    "": ModelConfig,
    "parameters": PredictionOptions,
    "template": TemplateConfig,
    "function": FunctionsConfig,
    "function.grammar": GrammarConfig,
}
# Blocks whose upstream schema grows often: unknown keys there are only "info".
_OPEN_LEVELS = {"function", "function.grammar"}

# Names people bring from llama.cpp, llama-cpp-python, Ollama or OpenAI, with LocalAI's spelling.
_MISNAMED = {
    "mlock": "mmlock", "use_mlock": "mmlock", "use_mmap": "mmap",
    "n_ctx": "context_size", "ctx_size": "context_size", "num_ctx": "context_size",
    "context_length": "context_size", "context_window": "context_size",
    "n_gpu_layers": "gpu_layers", "ngl": "gpu_layers", "num_gpu": "gpu_layers",
    "n_threads": "threads", "num_thread": "threads",
    "n_batch": "parameters.batch", "batch_size": "parameters.batch",
    "stop": "stopwords", "stop_words": "stopwords", "stops": "stopwords",
    "repetition_penalty": "parameters.repeat_penalty",
    "n_predict": "parameters.max_tokens", "max_new_tokens": "parameters.max_tokens",
    "num_predict": "parameters.max_tokens", "max_length": "parameters.max_tokens",
    "flash_attn": "flash_attention", "system": "system_prompt",
    "chat_template": "template.chat", "jinja": "template.use_tokenizer_template",
    "type_k": "cache_type_k", "type_v": "cache_type_v",
}
_OPTION_KEYS = {"parallel", "n_parallel", "use_jinja", "context_shift", "kv_unified", "cont_batching"}


@dataclass
class DecodeResult:
    config: ModelConfig
    # Errors yaml.v3 itself would raise (wrong types, duplicate keys): LocalAI loses the file.
    fatal: list[Problem] = field(default_factory=list)
    # Everything else (unknown keys, wrong level, questionable values).
    notes: list[Problem] = field(default_factory=list)


class _Decoder:
    def __init__(self, file: Path | None):
        self.file = file
        self.fatal: list[Problem] = []
        self.notes: list[Problem] = []
        self.locations: dict[str, tuple[int, int]] = {}
        self.text_spans: dict[str, TextSpan] = {}
        self._loader = yaml.SafeLoader("")

    # --- problems ---------------------------------------------------------------------------
    def type_error(self, node: yaml.Node, path: str, message: str, hint: str = "") -> None:
        line, col = pos(node)
        self.fatal.append(Problem(self.file, line, col, "error", f"{_show(path)}: {message}", hint))

    def note(self, node: yaml.Node, level, message: str, hint: str = "") -> None:
        line, col = pos(node)
        self.notes.append(Problem(self.file, line, col, level, message, hint))

    # --- structure --------------------------------------------------------------------------
    def dataclass_from(self, cls: type, node: yaml.Node, prefix: str):
        obj = cls()
        if is_null(node):
            return obj
        if not isinstance(node, yaml.MappingNode):
            self.type_error(node, prefix or "model entry", f"expected a mapping of keys, found {_kind(node)}",
                            "indent the keys under it, one `key: value` per line")
            return obj
        pairs = self._pairs(node, prefix)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}
        hints = typing.get_type_hints(cls)
        for key, key_node, value_node in pairs:
            path = f"{prefix}.{key}" if prefix else key
            f = fields.get(key)
            if f is None:
                self.unknown_key(key, key_node, value_node, prefix)
                continue
            self.locations[path] = pos(key_node)
            if isinstance(value_node, yaml.ScalarNode):
                self.text_spans[path] = _text_span(value_node)
            value = self.value(hints[key], value_node, path, f.metadata.get("decode"))
            if value is not _SKIP:
                setattr(obj, key, value)
        return obj

    def _pairs(self, node: yaml.MappingNode, prefix: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """Key/value pairs with YAML merge keys (`<<: *base`) applied; a duplicate own key is an error."""
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            key = _key(key_node)
            if key_node.tag == _TAG + "merge":
                continue
            if key in seen:
                self.type_error(key_node, f"{prefix}.{key}" if prefix else key,
                                f"key is already defined at line {seen[key]}",
                                "a key may appear once per mapping; delete one of them")
            seen.setdefault(key, pos(key_node)[0])
        if any(k.tag == _TAG + "merge" for k, _ in node.value):
            # A copy: the node may be an anchor decoded again elsewhere.
            node = yaml.MappingNode(node.tag, list(node.value), node.start_mark, node.end_mark)
            self._loader.flatten_mapping(node)  # as yaml.v3 does; merged pairs come first
        last = {_key(k): i for i, (k, _) in enumerate(node.value)}
        return [(_key(k), k, v) for i, (k, v) in enumerate(node.value) if last[_key(k)] == i]

    def unknown_key(self, key: str, key_node: yaml.Node, value_node: yaml.Node, prefix: str) -> None:
        here = _level_name(prefix)
        ignored = "LocalAI silently ignores it"
        if key in _OPTION_KEYS:
            self.note(key_node, "warning", f"`{key}` is not a model config key ({ignored})",
                      f'llama.cpp settings go in `options:`, e.g. `options: ["{key}:VALUE"]`')
            return
        if key in _MISNAMED:
            target = _MISNAMED[key]
            self.note(key_node, "warning", f"unknown key `{key}` {here} ({ignored})",
                      f"LocalAI spells it `{_relative(target, prefix)}`")
            return
        home = _home_of(key, prefix)
        if home is not None:
            where = "the top level of the model entry" if home == "" else f"`{home}:`"
            self.note(key_node, "warning",
                      f"`{key}` has no effect {here}: it belongs at {where} ({ignored} here)",
                      f"move it to `{_dotted(home, key)}`")
            return
        level = "info" if prefix in _OPEN_LEVELS else "warning"
        guess = _did_you_mean(key, prefix, value_node)
        self.note(key_node, level, f"unknown key `{key}` {here} ({ignored})",
                  f"did you mean `{_relative(guess, prefix)}`?" if guess else "")

    # --- values -----------------------------------------------------------------------------
    def value(self, hint, node: yaml.Node, path: str, special: str | None):
        if special:
            return getattr(self, f"special_{special}")(node, path)
        if is_null(node):
            return None if _optional(hint) else _SKIP
        base = _strip_optional(hint)
        origin = typing.get_origin(base)
        if isinstance(base, type) and dataclasses.is_dataclass(base):
            return self.dataclass_from(base, node, path)
        if base is Any:
            return to_python(node)
        if origin is list:
            return self.list_of(typing.get_args(base)[0], node, path)
        if origin is dict:
            return self.dict_of(typing.get_args(base)[1], node, path)
        return self.scalar(base, node, path)

    def scalar(self, kind: type, node: yaml.Node, path: str):
        if not isinstance(node, yaml.ScalarNode):
            self.type_error(node, path, f"expected {_type_word(kind)}, found {_kind(node)}",
                            _hint_for_collection(kind, node))
            return _SKIP
        quoted = node.style in ("'", '"')
        if kind is str:
            return node.value
        if kind is bool:
            if not quoted and node.value in _TRUE:
                return True
            if not quoted and node.value in _FALSE:
                return False
            self.type_error(node, path, f"expected true or false, found {_shown(node)}",
                            "remove the quotes" if quoted and node.value.lower() in ("true", "false") else "")
            return _SKIP
        if kind is int:
            if node.tag == _TAG + "int" and not quoted:
                return int(to_python(node))
            if node.tag == _TAG + "float" and not quoted:
                number = float(to_python(node))
                if number.is_integer():
                    return int(number)
                self.note(node, "warning", f"{_show(path)}: {node.value} is cut to {int(number)} "
                          "(the field holds a whole number)")
                return int(number)
            self.type_error(node, path, f"expected a whole number, found {_shown(node)}",
                            "remove the quotes" if quoted and _is_number(node.value) else "")
            return _SKIP
        if kind is float:
            if node.tag in (_TAG + "int", _TAG + "float") and not quoted:
                return float(to_python(node))
            self.type_error(node, path, f"expected a number, found {_shown(node)}",
                            "remove the quotes" if quoted and _is_number(node.value) else "")
            return _SKIP
        raise TypeError(f"no decoder for {kind!r} at {path}")  # schema bug, not user input

    def list_of(self, item: type, node: yaml.Node, path: str):
        if not isinstance(node, yaml.SequenceNode):
            self.type_error(node, path, f"expected a list, found {_shown(node)}",
                            f'write `{path.rsplit(".", 1)[-1]}: ["..."]` or one `- item` per line')
            return _SKIP
        out = []
        for i, child in enumerate(node.value):
            value = self.value(item, child, f"{path}[{i}]", None)
            if value is None or value is _SKIP:
                if is_null(child) and item is str:
                    out.append("")
                continue
            out.append(value)
        return out

    def dict_of(self, item: type, node: yaml.Node, path: str):
        if not isinstance(node, yaml.MappingNode):
            self.type_error(node, path, f"expected a mapping, found {_shown(node)}",
                            "write one `key: value` per line, indented under it")
            return _SKIP
        out = {}
        for key, key_node, value_node in self._pairs(node, path):
            value = self.value(item, value_node, f"{path}.{key}", None)
            if value is _SKIP:
                continue
            out[key] = "" if value is None and item is str else value
        return out

    # --- fields with their own rules --------------------------------------------------------
    def special_flash_attention(self, node: yaml.Node, path: str):
        if is_null(node):
            return _SKIP
        if isinstance(node, yaml.ScalarNode):
            if node.style not in ("'", '"'):
                if node.value in _TRUE:
                    return "on"
                if node.value in _FALSE:
                    return "off"
            normalized = FLASH_ATTENTION_VALUES.get(node.value.strip().lower())
            if normalized:
                return normalized
        self.type_error(node, path, f"expected auto, on or off, found {_shown(node)}",
                        "LocalAI v3.5+ takes auto|on|off (also enabled|disabled); older versions took true|false")
        return _SKIP

    def special_logprobs(self, node: yaml.Node, path: str):
        if is_null(node):
            return _SKIP
        if isinstance(node, yaml.ScalarNode) and node.style not in ("'", '"'):
            if node.value in _TRUE or node.value in _FALSE:
                return node.value in _TRUE
            if node.tag == _TAG + "int":
                return int(to_python(node)) > 0
        self.type_error(node, path, f"expected true/false or a number, found {_shown(node)}")
        return _SKIP

    def special_usecases(self, node: yaml.Node, path: str):
        values = self.value(list[str], node, path, None)
        if values is _SKIP or values is None:
            return values
        out = []
        for i, raw in enumerate(values):
            name = raw.strip().lower()
            if name.startswith("flag_"):
                name = name[len("flag_"):]
            if name not in KNOWN_USECASES:
                guess = difflib.get_close_matches(name, KNOWN_USECASES, 1, 0.75)
                self.note(node.value[i], "warning", f"unknown usecase `{raw}` in known_usecases (ignored)",
                          f"did you mean `{guess[0]}`?" if guess else "one of " + ", ".join(KNOWN_USECASES))
                continue
            out.append(name)
        return out

    def special_options(self, node: yaml.Node, path: str):
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                if isinstance(child, yaml.MappingNode) and len(child.value) == 1:
                    k, v = child.value[0]
                    written = f"{k.value}:{v.value}" if isinstance(v, yaml.ScalarNode) else k.value
                    self.type_error(child, path, f"option `{k.value}: ...` is a YAML mapping, not a string",
                                    f'write `- {written}` (no space after the colon) or quote it: `- "{written}"`')
                    return _SKIP
        return self.value(list[str], node, path, None)


class _Skip:
    """Marker: leave the field at its default (null value or a reported error)."""


_SKIP = _Skip()


def decode_model(node: yaml.Node, file: Path | None) -> DecodeResult:
    decoder = _Decoder(file)
    config = decoder.dataclass_from(ModelConfig, node, "")
    config.locations = decoder.locations
    config.text_spans = decoder.text_spans
    return DecodeResult(config, decoder.fatal, decoder.notes)


# --- helpers ------------------------------------------------------------------------------------

def _text_span(node: yaml.ScalarNode) -> TextSpan:
    line, col = pos(node)
    if node.style in ("|", ">"):
        # The node starts at the indicator; its text starts on the next line, at the
        # indentation of its first non-empty line.
        buffer = getattr(node.start_mark, "buffer", None) or ""
        lines = buffer.split("\n")
        indent, first = 0, line  # index of the first text line (0-based = line)
        for k in range(line, len(lines)):
            if lines[k].strip():
                indent = len(lines[k]) - len(lines[k].lstrip(" "))
                break
        return TextSpan(first + 1, indent + 1, True)
    quote = 1 if node.style in ("'", '"') else 0
    return TextSpan(line, col + quote, False)


def _key(node: yaml.Node) -> str:
    return node.value if isinstance(node, yaml.ScalarNode) else str(to_python(node))


def _optional(hint) -> bool:
    return type(None) in typing.get_args(hint) and _is_union(hint)


def _is_union(hint) -> bool:
    origin = typing.get_origin(hint)
    return origin is typing.Union or origin is types.UnionType


def _strip_optional(hint):
    if _is_union(hint):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)]


def _home_of(key: str, prefix: str) -> str | None:
    """The level where a key misplaced at `prefix` belongs, if it is a known key elsewhere."""
    for level, cls in LEVELS.items():
        if level != prefix and key in _field_names(cls):
            # `function` is both a top-level block and a template name; keep the closest reading.
            return level
    return None


def _did_you_mean(key: str, prefix: str, value: yaml.Node) -> str | None:
    """Closest known key, preferring this level, among fields that could hold this kind of value."""
    best, best_score = None, 0.0
    for level, cls in LEVELS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if not f.metadata.get("yaml", True) or not _fits(hints[f.name], value):
                continue
            score = difflib.SequenceMatcher(None, key, f.name).ratio() + (0.05 if level == prefix else 0.0)
            if score > best_score:
                best, best_score = _dotted(level, f.name), score
    return best if best_score >= 0.75 else None


def _fits(hint, node: yaml.Node) -> bool:
    """Could a field of this type hold this node? (so `templature: 0.1` is not matched to `template`)"""
    base = _strip_optional(hint)
    if base is Any or is_null(node):
        return True
    holds_mapping = dataclasses.is_dataclass(base) or typing.get_origin(base) is dict
    holds_list = typing.get_origin(base) is list
    if isinstance(node, yaml.MappingNode):
        return holds_mapping
    if isinstance(node, yaml.SequenceNode):
        return holds_list
    return not holds_mapping and not holds_list


def _dotted(level: str, key: str) -> str:
    return f"{level}.{key}" if level else key


def _relative(target: str, prefix: str) -> str:
    """Show a dotted target relative to where the user is (`parameters.batch` under parameters -> `batch`)."""
    if prefix and target.startswith(prefix + "."):
        return target[len(prefix) + 1:]
    return target


def _level_name(prefix: str) -> str:
    return "at the top level" if prefix == "" else f"under `{prefix}:`"


def _show(path: str) -> str:
    return f"`{path}`"


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return _shown(node)


def _shown(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        text = text.replace("\n", "\\n")
        return f"the string {text!r}" if node.style in ("'", '"') else repr(text)
    return _kind(node)


def _type_word(kind: type) -> str:
    return {str: "a string", int: "a whole number", float: "a number", bool: "true or false"}.get(kind, str(kind))


def _hint_for_collection(kind: type, node: yaml.Node) -> str:
    if kind is str and isinstance(node, yaml.MappingNode):
        return "a value containing ': ' must be quoted, or written as a block scalar `|-`"
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
