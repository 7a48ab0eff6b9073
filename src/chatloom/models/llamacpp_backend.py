"""A langchain chat model running a GGUF file through llama-cpp-python (the fast local path).

Used automatically for GGUF files when ``llama_cpp`` is importable
(``pip install 'chatloom[llama]'``). The prompt is rendered with the GGUF's own chat template
(llama-cpp-python's Jinja2 formatter, which passes ``tools=`` to templates that support them),
and tool calls are constrained with llama.cpp's JSON-schema grammars.

>>> from chatloom.models.llamacpp_backend import LlamaCppChatModel  # doctest: +SKIP
>>> m = LlamaCppChatModel(model_path="qwen2.5-coder-0.5b.gguf", max_tokens=32)  # doctest: +SKIP
>>> [c.content for c in m.stream("Hi")][:3]  # doctest: +SKIP
['Hello', '!', ' How']
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from chatloom.errors import BackendError, ChatloomError
from chatloom.models._local_chat import LocalChatModel, Piece, Prepared

_LOAD_LOCK = threading.Lock()
_LOADED: dict[tuple[str, int, int], Any] = {}  # (path, n_ctx, n_gpu_layers) -> Llama


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
    """CPU threads; default: all cores."""
    n_batch: int = 512
    n_gpu_layers: int = 0
    """Layers offloaded to a GPU (needs a CUDA/Metal build of llama-cpp-python); -1 = all."""

    _llm: Any = PrivateAttr(default=None)
    _formatter: Any = PrivateAttr(default=None)
    _bos: str = PrivateAttr(default="")
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _grammars: dict[str, Any] = PrivateAttr(default_factory=dict)
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
        key = (str(path.resolve()), self.n_ctx, self.n_gpu_layers)
        with _LOAD_LOCK:
            if key not in _LOADED:
                started = time.perf_counter()
                try:
                    _LOADED[key] = llama_cpp.Llama(
                        model_path=str(path),
                        n_ctx=self.n_ctx,
                        n_threads=self.n_threads or os.cpu_count() or 1,
                        n_batch=self.n_batch,
                        n_gpu_layers=self.n_gpu_layers,
                        verbose=False,
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
        return True

    def render(self, prepared: Prepared) -> str:
        """The exact prompt text for ``prepared`` (used by benchmarks too)."""
        self._ensure_loaded()
        result = self._formatter(messages=prepared.messages, tools=prepared.tools or None)
        return result.prompt

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
        prompt = self.render(prepared)
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
