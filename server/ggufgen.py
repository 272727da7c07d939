"""Deterministic writer of llama-architecture GGUF files (tokenizer + random or scripted weights)."""
from __future__ import annotations

import hashlib
import os
import re
import string
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from itertools import product
from pathlib import Path
from typing import Callable, Iterable, Literal, Mapping, Sequence, Union

import gguf
import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
from gguf.quants import quantize

# Bump whenever the bytes written for an unchanged spec change, so caches keyed by
# spec_digest() are rewritten.
GENERATOR_VERSION = 1

TokenizerModel = Literal["llama", "gpt2"]
DType = Literal["F32", "F16", "Q8_0"]

SPM_SPACE = "\u2581"  # '▁', SentencePiece's visible space
DEFAULT_CONTROL = ("<|im_start|>", "<|im_end|>")
_PRINTABLE_ASCII = tuple(chr(c) for c in range(0x21, 0x7F))


class GGUFSpecError(ValueError):
    """A model spec that cannot be written (names the offending field)."""


# --------------------------------------------------------------------------- token references


@dataclass(frozen=True)
class Special:
    """A control or user-defined token, by its exact text (e.g. '<|im_end|>')."""

    text: str


@dataclass(frozen=True)
class Byte:
    """The byte-fallback token of one byte (SPM '<0xE3>', BPE the GPT-2 alphabet char)."""

    value: int


@dataclass(frozen=True)
class _EosRef:
    def __repr__(self) -> str:
        return "EOS"


EOS = _EosRef()

# A plain str is a word in text form: " two" is 'two' with a leading space.
TokenRef = Union[str, Special, Byte, _EosRef]


def utf8_bytes(text: str) -> list[Byte]:
    """The byte tokens spelling `text`, one per UTF-8 byte (for split multi-byte scripts)."""
    return [Byte(b) for b in text.encode("utf-8")]


# --------------------------------------------------------------------------- vocabularies


def _gpt2_byte_alphabet() -> tuple[str, ...]:
    """Byte value -> the printable char GPT-2 BPE uses for it (index = byte)."""
    # Bytes that are printable Latin-1 keep their own char; the others are moved, in
    # order, to code points from 256 up, so every byte has a visible, unique char.
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    chars: list[str] = []
    moved = 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + moved))
            moved += 1
    return tuple(chars)


GPT2_BYTE_CHARS = _gpt2_byte_alphabet()


@dataclass(frozen=True)
class Vocab:
    """A complete tokenizer as llama.cpp reads it from `tokenizer.ggml.*`."""

    model: TokenizerModel
    tokens: tuple[str, ...]
    token_types: tuple[int, ...]
    bos_id: int
    eos_id: int
    add_bos: bool
    scores: tuple[float, ...] | None = None
    merges: tuple[str, ...] = ()
    unk_id: int | None = None
    pre: str | None = None

    def __post_init__(self) -> None:
        if self.model not in ("llama", "gpt2"):
            raise GGUFSpecError(f"tokenizer model must be 'llama' or 'gpt2', got {self.model!r}")
        n = len(self.tokens)
        if len(self.token_types) != n:
            raise GGUFSpecError(f"token_types has {len(self.token_types)} entries for {n} tokens")
        if self.scores is not None and len(self.scores) != n:
            raise GGUFSpecError(f"scores has {len(self.scores)} entries for {n} tokens")
        if len(set(self.tokens)) != n:
            dup = sorted({t for t in self.tokens if self.tokens.count(t) > 1})
            raise GGUFSpecError(f"duplicate tokens in vocab: {dup[:5]}")
        for label, tid in (("bos_id", self.bos_id), ("eos_id", self.eos_id), ("unk_id", self.unk_id)):
            if tid is not None and not 0 <= tid < n:
                raise GGUFSpecError(f"{label} {tid} outside the vocab (0..{n - 1})")
        if self.model == "gpt2" and not self.merges:
            raise GGUFSpecError("a gpt2 (BPE) vocab needs merges")

    @property
    def n_vocab(self) -> int:
        return len(self.tokens)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def piece(self, text: str) -> str:
        """How a word in text form is spelled in this vocab."""
        if self.model == "llama":
            return _spm_piece(text)
        return _bpe_piece(text)

    def id_of(self, ref: TokenRef) -> int:
        """Token id of a reference; GGUFSpecError when the vocab lacks it."""
        if isinstance(ref, _EosRef):
            return self.eos_id
        if isinstance(ref, Byte):
            if not 0 <= ref.value <= 255:
                raise GGUFSpecError(f"byte value {ref.value} outside 0..255")
            key = f"<0x{ref.value:02X}>" if self.model == "llama" else GPT2_BYTE_CHARS[ref.value]
        elif isinstance(ref, Special):
            key = ref.text
        elif isinstance(ref, str):
            key = self.piece(ref)
        else:
            raise GGUFSpecError(f"not a token reference: {ref!r}")
        try:
            return self._index[key]
        except KeyError:
            raise GGUFSpecError(f"token {ref!r} (spelled {key!r}) is not in the vocab") from None


