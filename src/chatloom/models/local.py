"""Factories for local chat models: catalog names, GGUF files and Hugging Face model dirs.

The registry (``chatloom.models.resolve_model``) calls these for the ``local:``, ``gguf:`` and
``hf:`` schemes. Engine choice for GGUF files: llama-cpp-python when it is importable (the fast
path, ``pip install 'chatloom[llama]'``), otherwise transformers. HF model dirs always use
transformers. Pass ``engine="transformers"`` or ``engine="llama"`` to force one.

Example (needs the model installed: ``chatloom models install smollm2-135m``)::

    from chatloom.models.local import create_local_model
    model = create_local_model("smollm2-135m", max_tokens=32)
    model.invoke("Say hi").content  # e.g. 'Hello! ...'
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chatloom.errors import ChatloomError, ModelNotFound, install_hint

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

Engine = Literal["llama", "transformers"]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available_engines() -> list[Engine]:
    """Engines whose Python packages are installed (checked without importing them)."""
    engines: list[Engine] = []
    if _importable("llama_cpp"):
        engines.append("llama")
    if _importable("torch") and _importable("transformers"):
        engines.append("transformers")
    return engines


def choose_engine(kind: Literal["gguf", "hf"], engine: str = "auto") -> Engine:
    """The engine that will run a model of ``kind``; raises ChatloomError if none can.

    For example, ``choose_engine("hf")`` is ``"transformers"`` when transformers is installed.
    """
    have = available_engines()
    if engine not in ("auto", "llama", "transformers"):
        raise ChatloomError(f"unknown local engine {engine!r}", "use 'auto', 'llama' or 'transformers'")
    if engine == "llama" or (engine == "auto" and kind == "gguf" and "llama" in have):
        if kind != "gguf":
            raise ChatloomError("the llama engine only runs GGUF files", "use engine='transformers' for HF dirs")
        if "llama" not in have:
            raise ChatloomError(
                "engine 'llama' needs llama-cpp-python, which is not installed",
                install_hint("llama", "llama-cpp-python"),
            )
        return "llama"
    if "transformers" not in have:
        hint = install_hint("local")
        if kind == "gguf":
            hint = f"{install_hint('llama', 'llama-cpp-python')}; or {hint}"
        raise ChatloomError("running local models needs torch and transformers, which are not installed", hint)
    return "transformers"


def create_gguf_model(path: str | Path, *, engine: str = "auto", settings: Any = None, **options: Any) -> BaseChatModel:
    """A chat model running the GGUF file at ``path`` (``gguf:PATH`` model ids).

    ``options`` go to the backend: ``max_tokens``, ``temperature``, ``n_ctx``, ``constrained``...
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelNotFound(f"GGUF file {str(p)!r} does not exist", "check the path after 'gguf:'")
    if settings is not None and options.get("home") is None:
        options["home"] = settings.data_dir()
    return _build(p, choose_engine("gguf", engine), **options)


def create_hf_model(directory: str | Path, *, settings: Any = None, **options: Any) -> BaseChatModel:
    """A chat model running a Hugging Face model dir through transformers (``hf:DIR`` ids)."""
    d = Path(directory).expanduser()
    if not (d / "config.json").is_file():
        raise ModelNotFound(
            f"{str(d)!r} is not a Hugging Face model dir (no config.json)",
            "point 'hf:' at a directory made by save_pretrained()",
        )
    options.pop("engine", None)
    if settings is not None and options.get("home") is None:
        options["home"] = settings.data_dir()
    choose_engine("hf", "transformers")
    from chatloom.models.transformers_backend import TransformersChatModel

    return TransformersChatModel(model_path=str(d), **options)


def create_local_model(
    name: str, *, engine: str = "auto", home: Path | None = None, settings: Any = None, **options: Any
) -> BaseChatModel:
    """A chat model for catalog name ``name`` (``local:NAME`` ids), e.g. ``qwen2.5-coder-0.5b``.

    Raises ModelNotFound (unknown name), ModelNotInstalled (run `chatloom models install NAME`)
    or CorruptModel (size or sha256 mismatch).
    """
    from chatloom.models.catalog import get_entry
    from chatloom.models.install import locate

    if home is None and settings is not None:
        home = settings.data_dir()
    entry = get_entry(name or "")
    chosen = choose_engine("gguf", engine)
    path = locate(entry.name, home)
    options.setdefault("model_name", entry.name)
    options.setdefault("sha256", entry.sha256)
    from chatloom.models.profiles import profile_for

    profile = profile_for(f"local:{entry.name}")
    options.setdefault("inline_tools", profile.inline_tools)
    if chosen == "llama":
        options.setdefault("n_ctx", profile.context_window)
        options.setdefault("n_threads", profile.n_threads)
    return _build(path, chosen, home=home, **options)


def _build(path: Path, engine: Engine, **options: Any) -> BaseChatModel:
    if engine == "llama":
        from chatloom.models.llamacpp_backend import LlamaCppChatModel

        return LlamaCppChatModel(model_path=str(path), **options)
    from chatloom.models.transformers_backend import TransformersChatModel

    return TransformersChatModel(model_path=str(path), **options)
