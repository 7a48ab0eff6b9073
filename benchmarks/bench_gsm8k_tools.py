"""GSM8K accuracy of the local default model with the calculator and without, in the same run.

    python benchmarks/bench_gsm8k_tools.py [--limit 200] [--quick] [--model local:qwen2.5-coder-0.5b]
                                           [--variants "no tools,calculator"]

The first ``--limit`` questions of ``../shared/evaldata/gsm8k/test_dev.jsonl`` go to one agent per
variant, all on the same model, role and worked example (see ``VARIANTS``):

- ``no tools``: the model reasons and computes in its head;
- ``calculator``: the same prompt; the calculator writes the number after every ``=`` the model
  writes (``inline_calculator``), so a slip never reaches the next step;
- ``calculator calls``: the calculator bound as a tool, with a worked example that calls it
  (bound to a local model, it also works inline);
- ``python``: program of thought, the sandboxed python tool forced by ``tool_choice``.

Figures for the default model are in docs/tools.md.

The variants are interleaved question by question, so machine load hits them alike. A reply is
correct when its final number (after ``####``, else in ``\\boxed{}``, else the last) equals the
``#### N`` answer. Results are saved after every question.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import EVALDATA, save

from chatloom.evals import stats
from chatloom.evals.scorers import gold_number as gold_answer  # the benchmarks' name
from chatloom.evals.scorers import predicted_number as predicted
from chatloom.evals.stats import sign_test

GSM8K = EVALDATA / "gsm8k" / "test_dev.jsonl"
PROMPTS = Path(__file__).resolve().parent / "prompts"
# name -> (prompt file, tools, tool_choice, model options). The prompts share the role and the
# worked example; "calculator" differs from "no tools" only in the calculator finishing every
# equation the model writes (the model's inline_calculator), so the gain is the tool's alone.
VARIANTS: dict[str, tuple[str, list[str], str, dict]] = {
    "no tools": ("gsm8k_plain.yaml", [], "auto", {}),
    "calculator": ("gsm8k_plain.yaml", [], "auto", {"inline_calculator": True}),
    "calculator calls": ("gsm8k_tools.yaml", ["calculator"], "auto", {}),
    "python": ("gsm8k_python.yaml", ["python"], "required", {}),
}


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    summary = {}
    print(f"{'variant':<12} {'correct':>8} {'accuracy':>9} {'s/question':>11} {'tool calls':>11} {'errors':>7}")
    for name, rs in results.items():
        correct = sum(r["correct"] for r in rs)
        summary[name] = {
            "correct": correct,
            "n": len(rs),
            "accuracy": round(correct / len(rs), 4) if rs else 0.0,
            "median_s": round(statistics.median(r["seconds"] for r in rs), 2) if rs else 0.0,
            "tool_calls": sum(r["tool_calls"] for r in rs),
            "errors": sum(r["stop"] == "error" for r in rs),
        }
        s = summary[name]
        print(
            f"{name:<12} {correct:>4}/{len(rs):<3} {s['accuracy']:>9.1%} {s['median_s']:>11.1f} {s['tool_calls']:>11} {s['errors']:>7}"
        )
    for name in results:
        if name != "no tools" and "no tools" in results:
            delta = summary[name]["accuracy"] - summary["no tools"]["accuracy"]
            wins, losses = paired(results["no tools"], results[name])
            summary[name].update(
                vs_no_tools=round(delta, 4), wins=wins, losses=losses, sign_test_p=sign_test(wins, losses)
            )
            print(
                f"{name} - no tools: {delta:+.1%} (target: > 0); right only with {name}: {wins}, "
                f"only without: {losses}, two-sided sign test p = {summary[name]['sign_test_p']:.3g}"
            )
    return summary


def paired(base: list[dict], other: list[dict]) -> tuple[int, int]:
    """Questions only ``other`` got right, and questions only ``base`` got right (rows with ``correct``)."""
    return stats.paired([b["correct"] for b in base], [o["correct"] for o in other])


def rescore(out: str) -> int:
    from _common import RESULTS

    path = RESULTS / f"{out}.json"
    data = json.loads(path.read_text())
    for rs in data["results"].values():
        for r in rs:
            guess = predicted(r["answer"])
            r["predicted"] = None if guess is None else str(guess)
            r["correct"] = guess == Fraction(r["gold"])
    print(
        f"re-scored {path} ({data.get('completed', data['limit'])} of {data['limit']} questions, model {data['model']})"
    )
    data["summary"] = summarize(data["results"])
    path.write_text(json.dumps(data, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a smoke run on 5 questions")
    parser.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    parser.add_argument(
        "--variants",
        default="no tools,calculator",
        help=f"comma-separated, from: {', '.join(VARIANTS)} (default: 'no tools,calculator')",
    )
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--out", default="bench_gsm8k_tools", help="results file name under benchmarks/results/")
    parser.add_argument("--rescore", action="store_true", help="re-score the saved results file and print the table")
    args = parser.parse_args()
    limit = 5 if args.quick else args.limit
    if args.rescore:
        return rescore(args.out)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")

    if not GSM8K.exists():
        print(f"skipped: {GSM8K} is absent", file=sys.stderr)
        return 0
    from chatloom import Agent, resolve_model

    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines()[:limit]]
    load_start = time.perf_counter()
    agents = {}
    for name in names:
        prompt, tools, tool_choice, options = VARIANTS[name]
        model = resolve_model(args.model, **options)
        agents[name] = Agent(
            model=model,
            prompt=str(PROMPTS / prompt),
            tools=tools,
            tool_choice=tool_choice,
            tool_policy={"python": "allow"},  # the sandbox is the safety boundary here
            checkpointer="memory",
            max_steps=args.max_steps,
        ).load()
    load_s = time.perf_counter() - load_start
    results: dict[str, list[dict]] = {name: [] for name in agents}
    for i, row in enumerate(rows, 1):
        gold = gold_answer(row["answer"])
        for name, agent in agents.items():
            start = time.perf_counter()
            try:
                reply = agent.chat(row["question"], thread_id=f"gsm8k-{name}-{i}-{uuid.uuid4().hex[:6]}")
                answer, steps, stop = reply.answer, len(reply.tool_steps), reply.stop_reason
            except Exception as exc:  # noqa: BLE001 - a failed turn counts as wrong, and is reported
                answer, steps, stop = f"<error: {type(exc).__name__}: {exc}>", 0, "error"
            elapsed = time.perf_counter() - start
            guess = predicted(answer)
            results[name].append(
                {
                    "i": i,
                    "correct": guess == gold,
                    "gold": str(gold),
                    "predicted": None if guess is None else str(guess),
                    "tool_calls": steps,
                    "stop": stop,
                    "seconds": round(elapsed, 2),
                    "answer": answer[-300:],
                }
            )
        done = {n: sum(r["correct"] for r in rs) for n, rs in results.items()}
        calls = sum(r["tool_calls"] for rs in results.values() for r in rs)
        print(
            f"[{i}/{len(rows)}] "
            + "  ".join(f"{n}: {c}/{i}" for n, c in done.items())
            + f"  (tool calls so far: {calls})",
            file=sys.stderr,
            flush=True,
        )
        # Saved after every question, so a long run that is stopped still leaves its numbers.
        save(
            args.out,
            {
                "model": args.model,
                "variants": {n: VARIANTS[n] for n in names},
                "limit": len(rows),
                "completed": i,
                "partial": i < len(rows),
                "results": results,
            },
        )

    print(
        f"\nGSM8K dev, first {len(rows)} questions, model {args.model}, variants {', '.join(names)} (load {load_s:.1f} s)"
    )
    summary = summarize(results)
    path = save(
        args.out,
        {
            "model": args.model,
            "variants": {n: VARIANTS[n] for n in names},
            "limit": len(rows),
            "summary": summary,
            "results": results,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
