"""How much memory LoRA training of a model needs on Apple Silicon, from its config.json alone.

The figure a Mac user needs before downloading 5 GB: the base held 4-bit (MLX affine,
group 64: 4.5 bits a weight with its fp16 scale and bias), the LoRA weights with their
gradients and two Adam moments (fp32), the activations saved for the backward pass of the
adapted blocks (fp16, per token of the batch) and the logits of one batch (fp32, with
their softmax and gradient). macOS lets the GPU wire about three quarters of unified
memory (Metal's recommended working set); a plan above that is refused with the number.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024 ** 3
BITS_4BIT = 4.5  # 4-bit weight + fp16 scale and bias per group of 64
WORKING_SET = 0.75  # share of unified memory Metal lets a process wire by default


@dataclass
class MemoryPlan:
    """Bytes a LoRA run needs, by part."""

    parameters: int
    weights: int
    lora: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return self.weights + self.lora + self.activations + self.logits

    def line(self) -> str:
        return (f"On Apple Silicon with a 4-bit base: about {self.total / GIB:.1f} GiB "
                f"({self.parameters / 1e9:.2f}B parameters: weights {self.weights / GIB:.1f}, "
                f"LoRA and optimizer {self.lora / GIB:.2f}, activations {self.activations / GIB:.1f}, "
                f"logits {self.logits / GIB:.1f} GiB)")


def count_parameters(config: dict) -> int:
    """Parameters of a decoder-only transformer from its config (llama-style blocks; biases and norms left out)."""
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or h // heads
    kv = config.get("num_key_value_heads", heads) * head_dim
    attention = h * heads * head_dim * 2 + h * kv * 2
    mlp = 3 * h * config["intermediate_size"]
    embed = config["vocab_size"] * h * (1 if config.get("tie_word_embeddings", False) else 2)
    return layers * (attention + mlp) + embed


def lora_parameters(config: dict, rank: int, layers: int) -> int:
    """LoRA weights on every linear layer of the last `layers` blocks: rank * (in + out) each."""
    h, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or h // heads
    kv = config.get("num_key_value_heads", heads) * head_dim
    inter = config["intermediate_size"]
    shapes = [(h, heads * head_dim), (h, kv), (h, kv), (heads * head_dim, h), (h, inter), (h, inter), (inter, h)]
    return layers * sum(rank * (a + b) for a, b in shapes)


def plan_memory(config: dict, rank: int = 8, lora_layers: int = 16, batch_tokens: int = 1024,
                grad_checkpoint: bool = False) -> MemoryPlan:
    """The memory plan of LoRA training on a 4-bit base (see the module docstring)."""
    n_layers = config["num_hidden_layers"]
    layers = n_layers if lora_layers < 0 else min(lora_layers, n_layers)
    params = count_parameters(config)
    h, inter = config["hidden_size"], config["intermediate_size"]
    # saved per token and adapted block: ~12 hidden-sized and 4 MLP-sized fp16 tensors (1 with checkpointing)
    per_token = (h if grad_checkpoint else 12 * h + 4 * inter) * 2
    return MemoryPlan(parameters=params, weights=int(params * BITS_4BIT / 8),
                      lora=lora_parameters(config, rank, layers) * 16,
                      activations=batch_tokens * layers * per_token,
                      logits=batch_tokens * config["vocab_size"] * 4 * 3)


def fits_message(plan: MemoryPlan, unified_memory: int) -> str | None:
    """None when the plan fits a Mac with `unified_memory` bytes, else a plain sentence with the numbers."""
    limit = unified_memory * WORKING_SET
    if plan.total <= limit:
        return None
    return (f"This run needs about {plan.total / GIB:.1f} GiB but a Mac with {unified_memory / GIB:.0f} GiB lets "
            f"the GPU use about {limit / GIB:.1f} GiB. Lower batch_tokens, adapt fewer layers (lora_layers), "
            f"set grad_checkpoint: true, or choose a smaller model.")
