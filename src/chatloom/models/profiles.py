"""Model profiles: the per-model settings that decide how a turn is shown to a model.

One place for what differs between a 0.5B local model and GPT-4o: how big its context is and
how much of it a turn may fill, whether few-shot examples help it or get copied, how many
passages it reads well. Each value was chosen by measurement (docs/models-local.md and
benchmarks/bench_grounding.py); a model not listed gets the profile of its kind.

>>> profile_for("local:qwen2.5-coder-0.5b").few_shot
False
>>> profile_for("openai:gpt-4o-mini").context_window
128000
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ModelProfile:
    """How chatloom shapes a turn for one model."""

    name: str
    context_window: int
    """Tokens the model can see; local engines are loaded with this context size."""
    reply_tokens: int = 512
    """Kept free for the reply: a turn's input is trimmed to ``context_window - reply_tokens``."""
    few_shot: bool = True
    """Render the prompt's few-shot examples. Small models copy them into real answers."""
    passage_tokens: int = 400
    """The most of one retrieved passage the model is shown."""
    quote_best_sentence: bool = False
    """After an answer that leaves out what the passage line best matching the question says,
    quote that line, cited. Small models often answer from the wrong line of a passage."""
    tool_result_tokens: int = 1500
    """The most of one tool result the model is shown (the full result stays in the trace)."""
    n_threads: int | None = None
    """CPU threads for a local engine; None: half the cores, at least one (measured in
    benchmarks/bench_threads.py: more threads than that were much slower on a busy machine)."""
    inline_tools: tuple[str, ...] = ()
    """Tools a local engine applies inside the model's text rather than offering as calls."""
    answers_without_tool_list: bool = False
    """Use the tool list only to decide whether to call a tool; when the model answers
    instead, and no tool result has gone into the answer, write the answer from the prompt
    with no tool list. Shown a tool list, small models answer in one terse sentence."""
    failed_steps_allowed: int | None = None
    """Tool steps in a row whose every call failed, after which the turn is answered without
    tools (None: only the step limit stops it). Small models rarely recover from failures:
    they search an empty knowledge base with one query after another until the step limit."""
    checks_call_words: bool = False
    """A tool call backs an answer only if its one-word arguments (units, codes, names) were
    given before it, as its figures must be: abbreviating a word of the question, or named in a
    passage or kept result. Small models copy a tool's example arguments: Qwen 0.5B converted
    "50 mi" to km for a question about 50 friends."""
    offer_abstention: bool = True
    """Tell the model to say "not in the knowledge base" when the passages don't answer.
    Small models then say it to every question; for them the answer check decides instead."""

    @property
    def input_budget(self) -> int:
        """Tokens a turn's input may take."""
        return self.context_window - self.reply_tokens


# Qwen2.5 and SmolLM2 were trained on 32k and 8k contexts; 8192 holds the reference bot's
# prompt, four passages and several tool steps, and its KV cache costs ~100 MB on the 0.5B.
# Few-shot off: with examples, Qwen 0.5B answered a Korean HR question with the researcher
# prompt's "Eiffel Tower" search and the 1.5B copied "The sources don't say" (issue 10).
# The calculator inline, not as a call: on GSM8K the 0.5B scored 29/200 with the inline
# calculator and no tool list, 23/200 with no tools, and 8/40 vs 6/40 when offered the call
# (a later run of the whole default path: 52/200 with the calculator, 50/200 without).
# The quote of the best-matching passage line: korean_faq facts 11/18 -> 13/18 with the 0.5B
# (14/18 with the calculator bound), the held-out HR set unchanged at 6/10. Showing small models only the best-matching lines of
# each passage instead was tried and dropped: it lost procedures and tables (HR 6/10 -> 3/10).
# Answers written without the tool list: shown the reference bot's tools (python, search,
# unit_convert), the 0.5B answered 42 of the first 96 GSM8K questions without a call, most in
# one terse sentence, and scored 11/96 against 20/96 for the same bot with no tools; with the
# answers written without the list, 20/96 (38/200 vs 41/200 without tools, sign test p = 0.66).
_SMALL_LOCAL = ModelProfile(
    "small-local",
    context_window=8192,
    few_shot=False,
    passage_tokens=300,
    offer_abstention=False,
    inline_tools=("calculator",),
    quote_best_sentence=True,
    answers_without_tool_list=True,
    failed_steps_allowed=2,
    checks_call_words=True,
)
_PROFILES: dict[str, ModelProfile] = {
    "qwen2.5-coder-0.5b": replace(_SMALL_LOCAL, name="qwen2.5-coder-0.5b"),
    "qwen2.5-coder-1.5b": replace(_SMALL_LOCAL, name="qwen2.5-coder-1.5b"),
    "smollm2-135m": replace(_SMALL_LOCAL, name="smollm2-135m"),
}
_LOCAL_DEFAULT = ModelProfile("local", context_window=4096)
_REMOTE_DEFAULT = ModelProfile(
    "remote", context_window=128000, reply_tokens=4096, passage_tokens=800, tool_result_tokens=8000
)


def profile_for(model: Any) -> ModelProfile:
    """The profile for a model id (``"local:qwen2.5-coder-0.5b"``) or a chat model object."""
    if isinstance(model, str):
        scheme, _, name = model.partition(":")
        if scheme == "local":
            return _PROFILES.get(name, _LOCAL_DEFAULT)
        return _LOCAL_DEFAULT if scheme in ("gguf", "hf") else _REMOTE_DEFAULT
    model_name = getattr(model, "model_name", None)
    if model_name in _PROFILES:
        return _PROFILES[model_name]
    window = getattr(model, "n_ctx", None)
    if isinstance(window, int):  # a local engine we don't know: trust its loaded context size
        return replace(_LOCAL_DEFAULT, context_window=window)
    if getattr(model, "model_path", None):
        return _LOCAL_DEFAULT
    return _REMOTE_DEFAULT


def estimate_tokens(text: str) -> int:
    """Tokens ``text`` will take, estimated on the safe side without a tokenizer.

    About four Latin characters make a token, but a Hangul syllable (or a CJK character) is
    about one token in the Qwen and Llama tokenizers, so counting characters / 4 would let a
    Korean prompt overflow the context four times over.

    >>> estimate_tokens("hello world!"), estimate_tokens("회사 연차 신청")
    (3, 7)
    """
    wide = sum(1 for ch in text if ord(ch) > 0x2E7F)
    return (len(text) - wide + 3) // 4 + wide
