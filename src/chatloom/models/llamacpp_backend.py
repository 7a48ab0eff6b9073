"""A langchain chat model running a GGUF file through llama-cpp-python (the fast local path).

Used automatically for GGUF files when ``llama_cpp`` is importable
(``pip install 'chatloom[llama]'``). The prompt is rendered with the GGUF's own chat template
(llama-cpp-python's Jinja2 formatter, which passes ``tools=`` to templates that support them),
and tool calls are constrained with llama.cpp's JSON-schema grammars.

Example (needs a GGUF file)::

    from chatloom.models.llamacpp_backend import LlamaCppChatModel
    m = LlamaCppChatModel(model_path="qwen2.5-coder-0.5b.gguf", max_tokens=32)
    [c.content for c in m.stream("Hi")][:3]  # e.g. ['Hello', '!', ' How']
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from chatloom.errors import BackendError, ChatloomError
from chatloom.models._local_chat import LocalChatModel, Piece, Prepared

_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int, int, int], Any] = {}  # (path, n_ctx, gpu layers, threads) -> Llama


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        from chatloom.models.local import LLAMA_INSTALL

        raise ChatloomError("the llama engine needs llama-cpp-python, which is not installed", LLAMA_INSTALL) from None
    return llama_cpp


class LlamaCppChatModel(LocalChatModel):
    """Local chat model on llama.cpp (GGUF files)."""

    engine_name: str = "llama.cpp"
    n_ctx: int = 4096
    n_threads: int | None = None
    """CPU threads; default: llama-cpp-python's own (half the cores). On a busy machine more
    threads can be much slower: llama.cpp's threads wait for each other every token."""
    n_batch: int = 512
    n_gpu_layers: int = 0
    """Layers offloaded to a GPU (needs a CUDA/Metal build of llama-cpp-python); -1 = all."""
    grammar_engine: str = "auto"
    """"xgrammar" (fast token masks), "gbnf" (llama.cpp's own grammar sampler, slow in
    llama-cpp-python 0.3.x) or "auto" (xgrammar when installed)."""

    _llm: Any = PrivateAttr(default=None)
    _formatter: Any = PrivateAttr(default=None)
    _bos: str = PrivateAttr(default="")
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _grammars: dict[str, Any] = PrivateAttr(default_factory=dict)
    _xgr_compiler: Any = PrivateAttr(default=None)
    load_seconds: float | None = None

    def load(self) -> LlamaCppChatModel:
        """Load the weights now (otherwise the first call does)."""
        self._ensure_loaded()
        return self

    def _ensure_loaded(self) -> Any:
        if self._llm is not None:
            return self._llm
        llama_cpp = _llama_cpp()
        path = Path(self.model_path).expanduser()
        key = (str(path.resolve()), self.n_ctx, self.n_gpu_layers, self.n_threads or 0)
        with _LOAD_LOCK:
            if key not in _LOADED:
                started = time.perf_counter()
                try:
                    threads = {"n_threads": self.n_threads} if self.n_threads else {}
                    _LOADED[key] = llama_cpp.Llama(
                        model_path=str(path),
                        n_ctx=self.n_ctx,
                        n_batch=self.n_batch,
                        n_gpu_layers=self.n_gpu_layers,
                        verbose=False,
                        **threads,
                    )
                except Exception as exc:  # noqa: BLE001 - one line, not a C++ traceback
                    raise BackendError(
                        f"llama.cpp could not load {str(path)!r}: {type(exc).__name__}: {str(exc)[:200]}",
                        "check that the file is a GGUF model (or try engine='transformers')",
                    ) from exc
                self.load_seconds = time.perf_counter() - started
        llm = _LOADED[key]
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendError(
                f"{str(path)!r} has no chat template, so it is not a chat model",
                "use an instruction-tuned GGUF (see `chatloom models list`)",
            )
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        model = llm._model  # token texts are only reachable through the low-level model
        eos = model.token_get_text(llm.token_eos()) if llm.token_eos() != -1 else ""
        bos = model.token_get_text(llm.token_bos()) if llm.token_bos() != -1 else ""
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._bos = bos
        self._llm = llm
        return llm

    # ------------------------------------------------------------------ hooks

    def _chat_template(self) -> str | None:
        self._ensure_loaded()
        return self._formatter.template

    def _grammar_available(self) -> bool:
        return True  # llama.cpp's GBNF always works; xgrammar is used when installed

    def render(self, prepared: Prepared) -> str:
        """The exact prompt text for ``prepared`` (used by benchmarks too)."""
        self._ensure_loaded()
        result = self._formatter(messages=prepared.messages, tools=prepared.tools or None)
        return result.prompt

    def _use_xgrammar(self) -> bool:
        if self.grammar_engine == "gbnf":
            return False
        if self.grammar_engine == "xgrammar":
            return True
        import importlib.util

        return importlib.util.find_spec("xgrammar") is not None and importlib.util.find_spec("torch") is not None

    def _compiled_xgrammar(self, prepared: Prepared) -> Any:
        from chatloom.models.constrained import llama_tokenizer_info

        llm = self._ensure_loaded()
        if self._xgr_compiler is None:
            import xgrammar as xgr

            self._xgr_compiler = xgr.GrammarCompiler(llama_tokenizer_info(llm))
        key = "xgr:" + prepared.grammar.key()
        if key not in self._grammars:
            self._grammars[key] = self._xgr_compiler.compile_grammar(prepared.grammar.xgrammar())
        return self._grammars[key]

    def _xgrammar_decode(self, tokens: list[int], prepared: Prepared, max_new: int) -> Iterator[Piece]:
        """Greedy/sampled decoding under an xgrammar mask, token by token on llama.cpp."""
        import llama_cpp
        import numpy as np
        import xgrammar as xgr

        llm = self._ensure_loaded()
        compiled = self._compiled_xgrammar(prepared)
        matcher = xgr.GrammarMatcher(compiled)
        n_vocab = llm.n_vocab()
        bitmask = xgr.allocate_token_bitmask(1, n_vocab)
        rng = np.random.default_rng(self.seed)
        # Reuse the KV cache for the shared prefix (eval() drops everything after n_tokens).
        prefix = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        prefix = min(prefix, len(tokens) - 1)  # re-evaluate at least one token for fresh logits
        llm.n_tokens = prefix
        llm.eval(tokens[prefix:])
        pending = b""
        n_out = 0
        finish = "length"
        for _ in range(max_new):
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32, copy=True)
            matcher.fill_next_token_bitmask(bitmask)
            allowed = np.unpackbits(bitmask.numpy().view(np.uint8), bitorder="little")[:n_vocab].astype(bool)
            logits[~allowed] = -np.inf
            if self.temperature > 0:
                token = _sample(logits, self.temperature, self.top_p, rng)
            else:
                token = int(np.argmax(logits))
            n_out += 1
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                finish = "stop"
                break
            matcher.accept_token(token)
            pending += llm.detokenize([token], special=False)
            text, pending = _decode_utf8(pending)
            if text:
                yield Piece(text)
            if matcher.is_terminated():
                finish = "stop"
                break
            llm.eval([token])
        if pending:
            yield Piece(pending.decode("utf-8", errors="replace"))
        yield Piece("", done=True, input_tokens=len(tokens), output_tokens=n_out, finish_reason=finish)

    def _grammar(self, prepared: Prepared) -> Any:
        if prepared.grammar is None:
            return None
        key = prepared.grammar.key()
        if key not in self._grammars:
            from llama_cpp.llama_grammar import LlamaGrammar

            self._grammars[key] = LlamaGrammar.from_string(prepared.grammar.gbnf(), verbose=False)
        return self._grammars[key]

    def _generate_text(self, prepared: Prepared) -> Iterator[Piece]:
        llm = self._ensure_loaded()
        prompt = self.render(prepared) + prepared.prefix
        add_bos = not (self._bos and prompt.startswith(self._bos))
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
        if len(tokens) + prepared.max_tokens > self.n_ctx:
            max_new = self.n_ctx - len(tokens)
            if max_new < 16:
                raise BackendError(
                    f"the conversation is {len(tokens)} tokens, too long for the context of {self.n_ctx}",
                    "start a new thread, or raise n_ctx",
                )
        else:
            max_new = prepared.max_tokens
        n_out = 0
        finish: str | None = None
        with self._lock:
            if prepared.grammar is not None and self._use_xgrammar():
                yield from self._xgrammar_decode(tokens, prepared, max_new)
                return
            try:
                stream = llm.create_completion(
                    prompt=tokens,
                    max_tokens=max_new,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    stop=prepared.stop or [],
                    seed=self.seed,
                    grammar=self._grammar(prepared),
                    stream=True,
                )
                for chunk in stream:
                    choice = chunk["choices"][0]
                    n_out += 1
                    finish = choice.get("finish_reason") or finish
                    if choice["text"]:
                        yield Piece(choice["text"])
            except ChatloomError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise BackendError(f"llama.cpp generation failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
        # The last stream chunk carries only the finish reason, not a token.
        n_out = max(n_out - 1, 0) if finish else n_out
        yield Piece("", done=True, input_tokens=len(tokens), output_tokens=n_out, finish_reason=finish or "stop")


def _decode_utf8(data: bytes) -> tuple[str, bytes]:
    """Decode what is complete; keep a trailing partial UTF-8 sequence for the next token."""
    for cut in range(len(data), max(len(data) - 4, -1), -1):
        try:
            return data[:cut].decode("utf-8"), data[cut:]
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), b""


def _sample(logits: Any, temperature: float, top_p: float, rng: Any) -> int:
    import numpy as np

    z = logits / temperature
    z = z - np.max(z)
    p = np.exp(z)
    p /= p.sum()
    if top_p < 1.0:
        order = np.argsort(-p)
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        q = np.zeros_like(p)
        q[keep] = p[keep]
        p = q / q.sum()
    return int(rng.choice(len(p), p=p))
