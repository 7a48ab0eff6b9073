"""The chat moves a GGUF model from transformers to llama.cpp once llama-cpp-python is installed.

``./run`` starts the chat on transformers while llama.cpp builds in the background. These tests
run in-process on ``fake:echo`` and stand in a transformers-engine model object for the loaded
one; whether llama.cpp "is installed" is patched, so no real model or build is involved.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import pytest
from rich.console import Console

from chatloom.cli import repl as repl_module
from chatloom.cli.agent_setup import AgentSetup
from chatloom.cli.repl import Repl


@dataclass
class EngineModel:
    """What the REPL reads off a loaded local model: its engine and file."""

    engine_name: str
    model_path: str


@pytest.fixture
def session(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    repl = Repl(AgentSetup(model="fake:echo"), "t", console=console, interactive=False)
    repl.loader.join()
    yield repl, out
    repl.agent.close()


def on_engine(repl: Repl, engine: str, path: str = "/models/qwen.gguf") -> None:
    repl.agent._ready = replace(repl.agent._ready, plain_model=EngineModel(engine, path))


def test_switches_to_llama_once_installed(session, monkeypatch):
    repl, out = session
    installed = False
    monkeypatch.setattr(repl_module, "_llama_installed", lambda: installed)
    on_engine(repl, "transformers")
    first = repl.agent
    repl.handle("hello")
    assert repl.agent is first  # not installed yet: no switch, and the turn ran
    assert "You said: hello" in out.getvalue()
    installed = True
    repl.handle("again")
    assert repl.agent is not first  # a new agent, built from the same setup
    assert repl.setup == AgentSetup(model="fake:echo")
    assert "llama.cpp is installed: the model runs on it from now on" in out.getvalue()
    assert "You said: again" in out.getvalue()
    assert repl.agent.history("t")[-1].content == "You said: again"  # the thread goes on


def test_model_command_names_the_engine(session):
    repl, out = session
    repl.handle("/model")
    assert out.getvalue().strip().splitlines()[-1] == "model fake:echo"  # not a local model: no engine
    on_engine(repl, "transformers")
    repl.handle("/model")
    assert out.getvalue().strip().splitlines()[-1] == "model fake:echo on transformers"


@pytest.mark.parametrize("engine, path", [("llama.cpp", "/models/qwen.gguf"), ("transformers", "/models/hf-dir")])
def test_no_switch_off_transformers_or_for_an_hf_dir(session, monkeypatch, engine, path):
    repl, out = session
    monkeypatch.setattr(repl_module, "_llama_installed", lambda: True)
    on_engine(repl, engine, path)
    first = repl.agent
    repl.handle("hello")
    assert repl.agent is first
    assert "llama.cpp" not in out.getvalue()


def test_a_failed_switch_keeps_the_chat_on_transformers(session, monkeypatch):
    repl, out = session
    monkeypatch.setattr(repl_module, "_llama_installed", lambda: True)
    on_engine(repl, "transformers")
    first = repl.agent

    def broken_build(*args, **kwargs):
        raise RuntimeError("libllama.so: cannot open shared object file")

    monkeypatch.setattr(AgentSetup, "build", broken_build)
    repl.handle("hello")
    text = out.getvalue()
    assert repl.agent is first
    assert "error: llama.cpp is installed but the model did not load on it" in text
    assert "staying on transformers" in text and "Traceback" not in text
    assert "You said: hello" in text  # the question is still answered
    repl.handle("again")  # one attempt per session: no second error
    assert out.getvalue().count("did not load on it") == 1


def test_llama_is_not_installed_without_the_package(monkeypatch):
    monkeypatch.setattr("chatloom.models.local.available_engines", lambda: ["transformers"])
    assert repl_module._llama_installed() is False


def test_an_install_in_progress_is_not_installed(monkeypatch):
    import importlib.metadata

    class Unfinished:
        def read_text(self, name):
            return None  # no RECORD yet: pip writes it last

    monkeypatch.setattr("chatloom.models.local.available_engines", lambda: ["llama", "transformers"])
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Unfinished())
    assert repl_module._llama_installed() is False
