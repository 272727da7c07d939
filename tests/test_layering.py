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


def test_compat_tests_run_without_llama_cpp():
    """The compat test modules import no llama.cpp: LocalAI's formats are checked without a build."""
    test_modules = sorted(
        "tests.compat." + ".".join(p.relative_to(ROOT / "tests" / "compat").with_suffix("").parts)
        for p in (ROOT / "tests" / "compat").rglob("test_*.py")
    )
    code = (
        "import importlib, sys\n"
        "sys.modules['llama_cpp'] = None  # importing it now raises ImportError\n"
        f"for m in {test_modules!r}: importlib.import_module(m)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert len(test_modules) > 10
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
