"""`llamaslots compare` against a LocalAI stand-in that fails on cue, and a real llamaslots: every detector fires
where the failure is and stays quiet on clean answers."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.compare.findings import Answer, answer_findings, stream_mismatch
from tests.compare_standin import StandIn
from tests.serving import ROOT, running_server

CONFIG = """
- name: chat
  context_size: 512
  threads: 1
  parameters: {model: spm-chatml.gguf, temperature: 0}
  template: {use_tokenizer_template: true}
- name: chat2
  context_size: 512
  threads: 1
  parameters: {model: bpe-chatml.gguf, temperature: 0}
  template: {use_tokenizer_template: true}
"""

CUES = ["leak", "inst", "cut", "rpc", "broken", "drift", "long", "empty", "fine", "garbled"]


@pytest.fixture(scope="module")
def llamaslots(tmp_path_factory, gguf_path):
    models = tmp_path_factory.mktemp("cmpmodels")
    for name in ("spm-chatml", "bpe-chatml"):
        shutil.copy(gguf_path(name), models / f"{name}.gguf")
    (models / "config.yaml").write_text(CONFIG)
    with running_server(models / "config.yaml", models, models / "server.log",
                        {"LOCALAI_SINGLE_ACTIVE_BACKEND": "true"}) as base:
        yield base


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "server.cli", "compare", "--quiet", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def prompts_file(tmp_path: Path, cues: list[str]) -> Path:
    p = tmp_path / "prompts.jsonl"
    lines = ["# one chat per failure cue, and plain text lines"]
    lines += [json.dumps({"messages": [{"role": "user", "content": c}], "temperature": 0, "seed": 1}) for c in cues]
    p.write_text("\n".join(lines) + "\n")
    return p


def counts_of(md: str, side: str) -> dict[str, int]:
    col = 1 if side == "A" else 2
    out = {}
    section = md.split("## Findings", 1)[1].split("## Speed", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[1].isdigit():
            out[cells[0]] = int(cells[col])
    return out


def test_each_localai_failure_is_found_and_clean_answers_are_not(tmp_path, llamaslots):
    out = Path(os.environ.get("COMPARE_REPORT_DIR", tmp_path / "report"))
    with StandIn() as standin:
        r = compare("--a", standin.url, "--a-model", "m", "--b", llamaslots, "--b-model", "chat",
                    "--prompts", str(prompts_file(tmp_path, CUES)), "--concurrency", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    a, b = counts_of(md, "A"), counts_of(md, "B")
    # Each cue asked twice (streamed and whole).
    assert a["leaked special token"] == 4  # </s> and [/INST], both modes
    assert a['cut off, finish_reason "stop"'] == 2
    assert a["HTTP error"] == 3 and "rpc error: code = Canceled" in md  # and the garbled whole answer
    assert a["broken stream"] == 2 and "malformed answer" in md  # and the garbled stream
    assert a["stream and non-stream differ"] == 1
    assert a["cut by max_tokens"] == 2
    assert a["empty answer"] == 2
    # llamaslots on a scripted model: "Hello world!" to everything, nothing to report.
    assert set(b.values()) == {0}, b
    assert "| answers | 16 of 20 | 20 of 20 |" in md  # A's two 500s and the garbled ones are not answers
    # Where the two differ: the fine prompt is "Hello world!" on both sides.
    diffs = md.split("## Where the answers differ", 1)[1]
    assert "prompt 9 " not in diffs and "prompt 1 (leak)" in diffs
    page = (out / "report.html").read_text()
    assert "<svg" in page and "<mark>&lt;/s&gt;</mark>" in page
    # Self-contained: nothing fetched from elsewhere.
    assert "<script" not in page and 'src="http' not in page and "<link" not in page
    answers = json.loads((out / "answers.json").read_text())
    assert len(answers) == 40 and {a["side"] for a in answers} == {"A", "B"}


def test_the_swap_pass_reproduces_the_canceled_load_only_where_it_happens(tmp_path, llamaslots):
    out = tmp_path / "swap"
    with StandIn() as standin:
        r = compare("--a", standin.url, "--a-model", "m", "--a-model2", "m2", "--b", llamaslots, "--b-model", "chat",
                    "--b-model2", "chat2", "--prompts", str(prompts_file(tmp_path, ["fine", "fine", "fine"])),
                    "--concurrency", "4", "--stream", "off", "--out", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    swap = md.split("## Two models at once (swap pass)", 1)[1].split("## Answers with findings", 1)[0]
    row = next(line for line in swap.splitlines() if line.startswith("| HTTP error"))
    a_errors, b_errors = (int(x) for x in row.strip("|").split("|")[1:])
    assert a_errors >= 1 and b_errors == 0, swap
    assert "| answers |" in swap and "6 of 6 |" in swap.split("| answers |")[1]


def test_llamaslots_lists_its_models_special_tokens(tmp_path, llamaslots):
    out = tmp_path / "tok"
    r = compare("--a", llamaslots, "--a-model", "chat", "--b", llamaslots + "/v1", "--b-model", "chat",
                "--prompts", str(prompts_file(tmp_path, ["x"])), "--stream", "on", "--out", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    assert "does not list its model's own" not in md  # both sides are llamaslots
    assert "Nowhere: every prompt answered by both got the same text." in md


@pytest.mark.parametrize("content,message", [
    ('{"messages": "x"}\n', "prompts.jsonl:1: a JSON line must be a chat body"),
    ("# only a comment\n", "no prompts in it"),
    ('{"messages": [\n', "prompts.jsonl:1: not valid JSON"),
])
def test_a_prompts_file_it_cannot_use_is_exit_2_with_file_and_line(tmp_path, content, message):
    p = tmp_path / "prompts.jsonl"
    p.write_text(content)
    r = compare("--a", "http://127.0.0.1:9", "--b", "http://127.0.0.1:9", "--prompts", str(p), "--out",
                str(tmp_path / "o"))
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_an_unreachable_side_is_a_finding_not_a_crash(tmp_path):
    p = tmp_path / "p.txt"
    p.write_text("hello\n")
    r = compare("--a", "http://127.0.0.1:9", "--b", "http://127.0.0.1:9", "--prompts", str(p), "--out",
                str(tmp_path / "o"), "--timeout", "5")
    assert r.returncode == 0, r.stderr
    assert counts_of((tmp_path / "o" / "report.md").read_text(), "A")["HTTP error"] == 2


def test_detectors_on_their_own():
    def ans(text: str, finish: str = "stop", stream: bool = False, done: bool = True) -> Answer:
        return Answer("A", 0, 0, stream, "m", status=200, text=text, finish_reason=finish, done=done)

    kinds = lambda a, **kw: [f.kind for f in answer_findings(a, **kw)]  # noqa: E731
    assert kinds(ans("Fine.")) == [] and kinds(ans("東京です。")) == [] and kinds(ans("Done! 🦙")) == []
    assert kinds(ans("the temples, the")) == ["truncated_stop"]
    assert kinds(ans("京都の魅力は")) == ["truncated_stop"]
    # A list, a heading or a table ends without a full stop and is not cut.
    assert kinds(ans("Cities:\n- Paris\n- London")) == [] and kinds(ans("1. Kyoto\n2) Nara")) == []
    assert kinds(ans("Intro.\n## Sights")) == [] and kinds(ans("| a | b")) == []
    assert kinds(ans("Cities:\n- Paris is the capital of France and the seat of the")) == ["truncated_stop"]
    assert kinds(ans("Cities:\n- Paris.\nThe next one is")) == ["truncated_stop"]
    assert kinds(ans('{"a": 1')) == [] or kinds(ans('{"a": 1'), wants_json=True) == []
    assert kinds(ans("Answer 42"), wants_json=True) == [] and kinds(ans("The answer is 42")) == []
    assert kinds(ans("ok.<|im_end|>")) == ["leaked_token"]
    assert kinds(ans("ok. MODEL_EOS"), special_tokens=["MODEL_EOS"]) == ["leaked_token"]
    assert kinds(ans("a b c", "length")) == ["cut_by_length"]
    assert kinds(ans("", "stop")) == ["empty"]
    assert kinds(ans("Hi.", stream=True, done=False)) == ["broken_stream"]
    assert stream_mismatch(ans("same."), ans("same.")) is None
    found = stream_mismatch(ans("Alpha beta."), ans("Alpha gamma."))
    assert found is not None and "at character 6" in found.detail


@pytest.fixture(scope="module")
def llama_cpp_python_server(tmp_path_factory, gguf_path):
    """llama-cpp-python's own OpenAI server on the same GGUF llamaslots serves as `chat`."""
    from tests.serving import free_port, wait_until_answering

    port = free_port()
    log = tmp_path_factory.mktemp("lcp") / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path("spm-chatml")), "--model_alias", "chat",
             "--n_ctx", "512", "--n_threads", "1", "--host", "127.0.0.1", "--port", str(port),
             "--interrupt_requests", "false"], stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(base + "/v1/models", proc, log)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)


def test_llamaslots_and_llama_cpp_python_agree_and_nothing_is_flagged(tmp_path, llamaslots, llama_cpp_python_server):
    out = tmp_path / "lcp"
    r = compare("--a", llama_cpp_python_server, "--a-model", "chat", "--b", llamaslots, "--b-model", "chat",
                "--prompts", str(prompts_file(tmp_path, ["hi", "Tell me about Kyoto."])), "--out", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    assert set(counts_of(md, "A").values()) == {0} and set(counts_of(md, "B").values()) == {0}, md
    assert "Nowhere: every prompt answered by both got the same text." in md
    assert "| answers | 4 of 4 | 4 of 4 |" in md
