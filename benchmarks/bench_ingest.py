"""Embedding throughput of the bundled models on real chunks, same process, alternating rounds.

    python benchmarks/bench_ingest.py                 # 256 Vaswani chunks, 5 rounds
    python benchmarks/bench_ingest.py --chunks 128 --rounds 3
    python benchmarks/bench_ingest.py --quality        # + nDCG@10 on all of Vaswani, same run
    python benchmarks/bench_ingest.py --quality --also OLD.onnx   # + an earlier int8 file, same way
    python benchmarks/bench_ingest.py --corpus hotpotqa   # HotpotQA paragraphs (~90 tokens a chunk)

Vaswani's chunks are short abstracts (~40 tokens); ``--corpus hotpotqa`` times HotpotQA dev70's
paragraphs instead, chunked the same way (~90 tokens, the chunk size the issue's baseline was
measured on). Embedding is about 95% of ingest time, so this is where ingest speed is won or lost. Each round
embeds the same chunks with every configuration in turn (order rotated per round), so a busy
machine slows them alike; the table gives the median chunks/s and the ratio to today's
configuration (MiniLM fp32, batch 32), plus each model's cosine to MiniLM fp32 where the vectors
are comparable. "(default)" rows are what ``open_memory`` uses (texts side by side on all cores);
"one core" rows embed one text at a time on one core. ``--quality`` then embeds all of Vaswani
(11,429 documents) with today's configuration and the default, times both, and compares
nDCG@10 of brute-force cosine search (no HNSW noise) and of its RRF fusion with a plain bm25s
ranking, with a paired bootstrap 95% interval per difference: speed and quality from one run.
``--also FILE`` adds an int8 ONNX file (say, an earlier recipe's, from a data dir's models/) run
exactly as the default is, to both tables.
Writes benchmarks/results/bench_ingest.json.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import EVALDATA, save  # noqa: E402


def load_chunks(n: int, corpus: str = "vaswani") -> list[str]:
    """The first ``n`` chunks of ``corpus`` (vaswani, hotpotqa), chunked and headed as ingest embeds them."""
    import json

    from chatloom.memory.ingest import chunk_markdown

    if corpus == "hotpotqa":
        docs = (
            f"# {title}\n\n" + " ".join(sentences)
            for line in (EVALDATA / "hotpotqa" / "distractor_dev70.jsonl").read_text().splitlines()
            for title, sentences in json.loads(line)["context"]
        )
    else:
        raw = (EVALDATA / "vaswani" / "doc-text.trec").read_text(errors="replace")
        docs = (" ".join(m.group(2).split()) for m in re.finditer(r"<DOCNO>\s*(\S+)\s*</DOCNO>(.*?)</DOC>", raw, re.S))
    out: list[str] = []
    for doc in docs:
        out.extend(c.text for c in chunk_markdown(doc))
        if len(out) >= n:
            break
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--corpus", choices=("vaswani", "hotpotqa"), default="vaswani", help="whose chunks to time")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 32 chunks, 1 round")
    ap.add_argument(
        "--quality",
        action="store_true",
        help="also embed all of Vaswani with today's setup and the default and compare nDCG@10",
    )
    ap.add_argument(
        "--also",
        type=Path,
        metavar="ONNX",
        help="an int8 ONNX file of MiniLM (an earlier recipe) to run like the default, for comparison",
    )
    args = ap.parse_args()
    if args.quick:
        args.chunks, args.rounds = 32, 1
    if not (EVALDATA / "vaswani").exists():
        print(f"evaluation data not found at {EVALDATA}; nothing to do")
        return
    import numpy as np

    from chatloom.memory.embeddings import E5Embeddings, MiniLMEmbeddings

    texts = load_chunks(args.chunks, args.corpus)
    with (
        tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp,
        tempfile.TemporaryDirectory(prefix="bench-ingest-also-") as also_dir,
    ):
        models = Path(tmp)
        configs = {
            "minilm fp32 b32 (today)": MiniLMEmbeddings(models, batch_size=32),
            "minilm fp32 b8": MiniLMEmbeddings(models, batch_size=8),
            "minilm fp32 b1": MiniLMEmbeddings(models, batch_size=1),
            "minilm int8 b32": MiniLMEmbeddings(models, batch_size=32, int8=True),
            "minilm int8 b8": MiniLMEmbeddings(models, batch_size=8, int8=True),
            "minilm int8 b1, one core": MiniLMEmbeddings(models, batch_size=1, int8=True, threads=1),
            "minilm int8 b1 (default)": MiniLMEmbeddings(models, batch_size=1, int8=True),
            "e5 q4, one core": E5Embeddings(threads=1),
            "e5 q4 (default)": E5Embeddings(),
        }
        if args.also:
            configs[ALSO] = also_embeddings(args.also, Path(also_dir))
        vectors = {name: emb.embed_array(texts[:4]) for name, emb in configs.items()}  # loads
        rates: dict[str, list[float]] = {name: [] for name in configs}
        names = list(configs)
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                t = time.perf_counter()
                vectors[name] = configs[name].embed_array(texts)
                rates[name].append(len(texts) / (time.perf_counter() - t))
        ref = vectors["minilm fp32 b32 (today)"]
        base = statistics.median(rates["minilm fp32 b32 (today)"])
        words = statistics.fmean(len(t.split()) for t in texts)
    print(
        f"{len(texts)} {args.corpus} chunks ({words:.0f} words each on average), {args.rounds} rounds, median chunks/s"
    )
    print(f"{'configuration':<28} {'chunks/s':>9} {'x today':>8} {'cos to fp32 (mean/min)':>23}")
    out: dict = {"corpus": args.corpus, "chunks": len(texts), "rounds": args.rounds, "configs": {}}
    for name in configs:
        med = statistics.median(rates[name])
        row = {"chunks_per_s": round(med, 1), "ratio": round(med / base, 2)}
        cos = ""
        if name.startswith("minilm"):
            c = np.sum(vectors[name] * ref, axis=1)
            row["cos_mean"], row["cos_min"] = round(float(c.mean()), 4), round(float(c.min()), 4)
            cos = f"{row['cos_mean']:.4f}/{row['cos_min']:.4f}"
        out["configs"][name] = row
        print(f"{name:<28} {med:>9.1f} {med / base:>8.2f} {cos:>23}")
    if args.quality:
        compared = {"today": configs["minilm fp32 b32 (today)"], "default": configs["minilm int8 b1 (default)"]}
        if args.also:
            compared["also"] = configs[ALSO]
        out["quality"] = quality(compared)
    print(f"\nwrote {save('bench_ingest' if args.corpus == 'vaswani' else f'bench_ingest_{args.corpus}', out)}")


ALSO = "minilm int8 b1, --also file"


def also_embeddings(onnx: Path, models: Path):
    """MiniLM int8 at the default settings, running the ONNX file ``onnx`` instead of today's recipe."""
    import shutil

    from chatloom.memory.embeddings import MiniLMEmbeddings, onnx_file

    target = onnx_file(models, int8=True)  # where the default looks for its int8 file
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx, target)
    return MiniLMEmbeddings(models, int8=True, batch_size=1)