def _spm_piece(text: str) -> str:
    # A lone control char (newline, tab) only exists as its byte token: llama.cpp's
    # SPM tokenizer turns '\n' into <0x0A>, so a NORMAL '\n' token would never be produced.
    if len(text) == 1 and (ord(text) < 0x20 or ord(text) == 0x7F):
        return f"<0x{ord(text):02X}>"
    return text.replace(" ", SPM_SPACE)


def _bpe_piece(text: str) -> str:
    return "".join(GPT2_BYTE_CHARS[b] for b in text.encode("utf-8"))


def _check_words(words: Sequence[str]) -> None:
    for w in words:
        if not isinstance(w, str) or not w:
            raise GGUFSpecError(f"words must be non-empty strings, got {w!r}")


def _filler_words(prefix: str) -> Iterable[str]:
    """Endless, prefix-closed pseudo-words: prefix+a..z, then two letters, three, ..."""
    length = 1
    while True:
        for combo in product(string.ascii_lowercase, repeat=length):
            yield prefix + "".join(combo)
        length += 1


class _VocabBuilder:
    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.types: list[int] = []
        self.scores: list[float] = []
        self.index: dict[str, int] = {}

    def add(self, token: str, ttype: int, score: float = 0.0) -> bool:
        if token in self.index:
            return False
        self.index[token] = len(self.tokens)
        self.tokens.append(token)
        self.types.append(int(ttype))
        self.scores.append(float(score))
        return True


def _add_specials(b: _VocabBuilder, control: Sequence[str], user_defined: Sequence[str]) -> None:
    for t in control:
        b.add(t, TokenType.CONTROL)
    for t in user_defined:
        if t in b.index:
            raise GGUFSpecError(f"user-defined token {t!r} is already a control token")
        b.add(t, TokenType.USER_DEFINED)


def spm_vocab(
    words: Sequence[str] = (),
    *,
    control: Sequence[str] = DEFAULT_CONTROL,
    user_defined: Sequence[str] = (),
    eos: str = "</s>",
    add_bos: bool = True,
    size: int | None = None,
    output_only: Sequence[str] = (),
) -> Vocab:
    """SentencePiece ("llama") vocab with full byte fallback.

    Layout: <unk>=0, <s>=1, </s>=2, the 256 `<0xXX>` BYTE tokens, `control` (CONTROL),
    `user_defined` (USER_DEFINED), '▁' and printable ASCII, then every word in text form
    (" two" -> '▁two') with all its left prefixes, since SPM only merges adjacent pieces whose
    concatenation is itself a token. `size` pads with pseudo-words ('▁ab') to exactly that many
    tokens. `eos` names the EOS token (default '</s>'; e.g. '<|im_end|>' for a chat model).
    `output_only` words get a token but no prefixes, so prompts rarely tokenize to them.
    """
    _check_words(words)
    _check_words(output_only)
    b = _VocabBuilder()
    b.add("<unk>", TokenType.UNKNOWN)
    b.add("<s>", TokenType.CONTROL)
    b.add("</s>", TokenType.CONTROL)
    for v in range(256):
        b.add(f"<0x{v:02X}>", TokenType.BYTE)
    _add_specials(b, control, user_defined)
    # Scores grow with piece length so longer merges win, as in a trained SPM model.
    b.add(SPM_SPACE, TokenType.NORMAL, 1.0)
    for c in _PRINTABLE_ASCII:
        b.add(c, TokenType.NORMAL, 1.0)

    def add_word(piece: str) -> None:
        for k in range(2, len(piece) + 1):
            b.add(piece[:k], TokenType.NORMAL, float(k))

    for w in words:
        piece = _spm_piece(w)
        if piece.startswith("<0x") and len(w) == 1:
            continue  # a control char: its byte token is already there
        if len(piece) == 1:
            b.add(piece, TokenType.NORMAL, 1.0)
        add_word(piece)
    for w in output_only:
        b.add(_spm_piece(w), TokenType.NORMAL, float(len(_spm_piece(w))))
    _pad(b, size, (_spm_piece(w) for w in _filler_words(" ")), add_word)
    if eos not in b.index or b.types[b.index[eos]] != TokenType.CONTROL:
        raise GGUFSpecError(f"eos {eos!r} must be a control token of the vocab")
    return Vocab(
        model="llama",
        tokens=tuple(b.tokens),
        token_types=tuple(b.types),
        scores=tuple(b.scores),
        bos_id=1,
        eos_id=b.index[eos],
        unk_id=0,
        add_bos=add_bos,
    )


