"""compat/ is LocalAI's formats in pure Python: it must not pull in llama.cpp, FastAPI or server/."""
import pkgutil
import subprocess
import sys
from pathlib import Path

import compat

ROOT = Path(__file__).parent.parent


def test_compat_imports_neither_llama_cpp_nor_fastapi_nor_server():
    modules = [m.name for m in pkgutil.walk_packages(compat.__path__, "compat.")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('llama_cpp', 'fastapi', 'starlette', 'server'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert len(modules) > 20
    assert out.stdout.strip() == ""
