"""`llamaslots prompt`: print the exact prompt a request makes for a model (same code as the endpoints)."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal, Sequence

from compat.config import load_configs
from compat.jinja_chat import ChatTemplateError
from compat.prompt import (
    PromptRequestError, build_chat_prompt, build_completion_prompt, completion_prompts,
    gguf_tokenizer_template,
)
from compat.request_params import unknown_request_fields


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llamaslots prompt",
        description="Print the prompt text LocalAI would send to the backend for a request "
                    "(exactly, with no trailing newline added). Warnings go to stderr.")
    p.add_argument("--config-file", type=Path, default=os.environ.get("LOCALAI_MODELS_CONFIG_FILE")
                   or os.environ.get("CONFIG_FILE"), help="YAML list of model configs (LocalAI's --config-file)")
    p.add_argument("--models-path", type=Path, default=Path(os.environ.get("LOCALAI_MODELS_PATH")
                   or os.environ.get("MODELS_PATH") or "models"),
                   help="models directory: *.yaml configs, .tmpl templates, GGUF files (default: ./models)")
    p.add_argument("--model", required=True, help="model name, as a request's `model`")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--request", type=Path, metavar="FILE.json",
                     help="a whole OpenAI chat or completion request body ('-' for stdin)")
    src.add_argument("--messages", type=Path, metavar="FILE.json",
                     help="a JSON list of chat messages ('-' for stdin)")
    src.add_argument("--prompt", metavar="TEXT", help="a completion prompt")
    return p


def _read_json(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    return json.loads(text)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configs = load_configs(args.config_file, args.models_path, strict=False)
    config = configs.lookup(args.model)
    if config is None:
        for problem in configs.problems:
            if problem.level == "error":
                print(str(problem), file=sys.stderr)
        known = ", ".join(sorted(configs.models)) or "none"
        print(f"error: model {args.model!r} not found: not a config name (known: {known}) and not a file "
              f"in {args.models_path}", file=sys.stderr)
        return 1

    try:
        if args.prompt is not None:
            kind: Literal["chat", "completion"] = "completion"
            body: dict[str, Any] = {"prompt": args.prompt}
        elif args.messages is not None:
            data = _read_json(args.messages)
            messages = data.get("messages") if isinstance(data, dict) else data
            if not isinstance(messages, list):
                raise PromptRequestError(f"{args.messages}: expected a JSON list of messages")
            kind, body = "chat", {"messages": messages}
        else:
            body = _read_json(args.request)
            if not isinstance(body, dict):
                raise PromptRequestError(f"{args.request}: a request body must be a JSON object")
            if "messages" in body:
                kind = "chat"
            elif "prompt" in body:
                kind = "completion"
            else:
                raise PromptRequestError(f"{args.request}: the request has neither `messages` nor `prompt`")
            for name, hint in unknown_request_fields(body, kind):
                _warn(f"request field {name!r} is unknown to OpenAI and LocalAI and is ignored"
                      + (f" (did you mean {hint!r}?)" if hint else ""))
    except (OSError, ValueError) as e:  # json.JSONDecodeError and PromptRequestError are ValueErrors
        print(f"error: {e}", file=sys.stderr)
        return 2

    try:
        if kind == "chat":
            tt = gguf_tokenizer_template(config, args.models_path)
            results = [build_chat_prompt(config, args.models_path, body, tokenizer_template=tt)]
        else:
            prompts = completion_prompts(body)
            if not prompts:
                raise PromptRequestError("the completion request has no prompt string")
            if len(prompts) > 1:
                _warn(f"the request has {len(prompts)} prompts (one completion each); they are printed "
                      f"one after another, separated by a newline")
            results = [build_completion_prompt(config, args.models_path, p, body) for p in prompts]
    except (PromptRequestError, ChatTemplateError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    for r in results:
        for w in r.warnings:
            _warn(w)
    out = "\n".join(r.text for r in results)
    sys.stdout.flush()
    sys.stdout.buffer.write(out.encode("utf-8", errors="surrogateescape"))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
