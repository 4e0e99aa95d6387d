"""Greedy JSON-constrained decoding without checking the whole vocabulary at every token.

llama-cpp-python puts the grammar sampler in front of the greedy pick, so at every generated token the
grammar tests all 49,152 of SmolLM2's tokens: about 14 ms a token here, as much as the model's own forward
pass. llama.cpp's own CLI avoids this ("grammar first" off, common/sampling.cpp): it tests only the token the
model would pick anyway and filters the whole vocabulary only when that token is rejected. With greedy
decoding the answer is the same token either way (the best allowed one), so this module does that for
llama-cpp-python: :class:`GreedyGrammarLlama` builds the chain penalties → :class:`GrammarFirstCheck` →
greedy whenever a call is greedy and grammar-constrained, and defers to llama-cpp-python otherwise.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np
from llama_cpp import Llama
from llama_cpp import llama_cpp as C
from llama_cpp._internals import LlamaSampler

_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


class GrammarFirstCheck:
    """A sampler for a llama.cpp chain: the grammar tests the best token first, the rest only if it fails."""

    def __init__(self, vocab, grammar_text: str, root: str):
        self.grammar = C.llama_sampler_init_grammar(vocab, grammar_text.encode("utf-8"), root.encode("utf-8"))
        if not self.grammar:
            raise ValueError("llama.cpp could not parse the grammar")
        self._one = (C.llama_token_data * 1)()
        self._one_array = C.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)
        iface = C.llama_sampler_i()
        # the callbacks must outlive the chain: keep them on the instance
        self._callbacks = (C.llama_sampler_i_apply(self._apply), C.llama_sampler_i_accept(self._accept),
                           C.llama_sampler_i_reset(self._reset))
        iface.apply, iface.accept, iface.reset = self._callbacks
        iface.name = C.llama_sampler_i_name(0)
        iface.clone = C.llama_sampler_i_clone(0)
        iface.free = C.llama_sampler_i_free(0)  # the chain only unlinks it; close() frees the grammar
        self._iface = iface
        self.sampler = C.llama_sampler(iface=ctypes.pointer(iface), ctx=None)

    def _apply(self, _sampler, cur_p) -> None:
        try:
            if self._best_passes(cur_p.contents):
                return
        except Exception:  # noqa: BLE001  (an exception cannot cross into llama.cpp: check everything)
            pass
        C.llama_sampler_apply(self.grammar, cur_p)

    def _best_passes(self, arr) -> bool:
        """Whether the grammar allows the highest-scoring candidate (the greedy pick)."""
        view = np.ctypeslib.as_array(ctypes.cast(arr.data, ctypes.POINTER(ctypes.c_byte)),
                                     shape=(arr.size * _TOKEN_DATA.itemsize,)).view(_TOKEN_DATA)
        best = int(np.argmax(view["logit"]))
        self._one[0].id, self._one[0].logit, self._one[0].p = (int(view["id"][best]), float(view["logit"][best]),
                                                              float(view["p"][best]))
        self._one_array.size, self._one_array.selected = 1, -1
        C.llama_sampler_apply(self.grammar, ctypes.byref(self._one_array))
        return math.isfinite(self._one[0].logit)  # a rejected token's logit is set to -inf

    def _accept(self, _sampler, token) -> None:
        C.llama_sampler_accept(self.grammar, token)

    def _reset(self, _sampler) -> None:
        C.llama_sampler_reset(self.grammar)

    def close(self) -> None:
        if self.grammar:
            C.llama_sampler_free(self.grammar)
            self.grammar = None


class GreedyGrammarLlama(Llama):
    """``Llama`` whose greedy grammar-constrained calls use :class:`GrammarFirstCheck` (same tokens, less work)."""

    def _init_sampler(self, *args, **kwargs):
        grammar, temp = kwargs.get("grammar"), kwargs.get("temp")
        if args or grammar is None or temp != 0.0 or kwargs.get("logits_processor") is not None:
            return super()._init_sampler(*args, **kwargs)
        sampler = LlamaSampler()
        # as Llama._init_sampler builds it, with the grammar step replaced
        sampler.add_penalties(n_vocab=self._n_vocab, penalty_last_n=self.last_n_tokens_size,
                              penalty_repeat=kwargs.get("repeat_penalty", 1.0),
                              penalty_freq=kwargs.get("frequency_penalty", 0.0),
                              penalty_present=kwargs.get("presence_penalty", 0.0))
        check = GrammarFirstCheck(self._model.vocab, grammar._grammar, grammar._root)
        C.llama_sampler_chain_add(sampler.sampler, ctypes.pointer(check.sampler))
        # LlamaSampler unlinks its custom samplers before it frees the chain, which so never frees ours;
        # closing it (its __del__) frees the grammar too
        sampler.custom_samplers.append((C.llama_sampler_chain_n(sampler.sampler) - 1, check))
        sampler._exit_stack.callback(check.close)
        sampler.add_greedy()
        return sampler