def bpe_vocab(
    words: Sequence[str] = (),
    *,
    control: Sequence[str] = DEFAULT_CONTROL,
    user_defined: Sequence[str] = (),
    bos: str = "<|endoftext|>",
    eos: str = "<|endoftext|>",
    add_bos: bool = False,
    size: int | None = None,
    output_only: Sequence[str] = (),
) -> Vocab:
    """GPT-2 style byte-level BPE ("gpt2", pre-tokenizer "gpt-2") vocab.

    Layout: ids 0..255 are the byte alphabet (id == byte value; 'Ġ' is space, 'Ċ' newline),
    '<|endoftext|>' (CONTROL), `control`, `user_defined`, then the words with a left-prefix
    merge chain each ('Ġ o', 'Ġo n', 'Ġon e'). Merges of space-led words rank first, so a
    space-led word always tokenizes to itself. BPE adds no space prefix: the prompt "one"
    only hits the word "one", " one" hits " one". `output_only` words get a token but no
    merges, so no prompt ever tokenizes to them (they can only be generated).
    """
    _check_words(words)
    _check_words(output_only)
    b = _VocabBuilder()
    for ch in GPT2_BYTE_CHARS:
        b.add(ch, TokenType.NORMAL)
    b.add("<|endoftext|>", TokenType.CONTROL)
    _add_specials(b, control, user_defined)
    spaced: list[str] = []
    plain: list[str] = []

    def add_word(piece: str) -> None:
        for k in range(2, len(piece) + 1):
            if b.add(piece[:k], TokenType.NORMAL):
                (spaced if piece[0] == GPT2_BYTE_CHARS[0x20] else plain).append(f"{piece[:k - 1]} {piece[k - 1]}")

    for w in words:
        add_word(_bpe_piece(w))
    for w in output_only:
        b.add(_bpe_piece(w), TokenType.NORMAL)
    if not spaced and not plain:
        add_word(_bpe_piece("  "))  # llama.cpp refuses a gpt2 vocab without merges
    _pad(b, size, (_bpe_piece(w) for w in _filler_words(" ")), add_word)
    for label, name in (("bos", bos), ("eos", eos)):
        if name not in b.index or b.types[b.index[name]] != TokenType.CONTROL:
            raise GGUFSpecError(f"{label} {name!r} must be a control token of the vocab")
    return Vocab(
        model="gpt2",
        tokens=tuple(b.tokens),
        token_types=tuple(b.types),
        merges=tuple(spaced + plain),
        bos_id=b.index[bos],
        eos_id=b.index[eos],
        add_bos=add_bos,
        pre="gpt-2",
    )


def _pad(b: _VocabBuilder, size: int | None, fillers: Iterable[str], add_word: Callable[[str], None]) -> None:
    if size is None:
        return
    if size < len(b.tokens):
        raise GGUFSpecError(f"vocab size {size} is smaller than the {len(b.tokens)} tokens the words need")
    for piece in fillers:
        if len(b.tokens) >= size:
            break
        # Pseudo-words come shortest first, so each one's prefixes are already present
        # and it adds exactly one token.
        add_word(piece)


