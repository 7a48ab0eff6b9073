"""GSM8K accuracy of the local default model with the calculator tool and without, same run.

    python benchmarks/bench_gsm8k_tools.py [--limit 200] [--quick] [--model local:qwen2.5-coder-0.5b]

The first ``--limit`` questions of ``../shared/evaldata/gsm8k/test_dev.jsonl`` go to two agents
built on the same model, role and worked example: one with ``tools=[calculator]``, one with no tools. The two
are interleaved question by question, so machine load hits both alike. A reply is correct when
the last number in ``agent.chat(question).answer`` equals the ``#### N`` answer.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
import uuid
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import EVALDATA, save  # noqa: E402

GSM8K = EVALDATA / "gsm8k" / "test_dev.jsonl"
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def gold_answer(answer: str) -> Fraction:
    return Fraction(answer.rsplit("####", 1)[1].strip().replace(",", ""))


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def predicted(text: str) -> Fraction | None:
    """The model's final number: after ``####`` if written, else in ``\\boxed{}``, else the last one."""
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    elif _BOXED.search(text):
        text = _BOXED.findall(text)[-1]
    numbers = _NUMBER.findall(text.replace("**", ""))
    if not numbers:
        return None
    try:
        return Fraction(numbers[-1].replace(",", "").replace("$", "").rstrip("."))
    except ValueError:
        return None


def summarize(results: dict[str, list[dict]]) -> dict[str, dict]:
    summary = {}
    print(f"{'variant':<12} {'correct':>8} {'accuracy':>9} {'s/question':>11} {'tool calls':>11} {'errors':>7}")
    for name, rs in results.items():
        correct = sum(r["correct"] for r in rs)
        summary[name] = {
            "correct": correct, "n": len(rs), "accuracy": round(correct / len(rs), 4) if rs else 0.0,
            "median_s": round(statistics.median(r["seconds"] for r in rs), 2) if rs else 0.0,
            "tool_calls": sum(r["tool_calls"] for r in rs), "errors": sum(r["stop"] == "error" for r in rs),
        }
        s = summary[name]
        print(f"{name:<12} {correct:>4}/{len(rs):<3} {s['accuracy']:>9.1%} {s['median_s']:>11.1f} {s['tool_calls']:>11} {s['errors']:>7}")
    if results.get("no tools") and results.get("calculator"):
        delta = summary["calculator"]["accuracy"] - summary["no tools"]["accuracy"]
        print(f"calculator - no tools: {delta:+.1%} (target: > 0)")
    return summary


def rescore() -> int:
    from _common import RESULTS

    path = RESULTS / "bench_gsm8k_tools.json"
    data = json.loads(path.read_text())
    for rs in data["results"].values():
        for r in rs:
            guess = predicted(r["answer"])
            r["predicted"] = None if guess is None else str(guess)
            r["correct"] = guess == Fraction(r["gold"])
    print(f"re-scored {path} ({data.get('completed', data['limit'])} of {data['limit']} questions, model {data['model']})")
    data["summary"] = summarize(data["results"])
    path.write_text(json.dumps(data, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="a smoke run on 5 questions")
    parser.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    parser.add_argument("--prompt", default=None, help="one prompt template for both variants (default: "
                        "benchmarks/prompts/gsm8k_tools.yaml and gsm8k_plain.yaml, the same role and worked example)")
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--rescore", action="store_true", help="re-score the saved results file and print the table")
    args = parser.parse_args()
    limit = 5 if args.quick else args.limit
    if args.rescore:
        return rescore()

    if not GSM8K.exists():
        print(f"skipped: {GSM8K} is absent", file=sys.stderr)
        return 0
    from chatloom import Agent
    from chatloom.tools.calculator import calculator

    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines()[:limit]]
    load_start = time.perf_counter()
    here = Path(__file__).resolve().parent / "prompts"
    plain_prompt = args.prompt or str(here / "gsm8k_plain.yaml")
    tools_prompt = args.prompt or str(here / "gsm8k_tools.yaml")
    agents = {
        "no tools": Agent(model=args.model, prompt=plain_prompt, tools=[], checkpointer="memory", max_steps=args.max_steps).load(),
        "calculator": Agent(model=args.model, prompt=tools_prompt, tools=[calculator], checkpointer="memory", max_steps=args.max_steps).load(),
    }
    load_s = time.perf_counter() - load_start
    results: dict[str, list[dict]] = {name: [] for name in agents}
    for i, row in enumerate(rows, 1):
        gold = gold_answer(row["answer"])
        for name, agent in agents.items():
            start = time.perf_counter()
            try:
                reply = agent.chat(row["question"], thread_id=f"gsm8k-{name}-{i}-{uuid.uuid4().hex[:6]}")
                answer, steps, stop = reply.answer, len(reply.tool_steps), reply.stop_reason
            except Exception as exc:  # a failed turn counts as wrong, and is reported
                answer, steps, stop = f"<error: {type(exc).__name__}: {exc}>", 0, "error"
            elapsed = time.perf_counter() - start
            guess = predicted(answer)
            results[name].append({
                "i": i, "correct": guess == gold, "gold": str(gold), "predicted": None if guess is None else str(guess),
                "tool_calls": steps, "stop": stop, "seconds": round(elapsed, 2), "answer": answer[-300:],
            })
        done = {n: sum(r["correct"] for r in rs) for n, rs in results.items()}
        calls = sum(r["tool_calls"] for r in results["calculator"])
        print(f"[{i}/{len(rows)}] " + "  ".join(f"{n}: {c}/{i}" for n, c in done.items()) + f"  (calculator calls so far: {calls})",
              file=sys.stderr, flush=True)
        # Saved after every question, so a long run that is stopped still leaves its numbers.
        save("bench_gsm8k_tools", {"model": args.model, "prompts": [plain_prompt, tools_prompt], "limit": len(rows),
                                   "completed": i, "partial": i < len(rows), "results": results})

    print(f"\nGSM8K dev, first {len(rows)} questions, model {args.model}, prompts {Path(plain_prompt).name} / {Path(tools_prompt).name} (load {load_s:.1f} s)")
    summary = summarize(results)
    path = save("bench_gsm8k_tools", {"model": args.model, "prompts": [plain_prompt, tools_prompt], "limit": len(rows), "summary": summary, "results": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
