"""Render an Ollama TEMPLATE (Go text/template) the way Ollama's server does, for tests.

A small interpreter for the subset chat templates use: text, `{{ .Field }}`, `{{ $var }}`,
`if` / `else if` / `else` / `end`, `range .Messages`, `$v := ...` and `$v = ...`, `eq`, `and`,
`not`, string literals, and `{{-` / `-}}` whitespace trimming. Anything else raises, so a
template using more than this fails the test instead of rendering wrongly.

`ollama_render` prepares the values as Ollama's server does (server/routes.go and
template/template.go): the Modelfile's SYSTEM becomes a first system message when the chat
has none; `.System` is every system message's text joined, and `.Messages` still holds them.
"""

from __future__ import annotations

import re

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _tokens(template: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    for match in _ACTION.finditer(template):
        text = template[pos:match.start()]
        if match.group(1):
            text = text.rstrip()
        if out and out[-1][0] == "trim":
            out.pop()
            text = text.lstrip()
        out.append(("text", text))
        out.append(("action", match.group(2)))
        if match.group(3):
            out.append(("trim", ""))
        pos = match.end()
    text = template[pos:]
    if out and out[-1][0] == "trim":
        out.pop()
        text = text.lstrip()
    out.append(("text", text))
    return out


def _parse(tokens: list[tuple[str, str]], pos: int, stop: tuple[str, ...]) -> tuple[list, int, str]:
    """Nodes up to one of the `stop` keywords; returns (nodes, position after it, the keyword action)."""
    nodes = []
    while pos < len(tokens):
        kind, value = tokens[pos]
        pos += 1
        if kind == "text":
            nodes.append(("text", value))
        elif value == "end" or value == "else" or value.startswith("else if "):
            if value.split(" ")[0] in stop or value in stop:
                return nodes, pos, value
            raise ValueError(f"unexpected {{{{ {value} }}}}")
        elif value.startswith("if "):
            nodes.append(_parse_if(tokens, value[3:], pos))
            pos = nodes[-1][-1]
        elif value.startswith("range "):
            body, pos, _ = _parse(tokens, pos, ("end",))
            nodes.append(("range", value[6:], body))
        else:
            nodes.append(("action", value))
    if stop:
        raise ValueError("template ends inside a block")
    return nodes, pos, ""


def _parse_if(tokens, condition: str, pos: int):
    branches = []
    while True:
        body, pos, ended = _parse(tokens, pos, ("end", "else"))
        branches.append((condition, body))
        if ended == "end":
            return ("if", branches, pos)
        condition = ended[8:] if ended.startswith("else if ") else "true"


def _split_args(expr: str) -> list[str]:
    return re.findall(r'"(?:[^"\\]|\\.)*"|\S+', expr)


def _value(expr: str, scope: dict, dot: dict):
    expr = expr.strip()
    if expr.startswith("(") and expr.endswith(")"):
        return _value(expr[1:-1], scope, dot)
    args = _split_args(expr)
    if len(args) > 1:
        func, rest = args[0], [_value(a, scope, dot) for a in args[1:]]
        if func == "eq":
            return any(rest[0] == other for other in rest[1:])
        if func == "and":
            return all(rest)
        if func == "or":
            return any(rest)
        if func == "not":
            return not rest[0]
        raise ValueError(f"unsupported function {func!r}")
    if expr == "true":
        return True
    if expr.startswith('"'):
        return expr[1:-1].encode().decode("unicode_escape")
    if expr.startswith("$"):
        return scope[expr]
    if expr == ".":
        return dot
    if expr.startswith("."):
        return dot[expr[1:]]
    raise ValueError(f"unsupported expression {expr!r}")


def _execute(nodes: list, scope: dict, dot: dict, out: list[str]) -> None:
    for node in nodes:
        if node[0] == "text":
            out.append(node[1])
        elif node[0] == "if":
            for condition, body in node[1]:
                if _value(condition, scope, dot):
                    _execute(body, scope, dot, out)
                    break
        elif node[0] == "range":
            for item in _value(node[1], scope, dot):
                _execute(node[2], scope, item, out)
        else:
            assign = re.match(r"^(\$\w+)\s*(:?=)\s*(.+)$", node[1])
            if assign:
                scope[assign.group(1)] = _value(assign.group(3), scope, dot)
            else:
                out.append(str(_value(node[1], scope, dot)))


def render(template: str, values: dict) -> str:
    """The template executed with `values` as its dot."""
    nodes, _, _ = _parse(_tokens(template), 0, ())
    out: list[str] = []
    _execute(nodes, {"$": values}, values, out)
    return "".join(out)


def ollama_render(template: str, system: str | None, messages: list[dict]) -> str:
    """What Ollama's server renders for a chat request (messages) on a model with this TEMPLATE/SYSTEM."""
    messages = [dict(m) for m in messages]
    if system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    joined = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    rows = [{"Role": m["role"], "Content": m["content"]} for m in messages]
    return render(template, {"System": joined, "Messages": rows})