# --------------------------------------------------------------------------- model spec


Arch = Literal["llama", "gemma3"]


@dataclass(frozen=True)
class HParams:
    """Hyper-parameters. head_dim = n_embd / n_head; n_head_kv None means n_head.

    arch "gemma3" is the sliding-window model real ones often are: `sliding_window` > 0 turns
    llama.cpp's SWA cache on, and every `swa_pattern`-th layer attends globally (the others
    see the last `sliding_window` positions only).
    """

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int | None = None
    n_ff: int = 128
    context_length: int = 2048
    rms_eps: float = 1e-5
    rope_freq_base: float = 10000.0
    arch: Arch = "llama"
    sliding_window: int = 0
    swa_pattern: int = 2

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_head_kv is None else self.n_head_kv


@dataclass(frozen=True)
class RandomWeights:
    """Seeded normal(0, std) matrices; norms are ones."""

    seed: int = 0
    std: float = 0.02


@dataclass(frozen=True)
class SuccessorWeights:
    """Scripted next-token model: greedy decoding follows `successors` from the last token only.

    Every source token gets its own embedding dimension (all other tokens share dim 0);
    attention and FFN outputs are zero, so the final hidden state is that one-hot, and
    output.weight maps dim c to the successor with logit `margin * sqrt(n_embd)`. Tokens that
    are not sources go to `default` (None: EOS).
    """

    successors: tuple[tuple[int, int], ...]
    default: int | None = None
    margin: float = 16.0
    seed: int = 0

    @classmethod
    def from_mapping(cls, successors: Mapping[int, int], default: int | None = None, **kw) -> "SuccessorWeights":
        return cls(successors=tuple(sorted((int(s), int(t)) for s, t in successors.items())), default=default, **kw)


@dataclass(frozen=True)
class ModelSpec:
    """Everything that determines a GGUF file's bytes."""

    vocab: Vocab
    hparams: HParams = field(default_factory=HParams)
    weights: Union[RandomWeights, SuccessorWeights] = field(default_factory=RandomWeights)
    dtype: DType = "F16"
    chat_template: str | None = None
    name: str = "llamaslots-generated"

    def __post_init__(self) -> None:
        _validate(self)


def spec_digest(spec: ModelSpec) -> str:
    """Short content key of a spec: equal digests mean byte-identical files."""
    h = hashlib.sha256(f"v{GENERATOR_VERSION}|gguf{_gguf_version()}|np{np.__version__}|{spec!r}".encode())
    return h.hexdigest()[:16]


def _gguf_version() -> str:
    try:
        from importlib.metadata import version

        return version("gguf")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return getattr(gguf, "__version__", "unknown")


def _validate(spec: ModelSpec) -> None:
    hp, v = spec.hparams, spec.vocab
    for name in ("n_embd", "n_layer", "n_head", "n_ff", "context_length"):
        if getattr(hp, name) <= 0:
            raise GGUFSpecError(f"hparams.{name} must be positive, got {getattr(hp, name)}")
    if hp.n_embd % hp.n_head:
        raise GGUFSpecError(f"hparams.n_embd {hp.n_embd} is not a multiple of n_head {hp.n_head}")
    if hp.kv_heads <= 0 or hp.n_head % hp.kv_heads:
        raise GGUFSpecError(f"hparams.n_head {hp.n_head} is not a multiple of n_head_kv {hp.kv_heads}")
    if hp.arch not in ("llama", "gemma3"):
        raise GGUFSpecError(f"hparams.arch must be 'llama' or 'gemma3', got {hp.arch!r}")
    if hp.arch == "gemma3" and isinstance(spec.weights, SuccessorWeights):
        raise GGUFSpecError("scripted weights are for the llama architecture (gemma3 scales and norms its embeddings)")
    if hp.sliding_window < 0 or (hp.sliding_window and hp.arch != "gemma3"):
        raise GGUFSpecError("hparams.sliding_window needs arch 'gemma3' and a positive window")
    if spec.dtype not in ("F32", "F16", "Q8_0"):
        raise GGUFSpecError(f"dtype must be F32, F16 or Q8_0, got {spec.dtype!r}")
    if spec.dtype == "Q8_0" and (hp.n_embd % 32 or hp.n_ff % 32):
        raise GGUFSpecError(f"Q8_0 needs n_embd and n_ff multiples of 32, got {hp.n_embd} and {hp.n_ff}")
    w = spec.weights
    if isinstance(w, SuccessorWeights):
        sources = [s for s, _ in w.successors]
        if len(set(sources)) != len(sources):
            raise GGUFSpecError("successors list a source token twice")
        if len(sources) >= hp.n_embd:
            raise GGUFSpecError(
                f"{len(sources)} scripted source tokens need n_embd > {len(sources)}, got {hp.n_embd}"
            )
        for s, t in w.successors + ((0, w.default if w.default is not None else v.eos_id),):
            for tid in (s, t):
                if not 0 <= tid < v.n_vocab:
                    raise GGUFSpecError(f"scripted token id {tid} outside the vocab (0..{v.n_vocab - 1})")
    elif not isinstance(w, RandomWeights):
        raise GGUFSpecError(f"weights must be RandomWeights or SuccessorWeights, got {type(w).__name__}")


