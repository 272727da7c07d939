"""The status page in a real browser (headless Chromium): it draws the live slots from the JSON endpoints."""
from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests.png import count_color, read_png
from tests.serving import running_server
from tests.test_e2e_operations import CONFIG, _generating_slot, _long_stream

# Room for a generation that outlasts both browser runs, however fast the machine.
PAGE_CONFIG = CONFIG.replace("context_size: 2048", "context_size: 16384")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# The status page's colour for a generating slot (.s-generating).
GENERATING_RGB = (0x1A, 0x7F, 0x37)


def browser() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def run_browser(exe: str, url: str, *args: str) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start. The virtual
    # time budget lets the page's timers run (it refreshes every second) before the capture.
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1000,700",
         "--virtual-time-budget=4000", *args, url],
        capture_output=True, text=True, timeout=90,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory, gguf_path):
    if browser() is None:
        pytest.skip("no Chromium here: `apt-get install chromium` (Debian) to run the status page test")
    models = tmp_path_factory.mktemp("pagemodels")
    for name in ("spm-scripted", "spm-random"):
        shutil.copy(gguf_path(name), models / f"{name}.gguf")
    (models / "config.yaml").write_text(PAGE_CONFIG)
    env = {"LOCALAI_PARALLEL_REQUESTS": "true", "LLAMACPP_PARALLEL": "4"}
    with running_server(models / "config.yaml", models, models / "server.log", env) as base:
        yield base


def test_status_page_renders_live_slots_in_a_browser(live, tmp_path):
    exe = browser()
    assert exe is not None
    # A finished request for the recent-requests list, and a refused one for its error column.
    httpx.post(live + "/v1/completions", json={"model": "scripted", "prompt": "one"}, timeout=60).raise_for_status()
    httpx.post(live + "/v1/completions", json={"model": "scripted", "prompt": "one", "n": 0}, timeout=60)
    stop = threading.Event()
    t = threading.Thread(target=_long_stream, args=(live, stop, {}, 16000))
    t.start()
    try:
        _generating_slot(live, {})
        dom = run_browser(exe, live + "/", "--dump-dom")
        shot = tmp_path / "status.png"
        capture = run_browser(exe, live + "/", f"--screenshot={shot}")
    finally:
        stop.set()
        t.join(60)
    assert dom.returncode == 0, dom.stderr
    html = dom.stdout
    # The script filled the tables from the endpoints: the model, its slots, the running one.
    note = html.split('<div id="note">', 1)[1].split("</div>", 1)[0]
    assert "2 model(s) loaded" in note, note
    slots = html.split('<table id="slots">', 1)[1].split("</table>", 1)[0]
    assert slots.count("<tr>") == 1 + 4 + 4, slots  # a header, then 4 slots of each model
    assert 's-generating">generating<' in slots and ">random<" in slots
    recent = html.split('<table id="requests">', 1)[1].split("</table>", 1)[0]
    assert "POST /v1/completions" in recent and ">scripted<" in recent and 'class="num err">400<' in recent, recent

    assert capture.returncode == 0 and Path(shot).exists(), capture.stderr
    width, height, rows = read_png(Path(shot).read_bytes())
    assert (width, height) == (1000, 700)
    # The generating slot's cell is drawn: a block of its colour, not just a page of text.
    assert count_color(rows, GENERATING_RGB) > 500
