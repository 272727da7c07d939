"""ggufgen and the demo writer, checked through the bytes they write (gguf.GGUFReader, no llama.cpp)."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from gguf import GGMLQuantizationType, GGUFReader, TokenType

from server import demo, ggufgen
from server.ggufgen import (
    EOS,
    GGUFSpecError,
    HParams,
    ModelSpec,
    RandomWeights,
    Special,
    SuccessorWeights,
    bpe_vocab,
    scripted_spec,
    spm_vocab,
    unique_pieces,
    write_gguf,
)
from tests.gguf_models import MODELS, SPM_SCRIPTED


def _field(reader: GGUFReader, key: str):
    return reader.fields[key].contents()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fixture_metadata_matches_spec(gguf_path, name):
    spec = MODELS[name].spec
    r = GGUFReader(gguf_path(name))
    hp, v = spec.hparams, spec.vocab
    a = hp.arch
    assert _field(r, "general.architecture") == a
    assert _field(r, f"{a}.embedding_length") == hp.n_embd
    assert _field(r, f"{a}.block_count") == hp.n_layer
    assert _field(r, f"{a}.feed_forward_length") == hp.n_ff
    assert _field(r, f"{a}.attention.head_count") == hp.n_head
    assert _field(r, f"{a}.rope.dimension_count") == hp.n_embd // hp.n_head
    assert _field(r, f"{a}.context_length") == hp.context_length
    assert f"{a}.attention.layer_norm_rms_epsilon" in r.fields
    if hp.sliding_window:
        assert _field(r, f"{a}.attention.sliding_window") == hp.sliding_window
        assert _field(r, f"{a}.attention.sliding_window_pattern") == hp.swa_pattern
    assert _field(r, "tokenizer.ggml.model") == v.model
    assert _field(r, "tokenizer.ggml.tokens") == list(v.tokens)
    assert _field(r, "tokenizer.ggml.token_type") == list(v.token_types)
    assert _field(r, "tokenizer.ggml.eos_token_id") == v.eos_id
    assert _field(r, "tokenizer.ggml.bos_token_id") == v.bos_id
    assert _field(r, "tokenizer.ggml.add_bos_token") is v.add_bos
    if v.model == "gpt2":
        assert _field(r, "tokenizer.ggml.pre") == "gpt-2"
        assert _field(r, "tokenizer.ggml.merges") == list(v.merges)
    if spec.chat_template:
        assert _field(r, "tokenizer.chat_template") == spec.chat_template
    else:
        assert "tokenizer.chat_template" not in r.fields


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fixture_tensors_have_llama_layout_and_dtype(gguf_path, name):
    spec = MODELS[name].spec
    hp, n_vocab = spec.hparams, spec.vocab.n_vocab
    tensors = {t.name: t for t in GGUFReader(gguf_path(name)).tensors}
    # gemma3 adds q/k norms and post-attention/post-FFN norms to each layer.
    assert len(tensors) == 3 + (13 if hp.arch == "gemma3" else 9) * hp.n_layer
    # GGUF dims are innermost first: token_embd is {n_embd, n_vocab}.
    assert list(tensors["token_embd.weight"].shape) == [hp.n_embd, n_vocab]
    assert list(tensors["output.weight"].shape) == [hp.n_embd, n_vocab]
    assert list(tensors["blk.0.ffn_down.weight"].shape) == [hp.n_ff, hp.n_embd]
    assert list(tensors["blk.0.ffn_gate.weight"].shape) == [hp.n_embd, hp.n_ff]
    want = GGMLQuantizationType[spec.dtype]
    for tname, t in tensors.items():
        if tname.endswith("norm.weight"):
            assert t.tensor_type == GGMLQuantizationType.F32, tname
        else:
            assert t.tensor_type == want, tname


def test_same_spec_gives_identical_bytes(tmp_path):
    for name in ("spm-scripted", "bpe-random"):
        a = MODELS[name].write(tmp_path / "a")
        b = MODELS[name].write(tmp_path / "b")
        assert _md5(a) == _md5(b)
    # Rebuilding the spec from scratch (fresh vocab objects) must not change anything.
    rebuilt = scripted_spec("llama", [["one", " two", EOS]])
    again = scripted_spec("llama", [["one", " two", EOS]])
    assert ggufgen.spec_digest(rebuilt) == ggufgen.spec_digest(again)
    assert _md5(write_gguf(rebuilt, tmp_path / "c.gguf")) == _md5(write_gguf(again, tmp_path / "d.gguf"))


def test_different_seed_changes_bytes_and_digest(tmp_path):
    v = spm_vocab(size=400)
    a = ModelSpec(vocab=v, weights=RandomWeights(seed=1))
    b = ModelSpec(vocab=v, weights=RandomWeights(seed=2))
    assert ggufgen.spec_digest(a) != ggufgen.spec_digest(b)
    assert _md5(write_gguf(a, tmp_path / "a.gguf")) != _md5(write_gguf(b, tmp_path / "b.gguf"))


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    path = write_gguf(MODELS["spm-random"].spec, tmp_path / "m.gguf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]
    # A failure half-way through the tensors keeps the old file and removes the temp file.
    before = _md5(path)
    real_encode = ggufgen._encode
    calls = []

    def failing_encode(arr, dtype):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("disk on fire")
        return real_encode(arr, dtype)

    monkeypatch.setattr(ggufgen, "_encode", failing_encode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_gguf(MODELS["bpe-random"].spec, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.gguf"]
    assert _md5(path) == before


def test_successor_weights_follow_the_construction(gguf_path):
    spec = SPM_SCRIPTED.spec
    w = spec.weights
    assert isinstance(w, SuccessorWeights)
    r = GGUFReader(gguf_path("spm-scripted"))
    t = {x.name: x for x in r.tensors}
    emb = np.asarray(t["token_embd.weight"].data, dtype=np.float32)
    out = np.asarray(t["output.weight"].data, dtype=np.float32)
    assert emb.shape == (spec.vocab.n_vocab, spec.hparams.n_embd)
    # Each token's embedding is one-hot; scripted sources own distinct dimensions.
    assert np.all(emb.sum(axis=1) == 1.0)
    dims = {src: int(np.argmax(emb[src])) for src, _ in w.successors}
    assert len(set(dims.values())) == len(dims) and 0 not in dims.values()
    for src, nxt in w.successors:
        assert int(np.argmax(out[:, dims[src]])) == nxt
    assert int(np.argmax(out[:, 0])) == spec.vocab.eos_id
    for i in range(spec.hparams.n_layer):
        for name in ("attn_output", "ffn_down"):
            assert not np.any(np.asarray(t[f"blk.{i}.{name}.weight"].data, dtype=np.float32))


def test_spm_vocab_layout():
    v = spm_vocab([" two", "man:"], user_defined=("<tool_call>",))
    assert v.tokens[:3] == ("<unk>", "<s>", "</s>")
    assert (v.bos_id, v.eos_id, v.unk_id) == (1, 2, 0)
    assert v.tokens[3 + 0xE3] == "<0xE3>" and v.token_types[3 + 0xE3] == TokenType.BYTE
    assert v.token_types[v.id_of(Special("<|im_end|>"))] == TokenType.CONTROL
    assert v.token_types[v.id_of(Special("<tool_call>"))] == TokenType.USER_DEFINED
    # SPM only merges pairs whose concatenation is a token: every left prefix is present.
    for prefix in ("▁t", "▁tw", "▁two", "ma", "man", "man:"):
        assert prefix in v.tokens
    assert v.id_of("\n") == v.id_of(ggufgen.Byte(0x0A))
    assert v.scores is not None and v.scores[v.id_of(" two")] > v.scores[v.tokens.index("▁tw")]


def test_bpe_vocab_layout():
    v = bpe_vocab([" one", "one"], eos="<|im_end|>")
    assert v.tokens[0x20] == "Ġ" and v.tokens[0x0A] == "Ċ"
    assert len(set(v.tokens[:256])) == 256
    assert v.bos_id == v.tokens.index("<|endoftext|>") and v.eos_id == v.tokens.index("<|im_end|>")
    # Space-led words' merges rank before the others, so " one" never splits as "Ġ" + "one".
    assert v.merges == ("Ġ o", "Ġo n", "Ġon e", "o n", "on e")
    assert v.id_of(" one") == v.tokens.index("Ġone")
    assert v.id_of(ggufgen.Byte(0xE3)) == 0xE3


def test_vocab_size_padding_is_exact():
    assert spm_vocab(size=1000).n_vocab == 1000
    assert bpe_vocab(size=1000).n_vocab == 1000
    with pytest.raises(GGUFSpecError, match="smaller than"):
        spm_vocab(size=100)


def test_script_errors_name_the_problem():
    with pytest.raises(GGUFSpecError, match="scripted twice"):
        scripted_spec("llama", [["a", " b", EOS], ["a", " c"]])
    with pytest.raises(GGUFSpecError, match="need n_embd > "):
        scripted_spec("gpt2", [[f" w{i}" for i in range(70)]], hparams=HParams())
    with pytest.raises(GGUFSpecError, match="not in the vocab"):
        scripted_spec("llama", [["a", Special("<nope>")]])
    with pytest.raises(GGUFSpecError, match="multiple of n_head"):
        ModelSpec(vocab=spm_vocab(), hparams=HParams(n_embd=64, n_head=5))
    with pytest.raises(GGUFSpecError, match="dtype must be"):
        ModelSpec(vocab=spm_vocab(), dtype="Q4_0")  # type: ignore[arg-type]


def test_scripted_spec_grows_n_embd_to_fit_the_script():
    spec = scripted_spec("gpt2", [[f" w{i}" for i in range(100)] + [EOS]])
    assert spec.hparams.n_embd > 100


def test_unique_pieces_splits_repeats_and_keeps_the_text():
    text = "the cat saw the dog in a box in a car"
    pieces = unique_pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) == len(set(pieces))
    assert all(len(p) >= 2 for p in pieces[1:])
    with pytest.raises(GGUFSpecError, match="trailing whitespace"):
        unique_pieces("hi ")


def test_realistic_model_is_about_38_mb_and_the_same_every_time(realistic_gguf, tmp_path):
    # (How long it takes is not asserted: a timed test fails on a slow CI machine, not on a bug.)
    path = write_gguf(ggufgen.realistic_random_spec(), tmp_path / "bench.gguf")
    assert 36_000_000 < path.stat().st_size < 40_000_000
    assert _md5(path) == _md5(realistic_gguf)
    r = GGUFReader(path)
    assert _field(r, "llama.vocab_size") == 8192
    assert _field(r, "general.file_type") == 7  # MOSTLY_Q8_0


# --------------------------------------------------------------------------- demo


def test_demo_model_is_small_cached_and_rewritten_only_when_stale(tmp_path):
    path = demo.ensure_demo_model(tmp_path)
    assert path.parent == tmp_path and path.name.startswith("demo-")
    assert path.stat().st_size < 1_000_000
    before = (path.stat().st_mtime_ns, _md5(path))
    assert demo.ensure_demo_model(tmp_path) == path
    assert (path.stat().st_mtime_ns, _md5(path)) == before
    # A file left by an older generator version is replaced by the current one.
    stale = tmp_path / "demo-0000000000000000.gguf"
    stale.write_bytes(b"old")
    path.unlink()
    assert demo.ensure_demo_model(tmp_path) == path
    assert not stale.exists() and _md5(path) == before[1]
    r = GGUFReader(path)
    assert "<|im_start|>assistant" in _field(r, "tokenizer.chat_template")


def test_demo_model_default_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.default_cache_dir() == tmp_path / "xdg" / "llamaslots"
    assert demo.ensure_demo_model().parent == tmp_path / "xdg" / "llamaslots"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert demo.default_cache_dir() == tmp_path / "home" / ".cache" / "llamaslots"


def test_demo_config_yaml_is_a_localai_model_list():
    entries = yaml.safe_load(demo.demo_config_yaml(Path("models dir/demo: x.gguf")))
    assert entries == [
        {
            "name": "demo",
            "context_size": 2048,
            "parameters": {"model": "models dir/demo: x.gguf"},
            "template": {"use_tokenizer_template": True},
        }
    ]
