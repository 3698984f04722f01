"""`localsft serve` vs `mlx_lm.server`: 4 concurrent clients, 24 requests over the base and 3 adapters.

Prints one JSON object, both servers measured in this one invocation, each as its own
process on the same weights (the default model; mlx_lm.server gets an fp32 copy, the
precision localsft picks on CPU, with OpenBLAS preloaded as localsft does) and the same 3
random LoRA adapters (mlx_lm.server is given the adapter per request, in its `adapters`
field, and reloads the model when it changes). Requests are greedy, --max-tokens each,
made with the `openai` package:

    *_tok_s           aggregate completion tokens per second over the 24 requests
    *_p50_s, *_p95_s  request latency
    *_cpu_s           CPU seconds the server process used for the 24 requests
    speedup           ours_tok_s / mlx_lm_tok_s (target: at least 3)
    peak_mem_ratio    our server's peak RSS after the run over its peak after one base
                      request (one model's memory; target: at most 1.15)
    switch_ttft_ratio median first-token latency of a request whose adapter differs from the
                      previous request's, over one whose adapter is the same (target: at most 1.2);
                      switch_ttft_cpu_ratio the same in the server's CPU seconds (steadier)

--only-ours skips mlx_lm.server (for our own figures alone).

    .venv/bin/python benchmarks/serve.py [--max-tokens 48] [--only-ours]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import localsft  # noqa: F401  (fast BLAS before mlx)

from localsft.platform.blas import find_openblas

MODELS = ["base", "a1", "a2", "a3"]
QUESTIONS = ["Write a tagline for our trail running shoes.", "Describe our wool socks in two sentences.",
             "What should a good rain jacket have?", "Write a short thank-you note to a customer."]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup(home: Path) -> tuple[Path, dict[str, Path]]:
    """The default model in a fresh store, 3 finished runs with random adapters, an fp32 copy for mlx-lm."""
    os.environ["LOCALSFT_HOME"] = str(home)
    from compare import random_adapter_run
    from localsft.models.loading import load_model
    from mlx_lm.utils import save_config, save_model

    adapters = {}
    for i, name in enumerate(MODELS[1:]):
        run = random_adapter_run(home / "runs" / name) if i == 0 else home / "runs" / name
        if i:
            shutil.copytree(home / "runs" / "a1", run)
            _reseed(run / "adapters" / "best", seed=i)
        (run / "events.jsonl").write_text(json.dumps({"type": "started", "time": time.time(), "steps": 1}) + "\n"
                                          + json.dumps({"type": "finished", "time": time.time()}) + "\n")
        adapters[name] = run / "adapters" / "best"
    loaded = load_model(None)
    fp32 = home / "fp32-copy"
    save_model(str(fp32), loaded.model)
    config = dict(loaded.config)
    config.pop("quantization", None)
    save_config(config, str(fp32 / "config.json"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(loaded.path / name, fp32)
    return fp32, adapters


def _reseed(folder: Path, seed: int) -> None:
    import mlx.core as mx

    weights = mx.load(str(folder / "adapters.safetensors"))
    mx.random.seed(100 + seed)
    weights = {k: (mx.random.normal(v.shape) * 1e-3 if k.endswith("lora_b") else v) for k, v in weights.items()}
    mx.save_safetensors(str(folder / "adapters.safetensors"), weights)


class Process:
    """A server child process: waits for /v1/models, reads its CPU time and peak memory."""

    def __init__(self, cmd: list[str], port: int, env: dict) -> None:
        self.url = f"http://127.0.0.1:{port}/v1"
        self.child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import urllib.request

        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(self.url + "/models", timeout=5)
                return
            except OSError:
                if self.child.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"{cmd} did not start")
                time.sleep(0.5)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_mb(self) -> float:
        for line in Path(f"/proc/{self.child.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self.child.terminate()
        self.child.wait(30)


def workload(url: str, ask, max_tokens: int) -> dict:
    """24 requests over the 4 models by 4 concurrent clients; throughput and latency."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
    jobs = [(MODELS[i % 4], QUESTIONS[i // 6 % 4]) for i in range(24)]

    def one(job):
        start = time.perf_counter()
        reply = client.chat.completions.create(messages=[{"role": "user", "content": job[1]}], max_tokens=max_tokens,
                                               temperature=0, **ask(job[0]))
        return time.perf_counter() - start, reply.usage.completion_tokens

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, jobs))
    wall = time.perf_counter() - start
    latencies = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {"tok_s": tokens / wall, "wall_s": wall, "tokens": tokens, "p50_s": statistics.median(latencies),
            "p95_s": latencies[int(0.95 * (len(latencies) - 1))]}


def first_token_s(url: str, ask, model: str, server: "Process | None" = None) -> tuple[float, float]:
    """Wall seconds to the first answer token, and the CPU seconds the server spent meanwhile
    (steadier than wall time on a shared machine: the server does nothing else then)."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=600)
    cpu = server.cpu_s() if server else 0.0
    start = time.perf_counter()
    stream = client.chat.completions.create(messages=[{"role": "user", "content": QUESTIONS[0]}], max_tokens=2,
                                            temperature=0, stream=True, **ask(model))
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    elapsed = time.perf_counter() - start
    cpu = (server.cpu_s() - cpu) if server else 0.0
    stream.close()
    return elapsed, cpu


def switch_ratio(url: str, ask, server: "Process") -> tuple[float, float]:
    """Median first-token latency after a switch of adapter over the same without a switch
    (wall time, and the server's CPU time)."""
    same, switched, previous = [], [], "a1"
    first_token_s(url, ask, previous)
    for model in ["a1", "a2", "a2", "a3", "a3", "a1", "a1", "base", "base", "a2", "a2", "a1"] * 2:
        (same if model == previous else switched).append(first_token_s(url, ask, model, server))
        previous = model
    wall = statistics.median(s[0] for s in switched) / statistics.median(s[0] for s in same)
    cpu = statistics.median(s[1] for s in switched) / max(statistics.median(s[1] for s in same), 1e-9)
    return wall, cpu


def measure(cmd: list[str], port: int, env: dict, ask, max_tokens: int, label: str) -> dict:
    server = Process(cmd, port, env)
    try:
        workload_warm = first_token_s(server.url, ask, "base")[0]  # loads the model
        one_model_mb = server.peak_mb()
        cpu = server.cpu_s()
        figures = workload(server.url, ask, max_tokens)
        figures["cpu_s"] = server.cpu_s() - cpu
        figures["peak_mb"] = server.peak_mb()
        figures["one_model_peak_mb"] = one_model_mb
        figures["first_request_s"] = workload_warm
        figures["switch_ttft_ratio"], figures["switch_ttft_cpu_ratio"] = switch_ratio(server.url, ask, server)
    finally:
        server.close()
    return {f"{label}_{k}": round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--only-ours", action="store_true", help="skip mlx_lm.server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        fp32, adapters = setup(home)
        env = {**os.environ, "LOCALSFT_HOME": str(home)}
        port = free_port()
        ours = measure([sys.executable, "-m", "localsft", "serve", "--port", str(port)], port, env,
                       lambda m: {"model": "SmolLM2-135M-Instruct" if m == "base" else m}, args.max_tokens, "ours")
        if args.only_ours:
            print(json.dumps({**ours, "load_average_1min": round(os.getloadavg()[0], 1)}, indent=2))
            return
        port = free_port()
        mlx_env = {**env, "LD_PRELOAD": find_openblas() or ""}
        theirs = measure([sys.executable, "-m", "mlx_lm.server", "--model", str(fp32), "--port", str(port)], port,
                         mlx_env, lambda m: {"model": str(fp32), **({} if m == "base" else
                                                                    {"extra_body": {"adapters": str(adapters[m])}})},
                         args.max_tokens, "mlx_lm")
    figures = {**ours, **theirs,
               "speedup": round(ours["ours_tok_s"] / theirs["mlx_lm_tok_s"], 2),
               "cpu_speedup": round((theirs["mlx_lm_cpu_s"] / theirs["mlx_lm_tokens"])
                                    / (ours["ours_cpu_s"] / ours["ours_tokens"]), 2),
               "peak_mem_ratio": round(ours["ours_peak_mb"] / ours["ours_one_model_peak_mb"], 3),
               "switch_ttft_ratio": ours["ours_switch_ttft_ratio"],
               "switch_ttft_cpu_ratio": ours["ours_switch_ttft_cpu_ratio"],
               "requests": 24, "clients": 4, "max_tokens": args.max_tokens,
               "load_average_1min": round(os.getloadavg()[0], 1)}
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
