"""Grammar-constrained decoding for the local backend: a logits processor over a grammar engine.

A grammar (GBNF text, ``Sampling.grammar``) is compiled once per tokenizer and
grammar; at every decoding step each sequence's matcher takes the token just
sampled and yields the mask of the tokens the grammar allows next, and every
other token's logit becomes -inf. When a sequence's sentence is complete the
grammar allows only the end-of-sequence token.

Two engines, measured on this CPU in ``benchmarks/qllm_constrained_decoding.py``:

* ``llguidance`` (the default; a Rust library with no Python dependencies,
  installed with the ``llm`` extra): reads Lark, to which the GBNF is converted
  with its own converter;
* ``xgrammar`` (optional, not installed by the extras: it pulls ``triton``):
  reads GBNF directly.

``$CREDO_GRAMMAR_ENGINE`` picks one. Both are imported only when a grammar is used.
"""

from __future__ import annotations

import os
import time

import numpy as np

from credo.llm.base import LLMError

ENGINES = ("llguidance", "xgrammar")
DEFAULT_ENGINE = "llguidance"


def engine_name() -> str:
    """The grammar engine: ``$CREDO_GRAMMAR_ENGINE``, else ``llguidance``; LLMError for another name."""
    name = os.environ.get("CREDO_GRAMMAR_ENGINE", DEFAULT_ENGINE)
    if name not in ENGINES:
        raise LLMError(f"$CREDO_GRAMMAR_ENGINE={name!r}: choose one of {', '.join(ENGINES)}.")
    return name


def _unpack(bitmask: np.ndarray, vocab: int) -> np.ndarray:
    """Bool ``[rows, vocab]`` from the engines' int32 bitmasks (bit j of word k is token 32 k + j)."""
    bits = np.unpackbits(np.ascontiguousarray(bitmask).view(np.uint8), axis=-1, bitorder="little")
    return bits[..., :vocab].astype(bool)


class _LLGuidance:
    name = "llguidance"

    def __init__(self, tokenizer, vocab: int):
        try:
            import llguidance
            import llguidance.hf
            from llguidance.gbnf_to_lark import gbnf_to_lark
        except ImportError:
            raise LLMError(
                "constrained decoding needs llguidance: pip install 'credo[llm]' (or set "
                "$CREDO_GRAMMAR_ENGINE=xgrammar with xgrammar installed)."
            ) from None
        self._lib, self._to_lark = llguidance, gbnf_to_lark
        self.vocab = vocab
        self.tok = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab)
        self._grammars: dict[str, str] = {}

    def compile(self, gbnf: str):
        if gbnf not in self._grammars:
            lark = self._to_lark(gbnf)
            is_error, messages = self._lib.LLMatcher.validate_grammar_with_warnings(lark, self.tok)
            if is_error:
                raise LLMError(f"the grammar does not compile with llguidance: {'; '.join(messages)[:300]}")
            self._grammars[gbnf] = lark
        return self._grammars[gbnf]

    def matcher(self, compiled):
        m = self._lib.LLMatcher(self.tok, compiled, log_level=0)
        if m.is_error():
            raise LLMError(f"llguidance refused the grammar: {m.get_error()}")
        return m

    def consume(self, m, token: int) -> None:
        if not m.is_stopped():
            m.consume_token(token)

    def allowed(self, m) -> np.ndarray:
        words = np.frombuffer(m.compute_bitmask(), dtype=np.int32)
        return _unpack(words[None], self.vocab)[0]

    def error(self, m) -> str | None:
        return m.get_error() if m.is_error() else None


class _XGrammar:
    name = "xgrammar"

    def __init__(self, tokenizer, vocab: int):
        try:
            import xgrammar
        except ImportError:
            raise LLMError(
                "$CREDO_GRAMMAR_ENGINE=xgrammar needs xgrammar: pip install xgrammar (or use llguidance)."
            ) from None
        self._xgr = xgrammar
        self.vocab = vocab
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
        self.compiler = xgrammar.GrammarCompiler(info)
        self._mask = xgrammar.allocate_token_bitmask(1, vocab)

    def compile(self, gbnf: str):
        return self.compiler.compile_grammar(gbnf)  # the compiler caches by grammar text

    def matcher(self, compiled):
        return self._xgr.GrammarMatcher(compiled)

    def consume(self, m, token: int) -> None:
        if not m.is_terminated():
            m.accept_token(token)

    def allowed(self, m) -> np.ndarray:
        m.fill_next_token_bitmask(self._mask, 0)
        return _unpack(self._mask.numpy(), self.vocab)[0]

    def error(self, m) -> str | None:
        return None


def make_engine(tokenizer, vocab: int, name: str | None = None):
    """A grammar engine for ``tokenizer`` (the slow part of start-up: ~1-2 s for a 49k vocabulary)."""
    name = name or engine_name()
    return (_LLGuidance if name == "llguidance" else _XGrammar)(tokenizer, vocab)


class GrammarLogitsProcessor:
    """A ``transformers`` logits processor that keeps each row of a batch inside ``gbnf``.

    ``prompt_len``: tokens of the prompt (the first call sees only the prompt).
    ``eos_id``: the token that ends a sequence once the grammar is complete.
    ``seconds`` counts the time spent computing masks.
    """

    def __init__(self, engine, gbnf: str, rows: int, prompt_len: int, eos_id: int):
        compiled = engine.compile(gbnf)
        self.engine = engine
        self.matchers = [engine.matcher(compiled) for _ in range(rows)]
        self.prompt_len = prompt_len
        self.eos_id = eos_id
        self.done = [False] * rows
        self.seconds = 0.0

    def __call__(self, input_ids, scores):
        import torch

        start = time.perf_counter()
        rows, vocab = scores.shape
        allowed = np.zeros((rows, vocab), dtype=bool)
        for i, m in enumerate(self.matchers):
            if input_ids.shape[1] > self.prompt_len and not self.done[i]:
                token = int(input_ids[i, -1])
                if token == self.eos_id:
                    self.done[i] = True
                else:
                    self.engine.consume(m, token)
                    why = self.engine.error(m)
                    if why:
                        raise LLMError(f"constrained decoding left the grammar: {why}")
            if self.done[i]:
                allowed[i, self.eos_id] = True
                continue
            row = self.engine.allowed(m)
            n = min(vocab, row.shape[0])
            allowed[i, :n] = row[:n]
            if not allowed[i].any():  # the grammar is complete: only the end of the sequence
                allowed[i, self.eos_id] = True
        mask = torch.from_numpy(allowed).to(scores.device)
        out = scores.masked_fill(~mask, float("-inf"))
        self.seconds += time.perf_counter() - start
        return out
