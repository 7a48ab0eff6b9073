"""resolve_model: built-in schemes, errors, and plugin schemes from real entry points.

Plugins are installed for the test as a real ``*.dist-info`` directory on ``sys.path``, so
``importlib.metadata`` discovers them exactly as it would an installed package.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

from chatloom import plugins
from chatloom.config import Settings
from chatloom.errors import ChatloomError, ConfigError, ModelError, ModelNotFound, PluginError
from chatloom.models import known_schemes, registry, resolve_model


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CHATLOOM_OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))


@pytest.fixture()
def plugin_dist(tmp_path, monkeypatch):
    """Install a fake distribution 'chatloom-echo-plugin' with three chatloom.models entry points."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "echo_plugin.py").write_text(
        textwrap.dedent("""
        from chatloom.testing import FakeChatModel

        SEEN = {}

        def make(name, **options):
            SEEN["name"], SEEN["options"] = name, options
            return FakeChatModel([f"echo plugin says {name}"])

        def make_with_settings(name, settings=None, **options):
            SEEN["settings"] = settings
            return FakeChatModel(["ok"])

        def explode(name, **options):
            raise RuntimeError("the GPU fell off")

        NOT_CALLABLE = 42
    """)
    )
    (site / "broken_plugin.py").write_text("import a_module_that_does_not_exist\n")
    info = site / "chatloom_echo_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chatloom-echo-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""
        [chatloom.models]
        echo = echo_plugin:make
        withsettings = echo_plugin:make_with_settings
        explode = echo_plugin:explode
        notcallable = echo_plugin:NOT_CALLABLE
        broken = broken_plugin:factory
        openai = echo_plugin:make
    """)
    )
    monkeypatch.syspath_prepend(str(site))
    plugins.refresh()  # discovery is cached per process; see the new distribution
    yield site
    for mod in ("echo_plugin", "broken_plugin"):
        sys.modules.pop(mod, None)
    sys.path.remove(str(site))
    plugins.refresh()


def test_fake_scheme():
    model = resolve_model("fake:echo", settings=Settings())  # settings are not forced on it
    assert model.invoke("hello").content.endswith("hello")


def test_model_objects_pass_through():
    model = resolve_model("fake:echo")
    assert resolve_model(model) is model


def test_unknown_scheme_lists_known_schemes_and_catalog():
    with pytest.raises(ModelNotFound) as info:
        resolve_model("nope:thing")
    msg = str(info.value)
    assert msg.startswith("unknown model scheme 'nope' in 'nope:thing' — known schemes: ")
    for scheme in ("openai:", "local:", "gguf:", "hf:", "fake:"):
        assert scheme in msg
    assert "local:qwen2.5-coder-0.5b" in msg
    assert "\n" not in msg


def test_unknown_bare_name():
    with pytest.raises(ModelNotFound, match="unknown model id 'whatever'"):
        resolve_model("whatever")


def test_bad_model_object():
    with pytest.raises(ModelNotFound, match="neither a model id nor a chat model"):
        resolve_model(42)  # type: ignore[arg-type]


@pytest.fixture()
def recording_backend(monkeypatch):
    """A throwaway module standing in for a built-in backend; records what it was asked for."""
    module = types.ModuleType("_recording_backend")
    module.seen = []
    module.create = lambda name, **options: module.seen.append(name) or "model"
    monkeypatch.setitem(sys.modules, "_recording_backend", module)
    return module


def test_bare_catalog_name_means_local(monkeypatch, recording_backend):
    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "local", "_recording_backend:create")
    resolve_model("qwen2.5-coder-0.5b")
    assert recording_backend.seen == ["qwen2.5-coder-0.5b"]


def test_bare_gguf_path_means_gguf(tmp_path, monkeypatch, recording_backend):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(b"GGUF")
    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "gguf", "_recording_backend:create")
    resolve_model(str(path))
    assert recording_backend.seen == [str(path)]


def test_missing_backend_module_is_a_model_error(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "hf", "chatloom.models.no_such_module:create")
    with pytest.raises(ModelError, match="the 'hf' backend is not available"):
        resolve_model("hf:/tmp/x")


def test_missing_dependency_names_the_install_command(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "hf", "some_missing_dep_pkg:create")
    with pytest.raises(ModelError) as info:
        resolve_model("hf:/tmp/x")
    assert "needs the Python package 'some_missing_dep_pkg'" in str(info.value)
    assert "pip install 'chatloom[local]'" in str(info.value)


def test_plugin_scheme_from_entry_point(plugin_dist):
    model = resolve_model("echo:hello-world", temperature=0.5, settings=Settings())
    assert model.invoke("hi").content == "echo plugin says hello-world"
    import echo_plugin

    # settings go only to factories that declare them
    assert echo_plugin.SEEN["options"] == {"temperature": 0.5}
    assert "echo" in known_schemes() and "explode" in known_schemes()
    with pytest.raises(ModelNotFound) as info:
        resolve_model("nope:x")
    assert "echo:" in str(info.value)


def test_plugin_receives_settings_when_it_asks(plugin_dist):
    settings = Settings()
    resolve_model("withsettings:x", settings=settings)
    import echo_plugin

    assert echo_plugin.SEEN["settings"] is settings


def test_plugin_that_fails_to_import_names_the_plugin(plugin_dist):
    with pytest.raises(PluginError) as info:
        resolve_model("broken:x")
    msg = str(info.value)
    # the same words as every plugin group's load error (chatloom.plugins), not a registry dialect
    assert "plugin 'broken' from chatloom-echo-plugin 1.0 (chatloom.models) failed to load" in msg
    assert "broken_plugin:factory" in msg and "pip uninstall chatloom-echo-plugin" in msg
    assert "ModuleNotFoundError" in msg and "a_module_that_does_not_exist" in msg
    assert "\n" not in msg


def test_plugin_factory_errors_become_plugin_errors(plugin_dist):
    with pytest.raises(
        PluginError,
        match=r"model plugin 'explode' .* failed to create "
        r"'explode:x': RuntimeError: the GPU fell off",
    ):
        resolve_model("explode:x")
    with pytest.raises(PluginError, match="is not callable"):
        resolve_model("notcallable:x")


def test_builtin_schemes_cannot_be_hijacked(plugin_dist):
    with pytest.raises(ConfigError):  # the real openai backend: no key, no base URL
        resolve_model("openai:gpt-4o-mini")
    assert known_schemes().count("openai") == 1


def test_chatloom_errors_from_factories_pass_through():
    with pytest.raises(ChatloomError, match="unknown fake model"):
        resolve_model("fake:nonsense")


def test_import_is_cheap():
    code = (
        "import sys, chatloom.models; "
        "heavy = [m for m in ('openai', 'langchain_openai', 'torch', 'transformers', "
        "'llama_cpp', 'langchain_core') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
