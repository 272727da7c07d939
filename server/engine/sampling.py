"""One llama.cpp sampler chain per request, built from SamplingParams."""
from __future__ import annotations

import random

import llama_cpp as lc
import numpy as np

from compat.params import SamplingParams
from server.errors import InvalidRequest

LLAMA_DEFAULT_SEED = 0xFFFFFFFF


def resolve_seed(seed: int | None) -> int:
    """A per-request seed: None (LocalAI's -1) draws one, so that two requests differ."""
    if seed is None or seed < 0:
        return random.SystemRandom().randrange(0, LLAMA_DEFAULT_SEED)
    return seed & 0xFFFFFFFF


class SamplerChain:
    """Owns a llama_sampler chain; `sample` both picks and accepts (llama.cpp semantics).

    Order follows llama-server: logit bias, penalties, grammar, then either greedy,
    mirostat, or top_k -> typical -> top_p -> min_p -> temperature -> dist.
    """

    def __init__(self, params: SamplingParams, *, vocab, n_vocab: int, eog_tokens: list[int]):
        self.seed = resolve_seed(params.seed)
        self.has_grammar = bool(params.grammar)
        # Greedy without a grammar or penalties: the engine takes the argmax of all such rows of
        # a step at once, after this chain's logit biases (llama.cpp's greedy picks the first
        # maximum of the biased logits, as argmax does), instead of a pass over the vocabulary
        # per row in C.
        self.numpy_greedy = (
            params.temperature <= 0 and not params.grammar
            and not (params.repeat_last_n != 0 and (params.repeat_penalty != 1.0 or params.frequency_penalty != 0.0
                                                    or params.presence_penalty != 0.0))
        )
        self.bias_tokens = np.zeros(0, dtype=np.int64)
        self.bias_values = np.zeros(0, dtype=np.float32)
        self.biased: frozenset[int] = frozenset()
        self.only_lowering = True
        chain_params = lc.llama_sampler_chain_default_params()
        chain_params.no_perf = True
        self._chain = lc.llama_sampler_chain_init(chain_params)
        try:
            self._build(params, vocab, n_vocab, eog_tokens)
        except Exception:
            self.close()
            raise

    def _add(self, sampler) -> None:
        if not sampler:
            raise InvalidRequest("llama.cpp refused a sampler setting")
        lc.llama_sampler_chain_add(self._chain, sampler)

    def _build(self, p: SamplingParams, vocab, n_vocab: int, eog_tokens: list[int]) -> None:
        bias: dict[int, float] = {}
        for tok, val in p.logit_bias.items():
            if not 0 <= int(tok) < n_vocab:
                raise InvalidRequest(f"logit_bias token {tok} is outside the vocabulary (0..{n_vocab - 1})")
            bias[int(tok)] = float(val)
        if p.ignore_eos and not p.grammar:
            # With a grammar, end of generation is allowed only where the grammar is complete;
            # forbidding it there too leaves llama.cpp no token to pick (it throws and the
            # process aborts), so the grammar decides when the answer ends.
            for tok in eog_tokens:
                bias[tok] = float("-inf")
        if bias:
            self.bias_tokens = np.fromiter(bias.keys(), dtype=np.int64, count=len(bias))
            self.bias_values = np.fromiter(bias.values(), dtype=np.float32, count=len(bias))
            self.biased = frozenset(bias)
            self.only_lowering = all(v <= 0 for v in bias.values())
            arr = (lc.llama_logit_bias * len(bias))(*(lc.llama_logit_bias(tok, val) for tok, val in bias.items()))
            self._add(lc.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))
        penalize = p.repeat_penalty != 1.0 or p.frequency_penalty != 0.0 or p.presence_penalty != 0.0
        if penalize and p.repeat_last_n != 0:
            last_n = n_vocab if p.repeat_last_n < 0 else p.repeat_last_n
            self._add(
                lc.llama_sampler_init_penalties(
                    n_vocab, last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty
                )
            )
        if p.grammar:
            g = lc.llama_sampler_init_grammar(vocab, p.grammar.encode(), b"root")
            if not g:
                raise InvalidRequest("the grammar does not parse (GBNF expected, with a `root` rule)")
            lc.llama_sampler_chain_add(self._chain, g)
        if p.temperature <= 0:
            self._add(lc.llama_sampler_init_greedy())
            return
        if p.mirostat == 1:
            self._add(lc.llama_sampler_init_temp(p.temperature))
            self._add(lc.llama_sampler_init_mirostat(n_vocab, self.seed, p.mirostat_tau, p.mirostat_eta, 100))
            return
        if p.mirostat == 2:
            self._add(lc.llama_sampler_init_temp(p.temperature))
            self._add(lc.llama_sampler_init_mirostat_v2(self.seed, p.mirostat_tau, p.mirostat_eta))
            return
        if p.top_k > 0:
            self._add(lc.llama_sampler_init_top_k(p.top_k))
        if p.typical_p < 1.0:
            self._add(lc.llama_sampler_init_typical(p.typical_p, 1))
        if p.top_p < 1.0:
            self._add(lc.llama_sampler_init_top_p(p.top_p, 1))
        if p.min_p > 0.0:
            self._add(lc.llama_sampler_init_min_p(p.min_p, 1))
        self._add(lc.llama_sampler_init_temp(p.temperature))
        self._add(lc.llama_sampler_init_dist(self.seed))

    def prime(self, tokens: list[int]) -> None:
        """Let the penalties see the prompt, as llama-server does. Skipped with a grammar:
        accepting prompt tokens would advance the grammar's state."""
        if self.has_grammar:
            return
        for t in tokens:
            lc.llama_sampler_accept(self._chain, t)

    def sample(self, ctx, batch_index: int) -> int:
        return int(lc.llama_sampler_sample(self._chain, ctx, batch_index))

    def close(self) -> None:
        if self._chain:
            lc.llama_sampler_free(self._chain)
            self._chain = None

