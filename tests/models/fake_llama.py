"""A stand-in for ``llama_cpp.Llama`` that records how it was made and loads no weights."""

from __future__ import annotations

import types


class FakeLlama:
    made: list[dict] = []  # the keyword arguments of every instance, in order; reset per test

    def __init__(self, **kwargs):
        FakeLlama.made.append(kwargs)
        self.metadata = {"tokenizer.chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}
        self._model = types.SimpleNamespace(token_get_text=lambda t: "</s>")

    def token_eos(self):
        return 2

    def token_bos(self):
        return -1
