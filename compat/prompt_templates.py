"""Template settings -> parsed Go templates: `<models>/<name>.tmpl` or inline text, path check, cache."""
from __future__ import annotations

import os
import posixpath
import threading
from pathlib import Path
from typing import Any

from compat.gotemplate import TemplateError, parse

class TemplateCache:
    """Parsed templates by source text; parse errors are remembered too. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parsed: dict[str, Any] = {}

    def get(self, text: str):
        # Parsing under the lock keeps it to once per text; parses are short and rare.
        with self._lock:
            hit = self._parsed.get(text)
            if hit is None:
                try:
                    hit = parse(text, name="prompt")
                except TemplateError as e:
                    hit = e
                self._parsed[text] = hit
        if isinstance(hit, TemplateError):
            raise hit
        return hit


template_cache = TemplateCache()


class TemplateOutsidePath(Exception):
    pass


def _in_trusted_root(path: str, root: str) -> bool:
    # pkg/utils.InTrustedRoot: walk up the parents until "/" looking for the root.
    while path != "/":
        path = posixpath.dirname(path)
        if path == root:
            return True
    return False


def template_source(models_path: Path, value: str) -> tuple[str, Path | None]:
    """(template text, file it came from or None): `<models>/<value>.tmpl` if it exists, else value.

    Raises TemplateOutsidePath where LocalAI's path check rejects the name.
    """
    base = posixpath.normpath(os.path.abspath(str(models_path)))
    name = value + ".tmpl"
    cleaned = posixpath.normpath(posixpath.join(base, name))
    if not _in_trusted_root(cleaned, base):
        raise TemplateOutsidePath(f"template file outside path: {posixpath.join(base, name)}")
    try:
        os.stat(cleaned)
        exists = True
    except (OSError, ValueError):
        exists = False
    if exists:
        # Byte for byte: no newline translation (CRLF stays CRLF).
        with open(cleaned, "rb") as f:
            return f.read().decode("utf-8", errors="surrogateescape"), Path(cleaned)
    return value, None


def model_tmpl_exists(models_path: Path, model: str) -> bool:
    if not model:
        return False
    try:
        os.stat(os.path.join(str(models_path), model + ".tmpl"))
        return True
    except (OSError, ValueError):
        return False


def _describe(value: str) -> str:
    one = value if len(value) <= 40 and "\n" not in value else (value.split("\n", 1)[0][:40] + "...")
    return repr(one)


def evaluate_template(models_path: Path, value: str, data: Any) -> tuple[str, Path | None]:
    text, file = template_source(models_path, value)
    return template_cache.get(text).execute(data), file


def literal_name_warning(setting: str, value: str, file: Path | None, models_path: Path) -> str | None:
    if file is None and "{{" not in value:
        return (f"{setting} {_describe(value)} is not a template file ({value}.tmpl is not in "
                f"{models_path}) and has no {{{{ }}}} actions: LocalAI uses the text itself, so it is "
                f"sent literally")
    return None
