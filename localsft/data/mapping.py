"""Which fields hold the input and the output, and how one row becomes a normalized example.

Normalized examples are chat: {"messages": [{"role": ..., "content": ...}, ...]}, or
{"text": ...} for plain continuation text. Rows already in chat form keep their messages
exactly as written, so a normalized chat JSONL file round-trips unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

from localsft.errors import UserError

# Column names people use, compared after lower-casing and dropping accents, spaces and
# punctuation. Ordered by priority: "instruction" wins over "input" (Alpaca), etc.
INPUT_NAMES = (
    "prompt", "instruction", "question", "input", "query", "request", "user", "usermessage", "userinput",
    "inputtext", "source", "sourcetext", "context",
    "frage", "eingabe", "anweisung", "anfrage",  # de
    "pregunta", "entrada", "instruccion", "consulta",  # es
    "consigne", "entree", "requete",  # fr
    "domanda", "richiesta", "istruzione",  # it
    "vraag", "invoer", "pergunta", "pytanie", "vopros", "вопрос", "запрос", "질문", "问题", "質問", "入力",
)
OUTPUT_NAMES = (
    "completion", "output", "answer", "response", "reply", "target", "assistant", "assistantmessage",
    "outputtext", "targettext", "answertext", "result",
    "antwort", "ausgabe", "ergebnis",  # de
    "respuesta", "salida",  # es
    "reponse", "sortie",  # fr
    "risposta", "uscita",  # it
    "antwoord", "uitvoer", "resposta", "odpowiedz", "ответ", "답변", "回答", "答案", "出力",
)
SYSTEM_NAMES = ("system", "systemprompt", "systemmessage", "persona")
TEXT_NAMES = ("text", "content", "document", "body", "texte", "inhalt")
CHAT_NAMES = ("messages", "conversations", "conversation", "chat")
ROLES = {"system": "system", "user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
         "bot": "assistant", "model": "assistant", "ai": "assistant"}


_KNOWN = set(INPUT_NAMES + OUTPUT_NAMES + SYSTEM_NAMES + TEXT_NAMES + CHAT_NAMES)


class RowError(ValueError):
    """This row cannot be used; `column` names the field when one is to blame."""

    def __init__(self, message: str, column: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.column, self.code = column, code


@dataclass
class ColumnMapping:
    """Where the parts of an example are: one chat column, or input/output (+ system, context)."""

    input: str | None = None
    output: str | None = None
    system: str | None = None
    context: str | None = None  # extra input text appended below the input (Alpaca's "input")
    chat: str | None = None  # a column holding a list of messages
    text: str | None = None  # a column of plain continuation text

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _key(name: str) -> str:
    plain = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode() or str(name)
    return re.sub(r"[\W_]+", "", plain.lower()) or str(name).strip().lower()


_NAME_LIKE = re.compile(r"[\w .()/#-]{1,40}")


def shown(name) -> str:
    """A column name (or role) as messages show it: quoted when it looks like a name, else withheld.

    The file may not be the user's (a path typed into the app): a "header" such as the first
    line of /etc/shadow must not come back in a message.
    """
    return repr(name) if isinstance(name, str) and _NAME_LIKE.fullmatch(name) else "(a value that is not a name)"


def _shown_columns(columns: list[str]) -> str:
    return ", ".join(c if _NAME_LIKE.fullmatch(c) else f"column {i}" for i, c in enumerate(columns, 1))


def known_column(name: str) -> bool:
    """Is this one of the column names people use for inputs, outputs, system prompts, chats or text?"""
    return _key(name) in _KNOWN


def _find(columns: list[str], names: tuple[str, ...], taken: set[str]) -> str | None:
    keys = {_key(c): c for c in reversed(columns) if c not in taken}
    return next((keys[n] for n in names if n in keys), None)


class ColumnsUnknown(UserError):
    """The file's columns are readable but none is recognised as input/output: the user picks them."""

    def __init__(self, message: str, columns: list[str]) -> None:
        super().__init__(message)
        self.columns = list(columns)


