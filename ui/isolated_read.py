"""Read an uploaded examples file first in a child process with memory and time limits.

A hostile or broken file (a zip bomb of an .xlsx, a huge JSON document) can make a reader
take gigabytes or minutes. Reading is the part of the data check that depends on the file's
size, so the studio reads the whole file once in a child (`python -m localsft_ui.isolated_read
FILE MB SECONDS`) that limits its own memory and CPU time: if that child runs out, the app shows a plain message and
stays up; if it finishes, the check in the app reads a file already known to fit those limits.
The child needs no model or tokenizer, so this costs well under a second for ordinary files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from localsft.errors import UserError

MEMORY_MB = int(os.environ.get("LOCALSFT_CHECK_MEMORY_MB", "2048"))  # address space of the reading child
SECONDS = int(os.environ.get("LOCALSFT_CHECK_SECONDS", "120"))  # CPU and wall time of the reading child
OUT_OF_MEMORY = 3  # the child's exit code when a reader hits the memory limit


def read_columns(path: str | Path, memory_mb: int | None = None, seconds: int | None = None) -> list[str]:
    """The file's columns, after reading all of it in a limited child; UserError when it does not fit."""
    memory_mb, seconds = memory_mb or MEMORY_MB, seconds or SECONDS
    name = Path(path).name
    too_big = (f"Reading {name} needed more than {memory_mb} MB of memory, so it was stopped (the app is fine). "
               f"Save it as a smaller CSV or JSONL file, or split it.")
    too_slow = (f"Reading {name} took longer than {seconds} s, so it was stopped (the app is fine). "
                f"Save it as a smaller CSV or JSONL file, or split it.")
    child = subprocess.Popen([sys.executable, "-m", "localsft_ui.isolated_read", str(path), str(memory_mb),
                              str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, text=True)
    try:
        stdout, verdict = _watch(child, memory_mb, seconds)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if verdict == "slow" or child.returncode == -24:  # (SIGXCPU: its CPU time ran out)
        raise UserError(too_slow)
    if verdict == "big" or child.returncode != 0:  # out of memory, or killed without a word
        raise UserError(too_big)
    answer = json.loads(stdout)
    if "error" in answer:
        raise UserError(answer["error"])
    return answer["columns"]


def _watch(child: subprocess.Popen, memory_mb: int, seconds: int) -> tuple[str, str | None]:
    """Wait for the child; stop it when its resident memory passes the limit (where the kernel does not
    enforce the child's own address-space limit, as on macOS) or its time is up."""
    deadline = time.monotonic() + seconds + 5
    while True:
        try:
            return child.communicate(timeout=0.25)[0], None
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                return "", "slow"
            if _resident_mb(child.pid) > memory_mb:
                return "", "big"


def _resident_mb(pid: int) -> float:
    """Resident memory of a process in MB (`ps` works the same on Linux and macOS); 0 when unknown."""
    try:
        done = subprocess.run(["ps", "-o", "rss=", "-p", str(pid)], capture_output=True, text=True)
        return int(done.stdout.strip() or 0) / 1024
    except (OSError, ValueError):  # no `ps` here: the child's own limit still holds on Linux
        return 0.0


def main(path: str, memory_mb: int, seconds: int) -> int:
    """The child: limit itself, read every row, print {"columns": [...]} or {"error": "..."} as JSON."""
    import resource  # (set here, not in a preexec_fn: the app's server is threaded)

    from localsft.data.readers import open_source

    # The limit counts from what the interpreter and the readers already mapped (Linux; macOS
    # does not enforce it, so the parent also watches the resident size).
    mapped = _mapped_bytes()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (memory_mb << 20),) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))

    try:
        source = open_source(path)
        for _ in source.rows:
            pass
        print(json.dumps({"columns": list(source.columns or [])}))
    except UserError as err:
        print(json.dumps({"error": str(err)}))
    except MemoryError:
        return OUT_OF_MEMORY
    return 0


def _mapped_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
