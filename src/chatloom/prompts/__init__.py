"""Prompt templates: a YAML file is a whole prompt (role, policies, few-shot examples, reasoning).

>>> from chatloom.prompts import load_prompt
>>> prompt = load_prompt("tutor")
>>> prompt.split_reasoning("<think>6*7 is 42</think>It is 42.")
('It is 42.', '6*7 is 42')

Loading never imports langgraph or torch; rendering imports only ``langchain_core.messages``.
"""

from chatloom.prompts.loader import PromptInfo, list_prompts, load_prompt
from chatloom.prompts.template import PromptTemplate, split_reasoning

__all__ = ["PromptInfo", "PromptTemplate", "list_prompts", "load_prompt", "split_reasoning"]
