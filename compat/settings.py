"""`local-ai run`'s flags and LOCALAI_* env vars -> ServerSettings (flag > env > default)."""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from compat.model_settings import ServerDefaults

# Ours listens on :40080 (the field note's address), not LocalAI's :8080.
DEFAULT_ADDRESS = "0.0.0.0:40080"
LOG_LEVELS = ("error", "warn", "info", "debug", "trace")

_TRUE = {"true", "1", "yes", "on", "t", "y", "enabled"}
_FALSE = {"false", "0", "no", "off", "f", "n", "disabled", ""}


class SettingsError(ValueError):
    """A flag or env value that cannot be used; the message names where it came from."""


# --- value parsers (raise ValueError with a message for the user) -----------------------------

def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected true or false (or 1/0, yes/no, on/off), got {text!r}")


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go duration ("15m", "1h30m", "500ms") -> seconds; a bare number counts as seconds."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"expected a duration like 15m, 30s or 500ms, got {text!r}")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def parse_log_level(text: str) -> str:
    value = text.strip().lower()
    value = "warn" if value == "warning" else value
    if value not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return value


def parse_address(text: str) -> tuple[str, int]:
    """"host:port" as Go's net.Listen takes it; an empty host means every interface."""
    value = text.strip()
    match = re.fullmatch(r"\[(?P<v6>[^\]]*)\]:(?P<port>\d+)|(?P<host>[^:\[\]]*):(?P<port2>\d+)", value)
    if not match:
        raise ValueError(f"expected host:port such as 0.0.0.0:40080 or :8080, got {text!r}")
    host = match.group("v6") if match.group("v6") is not None else match.group("host")
    port = int(match.group("port") or match.group("port2"))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range in {text!r}")
    return (host or "0.0.0.0"), port


def _check_address(text: str) -> str:
    parse_address(text)
    return text.strip()


def _path(text: str) -> Path:
    return Path(text)


# --- the flag table -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Flag:
    dest: str
    flags: tuple[str, ...]
    envs: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str
    is_bool: bool = False
    is_list: bool = False
    # Why this server accepts the flag but does not act on it (None: acted on).
    ignored: str | None = None


_GALLERY = "model/backend galleries are not supported here; put GGUF files in the models path"
_BACKENDS = "this server has one built-in llama.cpp engine and no gRPC backends"
_NO_FILES = "this server has no image/audio/upload endpoints"

