"""The `llamaslots` command: run | check-config | prompt."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

USAGE = """usage: llamaslots <command> [options]

commands:
  run            serve the OpenAI API (LocalAI's `local-ai run` flags and LOCALAI_* env)
  check-config   validate a LocalAI model config file and show each model's settings
  prompt         print the exact prompt the server would send to a model
  compare        the same prompts against two servers (e.g. LocalAI and llamaslots), as a report
"""

log = logging.getLogger("llamaslots")


def _setup_logging(level: str) -> None:
    lvl = {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}.get((level or "info").lower(), logging.INFO)
    logging.basicConfig(level=lvl, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _demo_configs(models_path: Path):
    from compat.config import load_configs
    from server.demo import demo_config_yaml, ensure_demo_model

    model = ensure_demo_model()
    cfg_file = model.parent / "demo-config.yaml"
    text = demo_config_yaml(model.name)
    if not cfg_file.exists() or cfg_file.read_text() != text:
        tmp = cfg_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(cfg_file)
    return load_configs(cfg_file, model.parent), model.parent


def cmd_run(argv: list[str]) -> int:
    from compat.config import ConfigError, check_model_files, load_configs
    from compat.settings import SettingsError, add_run_arguments, not_acted_on, settings_from_args

    parser = argparse.ArgumentParser(prog="llamaslots run", description="Serve the OpenAI API over LocalAI model configs.")
    add_run_arguments(parser)
    try:
        settings = settings_from_args(parser.parse_args(argv), os.environ)
    except SettingsError as exc:
        parser.error(str(exc))
    _setup_logging(settings.effective_log_level)
    for note in not_acted_on(settings):
        log.info("accepted but not acted on: %s", note)

    models_path = Path(settings.models_path)
    config_file = Path(settings.config_file) if settings.config_file else None
    try:
        configs = load_configs(config_file, models_path, strict=True)
    except ConfigError as exc:
        for p in exc.problems:
            print(str(p), file=sys.stderr)
        print("llamaslots: refusing to start until the config problems above are fixed "
              "(`llamaslots check-config FILE` shows them all)", file=sys.stderr)
        return 2
    for p in configs.problems:
        log.warning("%s", p)
    # check-config only warns (the files may live on the serving machine); here they must exist.
    missing = check_model_files(configs, "error")
    if missing:
        for p in missing:
            print(str(p), file=sys.stderr)
        print("llamaslots: model files are missing from the models path", file=sys.stderr)
        return 2
    if not configs.models:
        configs, models_path = _demo_configs(models_path)
        log.info("no model configured: serving the built-in demo model as `demo` "
                 "(put GGUF files in --models-path and list them in --config-file to serve real ones)")

    from server.app import create_app
    from server.http_server import serve
    from server.manager import ManagerPolicy, ModelManager

    policy = ManagerPolicy(
        max_active=settings.effective_max_active_backends,
        defaults=settings.model_defaults(),
        idle_timeout=settings.watchdog_idle_timeout if settings.enable_watchdog_idle else None,
        watchdog_interval=settings.watchdog_interval,
        preload=tuple(settings.load_to_memory),
    )
    manager = ModelManager(configs, models_path, policy)
    app = create_app(manager, settings)
    log.info("listening on http://%s:%d", settings.host, settings.port)
    serve(app, manager, settings.host, settings.port, settings.shutdown_grace)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        return cmd_run(rest)
    if cmd == "check-config":
        from compat.check import main as check_main

        return check_main(rest)
    if cmd == "compare":
        from server.compare.main import main as compare_main

        return compare_main(rest)
    if cmd == "prompt":
        from compat.prompt_cmd import main as prompt_main

        return prompt_main(rest)
    print(f"llamaslots: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def entry() -> int:
    """Console-script entry: a closed stdout (`| head`) ends quietly, as for other CLI tools."""
    try:
        return main()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(entry())
