"""RoPE scaling between a Hugging Face config (`rope_scaling`) and a GGUF file, both ways.

llama.cpp keeps Llama 3.1+'s scaling ("llama3": low frequencies slowed down for long contexts) as
a tensor, `rope_freqs.weight`: one factor per rotated pair by which its wavelength is multiplied;
linear scaling as two keys (`rope.scaling.type`, `rope.scaling.factor`); Phi-3.5's "longrope" as two
tensors (`rope_factors_long` / `rope_factors_short`) and an attention factor. The factors are what
mlx-lm's own RoPE computes, so a GGUF export runs in llama.cpp with the positions MLX trained with;
on import the llama3 parameters are solved back from the factors (the factors are all llama.cpp has).
"""

from __future__ import annotations

import numpy as np

from localsft.errors import UserError

# Any original context gives the same factors once the other parameters are solved for it
_CONTEXT = 8192  # Llama 3.1 and 3.2's own
LONGROPE = ("longrope", "su")  # Phi-3's names for it


def scaling_kind(config: dict) -> str:
    """"default", "linear", "llama3", or another name (which the GGUF export does not write)."""
    scaling = config.get("rope_scaling") or {}
    return scaling.get("rope_type") or scaling.get("type") or "default"


def _periods(config: dict) -> np.ndarray:
    """base^(2i/d) for each rotated pair (wavelength / 2 pi), as mlx-lm's RoPE computes them."""
    dims = _rope_dims(config)
    return config.get("rope_theta", 10000.0) ** (np.arange(0, dims, 2, dtype=np.float64) / dims)


def _rope_dims(config: dict) -> int:
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    return int(head_dim * config.get("partial_rotary_factor", 1.0))


def llama3_factors(config: dict) -> np.ndarray:
    """llama.cpp's rope_freqs for a config with llama3 scaling: mlx-lm's scaled wavelengths over the plain ones."""
    from mlx_lm.models.rope_utils import initialize_rope

    rope = initialize_rope(_rope_dims(config), config.get("rope_theta", 10000.0), False, config["rope_scaling"],
                           config.get("max_position_embeddings"))
    return (np.array(rope._freqs, dtype=np.float64) / _periods(config)).astype(np.float32)


def llama3_scaling(factors: np.ndarray, config: dict) -> dict:
    """The llama3 `rope_scaling` whose factors are `factors` (a GGUF's rope_freqs), or a UserError.

    Between the two plateaus (1 for short wavelengths, `factor` for long ones) the inverse factor
    blends linearly in 1 / wavelength; a line through those points gives the two thresholds.
    """
    factors = np.asarray(factors, dtype=np.float64)
    factor = float(factors.max())
    inverse_wavelength = 1 / (2 * np.pi * _periods(config))
    blend = (1 / factors - 1 / factor) / (1 - 1 / factor)  # 1 at the short plateau, 0 at the long one
    short, long = factors <= 1 + 1e-6, factors >= factor * (1 - 1e-6)
    x, y = inverse_wavelength[~short & ~long], blend[~short & ~long]
    if len(x) >= 2:
        slope, intercept = np.polyfit(x, y, 1)
    elif short.any() and long.any():  # small heads: 0 or 1 pair in between; any line that keeps the plateaus
        x_short, x_long = inverse_wavelength[short].min(), inverse_wavelength[long].max()
        if len(x):
            slope = 2 * max((1 - y[0]) / (x_short - x[0]), y[0] / (x[0] - x_long))
            intercept = y[0] - slope * x[0]
        else:
            slope = 3 / (x_short - x_long)
            intercept = -slope * (x_long + (x_short - x_long) / 3)
    else:
        raise UserError("The GGUF file's rope_freqs are not Llama 3's RoPE scaling; localsft cannot read them.")
    context = min(_CONTEXT, (config.get("max_position_embeddings") or 2 * _CONTEXT) // 2)  # below the model's
    low, high = -intercept * context / slope, (1 - intercept) * context / slope
    scaling = {"rope_type": "llama3", "factor": factor, "low_freq_factor": float(low),
               "high_freq_factor": float(high), "original_max_position_embeddings": context}
    if not np.allclose(llama3_factors({**config, "rope_scaling": scaling}), factors, rtol=1e-4, atol=1e-6):
        raise UserError("The GGUF file's rope_freqs are not Llama 3's RoPE scaling; localsft cannot read them.")
    return scaling


def longrope(config: dict) -> tuple[np.ndarray, float]:
    """Phi-3.5's per-pair factors and attention factor as mlx-lm runs them.

    mlx-lm applies the long factors at every length (transformers switches to them past the original
    context), so both of llama.cpp's factor tensors get the long ones: llama.cpp then runs what was trained.
    """
    import math

    scaling, original = config["rope_scaling"], config.get("original_max_position_embeddings", 4096)
    stretch = config.get("max_position_embeddings", original) / original
    attention = math.sqrt(1 + math.log(stretch) / math.log(original)) if stretch > 1 else 1.0
    return np.array(scaling["long_factor"], dtype=np.float32), attention