FLAGS: tuple[Flag, ...] = (
    Flag("address", ("--address",), ("LOCALAI_ADDRESS", "ADDRESS"), _check_address,
         f"bind address host:port (default {DEFAULT_ADDRESS})"),
    Flag("models_path", ("--models-path",), ("LOCALAI_MODELS_PATH", "MODELS_PATH"), _path,
         "directory with GGUF files, *.yaml model configs and *.tmpl templates (default ./models)"),
    Flag("config_file", ("--config-file", "--models-config-file"), ("LOCALAI_MODELS_CONFIG_FILE", "CONFIG_FILE"),
         _path, "YAML file with a list of model configs"),
    Flag("threads", ("--threads", "-t"), ("LOCALAI_THREADS", "THREADS"), parse_int,
         "CPU threads per model (default: physical cores)"),
    Flag("context_size", ("--context-size",), ("LOCALAI_CONTEXT_SIZE", "CONTEXT_SIZE"), parse_int,
         "default context size for models whose config has none"),
    Flag("f16", ("--f16",), ("LOCALAI_F16", "F16"), parse_bool, "f16 default for model configs",
         is_bool=True, ignored="llama.cpp ignores f16 (LocalAI's llama-cpp backend does too); "
                               "set cache_type_k/cache_type_v in the model config"),
    Flag("log_level", ("--log-level",), ("LOCALAI_LOG_LEVEL",), parse_log_level,
         "error, warn, info, debug or trace (default info)"),
    Flag("debug", ("--debug",), ("LOCALAI_DEBUG", "DEBUG"), parse_bool,
         "deprecated: same as --log-level=debug", is_bool=True),
    Flag("parallel_requests", ("--parallel-requests",), ("LOCALAI_PARALLEL_REQUESTS", "PARALLEL_REQUESTS"),
         parse_bool, "accepted for compatibility: requests to one model always run in parallel here",
         is_bool=True, ignored="requests are always batched in parallel here (as in LocalAI v4.1+)"),
    Flag("single_active_backend", ("--single-active-backend",),
         ("LOCALAI_SINGLE_ACTIVE_BACKEND", "SINGLE_ACTIVE_BACKEND"), parse_bool,
         "keep one model loaded; swap on demand (= --max-active-backends 1)", is_bool=True),
    Flag("max_active_backends", ("--max-active-backends",), ("LOCALAI_MAX_ACTIVE_BACKENDS",), parse_int,
         "most models loaded at once, least recently used unloaded first (0 = no limit)"),
    Flag("enable_watchdog_idle", ("--enable-watchdog-idle",), ("LOCALAI_WATCHDOG_IDLE", "WATCHDOG_IDLE"),
         parse_bool, "unload models idle longer than --watchdog-idle-timeout", is_bool=True),
    Flag("watchdog_idle_timeout", ("--watchdog-idle-timeout",),
         ("LOCALAI_WATCHDOG_IDLE_TIMEOUT", "WATCHDOG_IDLE_TIMEOUT"), parse_duration, "default 15m"),
    Flag("enable_watchdog_busy", ("--enable-watchdog-busy",), ("LOCALAI_WATCHDOG_BUSY", "WATCHDOG_BUSY"),
         parse_bool, "stop models busy longer than --watchdog-busy-timeout", is_bool=True,
         ignored="it would cut answers mid-generation (a field-note failure); a stuck model's "
                 "worker process fails alone instead"),
    Flag("watchdog_busy_timeout", ("--watchdog-busy-timeout",),
         ("LOCALAI_WATCHDOG_BUSY_TIMEOUT", "WATCHDOG_BUSY_TIMEOUT"), parse_duration, "default 5m"),
    Flag("watchdog_interval", ("--watchdog-interval",), ("LOCALAI_WATCHDOG_INTERVAL",), parse_duration,
         "how often the watchdogs check (default 500ms)"),
    Flag("shutdown_grace", ("--shutdown-grace",), ("LLAMASLOTS_SHUTDOWN_GRACE",), parse_duration,
         "on SIGTERM, how long in-flight requests may run on before they are cancelled (default 30s; "
         "not a LocalAI flag)"),
    Flag("api_keys", ("--api-keys",), ("LOCALAI_API_KEY", "API_KEY"), parse_list,
         "comma-separated API keys; when set, requests need `Authorization: Bearer KEY`", is_list=True),
    Flag("cors", ("--cors",), ("LOCALAI_CORS", "CORS"), parse_bool, "enable CORS", is_bool=True),
    Flag("cors_allow_origins", ("--cors-allow-origins",), ("LOCALAI_CORS_ALLOW_ORIGINS", "CORS_ALLOW_ORIGINS"),
         parse_list, "comma-separated allowed origins", is_list=True),
    Flag("upload_limit", ("--upload-limit",), ("LOCALAI_UPLOAD_LIMIT", "UPLOAD_LIMIT"), parse_int,
         "largest request body in MB (default 15); larger ones get a 413"),
    Flag("preload_models", ("--preload-models",), ("LOCALAI_PRELOAD_MODELS", "PRELOAD_MODELS"), str,
         "gallery models to install at start (JSON)", ignored=_GALLERY),
    Flag("preload_models_config", ("--preload-models-config",),
         ("LOCALAI_PRELOAD_MODELS_CONFIG", "PRELOAD_MODELS_CONFIG"), _path,
         "file of gallery models to install at start", ignored=_GALLERY),
    Flag("load_to_memory", ("--load-to-memory",), ("LOCALAI_LOAD_TO_MEMORY", "LOAD_TO_MEMORY"), parse_list,
         "comma-separated model names to load at start", is_list=True),
    Flag("disable_metrics_endpoint", ("--disable-metrics-endpoint",),
         ("LOCALAI_DISABLE_METRICS_ENDPOINT", "DISABLE_METRICS_ENDPOINT"), parse_bool,
         "do not serve /metrics", is_bool=True),
    Flag("disable_webui", ("--disable-webui",), ("LOCALAI_DISABLE_WEBUI", "DISABLE_WEBUI"), parse_bool,
         "do not serve the status page at / (the web UI here)", is_bool=True),
    Flag("external_grpc_backends", ("--external-grpc-backends",),
         ("LOCALAI_EXTERNAL_GRPC_BACKENDS", "EXTERNAL_GRPC_BACKENDS"), parse_list,
         "accepted for compatibility", is_list=True, ignored=_BACKENDS),
    Flag("backends_path", ("--backends-path",), ("LOCALAI_BACKENDS_PATH", "BACKENDS_PATH"), str,
         "accepted for compatibility", ignored=_BACKENDS),
    Flag("backend_assets_path", ("--backend-assets-path",),
         ("LOCALAI_BACKEND_ASSETS_PATH", "BACKEND_ASSETS_PATH"), str,
         "accepted for compatibility", ignored=_BACKENDS),
    Flag("galleries", ("--galleries",), ("LOCALAI_GALLERIES", "GALLERIES"), str,
         "accepted for compatibility", ignored=_GALLERY),
    Flag("autoload_galleries", ("--autoload-galleries",), ("LOCALAI_AUTOLOAD_GALLERIES",), parse_bool,
         "accepted for compatibility", is_bool=True, ignored=_GALLERY),
    Flag("backend_galleries", ("--backend-galleries",), ("LOCALAI_BACKEND_GALLERIES",), str,
         "accepted for compatibility", ignored=_GALLERY),
    Flag("autoload_backend_galleries", ("--autoload-backend-galleries",),
         ("LOCALAI_AUTOLOAD_BACKEND_GALLERIES",), parse_bool, "accepted for compatibility",
         is_bool=True, ignored=_GALLERY),
    Flag("localai_config_dir", ("--localai-config-dir",), ("LOCALAI_CONFIG_DIR",), str,
         "accepted for compatibility", ignored="runtime settings files are not read here"),
    Flag("image_path", ("--image-path",), ("LOCALAI_IMAGE_PATH", "IMAGE_PATH"), str,
         "accepted for compatibility", ignored=_NO_FILES),
    Flag("generated_content_path", ("--generated-content-path",), ("LOCALAI_GENERATED_CONTENT_PATH",), str,
         "accepted for compatibility", ignored=_NO_FILES),
    Flag("upload_path", ("--upload-path",), ("LOCALAI_UPLOAD_PATH", "UPLOAD_PATH"), str,
         "accepted for compatibility", ignored=_NO_FILES),
    Flag("disable_welcome", ("--disable-welcome",), ("LOCALAI_DISABLE_WELCOME", "DISABLE_WELCOME"), parse_bool,
         "accepted for compatibility", is_bool=True, ignored="there is no welcome page here"),
    Flag("p2p", ("--p2p",), ("LOCALAI_P2P", "P2P"), parse_bool, "accepted for compatibility",
         is_bool=True, ignored="no peer-to-peer mode here"),
    Flag("federated", ("--federated",), ("LOCALAI_FEDERATED", "FEDERATED"), parse_bool,
         "accepted for compatibility", is_bool=True, ignored="no federated mode here"),
)

