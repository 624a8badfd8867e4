"""QLLM's coder-evaluator loop with an LLM that runs here: how many candidates pass, how long it takes.

Runs ``credo qllm generate ENV`` for the climbing game, an LBF map and MPE simple
spread (K candidates x R rounds, bounded retries), then reads each artifact
(or ``failed.json``) and records: candidates that passed per round, tries,
the rejection reasons by check, wall-clock, LLM calls, and whether the loop
ended with a valid TFCAF, the share of all generated candidates (first tries and
regenerations) that passed the checks (the checks of ``credo qllm check``), how
many of the passing ones are distinct, seconds per candidate, and whether
``credo qllm check`` accepts the final artifact. The default model is the
embedded SmolLM2-135M, decoding under the TFCAF grammar (``--grammar auto``;
``--grammar off`` measures free generation); ``--backend openai --model ...
--base-url ...`` reruns it with a stronger one.

    python benchmarks/qllm_generation.py                # writes benchmarks/results/qllm_generation.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CREDO, RESULTS, machine, now  # noqa: E402

from credo.proc import run_bounded  # noqa: E402

ENVS = ["matrix:climbing", "lbf:Foraging-8x8-2p-3f-v3", "mpe:simple_spread"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=ENVS)
    p.add_argument("--candidates", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--backend", default="local")
    p.add_argument("--model")
    p.add_argument("--base-url")
    p.add_argument("--grammar", default="auto", choices=["auto", "on", "off"])
    p.add_argument("--out", type=Path, default=Path("runs/qllm_generation"))
    p.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the recorded .json")
    args = p.parse_args()
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / f"{result_name(args.grammar)}.json").read_text()))
        return
    rows = [measure_env(env, args) for env in args.envs]
    model = json.loads(Path(rows[0]["artifact"]).read_text())["model"]
    result = {
        "benchmark": "qllm_generation",
        "date": now(),
        "machine": machine(),
        "model": model,
        "settings": {
            k: getattr(args, k)
            for k in ("candidates", "rounds", "retries", "max_tokens", "backend", "grammar")
        },
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{result_name(args.grammar)}.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result)


def measure_env(env: str, args: argparse.Namespace) -> dict:
    """One ``credo qllm generate ENV`` run with ``args``' settings, and what its artifact records."""
    out = args.out / env.replace(":", "-") / "tfcaf.json"
    cmd = [
        *CREDO,
        "qllm",
        "generate",
        env,
        "--candidates",
        str(args.candidates),
        "--rounds",
        str(args.rounds),
    ]
    cmd += ["--retries", str(args.retries), "--max-tokens", str(args.max_tokens), "--out", str(out)]
    cmd += ["--backend", args.backend, "--cache", str(args.out / "cache")]
    cmd += ["--model", args.model] if args.model else []
    cmd += ["--base-url", args.base_url] if args.base_url else []
    cmd += ["--grammar", args.grammar]
    t0 = time.perf_counter()
    proc = run_bounded(cmd, capture_output=True, text=True)  # dies with this script
    wall = time.perf_counter() - t0
    (out.parent / "generate.log").write_text(proc.stdout + proc.stderr)
    doc_path = out if out.exists() else out.with_name("failed.json")
    doc = json.loads(doc_path.read_text())
    tries = [len(c["attempts"]) for r in doc["rounds"] for c in r["candidates"]]
    attempts = [a for r in doc["rounds"] for c in r["candidates"] for a in c["attempts"]]
    passed = [a["code"] for a in attempts if a["report"]["passed"]]
    final_check = None
    if doc["code"] is not None:  # the artifact through `credo qllm check`, as a user would
        chk = run_bounded([*CREDO, "qllm", "check", env, str(out)], capture_output=True, text=True)
        final_check = chk.returncode == 0
    reasons = Counter(
        a["report"]["reason"].split(":", 1)[0]
        for r in doc["rounds"]
        for c in r["candidates"]
        for a in c["attempts"]
        if not a["report"]["passed"]
    )
    row = dict(
        env=env,
        valid=doc["code"] is not None,
        passed_per_round=doc["passed_per_round"],
        candidates_per_round=args.candidates,
        tries=sum(tries),
        passed_tries=len(passed),
        valid_share=round(len(passed) / max(1, len(attempts)), 3),
        distinct_passed=len(set(passed)),
        seconds_per_candidate=round((wall - doc["model_load_seconds"]) / max(1, len(attempts)), 1),
        llm_seconds_per_candidate=round(doc["llm_seconds"] / max(1, len(attempts)), 1),
        constrained=doc.get("constrained", False),
        final_artifact_passes_credo_qllm_check=final_check,
        rejections_by_check=dict(reasons),
        gamma=doc["gamma"],
        gamma_note=doc["gamma_note"],
        seconds=round(wall, 1),
        model_load_seconds=doc["model_load_seconds"],
        llm_calls=doc["llm_calls"],
        llm_seconds=doc["llm_seconds"],
        code=doc["code"],
        artifact=str(doc_path),
    )
    print(
        f"{env}: valid={row['valid']} passed per round {doc['passed_per_round']} in {wall:.0f} s",
        flush=True,
    )
    return row


