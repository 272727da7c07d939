"""`local-ai run` flags and env vars: precedence flag > env > default, parsing, ignored flags."""
import argparse

import pytest

from compat.settings import (
    DEFAULT_ADDRESS, SettingsError, add_run_arguments, not_acted_on, parse_address, parse_duration,
    settings_from_args,
)


def settings(argv, env=None):
    parser = argparse.ArgumentParser(prog="llamaslots run")
    add_run_arguments(parser)
    return settings_from_args(parser.parse_args(argv), env or {})


def test_defaults():
    s = settings([])
    assert s.address == DEFAULT_ADDRESS == "0.0.0.0:40080"
    assert (s.host, s.port) == ("0.0.0.0", 40080)
    assert str(s.models_path) == "models" and s.config_file is None
    assert s.threads is None and s.context_size is None and s.log_level == "info"
    assert s.upload_limit == 15 and s.watchdog_idle_timeout == 900 and s.watchdog_busy_timeout == 300
    assert s.watchdog_interval == 0.5 and s.effective_max_active_backends == 0
    assert s.given == {} and not_acted_on(s) == []


def test_field_note_invocation_and_env():
    env = {
        "LOCALAI_THREADS": "8", "LOCALAI_LOG_LEVEL": "debug", "LOCALAI_SINGLE_ACTIVE_BACKEND": "true",
        "BUILD_TYPE": "cublas", "PYTHON_GRPC_MAX_WORKERS": "8", "LLAMACPP_PARALLEL": "8",
        "LOCALAI_PARALLEL_REQUESTS": "true",
    }
    s = settings(["--config-file", "/localai/config.yaml", "--models-path", "/localai/model",
                  "--address", "0.0.0.0:40080"], env)
    assert str(s.config_file) == "/localai/config.yaml" and str(s.models_path) == "/localai/model"
    assert s.threads == 8 and s.log_level == "debug" and s.single_active_backend is True
    assert s.effective_max_active_backends == 1
    assert s.llamacpp_parallel == 8 and s.parallel_requests is True
    ignored = "\n".join(not_acted_on(s))
    assert "LOCALAI_PARALLEL_REQUESTS" in ignored and "PYTHON_GRPC_MAX_WORKERS" in ignored
    assert "LOCALAI_THREADS" not in ignored and "LLAMACPP_PARALLEL" not in ignored


def test_flag_beats_env_beats_default():
    env = {"LOCALAI_THREADS": "8", "THREADS": "2", "LOCALAI_ADDRESS": ":9000", "CONTEXT_SIZE": "1024"}
    s = settings(["-t", "4"], env)
    assert s.threads == 4 and s.given["threads"] == "--threads"
    assert s.port == 9000 and s.host == "0.0.0.0" and s.given["address"] == "LOCALAI_ADDRESS"
    # legacy unprefixed name works; LOCALAI_ one is preferred when both are set
    assert s.context_size == 1024 and s.given["context_size"] == "CONTEXT_SIZE"
    assert settings([], {"LOCALAI_THREADS": "8", "THREADS": "2"}).threads == 8
    assert settings(["--models-config-file", "x.yaml"], {"CONFIG_FILE": "y.yaml"}).config_file.name == "x.yaml"


@pytest.mark.parametrize("word, value", [("true", True), ("1", True), ("yes", True), ("on", True),
                                         ("TRUE", True), ("false", False), ("0", False), ("no", False),
                                         ("off", False)])
def test_bool_words(word, value):
    assert settings([], {"LOCALAI_CORS": word}).cors is value
    assert settings([f"--cors={word}"]).cors is value


def test_bool_flag_alone_is_true_and_beats_env():
    s = settings(["--single-active-backend"], {"LOCALAI_SINGLE_ACTIVE_BACKEND": "false"})
    assert s.single_active_backend is True
    assert settings(["--f16=false"], {"F16": "true"}).f16 is False


def test_lists_and_durations():
    s = settings(["--api-keys", "a, b", "--api-keys", "c"], {"LOCALAI_API_KEY": "zzz"})
    assert s.api_keys == ["a", "b", "c"]
    assert settings([], {"API_KEY": "k1,k2"}).api_keys == ["k1", "k2"]
    s = settings(["--watchdog-idle-timeout", "1h30m"], {"LOCALAI_WATCHDOG_BUSY_TIMEOUT": "90s",
                                                        "LOCALAI_WATCHDOG_INTERVAL": "250ms"})
    assert (s.watchdog_idle_timeout, s.watchdog_busy_timeout, s.watchdog_interval) == (5400, 90, 0.25)
    assert parse_duration("2") == 2.0
    assert settings([]).shutdown_grace == 30
    assert settings(["--shutdown-grace", "2m"]).shutdown_grace == 120
    assert settings([], {"LLAMASLOTS_SHUTDOWN_GRACE": "500ms"}).shutdown_grace == 0.5
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


@pytest.mark.parametrize("text, host, port", [(":8080", "0.0.0.0", 8080), ("127.0.0.1:1", "127.0.0.1", 1),
                                              ("[::]:40080", "::", 40080), ("localhost:9", "localhost", 9)])
def test_address(text, host, port):
    assert parse_address(text) == (host, port)


@pytest.mark.parametrize("bad", ["8080", "host:", "host:99999", "a:b:c"])
def test_bad_address(bad):
    with pytest.raises(ValueError):
        parse_address(bad)


def test_bad_values_name_their_source(capsys):
    with pytest.raises(SettingsError, match="LOCALAI_THREADS='many'"):
        settings([], {"LOCALAI_THREADS": "many"})
    with pytest.raises(SettingsError, match="LOCALAI_LOG_LEVEL"):
        settings([], {"LOCALAI_LOG_LEVEL": "loud"})
    with pytest.raises(SystemExit):
        settings(["--address", "nowhere"])
    assert "--address" in capsys.readouterr().err


def test_debug_and_log_level():
    assert settings(["--debug"]).effective_log_level == "debug"
    assert settings(["--debug", "--log-level", "warn"]).effective_log_level == "warn"
    assert settings([], {"LOCALAI_LOG_LEVEL": "WARNING"}).log_level == "warn"


def test_not_acted_on_lists_only_given_ignored_flags():
    # A bare bool flag takes an optional value, so positional URLs go before such flags.
    s = settings(["http://x/model.yaml", "--galleries", "[]", "--upload-limit", "30", "--cors"],
                 {"LOCALAI_DISABLE_WEBUI": "true"})
    lines = not_acted_on(s)
    assert any(line.startswith("--galleries:") for line in lines)
    assert not any(line.startswith("--upload-limit") for line in lines)  # the body size limit
    assert s.upload_limit == 30
    assert s.disable_webui and not any(line.startswith("LOCALAI_DISABLE_WEBUI") for line in lines)  # acted on
    assert any("http://x/model.yaml" in line for line in lines)
    assert not any(line.startswith("--cors") for line in lines)
    s = settings(["--single-active-backend", "--max-active-backends", "3"])
    assert s.effective_max_active_backends == 1
    assert any("overridden" in line for line in not_acted_on(s))
