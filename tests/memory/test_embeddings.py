from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from chatloom.errors import MemoryStoreError
from chatloom.memory.embeddings import (
    DIMENSIONS,
    bundled_model_dir,
    chroma_embedding_function,
    embeddings_id,
)

TEXTS = [
    "hi",
    "The quick brown fox jumps over the lazy dog.",
    "word " * 400,  # longer than the 256-token window: truncated the same way
    "Ünïcödé text — with dashes and émojis 🎉",
    "How do I install chatloom on a machine without internet access?",
] * 3


def test_onnx_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(str(bundled_model_dir()), device="cpu")
    expected = ref.encode(TEXTS, normalize_embeddings=True)
    got = minilm.embed_array(TEXTS)
    assert got.shape == (len(TEXTS), DIMENSIONS)
    assert np.abs(got - expected).max() < 1e-4


def test_batching_and_order_do_not_change_vectors(minilm, onnx_cache):
    from chatloom.memory.embeddings import MiniLMEmbeddings

    one_by_one = np.stack([minilm.embed_array([t])[0] for t in TEXTS[:5]])
    small_batches = MiniLMEmbeddings(onnx_cache, batch_size=2).embed_array(TEXTS[:5])
    assert np.abs(one_by_one - small_batches).max() < 1e-5
    assert np.allclose(np.linalg.norm(small_batches, axis=1), 1.0, atol=1e-5)
    assert minilm.embed_array([]).shape == (0, DIMENSIONS)
    assert len(minilm.embed_query("x")) == DIMENSIONS
    assert len(minilm.embed_documents(["a", "b"])) == 2


def test_chroma_adapter_wraps_any_langchain_embeddings(minilm):
    ef = chroma_embedding_function(minilm)
    vecs = ef(["hello", "world"])
    assert len(vecs) == 2 and len(vecs[0]) == DIMENSIONS
    assert ef.name() == "chatloom"
    assert ef.get_config() == {"embeddings": "all-MiniLM-L6-v2"}


def test_corrupt_onnx_cache_gives_clear_error(tmp_path):
    from chatloom.errors import ChatloomError

    # Put garbage where the export would be: the loader must say what to delete.
    from chatloom.memory import embeddings as E
    from chatloom.memory.embeddings import MiniLMEmbeddings

    stamp = E._model_stamp(bundled_model_dir())
    target = tmp_path / "all-MiniLM-L6-v2-onnx" / f"model-{stamp}.onnx"
    target.parent.mkdir()
    target.write_bytes(b"not an onnx model")
    with pytest.raises(ChatloomError, match="delete that file"):
        MiniLMEmbeddings(tmp_path).embed_query("x")


def test_a_fake_langchain_embeddings_plugs_in(settings):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from chatloom.memory import open_memory

    mem = open_memory(settings, namespace="fake", embeddings=DeterministicFakeEmbedding(size=32))
    (settings.data_dir() / "doc.md").write_text("# Doc\nThe zebra code is Q-991.\n")
    mem.ingest([settings.data_dir() / "doc.md"])
    hits = mem.recall("zebra code", k=1)
    assert hits and "Q-991" in hits[0].text
    # The namespace remembers its embeddings: mixing models is an error, not silent garbage.
    from chatloom.memory.embeddings import MiniLMEmbeddings

    other = open_memory(settings, namespace="fake", embeddings=MiniLMEmbeddings(settings.data_dir() / "models"))
    with pytest.raises(MemoryStoreError, match="built with embeddings"):
        other.recall("zebra", k=1)


class _FakeOpenAI(BaseHTTPRequestHandler):
    """Just enough of POST /v1/embeddings for langchain-openai's OpenAIEmbeddings."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(inputs):
            text = text if isinstance(text, str) else " ".join(map(str, text))
            vec = [float((hash(w) % 97) / 97) for w in (text.split() + ["pad"] * 8)[:8]]
            data.append({"object": "embedding", "index": i, "embedding": vec})
        payload = json.dumps(
            {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_openai_embeddings_plug_in_against_a_local_server(settings):
    from langchain_openai import OpenAIEmbeddings

    from chatloom.memory import open_memory

    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        emb = OpenAIEmbeddings(
            model="text-embedding-3-small",
            base_url=f"http://127.0.0.1:{server.server_port}/v1",
            api_key="test",
            check_embedding_ctx_length=False,  # else tiktoken downloads its tables
        )
        assert embeddings_id(emb) == "OpenAIEmbeddings:text-embedding-3-small"
        mem = open_memory(settings, namespace="oa", embeddings=emb)
        doc = settings.data_dir() / "doc.txt"
        doc.write_text("Refunds are processed within five days.")
        report = mem.ingest([doc])
        assert report.chunks_added == 1
        assert mem.recall("refunds", k=1)[0].text.startswith("Refunds")
    finally:
        server.shutdown()