def result_name(grammar: str) -> str:
    """Results of free generation (``--grammar off``) are kept apart from the constrained ones."""
    return "qllm_generation_free" if grammar == "off" else "qllm_generation"


def write_markdown(result: dict) -> None:
    """The table of ``qllm_generation.md`` (or ``_free.md``) from the JSON record."""
    args = argparse.Namespace(**{"grammar": "off", **result["settings"]})
    rows = result["rows"]
    model = result["model"]
    m = result["machine"]
    constrained = any(r.get("constrained") for r in rows)
    how = (
        "decoding under the TFCAF grammar (`--grammar auto`)"
        if constrained
        else "free generation (no grammar; `--grammar off`)"
    )
    lines = [
        f"# QLLM coder-evaluator loop with {model} ({result['date'][:10]}, {m['cpu']}, {m['cores']} cores)",
        "",
        f"{args.rounds} rounds x {args.candidates} candidates, up to {args.retries} regenerations of a rejected "
        f"candidate, {args.max_tokens} tokens per candidate, {how}; the same model is coder and evaluator. "
        f"Load average at the end: {m['load_average_1m']:.1f} (other jobs shared the 2 cores). "
        f"Produced by `python benchmarks/qllm_generation.py{'' if constrained else ' --grammar off'}`.",
        "",
        "Wall-clock is the whole command: loading the model, generating, and the sandbox checks; "
        "generation 0 s means every reply came from the response cache of an earlier identical run. "
        "Valid share: generated candidates (first tries and regenerations) that passed every check, the checks "
        "of `credo qllm check`; distinct: different passing functions. Seconds per candidate: wall-clock less "
        "the model load, per generated candidate (generation, checks, the evaluator); LLM s/cand.: the LLM's "
        "time alone.",
        "",
    ]
    lines += table(rows)
    name = result_name(args.grammar if not constrained else "auto")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def table(rows: list[dict]) -> list[str]:
    """The markdown table of the measured rows (``measure_env``'s)."""
    lines = [
        "| env | valid TFCAF at the end | `credo qllm check` on it | passed per round (of K) | valid share "
        "| distinct passing | tries | rejections by check | gamma | wall-clock (s) | model load (s) "
        "| generation (s) | s per candidate | LLM s/cand. | LLM calls |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rej = ", ".join(
            f"{k}: {v}" for k, v in sorted(r["rejections_by_check"].items(), key=lambda kv: -kv[1])
        )
        check = {True: "passes", False: "fails", None: "-"}[r.get("final_artifact_passes_credo_qllm_check")]
        share = r.get("valid_share")
        if share is None:  # records from before these columns: every try was rejected
            share = 0.0 if not r["valid"] else None
        lines.append(
            f"| {r['env']} | {'yes' if r['valid'] else 'no'} | {check} | {r['passed_per_round']} | "
            f"{'-' if share is None else f'{100 * share:.0f}%'} | {r.get('distinct_passed', 0)} | {r['tries']} | "
            f"{rej or '-'} | {r['gamma']} | {r['seconds']:.0f} | {r['model_load_seconds']:.0f} | "
            f"{r['llm_seconds']:.0f} | {r.get('seconds_per_candidate', '-')} | "
            f"{r.get('llm_seconds_per_candidate', '-')} | {r['llm_calls']} |"
        )
    return lines


if __name__ == "__main__":
    main()