def quality(compared: dict) -> dict:
    """Docs/s and nDCG@10 (vector, and hybrid with bm25s) on all of Vaswani, each of ``compared``
    (a name -> embeddings; "today" first) against today."""
    import bm25s
    import numpy as np
    from bench_retrieval import load_vaswani, metrics

    docs, queries, qrels = load_vaswani(None)
    ids, qids = list(docs), list(queries)
    texts = [docs[d] for d in ids]
    keyword = bm25s.BM25()
    keyword.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
    by_keyword, _ = keyword.retrieve(
        bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False), k=100, show_progress=False
    )
    print(f"\nall of Vaswani: {len(texts)} documents, {len(qids)} queries; brute-force cosine, hybrid = RRF with bm25s")
    scores, out = {}, {"documents": len(texts), "queries": len(qids)}
    for name, emb in compared.items():
        start = time.perf_counter()
        vectors = emb.embed_array(texts)
        rate = len(texts) / (time.perf_counter() - start)
        sims = np.stack([emb.query_array(queries[q]) for q in qids]) @ vectors.T
        vec, hyb = [], []
        for i, q in enumerate(qids):
            top = np.argsort(-sims[i])[:100]
            vec.append(metrics([ids[j] for j in top], qrels[q])[1])
            fused: dict[int, float] = {}
            for ranking in (top, by_keyword[i]):
                for rank, j in enumerate(ranking):
                    fused[int(j)] = fused.get(int(j), 0.0) + 1 / (61 + rank)
            hyb.append(metrics([ids[j] for j in sorted(fused, key=fused.__getitem__, reverse=True)], qrels[q])[1])
        scores[name] = np.array([vec, hyb])
        out[name] = {
            "docs_per_s": round(rate, 1),
            "ndcg10_vector": round(float(np.mean(vec)), 4),
            "ndcg10_hybrid": round(float(np.mean(hyb)), 4),
        }
        print(f"  {name:<8} {rate:7.1f} docs/s   vector nDCG@10 {np.mean(vec):.4f}   hybrid {np.mean(hyb):.4f}")
    rng = np.random.default_rng(0)
    for name in list(compared)[1:]:
        diff = scores[name] - scores["today"]
        for row, label in enumerate(("vector", "hybrid")):
            boot = [diff[row][rng.integers(0, diff.shape[1], diff.shape[1])].mean() for _ in range(5000)]
            lo, hi = np.percentile(boot, [2.5, 97.5])
            key = f"{label}_diff" if name == "default" else f"{name}_{label}_diff"
            out[key] = {"mean": round(float(diff[row].mean()), 4), "ci95": [round(float(lo), 4), round(float(hi), 4)]}
            print(f"  {name} - today, {label}: {diff[row].mean():+.4f} nDCG@10 (95% CI {lo:+.4f} .. {hi:+.4f})")
        print(f"  {name} speed: {out[name]['docs_per_s'] / out['today']['docs_per_s']:.2f}x today")
    return out


if __name__ == "__main__":
    main()