# --------------------------------------------------------------------------- weights


def _tensor_shapes(hp: HParams, n_vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """(name, numpy shape) in file order; numpy shape is (out, in), GGUF stores it reversed."""
    q_dim = hp.n_head * hp.head_dim
    kv_dim = hp.kv_heads * hp.head_dim
    gemma = hp.arch == "gemma3"
    shapes: list[tuple[str, tuple[int, ...]]] = [
        ("token_embd.weight", (n_vocab, hp.n_embd)),
        ("output_norm.weight", (hp.n_embd,)),
        # gemma3 may tie it to the embedding; random weights then only echo the input token.
        ("output.weight", (n_vocab, hp.n_embd)),
    ]
    for i in range(hp.n_layer):
        p = f"blk.{i}."
        shapes += [
            (p + "attn_norm.weight", (hp.n_embd,)),
            (p + "attn_q.weight", (q_dim, hp.n_embd)),
            (p + "attn_k.weight", (kv_dim, hp.n_embd)),
            (p + "attn_v.weight", (kv_dim, hp.n_embd)),
            (p + "attn_output.weight", (hp.n_embd, q_dim)),
        ]
        if gemma:
            shapes += [
                (p + "attn_q_norm.weight", (hp.head_dim,)),
                (p + "attn_k_norm.weight", (hp.head_dim,)),
                (p + "post_attention_norm.weight", (hp.n_embd,)),
            ]
        shapes += [
            (p + "ffn_norm.weight", (hp.n_embd,)),
            (p + "ffn_gate.weight", (hp.n_ff, hp.n_embd)),
            (p + "ffn_up.weight", (hp.n_ff, hp.n_embd)),
            (p + "ffn_down.weight", (hp.n_embd, hp.n_ff)),
        ]
        if gemma:
            shapes.append((p + "post_ffw_norm.weight", (hp.n_embd,)))
    return shapes


def _random_matrix(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    m = rng.standard_normal(shape, dtype=np.float32)
    m *= np.float32(std)
    return m


def _weights(spec: ModelSpec) -> Iterable[tuple[str, np.ndarray]]:
    hp, v, w = spec.hparams, spec.vocab, spec.weights
    rng = np.random.default_rng(w.seed)
    std = w.std if isinstance(w, RandomWeights) else 0.02
    special: dict[str, np.ndarray] = {}
    if isinstance(w, SuccessorWeights):
        # Class 0 is "unscripted"; scripted sources get classes 1..K in token-id order.
        classes = {src: c for c, (src, _) in enumerate(w.successors, start=1)}
        emb = np.zeros((v.n_vocab, hp.n_embd), dtype=np.float32)
        emb[:, 0] = 1.0
        out = np.zeros((v.n_vocab, hp.n_embd), dtype=np.float32)
        for src, nxt in w.successors:
            emb[src, 0] = 0.0
            emb[src, classes[src]] = 1.0
            out[nxt, classes[src]] = w.margin
        out[w.default if w.default is not None else v.eos_id, 0] = w.margin
        special["token_embd.weight"] = emb
        special["output.weight"] = out
    for name, shape in _tensor_shapes(hp, v.n_vocab):
        if len(shape) == 1:
            yield name, np.ones(shape, dtype=np.float32)
        elif name in special:
            yield name, special[name]
        elif isinstance(w, SuccessorWeights) and name.endswith(("attn_output.weight", "ffn_down.weight")):
            # Zero outputs keep the residual stream equal to the token embedding.
            yield name, np.zeros(shape, dtype=np.float32)
        else:
            yield name, _random_matrix(rng, shape, std)


def _encode(arr: np.ndarray, dtype: DType) -> tuple[np.ndarray, GGMLQuantizationType | None]:
    if arr.ndim == 1 or dtype == "F32":
        return arr.astype(np.float32, copy=False), None  # norms stay F32
    if dtype == "F16":
        return arr.astype(np.float16), None
    return quantize(arr, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0


_FILE_TYPE = {"F32": LlamaFileType.ALL_F32, "F16": LlamaFileType.MOSTLY_F16, "Q8_0": LlamaFileType.MOSTLY_Q8_0}


# --------------------------------------------------------------------------- writing


def write_gguf(spec: ModelSpec, path: str | os.PathLike[str]) -> Path:
    """Write `spec` to `path` atomically (temp file in the same folder, then rename)."""
    _validate(spec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        _write(spec, Path(tmp_name))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _write(spec: ModelSpec, path: Path) -> None:
    hp, v = spec.hparams, spec.vocab
    w = GGUFWriter(path, hp.arch)
    w.add_name(spec.name)
    w.add_file_type(int(_FILE_TYPE[spec.dtype]))
    if spec.dtype == "Q8_0":
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(hp.context_length)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.kv_heads)
    w.add_rope_dimension_count(hp.head_dim)  # llama requires n_rot == head_dim
    w.add_rope_freq_base(hp.rope_freq_base)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    if hp.arch == "gemma3":
        w.add_key_length(hp.head_dim)
        w.add_value_length(hp.head_dim)
        if hp.sliding_window:
            w.add_sliding_window(hp.sliding_window)
            # Set explicitly: llama.cpp's default (6) would make every layer of a small model
            # a window layer.
            w.add_sliding_window_pattern(hp.swa_pattern)
            w.add_rope_freq_base_swa(hp.rope_freq_base)
    w.add_vocab_size(v.n_vocab)

    w.add_tokenizer_model(v.model)
    if v.pre:
        w.add_tokenizer_pre(v.pre)
    w.add_token_list(list(v.tokens))
    w.add_token_types([int(t) for t in v.token_types])
    if v.scores is not None:
        w.add_token_scores(list(v.scores))
    if v.merges:
        w.add_token_merges(list(v.merges))
    w.add_bos_token_id(v.bos_id)
    w.add_eos_token_id(v.eos_id)
    if v.unk_id is not None:
        w.add_unk_token_id(v.unk_id)
    w.add_add_bos_token(v.add_bos)
    w.add_add_eos_token(False)
    if spec.chat_template:
        w.add_chat_template(spec.chat_template)

    for name, arr in _weights(spec):
        data, raw = _encode(arr, spec.dtype)
        w.add_tensor(name, data, raw_dtype=raw)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# --------------------------------------------------------------------------- scripted models


def _successor_map(vocab: Vocab, chains: Sequence[Sequence[TokenRef]]) -> dict[int, int]:
    succ: dict[int, int] = {}
    for chain in chains:
        ids = [vocab.id_of(r) for r in chain]
        for (src_ref, src), (dst_ref, dst) in zip(zip(chain, ids), zip(chain[1:], ids[1:])):
            if succ.get(src, dst) != dst:
                raise GGUFSpecError(
                    f"token {src_ref!r} is scripted twice: to {vocab.tokens[succ[src]]!r} and to "
                    f"{vocab.tokens[dst]!r}; only the last token counts, so use a distinct token"
                )
            succ[src] = dst
    return succ


def scripted_spec(
    model: TokenizerModel,
    chains: Sequence[Sequence[TokenRef]],
    *,
    control: Sequence[str] = DEFAULT_CONTROL,
    user_defined: Sequence[str] = (),
    eos: str | None = None,
    default: TokenRef | None = None,
    extra_words: Sequence[str] = (),
    chat_template: str | None = None,
    hparams: HParams | None = None,
    dtype: DType = "F16",
    name: str = "llamaslots-scripted",
    tokenizable: bool = True,
) -> ModelSpec:
    """A successor model from chains of token references.

    Each chain [a, b, c, ...] scripts a->b, b->c, ...; a token may start or appear in several
    chains only with the same successor. Words (plain str, text form) become vocab tokens.
    Tokens that are not scripted go to `default` (None: EOS). `eos` overrides the vocab's
    EOS token name. hparams default to the small shape with n_embd grown to fit the script.
    `tokenizable=False` adds the chain words without prefixes/merges, so prompts cannot end in
    one of them (BPE: never; SPM: unless `extra_words` provide the prefixes) and a prompt
    cannot start the script midway; `extra_words` stay tokenizable.
    """
    chain_words = [r for chain in chains for r in chain if isinstance(r, str)]
    words = (chain_words if tokenizable else []) + list(extra_words)
    output_only = [] if tokenizable else chain_words
    kw: dict = {"control": control, "user_defined": user_defined, "output_only": output_only}
    if eos:
        kw["eos"] = eos
    if model == "llama":
        vocab = spm_vocab(words, **kw)
    elif model == "gpt2":
        vocab = bpe_vocab(words, **kw)
    else:
        raise GGUFSpecError(f"tokenizer model must be 'llama' or 'gpt2', got {model!r}")
    succ = _successor_map(vocab, chains)
    if hparams is None:
        n_embd = 64
        while n_embd <= len(succ):
            n_embd += 64
        hparams = HParams(n_embd=n_embd, n_ff=2 * n_embd)
    weights = SuccessorWeights.from_mapping(succ, default=None if default is None else vocab.id_of(default))
    return ModelSpec(vocab=vocab, hparams=hparams, weights=weights, dtype=dtype, chat_template=chat_template, name=name)


def unique_pieces(text: str) -> list[str]:
    """Split `text` into distinct word pieces (' word' with its punctuation) that concatenate to it.

    A successor model has one successor per token, so a repeated word is split in two pieces
    of at least two chars (' the' -> ' t', 'he'), or else joined with the next word
    (' in', ' a' -> ' in a'). GGUFSpecError when neither gives unused pieces.
    """
    words = re.findall(r"\s*\S+", text)
    if "".join(words) != text:
        raise GGUFSpecError(f"text {text!r} has trailing whitespace no piece can carry")
    used: set[str] = set()
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        parts = [word] if word not in used else _split_unused(word, used)
        if not parts and i + 1 < len(words) and word + words[i + 1] not in used:
            parts = [word + words[i + 1]]
            i += 1
        if not parts:
            raise GGUFSpecError(f"cannot turn the repeated word {word!r} of {text!r} into unused pieces")
        used.update(parts)
        out.extend(parts)
        i += 1
    return out


def _split_unused(word: str, used: set[str]) -> list[str]:
    # Single chars are avoided: they are common last prompt tokens and would start the
    # script in the middle.
    for k in range(len(word) - 2, 1, -1):
        a, b = word[:k], word[k:]
        if a != b and a not in used and b not in used:
            return [a, b]
    return []


# --------------------------------------------------------------------------- presets


def realistic_random_spec(model: TokenizerModel = "llama", dtype: DType = "Q8_0", seed: int = 0, *,
                          n_vocab: int = 8192, arch: Arch = "llama", sliding_window: int = 0, swa_pattern: int = 6,
                          n_layer: int = 8) -> ModelSpec:
    """The benchmark's model: n_embd 512, 8 layers, 8 heads, n_ff 1536, vocab 8192 (~38 MB in Q8_0).

    Real models have 128k-262k vocabularies and often sliding-window attention; `n_vocab`,
    `arch="gemma3"` and `sliding_window` give those shapes."""
    vocab = spm_vocab(size=n_vocab) if model == "llama" else bpe_vocab(size=n_vocab)
    hp = HParams(n_embd=512, n_layer=n_layer, n_head=8, n_ff=1536, context_length=8192, arch=arch,
                 sliding_window=sliding_window, swa_pattern=swa_pattern)
    return ModelSpec(vocab=vocab, hparams=hp, weights=RandomWeights(seed=seed), dtype=dtype, name="llamaslots-bench")
