"""Decoding speed with tool grammars on llama.cpp: free vs constrained answer-or-call vs forced.

Through the public path users get: ``resolve_model("local:qwen2.5-coder-0.5b").bind_tools(...)``
with a calculator and a decoy search tool, on the first GSM8K dev questions. Modes:

- ``free``: no grammar (``constrained=False``);
- ``auto/<engine>``: answer-or-call grammar (``constrained=True``, tool_choice auto);
- ``forced/<engine>``: a call is required (``tool_choice="required"``);

for grammar engines ``gbnf`` (llama.cpp's grammar sampler, model's pick checked first),
``xgrammar`` (when installed) and ``gbnf-chain``: llama-cpp-python's own sampler chain with a
``LlamaGrammar``, the path used before, which runs the grammar over the whole vocabulary for
every token. One untimed question per mode compiles its grammar first. Modes take turns
question by question, so load changes on this shared machine hit them alike.

    python benchmarks/bench_grammar_speed.py                  # 5 questions
    python benchmarks/bench_grammar_speed.py --limit 3 --modes free auto/gbnf

Per mode: generated tokens/s (output tokens / time after the first token, summed over
questions), seconds per reply, and the ratio to free decoding. Writes
benchmarks/results/bench_grammar_speed.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EVALDATA, save

EVAL = EVALDATA / "gsm8k" / "test_dev.jsonl"
SYSTEM = "You are a careful math assistant. Use the calculator for arithmetic."


def _tools() -> list[Any]:
    """The same two tools bench_toolcall_validity binds, so the figures compare."""
    from bench_toolcall_validity import _tools as validity_tools

    return validity_tools()


def _chain_model(model: Any) -> Any:
    """The same model decoding grammars through llama-cpp-python's sampler chain (the old path)."""
    from chatloom.models._local_chat import Piece
    from chatloom.models.llamacpp_backend import LlamaCppChatModel

    class ChainGrammarModel(LlamaCppChatModel):
        def _native_grammar_decode(self, tokens: list[int], prepared: Any, max_new: int) -> Iterator[Piece]:
            from llama_cpp.llama_grammar import LlamaGrammar

            llm = self._ensure_loaded()
            grammar = LlamaGrammar.from_string(prepared.grammar.gbnf(), verbose=False)
            n = 0
            for chunk in llm.create_completion(
                prompt=tokens, max_tokens=max_new, temperature=0.0, grammar=grammar, stream=True
            ):
                text = chunk["choices"][0]["text"]
                n += 1
                if text:
                    yield Piece(text)
            yield Piece("", done=True, input_tokens=len(tokens), output_tokens=max(n - 1, 0))

    return ChainGrammarModel(**model.model_dump())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="local:qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--modes", nargs="*", default=None)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 question, 48 tokens")
    a = ap.parse_args()
    if a.quick:
        a.limit, a.max_tokens = 1, 48
    if not EVAL.is_file():
        sys.exit(f"evaluation data not found at {EVAL}")
    lines = EVAL.read_text().splitlines()[: a.limit + 1]
    questions = [json.loads(line)["question"] for line in lines]

    from langchain_core.messages import HumanMessage, SystemMessage

    from chatloom.models import resolve_model

    engines = ["gbnf", "gbnf-chain"]
    if importlib.util.find_spec("xgrammar") and importlib.util.find_spec("torch"):
        engines.append("xgrammar")
    modes = {"free": ("gbnf", {"constrained": False})}
    for engine in engines:
        modes[f"auto/{engine}"] = (engine, {"constrained": True})
        modes[f"forced/{engine}"] = (engine, {"constrained": True, "tool_choice": "required"})
    if a.modes:
        modes = {k: v for k, v in modes.items() if k in a.modes}
    tools = _tools()
    bound = {}
    for name, (engine, opts) in modes.items():
        model = resolve_model(
            a.model,
            max_tokens=a.max_tokens,
            tool_max_tokens=a.max_tokens,
            grammar_engine="gbnf" if engine == "gbnf-chain" else engine,
            inline_calculator=False,
        )
        if engine == "gbnf-chain":
            model = _chain_model(model)
        bound[name] = model.bind_tools(tools, **opts)
    stats = {m: {"tokens": 0, "gen_s": 0.0, "total_s": 0.0, "replies": 0, "calls": 0, "examples": []} for m in modes}

    def ask(mode: str, q: str) -> None:
        start = time.perf_counter()
        reply = bound[mode].invoke([SystemMessage(SYSTEM), HumanMessage(q)])
        total = time.perf_counter() - start
        meta, usage = reply.response_metadata, reply.usage_metadata or {}
        s = stats[mode]
        s["tokens"] += usage.get("output_tokens", 0)
        s["gen_s"] += total - (meta.get("time_to_first_token_s") or 0.0)
        s["total_s"] += total
        s["replies"] += 1
        s["calls"] += bool(reply.tool_calls)
        if len(s["examples"]) < 2:
            s["examples"].append({"content": str(reply.content)[:120], "calls": reply.tool_calls})

    for mode in modes:  # compile each grammar and fill the prompt KV once, untimed
        ask(mode, questions[0])
        stats[mode] = {"tokens": 0, "gen_s": 0.0, "total_s": 0.0, "replies": 0, "calls": 0, "examples": []}
    for i, q in enumerate(questions[1:], 1):
        for mode in modes:
            ask(mode, q)
        print(f"question {i} done", flush=True)
    free_tps = stats["free"]["tokens"] / stats["free"]["gen_s"] if "free" in stats else None
    for mode, s in stats.items():
        s["tok_s"] = round(s["tokens"] / s["gen_s"], 2) if s["gen_s"] else None
        s["s_per_reply"] = round(s["total_s"] / max(s["replies"], 1), 2)
        s["vs_free"] = round(s["tok_s"] / free_tps, 2) if free_tps and s["tok_s"] else None
        print(
            f"{mode:20s} {s['tok_s']} tok/s ({s['vs_free']}x free)  {s['s_per_reply']} s/reply  "
            f"{s['tokens']} tokens  calls {s['calls']}/{s['replies']}"
        )
    out = {"model": a.model, "questions": len(questions) - 1, "load_avg_at_end": os.getloadavg(), "modes": stats}
    print("wrote", save("bench_grammar_speed", out))


if __name__ == "__main__":
    main()
