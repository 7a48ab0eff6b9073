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

import logging
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from chatloom.errors import BackendError, ChatloomError, install_hint
from chatloom.models import model_cache
from chatloom.models._local_chat import LocalChatModel, Piece, Prepared
from chatloom.models.prompt_cache import DEFAULT_MAX_BYTES, PromptCache

log = logging.getLogger(__name__)

_SENTINEL = "\u2063chatloom-stable-prefix-end\u2063"  # marks where the varying messages begin
MIN_CACHED_TOKENS = 64
"""A shorter stable prefix evaluates faster than its state file loads; it is not cached."""


def default_threads() -> int:
    """Threads llama.cpp uses unless told otherwise: half the CPU cores, at least one.

    >>> default_threads() >= 1
    True
    """
    import os

    return max((os.cpu_count() or 2) // 2, 1)


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ChatloomError(
            "the llama engine needs llama-cpp-python, which is not installed", install_hint("llama", "llama-cpp-python")
        ) from None
    return llama_cpp


class LlamaCppChatModel(LocalChatModel):
    """Local chat model on llama.cpp (GGUF files)."""

    engine_name: str = "llama.cpp"
    n_ctx: int = 4096
    n_threads: int | None = None
    """CPU threads for prompt evaluation and generation alike; None: half the cores, at least
    one (:func:`default_threads`). llama-cpp-python's own default evaluates prompts on every
    core, and llama.cpp's threads wait for each other at every step: on this busy 2-core machine
    that made prompt evaluation 2.3x and two generation threads 16x slower than one thread
    (benchmarks/bench_threads.py)."""
    n_batch: int = 512
    n_gpu_layers: int = 0
    """Layers offloaded to a GPU (needs a CUDA/Metal build of llama-cpp-python); -1 = all."""
    grammar_engine: str = "auto"
    """"gbnf" (llama.cpp's own grammar sampler, checking the model's pick before masking the
    vocabulary), "xgrammar" (xgrammar's token masks; needs xgrammar and torch) or "auto" (gbnf)."""

    _llm: Any = PrivateAttr(default=None)
    _formatter: Any = PrivateAttr(default=None)
    _bos: str = PrivateAttr(default="")
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _grammars: dict[str, Any] = PrivateAttr(default_factory=dict)
    _xgr_compiler: Any = PrivateAttr(default=None)
    load_seconds: float | None = None
    home: Path | None = None
    """The data dir holding the prompt cache (default: the settings' data dir)."""
    sha256: str | None = None
    """The GGUF file's sha256 when known (names its prompt-cache directory)."""
    prompt_cache: bool = True
    """Save the KV state of the static prompt (system prompt, tools, few-shot examples) in
    ``<data dir>/kvcache`` and load it in later processes instead of evaluating it again."""
    prompt_cache_bytes: int = DEFAULT_MAX_BYTES
    """Bound on all files in ``<data dir>/kvcache``; the least recently used go first."""

    _cache: Any = PrivateAttr(default=None)

    def load(self) -> LlamaCppChatModel:
        """Load the weights now (otherwise the first call does)."""
        self._ensure_loaded()
        return self

    def _ensure_loaded(self) -> Any:
        if self._llm is not None:
            return self._llm
        llama_cpp = _llama_cpp()
        path = Path(self.model_path).expanduser()
        threads = self.n_threads or default_threads()
        key = ("llama.cpp", str(path.resolve()), self.n_ctx, self.n_gpu_layers, threads)

        def load() -> Any:
            started = time.perf_counter()
            try:
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.n_ctx,
                    n_batch=self.n_batch,
                    n_gpu_layers=self.n_gpu_layers,
                    verbose=False,
                    n_threads=threads,
                    n_threads_batch=threads,
                )
            except Exception as exc:  # one line, not a C++ traceback
                raise BackendError(
                    f"llama.cpp could not load {str(path)!r}: {type(exc).__name__}: {str(exc)[:200]}",
                    "check that the file is a GGUF model (or try engine='transformers')",
                ) from exc
            self.load_seconds = time.perf_counter() - started
            return llm

        llm = model_cache.LOADED_MODELS.get_or_load(key, load)
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

    # ------------------------------------------------------------------ prompt cache

    def _prompt_cache(self) -> PromptCache | None:
        if not self.prompt_cache:
            return None
        if self._cache is None:
            from chatloom.models.install import model_file_key, stamped_sha256

            path = Path(self.model_path).expanduser()
            try:
                from chatloom.config import data_dir

                home = data_dir(self.home)
                # The state layout belongs to the llama.cpp build: a new version starts afresh.
                key = f"{model_file_key(path, self.sha256 or stamped_sha256(path))}-llama{_llama_cpp().__version__}"
            except (ChatloomError, OSError) as exc:
                log.warning("prompt cache off: %s", exc)
                self.prompt_cache = False
                return None
            self._cache = PromptCache(home / "kvcache", key, self.prompt_cache_bytes)
        return self._cache

    def prefix_boundaries(self, prepared: Prepared, tokens: list[int], add_bos: bool) -> list[int]:
        """Token counts, ascending, where a cached state of ``tokens`` may end; the last one is
        the static prompt, the part that is the same for every new question.

        The static prompt is everything before the first message that varies: the last user
        message (the question) or a system message after the first (retrieved passages, a
        summary), whichever comes first. Earlier user messages (few-shot examples, the history of
        a thread continued in a new process) are boundaries too, so a later turn can start from
        the state an earlier turn saved. Each cut is found by rendering the chat with a marker
        at the start of those messages, so the template's own wrapping ("<|im_start|>user\n")
        is included; a template that alters the content gets no boundaries (no cache).
        """
        roles = [m.get("role") for m in prepared.messages]
        users = [i for i, r in enumerate(roles) if r == "user"]
        extra_system = [i for i, r in enumerate(roles) if r == "system" and i > 0]
        cut_at = min([*extra_system, users[-1]] if users else extra_system, default=None)
        if cut_at is None:
            return []
        marked_at = [i for i in (*users, *extra_system) if i <= cut_at]
        messages = [dict(m) for m in prepared.messages]
        for i in marked_at:
            messages[i]["content"] = _SENTINEL + str(messages[i].get("content") or "")
        rendered = self._formatter(messages=messages, tools=prepared.tools or None).prompt
        pieces = rendered.split(_SENTINEL)
        if len(pieces) != len(marked_at) + 1 or "".join(pieces) != self.render(prepared):
            return []
        llm = self._ensure_loaded()
        bounds: set[int] = set()
        text = ""
        for piece in pieces[:-1]:
            text += piece
            head = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
            # The head's last token may merge with the text after it; keep only what matches.
            n = min(llm.longest_token_prefix(head, tokens), len(tokens) - 1)  # >= 1 token to evaluate
            if n >= MIN_CACHED_TOKENS:
                bounds.add(n)
        return sorted(bounds)

    def _prime_prefix(self, llm: Any, prepared: Prepared, tokens: list[int], add_bos: bool) -> None:
        """Have the static prompt of ``tokens`` in the KV cache: already there (in-process
        reuse), loaded from the longest state on disk and completed, or evaluated now; then
        saved if it was not on disk. Generation then evaluates only the rest."""
        cache = self._prompt_cache()
        if cache is None:
            return
        have = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
        bounds = self.prefix_boundaries(prepared, tokens, add_bos)
        if not bounds or have >= bounds[-1]:
            return  # nothing static, or this process already holds it
        stable = bounds[-1]
        for n in reversed(bounds):
            if n <= have:
                break  # what this process holds is at least as long as any older state
            state = cache.load(tokens[:n])
            if state is None:
                continue
            if _set_seq_state(llm, state, tokens[:n]):
                if n == stable:
                    return
                have = n
                break
            log.warning("prompt cache: llama.cpp refused %s; deleting it", cache.path_for(tokens[:n]))
            cache.discard(tokens[:n])
            have = 0  # a failed load leaves the sequence empty
        llm.n_tokens = have
        llm.eval(tokens[have:stable])  # eval() first drops the KV entries after n_tokens
        cache.save(tokens[:stable], _seq_state(llm))

    def _use_xgrammar(self) -> bool:
        # "auto" is llama.cpp's own grammar: with the pick checked first it decoded answer-or-call
        # 5x faster than xgrammar's per-token masks (0.92x vs 0.18x of free decoding, Qwen 0.5B,
        # benchmarks/bench_grammar_speed.py) and needs neither xgrammar nor torch.
        if self.grammar_engine not in ("auto", "gbnf", "xgrammar"):
            raise ChatloomError(f"unknown grammar_engine {self.grammar_engine!r}", "use 'auto', 'gbnf' or 'xgrammar'")
        return self.grammar_engine == "xgrammar"

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
        _eval_prompt(llm, tokens)
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

    def _native_grammar_decode(self, tokens: list[int], prepared: Prepared, max_new: int) -> Iterator[Piece]:
        """Decoding under llama.cpp's own GBNF grammar sampler, checking the chosen token first.

        llama-cpp-python puts the grammar in the sampler chain, so every token runs the grammar
        over the whole vocabulary (151,936 pieces for Qwen) before picking one: that made GBNF
        slow. Here the model's pick is checked alone first, and the full-vocabulary grammar pass
        runs only when the grammar rejects it (as llama.cpp's own ``common_sampler`` does). This
        is exact: greedy keeps the best allowed token, and sampling a token and resampling from
        the allowed set when it is rejected draws from the masked distribution.
        """
        import ctypes

        import numpy as np

        llama_cpp = _llama_cpp()
        llm = self._ensure_loaded()
        vocab = llm._model.vocab
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, prepared.grammar.gbnf().encode(), b"root")
        if not sampler:
            raise BackendError("llama.cpp rejected the tool-call grammar", "report this with the bound tools' schemas")
        n_vocab = llm.n_vocab()
        one = (llama_cpp.llama_token_data * 1)()
        one_p = llama_cpp.llama_token_data_array(data=one, size=1, selected=-1, sorted=False)
        every = np.zeros(n_vocab, dtype=np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
        every["id"] = np.arange(n_vocab, dtype=np.int32)
        every_p = llama_cpp.llama_token_data_array(
            data=ctypes.cast(every.ctypes.data, llama_cpp.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
        )
        rng = np.random.default_rng(self.seed)

        def pick(logits: Any) -> int:
            if self.temperature > 0:
                return _sample(logits, self.temperature, self.top_p, rng)
            return int(np.argmax(logits))

        pending = b""
        n_out = 0
        finish = "length"
        try:
            _eval_prompt(llm, tokens)
            for _ in range(max_new):
                ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
                logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,))
                token = pick(logits)
                one[0].id, one[0].logit = token, float(logits[token])
                llama_cpp.llama_sampler_apply(sampler, ctypes.byref(one_p))
                if one[0].logit == -np.inf:  # rejected: mask the whole vocabulary, pick again
                    every["logit"] = logits
                    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(every_p))
                    masked = every["logit"].copy()
                    if not np.isfinite(masked).any():
                        break  # the grammar allows nothing (cannot happen with a sound grammar)
                    token = pick(masked)
                n_out += 1
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                llama_cpp.llama_sampler_accept(sampler, token)
                pending += llm.detokenize([token], special=False)
                text, pending = _decode_utf8(pending)
                if text:
                    yield Piece(text)
                llm.eval([token])
        finally:
            llama_cpp.llama_sampler_free(sampler)
        if pending:
            yield Piece(pending.decode("utf-8", errors="replace"))
        yield Piece("", done=True, input_tokens=len(tokens), output_tokens=n_out, finish_reason=finish)

    def _generate_text(self, prepared: Prepared) -> Generator[Piece, None, None]:
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
            try:
                self._prime_prefix(llm, prepared, tokens, add_bos)
            except Exception as exc:  # noqa: BLE001 - the cache only saves time; never fail a call for it
                log.warning("prompt cache skipped: %s: %s", type(exc).__name__, exc)
                llm.n_tokens = 0
            if prepared.grammar is not None:
                decode = self._xgrammar_decode if self._use_xgrammar() else self._native_grammar_decode
                yield from decode(tokens, prepared, max_new)
                return
            try:
                _eval_all_but_last(llm, tokens)  # create_completion evaluates the last on its own
                stream = llm.create_completion(
                    prompt=tokens,
                    max_tokens=max_new,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    stop=prepared.stop or [],
                    seed=self.seed,
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
            except Exception as exc:
                raise BackendError(f"llama.cpp generation failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
        # The last stream chunk carries only the finish reason, not a token.
        n_out = max(n_out - 1, 0) if finish else n_out
        yield Piece("", done=True, input_tokens=len(tokens), output_tokens=n_out, finish_reason=finish or "stop")


def _eval_prompt(llm: Any, tokens: list[int]) -> None:
    """Evaluate ``tokens``, reusing the KV cache for the prefix it already holds."""
    _eval_all_but_last(llm, tokens)
    llm.eval(tokens[-1:])


def _eval_all_but_last(llm: Any, tokens: list[int]) -> None:
    """Have the KV cache hold ``tokens`` but the last, reusing the prefix it already holds.

    The last token is then always evaluated on its own, whatever the cache held: llama.cpp
    computes a batch of one token with other kernels than a longer batch, and Qwen 0.5B's
    first logits differed by up to 0.29 between the two. A prompt evaluated whole the first
    time and reused the second got a different reply, so two agents asked the same question
    in one process (an eval's A/B arms) answered differently before any difference between
    them came into play.
    """
    prefix = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
    prefix = min(prefix, len(tokens) - 1)
    llm.n_tokens = prefix  # eval() drops the KV entries after n_tokens
    if prefix < len(tokens) - 1:
        llm.eval(tokens[prefix:-1])


def _seq_state(llm: Any) -> bytes:
    """The KV state of sequence 0 (no logits: the caller always re-evaluates a token)."""
    import ctypes

    llama_cpp = _llama_cpp()
    size = llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0)
    buf = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, buf, size, 0)
    return bytes(buf[:written])


def _set_seq_state(llm: Any, state: bytes, tokens: list[int]) -> bool:
    """Load ``state`` (from :func:`_seq_state`) as sequence 0 after ``tokens``; False if refused."""
    import ctypes

    llama_cpp = _llama_cpp()
    if len(tokens) >= llm.n_ctx():
        return False
    buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(state), 0) == 0:
        llm.n_tokens = 0
        return False
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    llm._requires_eval = True  # llama-cpp-python then re-evaluates a token before sampling
    return True


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
