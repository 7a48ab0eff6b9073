"""llama.cpp thread count: prompt evaluation and generation speed for 1, 2 and the default.

One model is loaded once; ``llama_set_n_threads`` switches the threads for generation and for
batches (prompt evaluation) between measurements, and the settings take turns round by round,
so a change in the machine's load hits them all alike. Per setting: prompt tokens/s (the same
~480-token prompt evaluated from an empty KV cache) and generation tokens/s (greedy, one token
at a time). "default" is llama-cpp-python's own: half the cores for generation, all of them for
batches.

    python benchmarks/bench_threads.py                        # qwen2.5-coder-0.5b, 5 rounds
    python benchmarks/bench_threads.py --model smollm2-135m --rounds 3

Writes benchmarks/results/bench_threads.json. Report ratios to one thread, not absolute speeds:
this machine is shared.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save

PROMPT = (
    "You are a helpful assistant with tools for arithmetic, code and document search. " * 40
    + "\nQuestion: What is 17*23?"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--gen", type=int, default=32, help="tokens generated per measurement")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round of 8 tokens")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.gen = 1, 8

    import llama_cpp

    from chatloom.config import get_settings
    from chatloom.models.catalog import get_entry
    from chatloom.models.install import locate

    entry = get_entry(a.model)
    path = entry.bundled_path() or locate(entry.name, get_settings().data_dir())
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=2048, n_batch=512, verbose=False)
    cores = multiprocessing.cpu_count()
    settings = {"1": (1, 1), "2": (2, 2), "default": (max(cores // 2, 1), cores)}
    tokens = llm.tokenize(PROMPT.encode())
    prompt_tps: dict[str, list[float]] = {k: [] for k in settings}
    gen_tps: dict[str, list[float]] = {k: [] for k in settings}
    for r in range(a.rounds):
        for name, (n_gen, n_batch) in settings.items():
            llama_cpp.llama_set_n_threads(llm._ctx.ctx, n_gen, n_batch)
            llm.reset()
            start = time.perf_counter()
            llm.eval(tokens)
            prompt_tps[name].append(len(tokens) / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(a.gen):
                llm.eval([llm.sample(temp=0.0)])
            gen_tps[name].append(a.gen / (time.perf_counter() - start))
        print(
            f"round {r + 1}: "
            + "  ".join(f"{k}: prompt {prompt_tps[k][-1]:.0f} tok/s, gen {gen_tps[k][-1]:.1f} tok/s" for k in settings),
            flush=True,
        )
    rows = {}
    base_p, base_g = statistics.median(prompt_tps["1"]), statistics.median(gen_tps["1"])
    for k in settings:
        p, g = statistics.median(prompt_tps[k]), statistics.median(gen_tps[k])
        rows[k] = {
            "threads (generation, batch)": settings[k],
            "prompt_tok_s": round(p, 1),
            "gen_tok_s": round(g, 2),
            "prompt_vs_1_thread": round(p / base_p, 2),
            "gen_vs_1_thread": round(g / base_g, 2),
        }
        print(f"{k:8s} prompt {p:7.1f} tok/s ({p / base_p:.2f}x of 1 thread)   gen {g:6.2f} tok/s ({g / base_g:.2f}x)")
    out = {
        "model": a.model,
        "prompt_tokens": len(tokens),
        "rounds": a.rounds,
        "cpu_count": cores,
        "load_avg_at_end": os.getloadavg(),
        "results": rows,
    }
    print("wrote", save("bench_threads", out))


if __name__ == "__main__":
    main()
