"""A langchain chat model running a GGUF file or a Hugging Face model dir through transformers.

transformers dequantises a GGUF file on every load (17-34 s on 2 CPU cores). The first load
therefore saves the converted model once under ``<data dir>/cache/hf/<sha-prefix>/`` and
later loads read that (about 2 s). CUDA is used when ``torch.cuda.is_available()``.

Example (needs a GGUF file)::

    from chatloom.models.transformers_backend import TransformersChatModel
    m = TransformersChatModel(model_path="smollm2-135m.gguf", max_tokens=16)
    m.invoke("Hi").usage_metadata["output_tokens"]  # at most 16
"""

from __future__ import annotations

import importlib
import os
import shutil
import threading
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from chatloom.errors import BackendError, ChatloomError, install_hint
from chatloom.models import model_cache
from chatloom.models._local_chat import LocalChatModel, Piece, Prepared

# End-of-turn tokens of common chat templates; generation stops at any that exists.
_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "</s>")


def _require() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError:
        raise ChatloomError("the transformers engine needs torch and transformers", install_hint("local")) from None
    return torch, transformers


class TransformersChatModel(LocalChatModel):
    """Local chat model on transformers (GGUF via ``gguf_file=``, or an HF model dir)."""

    engine_name: str = "transformers"
    sha256: str | None = None
    """The GGUF file's sha256 when known (names its conversion cache)."""
    home: Path | None = None
    """The data dir holding the conversion cache (default: the settings' data dir)."""
    device: str | None = None
    """"cpu" or "cuda"; default: cuda when available."""
    cache_conversion: bool = True

    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _xgr_compiler: Any = PrivateAttr(default=None)
    _compiled: dict[str, Any] = PrivateAttr(default_factory=dict)
    load_seconds: float | None = None

    # ------------------------------------------------------------------ loading

    def _device(self) -> str:
        torch, _ = _require()
        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def load(self) -> TransformersChatModel:
        """Load the weights now (otherwise the first call does)."""
        self._ensure_loaded()
        return self

    def _ensure_loaded(self) -> tuple[Any, Any]:
        if self._model is not None:
            return self._model, self._tokenizer
        device = self._device()
        key = ("transformers", str(Path(self.model_path).resolve()), device)

        def load() -> tuple[Any, Any]:
            started = time.perf_counter()
            loaded = self._load(device)
            self.load_seconds = time.perf_counter() - started
            return loaded

        self._model, self._tokenizer = model_cache.LOADED_MODELS.get_or_load(key, load)
        return self._model, self._tokenizer

    def _load(self, device: str) -> tuple[Any, Any]:
        from transformers.utils import logging as hf_logging

        # The library never prints: transformers' tqdm bars would land in the user's REPL.
        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        gguf_utils: Any = None
        try:  # the GGUF converter uses a bare tqdm that ignores the switch above
            gguf_utils = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
        except ImportError:  # pragma: no cover - older transformers
            pass
        bar = getattr(gguf_utils, "tqdm", None)
        if bar is not None:
            gguf_utils.tqdm = lambda iterable, *a, **k: iterable
        try:
            return self._load_quietly(device)
        finally:
            if bar is not None:
                gguf_utils.tqdm = bar
            if was_enabled:
                hf_logging.enable_progress_bar()

    def _load_quietly(self, device: str) -> tuple[Any, Any]:
        torch, transformers = _require()
        path = Path(self.model_path).expanduser()
        dtype = torch.float16 if device == "cuda" else torch.float32
        try:
            if path.is_dir():
                source = path
            elif self.cache_conversion:
                source = self._converted(path)
            else:
                source = None
            if source is not None:
                tok = transformers.AutoTokenizer.from_pretrained(source)
                model = transformers.AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
            else:
                tok = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
                model = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
        except ChatloomError:
            raise
        except Exception as exc:  # any loader failure becomes one line
            raise BackendError(
                f"transformers could not load {str(path)!r}: {type(exc).__name__}: {str(exc)[:200]}",
                "check that the file is a supported GGUF or model dir (or use the llama engine)",
            ) from exc
        model.to(device)
        model.eval()
        return model, tok

    def _data_dir(self) -> Path:
        from chatloom.config import data_dir

        return data_dir(self.home)

    def _converted(self, gguf: Path) -> Path:
        """Dequantise ``gguf`` once into an HF dir in the cache; return the dir."""
        torch, transformers = _require()
        from chatloom.models.install import model_file_key, stamped_sha256

        # A catalog file opened as gguf:PATH shares the cache entry of local:NAME.
        sha = self.sha256 or stamped_sha256(gguf)
        cache = self._data_dir() / "cache" / "hf" / model_file_key(gguf, sha)
        if (cache / ".complete").is_file():
            return cache
        from filelock import FileLock

        cache.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache) + ".lock"):
            if (cache / ".complete").is_file():
                return cache
            tok = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
            # The GGUF quantizer marks the model as quantised, which blocks save_pretrained;
            # the weights are already plain tensors after dequantisation.
            model.hf_quantizer = None
            tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            # fp16 halves the disk use; a dequantised 4-bit value loses nothing in fp16.
            model.to(torch.float16).save_pretrained(tmp)
            tok.save_pretrained(tmp)
            (tmp / ".complete").write_text(str(gguf))
            shutil.rmtree(cache, ignore_errors=True)
            os.replace(tmp, cache)
            del model
        return cache

    # ------------------------------------------------------------------ hooks

    def _chat_template(self) -> str | None:
        _, tok = self._ensure_loaded()
        template = tok.chat_template
        if isinstance(template, dict):
            return template.get("tool_use") or template.get("default")
        return template

    def _grammar_available(self) -> bool:
        try:
            import xgrammar  # noqa: F401
        except ImportError:
            return False
        return True

    def _eos_ids(self) -> list[int]:
        model, tok = self._ensure_loaded()
        ids: set[int] = set()
        eos = model.generation_config.eos_token_id
        if isinstance(eos, int):
            ids.add(eos)
        elif eos:
            ids.update(eos)
        if tok.eos_token_id is not None:
            ids.add(tok.eos_token_id)
        vocab = tok.get_vocab()
        ids.update(vocab[t] for t in _END_TOKENS if t in vocab)
        return sorted(ids)

    def _logits_processor(self, prepared: Prepared) -> Any:
        if prepared.grammar is None:
            return None
        import xgrammar as xgr

        model, tok = self._ensure_loaded()
        if self._xgr_compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(
                tok, vocab_size=model.config.vocab_size, stop_token_ids=self._eos_ids()
            )
            self._xgr_compiler = xgr.GrammarCompiler(info)
        key = prepared.grammar.key()
        if key not in self._compiled:
            self._compiled[key] = self._xgr_compiler.compile_grammar(prepared.grammar.xgrammar())
        return xgr.contrib.hf.LogitsProcessor(self._compiled[key])

    def _generate_text(self, prepared: Prepared) -> Generator[Piece, None, None]:
        torch, transformers = _require()
        model, tok = self._ensure_loaded()
        prompt = (
            tok.apply_chat_template(
                prepared.messages,
                tools=prepared.tools or None,
                add_generation_prompt=True,
                tokenize=False,
            )
            + prepared.prefix
        )
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
        n_in = int(enc["input_ids"].shape[1])
        streamer = transformers.TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict[str, Any] = {
            **enc,
            "max_new_tokens": prepared.max_tokens,
            "streamer": streamer,
            "eos_token_id": self._eos_ids(),
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else self._eos_ids()[0],
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if prepared.stop:
            kwargs.update(stop_strings=prepared.stop, tokenizer=tok)
        processor = self._logits_processor(prepared)
        if processor is not None:
            kwargs["logits_processor"] = transformers.LogitsProcessorList([processor])
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                if self.seed is not None:
                    torch.manual_seed(self.seed)
                with torch.inference_mode():
                    result["out"] = model.generate(**kwargs)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                result["error"] = exc
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, name="chatloom-generate", daemon=True)
            worker.start()
            text = ""
            for delta in streamer:
                if delta:
                    text += delta
                    yield Piece(delta)
            worker.join()
        if "error" in result:
            exc = result["error"]
            raise BackendError(f"transformers generation failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
        n_out = int(result["out"].shape[1]) - n_in
        finish = "length" if n_out >= prepared.max_tokens else "stop"
        yield Piece("", done=True, input_tokens=n_in, output_tokens=n_out, finish_reason=finish)
