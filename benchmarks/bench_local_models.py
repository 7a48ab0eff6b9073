"""Tokens/s and time to first token of chatloom's local engines vs raw llama-cpp-python.

All engines run the same GGUF, the same chat messages and greedy decoding, interleaved in one
process so machine load hits them alike. "raw" is llama-cpp-python called directly
(``Llama.create_chat_completion(stream=True)``); "chatloom llama.cpp" is the default local
path (``create_local_model``/``create_gguf_model`` with llama-cpp-python installed), streamed
through langchain's ``.stream()``; "chatloom transformers" is the fallback engine.

    python benchmarks/bench_local_models.py                 # qwen2.5-coder-0.5b if installed
    python benchmarks/bench_local_models.py --model smollm2-135m --quick

Writes benchmarks/results/bench_local_models.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

PROMPTS = [
    "Write a short paragraph about the history of the bicycle.",
    "Explain what a hash table is to a new programmer.",
    "Describe a walk along a beach at sunset.",
]


def _model_path(name: str) -> Path:
    from chatloom.models.install import status

    st = status(name)
    if st.path is None:
        sys.exit(f"{name} is not installed: run `chatloom models install {name}` (or pass --model smollm2-135m)")
    return st.path


def _measure(stream, count_tokens=None) -> dict:
    """Run one streamed generation; returns ttft, tokens, decode tok/s, end-to-end tok/s."""
    start = time.perf_counter()
    first = None
    pieces = 0
    tokens = None
    for item in stream:
        text, n = count_tokens(item) if count_tokens else (item, None)
        if n is not None:
            tokens = n
        if text:
            pieces += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    tokens = tokens if tokens is not None else pieces
    first = first or end
    decode = (tokens - 1) / (end - first) if tokens > 1 and end > first else 0.0
    return {"ttft_s": first - start, "tokens": tokens, "decode_tok_s": decode, "e2e_tok_s": tokens / (end - start)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="catalog name (default: qwen2.5-coder-0.5b, else smollm2-135m)")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5, help="runs per engine (interleaved)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: llama-cpp-python's)")
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers engine")
    ap.add_argument("--quick", action="store_true", help="3 runs of 48 tokens, transformers 1 run")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.max_tokens = 3, 48

    from chatloom.models.install import status

    name = args.model or ("qwen2.5-coder-0.5b" if status("qwen2.5-coder-0.5b").path else "smollm2-135m")
    path = _model_path(name)
    threads = args.threads
    tkw = {"n_threads": threads} if threads else {}

    import llama_cpp
    from langchain_core.messages import HumanMessage

    from chatloom.models.local import create_gguf_model

    t0 = time.perf_counter()
    raw = llama_cpp.Llama(model_path=str(path), n_ctx=4096, verbose=False, **tkw)
    raw_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = create_gguf_model(path, engine="llama", max_tokens=args.max_tokens, **tkw).load()
    ours_load = time.perf_counter() - t0

    def run_raw(prompt: str) -> dict:
        stream = raw.create_chat_completion(
            [{"role": "user", "content": prompt}], max_tokens=args.max_tokens, temperature=0.0, stream=True
        )
        return _measure(stream, lambda ch: (ch["choices"][0]["delta"].get("content") or "", None))

    def run_ours(model) -> callable:
        def go(prompt: str) -> dict:
            def count(chunk):
                um = chunk.usage_metadata
                return chunk.content, (um["output_tokens"] if um else None)

            return _measure(model.stream([HumanMessage(prompt)]), count)

        return go

    engines = {"raw llama-cpp-python": run_raw, "chatloom llama.cpp (default)": run_ours(ours)}
    loads = {"raw llama-cpp-python": raw_load, "chatloom llama.cpp (default)": ours_load}
    hf = None
    if not args.no_transformers:
        t0 = time.perf_counter()
        hf = create_gguf_model(path, engine="transformers", max_tokens=args.max_tokens).load()
        loads["chatloom transformers"] = time.perf_counter() - t0
        engines["chatloom transformers"] = run_ours(hf)

    # Warm-up: the first call pays for allocation and the prompt cache.
    for fn in engines.values():
        fn("Hello")
    results: dict[str, list[dict]] = {k: [] for k in engines}
    hf_runs = 1 if args.quick else max(1, args.runs // 2)
    for i in range(args.runs):
        prompt = PROMPTS[i % len(PROMPTS)]
        for label, fn in engines.items():
            if label == "chatloom transformers" and i >= hf_runs:
                continue
            results[label].append(fn(prompt))

    summary = {}
    for label, runs in results.items():
        summary[label] = {
            "runs": len(runs),
            "load_s": round(loads[label], 2),
            "ttft_s": round(statistics.median(r["ttft_s"] for r in runs), 4),
            "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in runs), 2),
            "e2e_tok_s": round(statistics.median(r["e2e_tok_s"] for r in runs), 2),
            "tokens": statistics.median(r["tokens"] for r in runs),
        }
    base = summary["raw llama-cpp-python"]
    print(
        f"model {name} ({path.stat().st_size / 1e6:.0f} MB), {args.runs} runs x {args.max_tokens} tokens, "
        f"threads {threads or 'default'}, load avg {os.getloadavg()[0]:.1f}"
    )
    print(f"{'engine':30} {'load s':>7} {'TTFT s':>8} {'decode tok/s':>13} {'e2e tok/s':>10} {'vs raw':>7}")
    for label, s in summary.items():
        ratio = s["decode_tok_s"] / base["decode_tok_s"] if base["decode_tok_s"] else 0.0
        s["ratio_vs_raw"] = round(ratio, 3)
        print(
            f"{label:30} {s['load_s']:>7.2f} {s['ttft_s']:>8.3f} {s['decode_tok_s']:>13.1f} "
            f"{s['e2e_tok_s']:>10.1f} {ratio:>6.2f}x"
        )
    out = save(
        "bench_local_models",
        {
            "model": name,
            "max_tokens": args.max_tokens,
            "threads": threads,
            "load_avg": os.getloadavg()[0],
            "engines": summary,
            "raw_runs": results,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
