"""The exact code to call a run through the API: Python (`openai` package) and curl."""

from __future__ import annotations

import json


def snippets(model_id: str, base_url: str, api_key_needed: bool = False) -> dict[str, str]:
    """{"python": ..., "curl": ...} asking `model_id` one question at `base_url` (ending in /v1)."""
    key = '"YOUR_API_KEY"' if api_key_needed else '"not-needed"'
    python = (
        "from openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{base_url}", api_key={key})\n'
        "reply = client.chat.completions.create(\n"
        f"    model={json.dumps(model_id)},\n"
        '    messages=[{"role": "user", "content": "Write a tagline for our new running shoes."}],\n'
        ")\n"
        "print(reply.choices[0].message.content)\n")
    body = json.dumps({"model": model_id, "messages": [
        {"role": "user", "content": "Write a tagline for our new running shoes."}]})
    auth = ' \\\n  -H "Authorization: Bearer $LOCALSFT_API_KEY"' if api_key_needed else ""
    curl = (f"curl {base_url}/chat/completions \\\n  -H \"Content-Type: application/json\"{auth} \\\n"
            f"  -d '{body.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}'\n")
    return {"python": python, "curl": curl}
