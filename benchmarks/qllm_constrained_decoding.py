"""Grammar engines for constrained decoding with the embedded SmolLM2-135M on this CPU: llguidance vs xgrammar.

For each engine: start-up (building its view of the tokenizer, compiling the
TFCAF grammar of an env), then generation of K candidates for that env's coder
prompt with the grammar, against the same generation without it; tokens per
second count the new tokens of every sequence up to its end. The time the
masks take inside generation is reported too.

    python benchmarks/qllm_constrained_decoding.py   # writes benchmarks/results/qllm_constrained_decoding.{json,md}

xgrammar is not in the ``llm`` extra (it pulls triton); to measure it, install
it beside: ``pip install --target /tmp/xgr --no-deps xgrammar apache-tvm-ffi``
and run with ``PYTHONPATH=/tmp/xgr``. A missing engine is recorded as such.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, now  # noqa: E402


def version(pkg: str) -> str | None:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        try:
            return __import__(pkg).__version__
        except (ImportError, AttributeError):
            return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="lbf:Foraging-8x8-2p-3f-v3")
    p.add_argument("--candidates", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=160)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--engines", nargs="+", default=["llguidance", "xgrammar"])
    args = p.parse_args()

    import torch

    from credo import envs
    from credo.llm.constrain import GrammarLogitsProcessor, make_engine
    from credo.llm.local import LocalBackend, _cache_kwarg
    from credo.qllm.loop import CODER_ROLE, coder_messages, constrained_requirements, constraint_for
    from credo.qllm.task import describe_env

    env = envs.make(args.env)
    c = constraint_for(env)
    gamma = 1
    req = constrained_requirements(env.spec.n_agents, env.spec.state_dim, gamma, c)
    messages = [*coder_messages(describe_env(env), req, "", None), {"role": "assistant", "content": c.head}]
    assert messages[0]["content"] == CODER_ROLE
    gbnf = c.grammar(gamma)

    t0 = time.perf_counter()
    backend = LocalBackend()
    load_s = time.perf_counter() - t0
    tok, lm = backend.tokenizer, backend.lm
    ids = torch.tensor([backend.prompt_ids(messages)])
    eos = tok.eos_token_id

    def generate(processor, seed: int, max_tokens: int | None = None) -> tuple[float, int, int, list[str]]:
        torch.manual_seed(seed)
        start = time.perf_counter()
        with torch.no_grad():
            batch, cache = backend.shared_prompt(
                ids, args.candidates
            )  # the prompt runs once, as in the backend
            out = lm.generate(
                batch,
                attention_mask=torch.ones_like(batch),
                **_cache_kwarg(cache),
                max_new_tokens=max_tokens or args.max_tokens,
                do_sample=True,
                temperature=0.7,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
                logits_processor=[processor] if processor else None,
            )
        took = time.perf_counter() - start
        new = out[:, ids.shape[1] :]
        tokens = 0
        for row in new.tolist():
            tokens += row.index(eos) + 1 if eos in row else len(row)
        return took, tokens, int(new.shape[1]), [tok.decode(r, skip_special_tokens=True) for r in new]

    # the prompt's forward pass (once, shared by the K rows), the same with and without a grammar: timed apart
    prefill = min(generate(None, 0, 1)[0] for _ in range(2))
    print(f"prompt pass: {prefill:.1f} s", flush=True)
    rows = []
    for rep in range(args.repeats):
        took, tokens, steps, _ = generate(None, rep)
        rows.append(dict(engine="none", repeat=rep, seconds=round(took, 2), tokens=tokens, steps=steps))
        print(f"unconstrained: {tokens} tokens, {steps} steps in {took:.1f} s", flush=True)
    for name in args.engines:
        try:
            start = time.perf_counter()
            engine = make_engine(tok, lm.config.vocab_size, name)
            setup = time.perf_counter() - start
            start = time.perf_counter()
            engine.compile(gbnf)
            compile_s = time.perf_counter() - start
        except Exception as err:  # noqa: BLE001 - a missing engine is a result, not a crash
            rows.append(dict(engine=name, error=f"{type(err).__name__}: {err}"[:300]))
            print(f"{name}: {err}", flush=True)
            continue
        for rep in range(args.repeats):
            proc = GrammarLogitsProcessor(engine, gbnf, args.candidates, ids.shape[1], eos)
            took, tokens, steps, texts = generate(proc, rep)
            rows.append(
                dict(
                    engine=name,
                    version=version(name),
                    repeat=rep,
                    tokenizer_setup_seconds=round(setup, 3),
                    grammar_compile_seconds=round(compile_s, 4),
                    seconds=round(took, 2),
                    mask_seconds=round(proc.seconds, 3),
                    tokens=tokens,
                    steps=steps,
                    sample=texts[0],
                )
            )
            print(
                f"{name}: {tokens} tokens, {steps} steps in {took:.1f} s (masks {proc.seconds:.2f} s)",
                flush=True,
            )
    result = {
        "benchmark": "qllm_constrained_decoding",
        "date": now(),
        "machine": machine(),
        "model": backend.model,
        "model_load_seconds": round(load_s, 1),
        "prompt_tokens": int(ids.shape[1]),
        "prompt_pass_seconds": round(prefill, 2),
        "settings": {
            "env": args.env,
            "candidates": args.candidates,
            "max_tokens": args.max_tokens,
            "repeats": args.repeats,
            "temperature": 0.7,
            "torch_threads": torch.get_num_threads(),  # credo.llm.local.cpu_threads()
        },
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "qllm_constrained_decoding.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result)


def write_markdown(result: dict) -> None:
    s, m = result["settings"], result["machine"]
    lines = [
        f"# Constrained decoding engines with {result['model']} ({result['date'][:10]}, {m['cpu']}, {m['cores']} cores)",
        "",
        f"{s['candidates']} sequences at once (one coder call of `credo qllm generate`), temperature "
        f"{s['temperature']}, at most {s['max_tokens']} new tokens, on the constrained coder prompt of "
        f"`{s['env']}` ({result['prompt_tokens']} prompt tokens), {s['repeats']} repeats, torch on "
        f"{s['torch_threads']} thread(s). Load average at the end: {m['load_average_1m']:.1f} (another "
        "engineer's tests shared the 2 cores). Tokens count every sequence's new tokens up to its end "
        "(constrained sequences end when the grammar is complete); steps are decoding steps of the batch (a "
        "finished sequence still rides along until the last one ends). The prompt's own forward pass "
        f"({result['prompt_pass_seconds']:.1f} s, run once for the K rows) is the same with or without a grammar; "
        "decoding s/step subtracts it. Produced by `python benchmarks/qllm_constrained_decoding.py`.",
        "",
        "| engine | version | tokenizer setup (s) | grammar compile (s) | tokens | steps | generation (s) | "
        "tokens/s | decoding s/step | masks (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    pp = result["prompt_pass_seconds"]
    for r in result["rows"]:
        if "error" in r:
            lines.append(f"| {r['engine']} | not installed: {r['error'][:80]} | | | | | | | | |")
            continue
        if r["engine"] == "none":
            lines.append(
                f"| none (unconstrained) | | | | {r['tokens']} | {r['steps']} | {r['seconds']:.1f} | "
                f"{r['tokens'] / r['seconds']:.1f} | {(r['seconds'] - pp) / max(1, r['steps'] - 1):.3f} | |"
            )
            continue
        lines.append(
            f"| {r['engine']} | {r['version']} | {r['tokenizer_setup_seconds']:.2f} | "
            f"{r['grammar_compile_seconds']:.3f} | {r['tokens']} | {r['steps']} | {r['seconds']:.1f} | "
            f"{r['tokens'] / r['seconds']:.1f} | {(r['seconds'] - pp) / max(1, r['steps'] - 1):.3f} | "
            f"{r['mask_seconds']:.2f} |"
        )
    (RESULTS / "qllm_constrained_decoding.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
