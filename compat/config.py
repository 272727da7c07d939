"""LocalAI model configs: load the models dir and --config-file into a ConfigSet, look models up by name."""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from compat.config_checks import check_model, no_effect_fields, path_escapes
from compat.config_decode import decode_model
from compat.config_schema import (
    FunctionsConfig, GrammarConfig, ModelConfig, PredictionOptions, Source, TemplateConfig,
)
from compat.problems import ConfigError, Level, Problem, errors
from compat.yamlsource import parse_yaml, pos

__all__ = [
    "ConfigError", "ConfigSet", "FunctionsConfig", "GrammarConfig", "ModelConfig",
    "PredictionOptions", "Problem", "Source", "TemplateConfig", "check_model_files",
    "load_config_file", "load_configs", "no_effect_fields",
]

CONFIG_SUFFIXES = (".yaml", ".yml")
# Files in the models dir that are never model weights (LocalAI's ListModels skips the same kinds).
_NOT_MODELS = (".yaml", ".yml", ".tmpl", ".json", ".md", ".txt", ".partial", ".keep", ".sha256")


@dataclass
class FileResult:
    """What one YAML file contributes. `usable` is False when LocalAI would skip the whole file."""

    file: Path
    models: list[ModelConfig]
    problems: list[Problem]
    usable: bool


