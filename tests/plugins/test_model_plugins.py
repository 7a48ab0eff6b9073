"""chatloom.models plugins go through chatloom.plugins: one discovery, one load error, and a
chat model class (two methods) is a whole backend, as installed from examples/custom_backend.py."""

import json
import sys

import pytest

from chatloom import Agent, plugins
from chatloom.cli.main import run
from chatloom.config import Settings
from chatloom.errors import PluginError
from chatloom.models import known_schemes, resolve_model

MODELS = {
    "backends.py": """
        from langchain_core.language_models import BaseChatModel
        from langchain_core.messages import AIMessage
        from langchain_core.outputs import ChatGeneration, ChatResult
        from pydantic import Field


        class _Reply(BaseChatModel):
            def _generate(self, messages, stop=None, run_manager=None, **kwargs):
                text = f"{self.label()} heard {messages[-1].content}"
                return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

            @property
            def _llm_type(self):
                return "reply"


        class NamedModel(_Reply):
            model: str = "no name"
            temperature: float = 0.0

            def label(self):
                return f"{self.model} at {self.temperature}"


        class AliasedModel(_Reply):  # like ChatOpenAI: field model_name, keyword model
            model_name: str = Field(default="no name", alias="model")

            def label(self):
                return self.model_name
    """,
    "brokenbackend.py": """
        import os

        raise ImportError("the SDK needs libfoo.so")
    """,
}


@pytest.fixture
def backends(fake_dist):
    return fake_dist(
        "chatloom-backends",
        {
            "chatloom.models": {
                "named": "backends:NamedModel",
                "aliased": "backends:AliasedModel",
                "brokenbackend": "brokenbackend:create",
            }
        },
        MODELS,
    )


def test_a_broken_backend_reads_the_same_in_resolve_model_and_plugins_list(backends, capsys):
    with pytest.raises(PluginError) as err:
        resolve_model("brokenbackend:big")
    assert run(["plugins", "list", "--check", "--json"]) == 2  # brokenbackend fails the check
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["brokenbackend"]["status"] == f"error: {err.value}"
    assert f"{backends / 'brokenbackend.py'}:3: ImportError: the SDK needs libfoo.so" in str(err.value)
    assert plugins.problems() == [err.value]  # reported once, not once per surface


def test_plugins_list_first_then_resolve_model_gives_the_same_error(backends, capsys):
    assert run(["plugins", "list", "--check", "--json"]) == 2
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    with pytest.raises(PluginError) as err:
        resolve_model("brokenbackend:big")
    assert rows["brokenbackend"]["status"] == f"error: {err.value}"


def test_backend_schemes_come_from_plugin_discovery(backends):
    assert {"named", "aliased", "brokenbackend"} <= set(known_schemes())
    assert "backends" not in sys.modules  # listing schemes imports nothing


def test_a_chat_model_class_gets_the_model_name_and_options_as_keywords(backends):
    model = resolve_model("named:big", temperature=0.5, settings=Settings())
    assert model.invoke("hi").content == "big at 0.5 heard hi"
    assert resolve_model("aliased:small").invoke("hi").content == "small heard hi"


def test_the_custom_backend_example_is_a_working_installed_plugin(custom_backend):
    assert "shout" in known_schemes()
    assert resolve_model("shout:anything", temperature=0.2).invoke("hello").content == "HELLO!"
    agent = Agent(model="shout:anything", checkpointer="memory")
    assert agent.chat("hello from a plugin").answer == "HELLO FROM A PLUGIN!"
