"""Tool-call validity and correct-tool rate per catalog model, with and without constraints.

Prompts: the first 50 GSM8K questions of <repo>/../shared/evaldata/gsm8k/test_dev.jsonl, each
asked with two tools bound (``calculator``, the right one, and a ``web_search`` decoy).
Modes, all on the same model and engine, in the same run:

- ``free``: no grammar; calls are recovered from text by the tolerant parser (the baseline);
- ``constrained``: grammar with the answer-or-call choice (``tool_choice="auto"``);
- ``constrained+required``: grammar that must produce a call (``tool_choice="required"``).

Per mode: call rate (replies with a call), validity (schema-valid calls / attempts, where an
attempt is a reply that made a call or wrote call-like text), valid-per-prompt, and
correct-tool rate (first call is a valid ``calculator`` call / prompts).

    python benchmarks/bench_toolcall_validity.py                  # every installed catalog model
    python benchmarks/bench_toolcall_validity.py --quick          # 10 prompts
    python benchmarks/bench_toolcall_validity.py --models smollm2-135m --limit 20

Writes benchmarks/results/bench_toolcall_validity.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated

from pydantic import Field

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, RESULTS

EVAL = EVALDATA / "gsm8k" / "test_dev.jsonl"
SYSTEM = (
    "You are a careful math assistant. For any arithmetic, call the calculator tool with "
    "the expression instead of computing it yourself."
)
MODES = {
    "free": {"constrained": False},
    "constrained": {"constrained": True},
    "constrained+required": {"constrained": True, "tool_choice": "required"},
}
_CALLISH = re.compile(r"<tool_call>|\{\s*[\"'](name|tool|function)[\"']\s*:|```json", re.IGNORECASE)


def _tools():
    from langchain_core.tools import tool

    @tool
    def calculator(expression: Annotated[str, Field(max_length=80)]) -> str:
        """Evaluate an arithmetic expression, e.g. (16-3-4)*2."""
        return ""

    @tool
    def web_search(query: Annotated[str, Field(max_length=80)]) -> str:
        """Search the web for facts and current information."""
        return ""

    return [calculator, web_search]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=None, help="catalog names (default: all installed)")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--engine", default="auto", choices=["auto", "llama", "transformers"])
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--quick", action="store_true", help="10 prompts")
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_toolcall_validity.json")
    args = ap.parse_args()
    if args.quick:
        args.limit = min(args.limit, 10)
    if not EVAL.is_file():
        sys.exit(f"evaluation data not found at {EVAL}; skipping")
    questions = [json.loads(line)["question"] for line in EVAL.read_text().splitlines()[: args.limit]]

    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from chatloom.models.catalog import CATALOG
    from chatloom.models.constrained import validate_call
    from chatloom.models.install import status
    from chatloom.models.local import create_local_model

    tools = _tools()
    specs = [convert_to_openai_tool(t) for t in tools]
    names = args.models or [n for n in CATALOG if status(n).path is not None]
    report: dict[str, dict] = {}
    for name in names:
        model = create_local_model(name, engine=args.engine, max_tokens=64, tool_max_tokens=160)
        engine = model.engine_name
        report[name] = {"engine": engine}
        for mode in args.modes:
            opts = MODES[mode]
            bound = model.bind_tools(tools, tool_choice=opts.get("tool_choice"), constrained=opts["constrained"])
            stats = {"prompts": 0, "called": 0, "attempts": 0, "valid_attempts": 0, "correct": 0, "seconds": 0.0}
            examples = []
            for q in questions:
                t0 = time.perf_counter()
                reply = bound.invoke([SystemMessage(SYSTEM), HumanMessage(q)])
                stats["seconds"] += time.perf_counter() - t0
                stats["prompts"] += 1
                calls = reply.tool_calls
                callish = bool(_CALLISH.search(reply.content if isinstance(reply.content, str) else ""))
                if calls or callish:
                    stats["attempts"] += 1
                valid = bool(calls) and all(validate_call(c, specs) for c in calls) and not callish
                stats["called"] += bool(calls)
                stats["valid_attempts"] += valid
                stats["correct"] += valid and calls[0]["name"] == "calculator"
                if len(examples) < 3:
                    examples.append({"q": q[:80], "content": str(reply.content)[:160], "calls": calls})
            n = stats["prompts"]
            stats.update(
                call_rate=stats["called"] / n,
                validity=(stats["valid_attempts"] / stats["attempts"]) if stats["attempts"] else 1.0,
                valid_per_prompt=stats["valid_attempts"] / n,
                correct_tool_rate=stats["correct"] / n,
                s_per_prompt=stats["seconds"] / n,
                examples=examples,
            )
            report[name][mode] = stats
            print(
                f"  {name:20} {mode:22} calls {stats['called']:>3}/{n}  valid {stats['valid_attempts']:>3}/"
                f"{stats['attempts']:<3} correct tool {stats['correct']:>3}/{n}  {stats['s_per_prompt']:.1f} s/prompt",
                flush=True,
            )

    print(f"\n{len(questions)} GSM8K prompts, load avg {os.getloadavg()[0]:.1f}")
    print(
        f"{'model':20} {'engine':10} {'mode':22} {'call rate':>9} {'validity':>9} {'valid/prompt':>12} {'correct tool':>12}"
    )
    for name, per in report.items():
        for mode in args.modes:
            s = per[mode]
            print(
                f"{name:20} {per['engine']:10} {mode:22} {s['call_rate']:>9.0%} {s['validity']:>9.0%} "
                f"{s['valid_per_prompt']:>12.0%} {s['correct_tool_rate']:>12.0%}"
            )
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"prompts": len(questions), "report": report}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
