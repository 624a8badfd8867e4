"""LLMs behind an OpenAI-compatible HTTP endpoint: OpenAI, DeepSeek, vLLM, Ollama, llama.cpp servers.

Configuration: ``base_url`` (default ``$CREDO_LLM_BASE_URL``, else OpenAI's),
``model``, and the API key from the environment variable ``api_key_env``
(default ``OPENAI_API_KEY``; servers on localhost need none). Requests time out
after ``timeout`` seconds and are retried ``retries`` times with exponential
backoff (the ``openai`` client's own retry loop: connection errors, 408/409/429
and 5xx). Log-probabilities of continuations come from the chat endpoint's
``top_logprobs`` of the first reply token, so they are exact for single-token
continuations (action letters) that appear among the ``top_logprobs`` (20)
most likely tokens; an absent one gets the 20th token's log-probability, an
upper bound.
"""

from __future__ import annotations

import importlib.util
import math
import os
from urllib.parse import urlparse

from credo.llm.base import Backend, LLMError, Message, Sampling, cut_at_stop

TOP_LOGPROBS = 20  # the most the chat endpoint returns


def _is_local(url: str) -> bool:
    return (urlparse(url).hostname or "") in ("localhost", "127.0.0.1", "::1", "0.0.0.0")


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 3,
    ):
        if importlib.util.find_spec("openai") is None:
            raise LLMError(
                "the OpenAI-compatible backend needs the openai package: pip install 'credo[llm]'."
            )
        import openai

        self.model = model
        self.base_url = base_url or os.environ.get("CREDO_LLM_BASE_URL") or "https://api.openai.com/v1"
        key = os.environ.get(api_key_env)
        if not key:
            if not _is_local(self.base_url):
                raise LLMError(
                    f"no API key for {self.base_url}: set the environment variable {api_key_env} "
                    "(or name another with --api-key-env)."
                )
            key = "none"  # local servers (vLLM, Ollama, llama.cpp) ignore the key
        self._openai = openai
        self.client = openai.OpenAI(base_url=self.base_url, api_key=key, timeout=timeout, max_retries=retries)
        self.timeout, self.retries = timeout, retries

    def _call(self, **kwargs):
        o = self._openai
        try:
            return self.client.chat.completions.create(model=self.model, **kwargs)
        except o.APITimeoutError as err:
            raise LLMError(
                f"{self.base_url} did not answer within {self.timeout:g} s ({self.retries} retries); "
                "raise --timeout or check the server."
            ) from err
        except o.APIConnectionError as err:
            raise LLMError(
                f"cannot reach the LLM endpoint {self.base_url} ({self.retries} retries): {err.__cause__ or err}. "
                "Is the server running, and is --base-url (or $CREDO_LLM_BASE_URL) right?"
            ) from err
        except o.AuthenticationError as err:
            raise LLMError(f"{self.base_url} refused the API key: {err}") from err
        except o.APIStatusError as err:
            raise LLMError(f"{self.base_url} answered HTTP {err.status_code}: {err.message}") from err

    def _generate(self, messages: list[Message], sampling: Sampling) -> list[str]:
        resp = self._call(
            messages=messages,
            n=sampling.n,
            temperature=sampling.temperature,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop)[:4] or None,  # the API takes at most 4
            seed=sampling.seed,
        )
        texts = [cut_at_stop(c.message.content or "", sampling.stop) for c in resp.choices]
        if len(texts) < sampling.n:  # some servers ignore n: ask for the rest one by one
            for i in range(sampling.n - len(texts)):
                more = self._generate(
                    messages, Sampling(**{**sampling.__dict__, "n": 1, "seed": sampling.seed + 1 + i})
                )
                texts += more
        return texts

    def _logprobs(self, messages: list[Message], continuations: list[str]) -> list[float]:
        resp = self._call(
            messages=messages, max_tokens=1, temperature=0, logprobs=True, top_logprobs=TOP_LOGPROBS
        )
        content = resp.choices[0].logprobs.content if resp.choices[0].logprobs else None
        if not content:
            raise LLMError(
                f"{self.base_url} returned no log-probabilities; the server must support logprobs=True."
            )
        top = [(t.token.strip(), t.logprob) for t in content[0].top_logprobs]
        floor = min(lp for _, lp in top)
        out = []
        for c in continuations:
            # " A" and "A" are different tokens with one meaning: add their probabilities
            hits = [lp for tok, lp in top if tok == c.strip()]
            if not hits and len(c.strip()) > 1:
                raise LLMError(
                    f"continuation {c!r} is not a single token among the top {TOP_LOGPROBS}; the OpenAI-compatible "
                    "backend scores single-token continuations (such as action letters) only."
                )
            out.append(float(math.log(sum(math.exp(lp) for lp in hits))) if hits else floor)
        return out