def load_config_file(file: Path, models_path: Path) -> FileResult:
    """Parse one file holding a list of model configs or a single mapping."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FileResult(file, [], [Problem(file, 0, 0, "error", "config file not found")], False)
    except (OSError, UnicodeDecodeError) as exc:
        return FileResult(file, [], [Problem(file, 0, 0, "error", f"cannot read config file: {exc}")], False)

    parsed = parse_yaml(text, file)
    problems = list(parsed.problems)
    if parsed.root is None:
        if not parsed.failed:
            problems.append(Problem(file, 0, 0, "warning", "the file is empty: it defines no models"))
        return FileResult(file, [], problems, not parsed.failed)

    root = parsed.root
    if isinstance(root, yaml.SequenceNode):
        entries = root.value
    elif isinstance(root, yaml.MappingNode):
        entries = [root]
    else:
        line, col = pos(root)
        problems.append(Problem(file, line, col, "error",
                                "expected a list of model configs (or one model config mapping), "
                                f"found the text {root.value[:40]!r}",
                                "each model starts with `- name: ...`"))
        return FileResult(file, [], problems, False)

    models: list[ModelConfig] = []
    decode_failed = False
    for entry in entries:
        line, col = pos(entry)
        if not isinstance(entry, yaml.MappingNode):
            problems.append(Problem(file, line, col, "error", "list item is not a model config mapping",
                                    "each model is a mapping: `- name: ...` with its keys indented below"))
            decode_failed = True
            continue
        result = decode_model(entry, file)
        cfg = result.config
        cfg.source = Source(file, line)
        problems += _named(cfg.name, result.fatal + result.notes)
        decode_failed |= bool(result.fatal)
        checks = check_model(cfg, file, models_path)
        problems += checks
        if not any(not p.localai_loads for p in errors(checks)) and not result.fatal:
            models.append(cfg)

    if decode_failed and not parsed.failed:
        problems.append(Problem(file, 0, 0, "info", "LocalAI skips this whole file: a value of the wrong "
                                "type makes the YAML decode fail for every model in it"))
    usable = not parsed.failed and not decode_failed
    _note_duplicates(models, problems)
    return FileResult(file, models if usable else [], problems, usable)


def _named(name: str, found: list[Problem]) -> list[Problem]:
    if not name:
        return found
    return [replace(p, message=f"model `{name}`: {p.message}") for p in found]


def _note_duplicates(models: list[ModelConfig], problems: list[Problem]) -> None:
    first: dict[str, ModelConfig] = {}
    for cfg in models:
        if cfg.name in first and cfg.source:
            earlier = first[cfg.name].source
            problems.append(Problem(cfg.source.file, cfg.source.line, 0, "warning",
                                    f"model `{cfg.name}` is defined again (first at line "
                                    f"{earlier.line if earlier else '?'}); this later definition wins"))
        first.setdefault(cfg.name, cfg)


@dataclass
class ConfigSet:
    """All model configs the server knows, by name, plus every problem found loading them."""

    models_path: Path
    models: dict[str, ModelConfig] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def lookup(self, name: str) -> ModelConfig | None:
        """LocalAI's request-time lookup: a config name, else `<models>/<name>.yaml`, else a bare
        GGUF file. A file name is taken in one spelling (`./m.gguf`, `.//m.gguf` are `m.gguf`),
        and a file a config serves is that config: one file, one model process."""
        if name in self.models:
            return self.models[name]
        if not name or len(name) > MAX_NAME_LENGTH or "\0" in name or not _inside(self.models_path, name):
            return None
        name = posixpath.normpath(name)
        if name in self.models:
            return self.models[name]
        yaml_file = self.models_path / f"{name}.yaml"
        if yaml_file.is_file() and _inside(self.models_path, f"{name}.yaml"):
            result = load_config_file(yaml_file, self.models_path)
            return result.models[0] if result.models else None
        serving = self._served_files().get(name)
        if serving is not None:
            return serving
        bare = self.models_path / name
        if bare.is_file() and is_gguf_file(bare):
            return ModelConfig(name=name, parameters=PredictionOptions(model=name))
        return None

    def loose_files(self) -> list[str]:
        """GGUF files in the models path no config points at (LocalAI lists these in /v1/models
        too; other files there are not models, and lookup does not serve them either)."""
        if not self.models_path.is_dir():
            return []
        used = self._served_files()
        out = []
        for entry in sorted(self.models_path.iterdir()):
            if (entry.is_file() and not entry.name.startswith(".")
                    and not entry.name.lower().endswith(_NOT_MODELS) and entry.name not in used
                    and is_gguf_file(entry)):
                out.append(entry.name)
        return out

    def _served_files(self) -> dict[str, ModelConfig]:
        """The model files configs serve, by their one spelling (what lookup and the listing of
        loose files both go by)."""
        out: dict[str, ModelConfig] = {}
        for cfg in self.models.values():
            if cfg.parameters.model:
                out.setdefault(posixpath.normpath(cfg.parameters.model), cfg)
        return out

    def has_errors(self) -> bool:
        return bool(errors(self.problems))


def load_configs(config_file: Path | None, models_path: Path, *, strict: bool = True) -> ConfigSet:
    """Models dir `*.yaml`/`*.yml` first, then `config_file`; a later definition of a name wins.

    strict=True raises ConfigError naming every error; strict=False keeps what LocalAI would keep
    (a broken file is skipped whole, an invalid entry alone) and records the problems.
    """
    models_path = Path(models_path)
    configset = ConfigSet(models_path)
    sources: list[Path] = []
    config_resolved = Path(config_file).resolve() if config_file else None
    if models_path.is_dir():
        for entry in sorted(models_path.iterdir()):
            if (entry.is_file() and entry.suffix.lower() in CONFIG_SUFFIXES and not entry.name.startswith(".")
                    and entry.resolve() != config_resolved):
                sources.append(entry)
    else:
        configset.problems.append(Problem(models_path, 0, 0, "warning", "the models path does not exist",
                                          "create it and put the GGUF files there, or pass --models-path"))
    if config_file:
        sources.append(Path(config_file))

    for source in sources:
        result = load_config_file(source, models_path)
        configset.files.append(source)
        configset.problems += result.problems
        for cfg in result.models:
            previous = configset.models.get(cfg.name)
            if previous is not None and previous.source and previous.source.file != source:
                configset.problems.append(Problem(
                    source, cfg.source.line if cfg.source else 0, 0, "info",
                    f"model `{cfg.name}` replaces the definition from {previous.source}"))
            configset.models[cfg.name] = cfg

    if strict and configset.has_errors():
        raise ConfigError(configset.problems)
    return configset


def check_model_files(configset: ConfigSet, level: Level = "warning") -> list[Problem]:
    """A problem for each config whose model (or mmproj) file is not in the models path."""
    out = []
    for cfg in configset.models.values():
        for key, relative in (("parameters.model", cfg.parameters.model), ("mmproj", cfg.mmproj)):
            if not relative or "://" in relative or path_escapes(relative):
                continue
            target = configset.models_path / relative
            if target.is_file():
                continue
            line, col = cfg.locations.get(key, (cfg.source.line if cfg.source else 0, 0))
            out.append(Problem(cfg.source.file if cfg.source else None, line, col, level,
                               f"model `{cfg.name}`: {key} file {relative} is not in the models path "
                               f"{configset.models_path}",
                               "put the file there, or correct the name (relative to the models path)"))
    return out


# Longer names cannot be files (NAME_MAX is 255 on Linux); they are unknown models, not errors.
MAX_NAME_LENGTH = 255
GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)  # what llama.cpp reads


def gguf_header_problem(path: Path) -> str | None:
    """Why the file cannot be a GGUF model llama.cpp loads (its magic, its version), or None.
    The reason never quotes the file's bytes: the file may be anything a symlink points at."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if head[:4] != GGUF_MAGIC:
        return "is not a GGUF file (it does not start with the GGUF magic)"
    version = int.from_bytes(head[4:8], "little") if len(head) == 8 else 0
    if version not in GGUF_VERSIONS:
        return f"is a GGUF file of version {version}, which llama.cpp does not read (it reads 2 and 3)"
    return None


def is_gguf_file(path: Path) -> bool:
    """Whether the file starts like a GGUF llama.cpp reads: anything else is not a model."""
    return gguf_header_problem(path) is None


def _inside(models_path: Path, relative: str) -> bool:
    if path_escapes(relative):
        return False
    base = posixpath.normpath(str(models_path))
    joined = posixpath.normpath(base + "/" + relative)
    return joined.startswith(base.rstrip("/") + "/")
