"""chatloom.memory plugins: ``Agent(memory="name")`` recalls from an installed store."""

import pytest

from chatloom import Agent
from chatloom.errors import PluginError
from chatloom.memory import open_plugin_memory
from chatloom.testing import FakeChatModel

STORES = {
    "notes.py": """
        from chatloom.memory import Passage

        REMEMBERED = []


        class NotesMemory:
            '''A whole memory store: recall and remember.'''

            def __init__(self, settings=None, namespace=None):
                self.settings, self.namespace = settings, namespace

            def recall(self, query, *, k=4, namespace=None, user_id=None, filters=None):
                return [Passage(id="n1", text="The office opens at 9.", source="notes.md", chunk=2)]

            def remember(self, *, user_id, thread_id, question, answer):
                REMEMBERED.append(question)


        SHARED = NotesMemory(namespace="shared")


        def no_disk():
            raise OSError("no space left on device")


        NUMBER = 42
    """,
}


@pytest.fixture
def stores(fake_dist):
    return fake_dist(
        "chatloom-notes",
        {
            "chatloom.memory": {
                "notes": "notes:NotesMemory",
                "shared": "notes:SHARED",
                "nodisk": "notes:no_disk",
                "number": "notes:NUMBER",
                "missing": "notes_gone:Store",
            }
        },
        STORES,
    )


def test_agent_memory_by_plugin_name_recalls_and_remembers(stores):
    model = FakeChatModel(["The office opens at 9 [1]."])
    agent = Agent(model=model, memory="notes", namespace="hr", conversation_memory=True, checkpointer="memory")
    reply = agent.chat("When does the office open?", user_id="ada")
    assert [(c.index, c.source, c.chunk) for c in reply.citations] == [(1, "notes.md", 2)]
    assert "The office opens at 9." in "\n".join(str(m.content) for m in model.calls[0])
    import notes

    assert notes.REMEMBERED == ["When does the office open?"]


def test_a_memory_class_gets_the_settings_and_namespace_it_declares(stores):
    from chatloom.config import Settings

    settings = Settings()
    memory = open_plugin_memory("notes", settings, namespace="hr")
    assert memory.settings is settings and memory.namespace == "hr"


def test_a_memory_object_is_used_as_it_is(stores):
    import notes

    assert open_plugin_memory("shared", namespace="hr") is notes.SHARED


def test_memory_plugin_errors_are_plugin_errors(stores):
    with pytest.raises(
        PluginError,
        match=r"memory plugin 'nodisk' from chatloom-notes 1.0 \(notes:no_disk\) "
        r"failed to create 'nodisk': OSError: no space left on device",
    ):
        open_plugin_memory("nodisk")
    with pytest.raises(PluginError, match=r"memory plugin 'number' .* gave a int, not a memory"):
        open_plugin_memory("number")
    with pytest.raises(
        PluginError,
        match=r"plugin 'missing' from chatloom-notes 1.0 \(chatloom.memory\) "
        r"failed to load notes_gone:Store: ModuleNotFoundError",
    ):
        open_plugin_memory("missing")
    with pytest.raises(
        PluginError,
        match=r"no plugin 'nots' in group 'chatloom.memory' — installed: missing, "
        r"nodisk, notes, number, shared",
    ):
        Agent(model=FakeChatModel(["x"]), memory="nots", checkpointer="memory").chat("hi")