# Read only from the environment (the llama-cpp backend's own variables and build settings).
ENV_ONLY: tuple[Flag, ...] = (
    Flag("llamacpp_parallel", (), ("LLAMACPP_PARALLEL",), parse_int,
         "slots per model when its config has no `options: [parallel:N]`"),
    Flag("llamacpp_grpc_servers", (), ("LLAMACPP_GRPC_SERVERS",), str, "",
         ignored="llama.cpp RPC workers are not supported here"),
    Flag("python_grpc_max_workers", (), ("PYTHON_GRPC_MAX_WORKERS",), str, "",
         ignored="only LocalAI's Python backends used it; requests here are batched by slots"),
    Flag("disable_guessing", (), ("LOCALAI_DISABLE_GUESSING",), parse_bool, "", is_bool=True,
         ignored="a model without a template always uses its GGUF chat template here"),
)

_BY_DEST = {f.dest: f for f in FLAGS + ENV_ONLY}


@dataclass
class ServerSettings:
    """Everything `llamaslots run` was told. `given` maps a field to where its value came from."""

    address: str = DEFAULT_ADDRESS
    models_path: Path = Path("models")
    config_file: Path | None = None
    threads: int | None = None
    context_size: int | None = None
    f16: bool = False
    log_level: str = "info"
    debug: bool = False
    parallel_requests: bool = False
    single_active_backend: bool = False
    max_active_backends: int = 0
    enable_watchdog_idle: bool = False
    watchdog_idle_timeout: float = 15 * 60.0
    enable_watchdog_busy: bool = False
    watchdog_busy_timeout: float = 5 * 60.0
    watchdog_interval: float = 0.5
    shutdown_grace: float = 30.0
    api_keys: list[str] = field(default_factory=list)
    cors: bool = False
    cors_allow_origins: list[str] = field(default_factory=list)
    upload_limit: int = 15
    preload_models: str | None = None
    preload_models_config: Path | None = None
    load_to_memory: list[str] = field(default_factory=list)
    disable_metrics_endpoint: bool = False
    disable_webui: bool = False
    external_grpc_backends: list[str] = field(default_factory=list)
    backends_path: str | None = None
    backend_assets_path: str | None = None
    galleries: str | None = None
    autoload_galleries: bool = False
    backend_galleries: str | None = None
    autoload_backend_galleries: bool = False
    localai_config_dir: str | None = None
    image_path: str | None = None
    generated_content_path: str | None = None
    upload_path: str | None = None
    disable_welcome: bool = False
    p2p: bool = False
    federated: bool = False
    llamacpp_parallel: int | None = None
    llamacpp_grpc_servers: str | None = None
    python_grpc_max_workers: str | None = None
    disable_guessing: bool = False
    # Positional `local-ai run URL...`: model configs to fetch.
    model_urls: list[str] = field(default_factory=list)
    given: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return parse_address(self.address)[0]

    @property
    def port(self) -> int:
        return parse_address(self.address)[1]

    @property
    def effective_log_level(self) -> str:
        """--debug means debug unless --log-level was given explicitly."""
        if self.debug and "log_level" not in self.given:
            return "debug"
        return self.log_level

    @property
    def effective_max_active_backends(self) -> int:
        """0 = no limit. --single-active-backend is max-active-backends 1 (LocalAI v3.9+)."""
        return 1 if self.single_active_backend else self.max_active_backends

    def model_defaults(self) -> ServerDefaults:
        """What model configs that leave these unset get from this server."""
        return ServerDefaults(threads=self.threads, context_size=self.context_size,
                              parallel=self.llamacpp_parallel)


