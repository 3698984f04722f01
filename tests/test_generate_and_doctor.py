"""What a new user sees first: a streamed answer, the precision chosen, the doctor screen."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from localsft.platform.backend import backend_name, choose_precision
from localsft.platform.blas import blas_in_use, find_openblas
from localsft.cli import main
from support.platform import LINUX_CPU, linux_cpu, openblas


@pytest.mark.slow
def test_generate_answers_paris_offline(capsys):
    assert main(["generate", "--prompt", "What is the capital of France?", "--max-tokens", "20"]) == 0
    captured = capsys.readouterr()
    assert "Paris" in captured.out
    assert "weights on" in captured.err  # the chosen precision and backend are printed
    if LINUX_CPU:
        assert "float32 weights on CPU" in captured.err


def test_generate_streams_the_answer_mlx_lm_gives(tiny_model_dir, capsys):
    import mlx_lm

    assert main(["generate", "--model", str(tiny_model_dir), "--prompt", "hi", "--max-tokens", "5"]) == 0
    out = capsys.readouterr().out
    model, tokenizer = mlx_lm.load(str(tiny_model_dir))  # the reference: mlx-lm on the same weights, greedy
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    expected = mlx_lm.generate(model, tokenizer, prompt, max_tokens=5)
    assert expected and out == expected + "\n"  # tokens were generated, and streamed whole


@linux_cpu
def test_precision_follows_the_device():
    assert backend_name() == "CPU"
    auto = choose_precision("auto", fp32_bytes=10**6)
    assert auto.dtype == "float32" and auto.dequantize
    too_big = choose_precision("auto", fp32_bytes=10**15)
    assert too_big.dtype == "quantized" and "not fit" in too_big.reason
    assert choose_precision("bfloat16").reason == "forced by the user"


@openblas
def test_fast_blas_is_automatic_in_a_fresh_process():
    code = "import localsft.platform.backend as b; print(b.blas_in_use()); print(b.matmul_gflops('float32') > 20)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("OpenBLAS") and out.strip().endswith("True")
    assert blas_in_use().startswith("OpenBLAS")


def test_doctor_screen(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for label in ("backend:", "BLAS:", "GFLOP/s", "free memory", "models:", "mlx-lm"):
        assert label in out, label
    if LINUX_CPU:
        assert "backend: CPU" in out
    if LINUX_CPU and find_openblas():
        assert "BLAS: OpenBLAS" in out


@openblas
def test_a_script_importing_mlx_first_is_told_why_training_is_slow():
    # Found when benchmarks/preference.py imported mlx before localsft: every matmul ran on the
    # reference BLAS, one step took minutes, and nothing said why.
    code = ("import mlx.core\nfrom localsft.platform.backend import choose_precision\n"
            "print(choose_precision('float32').describe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "mlx was imported before localsft" in out and "import localsft first" in out
    fine = "from localsft.platform.backend import choose_precision\nprint(choose_precision('float32').describe())"
    out = subprocess.run([sys.executable, "-c", fine], capture_output=True, text=True, check=True).stdout
    assert "BLAS" not in out


@openblas
def test_blas_threads_can_be_set_unless_the_user_chose_them():
    code = ("from localsft.platform import blas\nchanged = blas.set_threads(1)\n"
            "print(changed, blas._library.openblas_get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["True", "1"]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**env, "OPENBLAS_NUM_THREADS": "2"}).stdout
    assert out.split() == ["False", "2"]


@openblas
def test_decoding_while_training_uses_one_blas_thread_then_gives_the_rest_back():
    code = ("from localsft.platform import blas\nlib = blas._library\nlib.openblas_set_num_threads(2)\n"
            "with blas.threads(blas.DECODE_THREADS):\n    inside = lib.openblas_get_num_threads()\n"
            "print(inside, lib.openblas_get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.split() == ["1", "2"]