def detect_mapping(columns: list[str], override: ColumnMapping | None = None) -> tuple[ColumnMapping, str | None]:
    """The mapping for these columns, and a note when it had to be guessed."""
    if override and (override.input or override.output or override.chat or override.text):
        for name in filter(None, (override.input, override.output, override.system, override.context,
                                  override.chat, override.text)):
            if name not in columns:
                raise UserError(f"There is no column {shown(name)}; the columns are: {_shown_columns(columns)}.")
        if bool(override.input) != bool(override.output):
            raise UserError("Name both the input and the output column (or neither).")
        return override, None
    chat = _find(columns, CHAT_NAMES, set())
    if chat:
        return ColumnMapping(chat=chat), None
    system = override.system if override and override.system else _find(columns, SYSTEM_NAMES, set())
    taken = {system} if system else set()
    output = _find(columns, OUTPUT_NAMES, taken)
    inp = _find(columns, INPUT_NAMES, taken | {output})
    context = _find(columns, ("input", "context", "eingabe", "entrada"), taken | {output, inp}) if inp else None
    if inp and output:
        return ColumnMapping(inp, output, system, context), None
    text = _find(columns, TEXT_NAMES, taken)
    if text and not (inp or output):
        return ColumnMapping(text=text), None
    rest = [c for c in columns if c not in taken]
    if len(rest) == 2:
        note = (f"Columns not recognised by name: using {shown(rest[0])} as the input and {shown(rest[1])} as the output "
                "(if the first line is an example rather than column names, add a header line).")
        return ColumnMapping(rest[0], rest[1], system), note
    raise ColumnsUnknown(f"Cannot tell which columns hold the inputs and the outputs "
                         f"(columns: {_shown_columns(columns)}). Choose them with --input-col and --output-col.",
                         columns)


def _text(row: dict, column: str, what: str) -> str:
    if column not in row or row[column] is None:
        raise RowError(f"no {what}: column {column!r} is missing", column, "missing column")
    value = row[column]
    if isinstance(value, (dict, list)):
        raise RowError(f"a {type(value).__name__} in column {column!r} where text is expected", column, "not text")
    text = str(value).replace("\r\n", "\n").strip()
    if not text:
        raise RowError(f"empty {what} (column {column!r})", column, "empty")
    return text


def _messages(value, column: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RowError(f"column {column!r} should be a non-empty list of messages", column, "bad chat")
    messages = []
    for n, m in enumerate(value, start=1):
        if not isinstance(m, dict):
            raise RowError(f"message {n} is not an object with a role and content", column, "bad chat")
        role, content = m.get("role", m.get("from")), m.get("content", m.get("value"))
        if ROLES.get(str(role).lower()) is None:
            raise RowError(f"message {n} has an unknown role {shown(role)} (use system, user or assistant)",
                           column, "bad chat")
        if not isinstance(content, str):
            raise RowError(f"message {n} has no text content", column, "bad chat")
        if not content.strip():
            raise RowError(f"message {n} ({role}) is empty", column, "empty")
        messages.append({"role": ROLES[str(role).lower()], "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        raise RowError("no assistant message, so there is nothing to learn", column, "no answer")
    return messages


def with_system(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """`messages` led by `system_prompt` as a system message, unless they begin with their own."""
    if not (system_prompt or "").strip() or (messages and messages[0].get("role") == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def to_example(row: dict, mapping: ColumnMapping, system_prompt: str | None = None) -> dict:
    """One row as a normalized example, or RowError saying what is wrong with it."""
    if mapping.text:
        return {"text": _text(row, mapping.text, "text")}
    if mapping.chat:
        messages = _messages(row.get(mapping.chat), mapping.chat)
    else:
        prompt = _text(row, mapping.input, "input")
        if mapping.context and str(row.get(mapping.context) or "").strip():
            prompt += "\n\n" + _text(row, mapping.context, "input")
        messages = [{"role": "user", "content": prompt},
                    {"role": "assistant", "content": _text(row, mapping.output, "output")}]
        if mapping.system and str(row.get(mapping.system) or "").strip():
            messages.insert(0, {"role": "system", "content": _text(row, mapping.system, "system prompt")})
    return {"messages": with_system(messages, system_prompt)}
