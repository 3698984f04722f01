"""Check an OpenAI-style request body and turn it into an engine Job; errors are plain sentences."""

from __future__ import annotations

from localsft.inference.generate import SamplingSettings

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ApiError(Exception):
    """An error for the client, in OpenAI's shape: status, message, the parameter at fault, a code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _number(body: dict, name: str, low: float, high: float, default: float, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError(400, f"{name} must be a number, not {value!r}.", name)
    if value > high or value < low or (low_open and value == low):
        bounds = f"{'more than' if low_open else 'at least'} {low:g} and at most {high:g}"
        raise ApiError(400, f"{name} must be {bounds} (got {value}).", name)
    return float(value)


def _integer(body: dict, name: str, low: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        raise ApiError(400, f"{name} must be a whole number{f' of at least {low}' if low is not None else ''}, "
                            f"not {value!r}.", name)
    return value


def _stop(body: dict) -> list[str]:
    value = body.get("stop")
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, "stop must be a non-empty string or a list of up to 4 of them.", "stop")
    return stops


def sampling(body: dict) -> tuple[SamplingSettings, bool, list[str], bool]:
    """(settings, whether max_tokens was given, stop strings, stream) from the body."""
    if body.get("n") not in (None, 1):
        raise ApiError(400, "Only n=1 is supported (one answer per request).", "n")
    max_tokens = _integer(body, "max_completion_tokens", 1) or _integer(body, "max_tokens", 1)
    settings = SamplingSettings(max_tokens=max_tokens or 1,
                                temperature=_number(body, "temperature", 0.0, 2.0, 1.0),
                                top_p=_number(body, "top_p", 0.0, 1.0, 1.0, low_open=True),
                                seed=_integer(body, "seed"))
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false.", "stream")
    return settings, max_tokens is not None, _stop(body), stream


def _content(value, index: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) for p in value):
        return "".join(p["text"] for p in value)
    raise ApiError(400, f"messages[{index}].content must be text (a string or a list of text parts).",
                   f"messages[{index}].content")


def messages(body: dict) -> list[dict]:
    """The chat messages, checked: roles system/developer/user/assistant with text content."""
    value = body.get("messages")
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects.", "messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(400, f"messages[{i}] needs a role of system, developer, user or assistant.",
                           f"messages[{i}].role")
        out.append({"role": ROLES[message["role"]], "content": _content(message.get("content"), i)})
    return out


def prompt(body: dict) -> str:
    """The completion prompt: a string (or a list holding one string)."""
    value = body.get("prompt")
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value:
        raise ApiError(400, "prompt must be a non-empty string.", "prompt")
    return value


def model_name(body: dict) -> str:
    value = body.get("model")
    if not isinstance(value, str) or not value:
        raise ApiError(400, "model is required: the id of a base model or a run (see GET /v1/models).", "model")
    return value
