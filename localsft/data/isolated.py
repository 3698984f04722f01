"""Check a file with its reading done in a child process under a memory and a time limit.

The readers bound their own memory, but an app that checks files from anyone should not
bet its life on every parser: the half of the check that reads the file's bytes runs in a
fresh process whose address space is capped (resource.setrlimit) and which is killed when
it runs out of time. A file that would need more is refused with a plain message; the app
process is never at risk. The token checks then run in the caller's process, on the kept
examples (bounded in number and length by the readers), with the caller's tokenizer: the
child stays small and quick to start (no MLX, no tokenizer to load).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
from pathlib import Path

from localsft.data.mapping import ColumnsUnknown
from localsft.errors import UserError

MEMORY_LIMIT_MB = 2048  # address space of the reading process (Python and the readers take ~250 MB)
TIME_LIMIT_S = 300


def check_isolated(path: str | Path, *, tokenizer=None, valid_fraction: float = 0.1,
                   memory_mb: int | None = None, seconds: float | None = None, **options):
    """What `localsft.data.check(path, tokenizer=..., **options)` returns, the file read in a child process.

    Raises UserError with a plain message when the file is unreadable, or when reading it
    needs more than `memory_mb` MB of address space or `seconds` seconds.
    """
    name = Path(path).name
    memory_mb, seconds = memory_mb or MEMORY_LIMIT_MB, seconds or TIME_LIMIT_S
    ctx = mp.get_context("spawn")  # a fresh interpreter: no threads or state copied from the app
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_run, args=(send, str(path), memory_mb, options), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise UserError(f"Checking {name} took longer than {seconds:g} s, so it was stopped. "
                            "Split the file into smaller ones.")
        kind, payload = receive.recv()
    except EOFError:  # the child died: killed for memory, or crashed in a parser
        kind, payload = "memory", None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if kind == "memory":
        raise UserError(f"Checking {name} needs more than {memory_mb:,} MB of memory, so it was stopped. "
                        "Split the file into smaller ones, or save it as CSV or JSON Lines.")
    if kind == "error":
        raise UserError(payload)
    if kind == "columns":
        raise ColumnsUnknown(*payload)
    from localsft.data.doctor import finish_check

    return finish_check(payload, tokenizer, valid_fraction)


def _run(send, path: str, memory_mb: int, options: dict) -> None:
    """The child: cap the address space, read the file, send ("report", report) or (kind, message)."""
    sys.modules.setdefault("numpy", None)  # openpyxl's optional numpy would reserve BLAS buffers for nothing
    limit = memory_mb << 20
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):  # a platform that does not enforce it (macOS): the time limit still holds
        pass
    try:
        from localsft.data.doctor import read_examples

        send.send(("report", read_examples(path, **options)))
    except ColumnsUnknown as err:  # readable, but the user must pick the columns: they go back with it
        send.send(("columns", (str(err), err.columns)))
    except UserError as err:
        send.send(("error", str(err)))
    except MemoryError:
        send.send(("memory", None))
    except Exception as err:  # a parser's own failure: a plain message, never a traceback
        send.send(("error", f"{Path(path).name} could not be checked ({type(err).__name__})."))
    finally:
        send.close()
