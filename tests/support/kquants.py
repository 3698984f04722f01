"""Simple K-quant encoders (Q2_K..Q6_K) so tests can write the files Ollama users have.

The `gguf` package dequantizes every K-quant but quantizes none. These encoders pack blocks
in llama.cpp's layouts (the inverse of gguf.quants' dequantizers) with a plain min/max
choice of scales: not llama.cpp's error-minimizing search, but valid blocks whose values are
within one quantization step of the weights. `kquant_writer` mixes types like Q4_K_M
(Q6_K for attn_v and ffn_down, as llama.cpp's Q4_K_M does for many of them).
"""

from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as Q

QK = 256


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)


def _affine(x: np.ndarray, sub: int, qmax: int, smax: int):
    """Per sub-block scale and min (x = d*sc*q - dmin*m); returns (d, dmin, sc, m, q) for blocks of QK."""
    n = x.shape[0]
    xs = x.reshape(n, -1, sub)
    low = np.minimum(xs.min(-1), 0)
    scale = (xs.max(-1) - low) / qmax
    d = _f16(scale.max(-1, keepdims=True) / smax)
    dmin = _f16((-low).max(-1, keepdims=True) / smax)
    df, mf = d.astype(np.float32), dmin.astype(np.float32)
    sc = np.clip(np.round(np.divide(scale, df, out=np.zeros_like(scale), where=df > 0)), 0, smax)
    m = np.clip(np.round(np.divide(-low, mf, out=np.zeros_like(low), where=mf > 0)), 0, smax)
    step = (df * sc)[..., None]
    q = np.divide(xs + (mf * m)[..., None], step, out=np.zeros_like(xs), where=step > 0)
    return d, dmin, sc.astype(np.uint8), m.astype(np.uint8), np.clip(np.round(q), 0, qmax).astype(np.uint8)


def _symmetric(x: np.ndarray, sub: int, qmin: int, qmax: int, smax: int):
    """Per sub-block signed scale (x = d*sc*q); returns (d, sc, q)."""
    n = x.shape[0]
    xs = x.reshape(n, -1, sub)
    scale = np.abs(xs).max(-1) / qmax
    d = _f16(scale.max(-1, keepdims=True) / smax)
    df = d.astype(np.float32)
    sc = np.clip(np.round(np.divide(scale, df, out=np.zeros_like(scale), where=df > 0)), 0, smax)
    step = (df * sc)[..., None]
    q = np.divide(xs, step, out=np.zeros_like(xs), where=step > 0)
    return d, sc.astype(np.int8), np.clip(np.round(q), qmin, qmax).astype(np.int8)


def _pack_2bit(q: np.ndarray) -> np.ndarray:
    """(n, 256) values 0..3 -> (n, 64) bytes: flat index c*128 + t*32 + l goes to bits 2t of byte c*32 + l."""
    q = q.reshape(-1, 2, 4, 32).astype(np.uint8)
    return sum(q[:, :, t, :] << (2 * t) for t in range(4)).reshape(-1, 64).astype(np.uint8)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """(n, 8, 32) single bits -> (n, 32) bytes: bit t of byte l."""
    return sum(bits[:, t, :].astype(np.uint8) << t for t in range(8)).astype(np.uint8)


def _scales_k4(sc: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Q4_K/Q5_K's 12 bytes of 6-bit scales and mins (8 each)."""
    a = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    b = m[:, :4] | ((m[:, 4:] >> 4) << 6)
    c = (sc[:, 4:] & 0xF) | ((m[:, 4:] & 0xF) << 4)
    return np.concatenate([a, b, c], axis=1).astype(np.uint8)


def q4_k(x: np.ndarray) -> np.ndarray:
    d, dmin, sc, m, q = _affine(x, 32, 15, 63)
    qs = q.reshape(-1, 4, 2, 32)
    qs = (qs[:, :, 0] | (qs[:, :, 1] << 4)).reshape(-1, 128)
    return np.concatenate([d.view(np.uint8), dmin.view(np.uint8), _scales_k4(sc, m), qs], axis=1)


def q5_k(x: np.ndarray) -> np.ndarray:
    d, dmin, sc, m, q = _affine(x, 32, 31, 63)
    low = (q & 0xF).reshape(-1, 4, 2, 32)
    qs = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(-1, 128)
    qh = _pack_bits((q >> 4) & 1)
    return np.concatenate([d.view(np.uint8), dmin.view(np.uint8), _scales_k4(sc, m), qh, qs], axis=1)


def q2_k(x: np.ndarray) -> np.ndarray:
    d, dmin, sc, m, q = _affine(x, 16, 3, 15)
    scales = (sc | (m << 4)).astype(np.uint8)
    return np.concatenate([scales, _pack_2bit(q.reshape(-1, QK)), d.view(np.uint8), dmin.view(np.uint8)], axis=1)


def q6_k(x: np.ndarray) -> np.ndarray:
    d, sc, q = _symmetric(x, 16, -32, 31, 127)
    q6 = (q.reshape(-1, QK).astype(np.int16) + 32).astype(np.uint8)
    low = (q6 & 0xF).reshape(-1, 2, 2, 2, 32).reshape(-1, 2, 2, 64)
    ql = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(-1, 128)
    high = (q6 >> 4).reshape(-1, 2, 4, 32)
    qh = sum(high[:, :, t, :] << (2 * t) for t in range(4)).reshape(-1, 64).astype(np.uint8)
    return np.concatenate([ql, qh, sc.view(np.uint8), d.view(np.uint8)], axis=1)


def q3_k(x: np.ndarray) -> np.ndarray:
    d, sc, q = _symmetric(x, 16, -4, 3, 31)
    q = q.reshape(-1, QK)
    hbit = (q >= 0).astype(np.uint8)
    ql = np.where(q >= 0, q, q + 4).astype(np.uint8)
    u = (sc.astype(np.int16) + 32).astype(np.uint8)
    lbytes = (u[:, :8] & 0xF) | ((u[:, 8:] & 0xF) << 4)
    hbytes = sum(((u[:, t * 4:(t + 1) * 4] >> 4) & 3) << (2 * t) for t in range(4)).astype(np.uint8)
    return np.concatenate([_pack_bits(hbit.reshape(-1, 8, 32)), _pack_2bit(ql), lbytes, hbytes, d.view(np.uint8)],
                          axis=1)


ENCODERS = {Q.Q2_K: q2_k, Q.Q3_K: q3_k, Q.Q4_K: q4_k, Q.Q5_K: q5_k, Q.Q6_K: q6_k}


def quantize_k(array: np.ndarray, qtype: Q) -> np.ndarray:
    """Raw blocks of `array` (rows a multiple of 256 long) in K-quant `qtype`, shaped as the gguf writer wants."""
    rows = array.reshape(-1, QK).astype(np.float32)
    blocks = ENCODERS[qtype](rows)
    return blocks.reshape(*array.shape[:-1], array.shape[-1] // QK * blocks.shape[-1])


def kquant_writer(name: str, array: np.ndarray, qtype: Q):
    """The quantize callback for localsft.export.gguf.write_file: K-quants by name, Q4_K_M's mix for Q4_K."""
    import gguf

    if qtype == Q.Q4_K and (".attn_v." in name or ".ffn_down." in name or name.startswith("token_embd")):
        qtype = Q.Q6_K
    if qtype in ENCODERS:
        return quantize_k(array, qtype), qtype
    return gguf.quants.quantize(array, qtype), qtype