def _flag_type(flag: Flag):
    def convert(text: str):
        try:
            return flag.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = flag.dest
    return convert


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `local-ai run`'s flags. Defaults stay None so that env and defaults apply afterwards."""
    for flag in FLAGS:
        kwargs: dict[str, Any] = {"dest": flag.dest, "default": None, "help": flag.help}
        if flag.ignored:
            kwargs["help"] = f"{flag.help} [no effect here: {flag.ignored}]"
        if flag.is_bool:
            # `--f16` alone means true; `--f16=false` is accepted as kong accepts it.
            parser.add_argument(*flag.flags, nargs="?", const=True, type=_flag_type(flag),
                                metavar="BOOL", **kwargs)
        elif flag.is_list:
            parser.add_argument(*flag.flags, action="append", type=_flag_type(flag), **kwargs)
        else:
            parser.add_argument(*flag.flags, type=_flag_type(flag), **kwargs)
    parser.add_argument("model_urls", nargs="*", default=None, metavar="MODEL_URL",
                        help="model config URLs to install (accepted; not downloaded here)")


def settings_from_env(environ: Mapping[str, str]) -> ServerSettings:
    """The settings the environment alone gives (tools that take no `run` flags)."""
    return settings_from_args(argparse.Namespace(), environ)


def settings_from_args(ns: argparse.Namespace, environ: Mapping[str, str]) -> ServerSettings:
    """Resolve every setting: command-line flag, else the first env var set, else the default."""
    settings = ServerSettings()
    for flag in FLAGS + ENV_ONLY:
        value = getattr(ns, flag.dest, None) if flag.flags else None
        if value is not None:
            if flag.is_list:
                value = [item for chunk in value for item in chunk]
            setattr(settings, flag.dest, value)
            settings.given[flag.dest] = flag.flags[0]
            continue
        for env in flag.envs:
            raw = environ.get(env)
            if raw is None or (raw == "" and not flag.is_bool):
                continue
            try:
                setattr(settings, flag.dest, flag.parse(raw))
            except ValueError as exc:
                raise SettingsError(f"{env}={raw!r}: {exc}") from None
            settings.given[flag.dest] = env
            break
    urls = getattr(ns, "model_urls", None)
    if urls:
        settings.model_urls = list(urls)
        settings.given["model_urls"] = "MODEL_URL"
    return settings


def not_acted_on(settings: ServerSettings) -> list[str]:
    """One line per flag/env the user gave that this server accepts but does not act on."""
    lines = []
    for dest, source in settings.given.items():
        if dest == "model_urls":
            lines.append(f"{', '.join(settings.model_urls)}: model URLs are not downloaded here; "
                         "put the files and configs in the models path")
            continue
        flag = _BY_DEST[dest]
        if flag.ignored:
            lines.append(f"{source}: accepted, no effect here: {flag.ignored}")
    if settings.single_active_backend and settings.max_active_backends > 1:
        lines.append(f"{settings.given.get('max_active_backends', '--max-active-backends')}: overridden by "
                     "--single-active-backend (one model at a time)")
    return lines
