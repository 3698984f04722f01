"""The machine under localsft: fast BLAS for MLX's CPU backend, device and precision, MLX threads."""
