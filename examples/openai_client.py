"""The official openai client talking to a chatloom agent served by `chatloom serve`.

    CHATLOOM_API_KEYS=me=change-me-to-a-long-random-key chatloom serve &
    CHATLOOM_API_KEY=change-me-to-a-long-random-key python examples/openai_client.py [MODEL]

Any OpenAI client or chat UI works the same way: base URL ``http://HOST:PORT/v1``, your key,
and an agent name from ``GET /v1/models`` as the model. The conversation is kept on the server,
named by the ``X-Chatloom-Thread`` header; chatloom's extras (citations, grounding, tool steps)
ride in the ``chatloom`` field that other clients ignore.
"""

from __future__ import annotations

import os
import sys
import uuid

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CHATLOOM_URL", "http://127.0.0.1:8000/v1"),
    api_key=os.environ.get("CHATLOOM_API_KEY", "none"),
)
models = [m.id for m in client.models.list()]
model = sys.argv[1] if len(sys.argv) > 1 else models[0]
print("agents:", ", ".join(models))
thread = {"X-Chatloom-Thread": f"example-{uuid.uuid4().hex[:8]}"}

reply = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "What is 17*23?"}], extra_headers=thread
)
print("answer:", reply.choices[0].message.content)
extra = reply.model_extra.get("chatloom", {})
for step in extra.get("tool_steps", []):
    print(f"  tool: {step['name']}({step['args']}) -> {step['result']}")
for cite in extra.get("citations", []):
    print(f"  [{cite['index']}] {cite['source']}")

print("streamed: ", end="", flush=True)
stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "And what did I just ask?"}], extra_headers=thread, stream=True
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
