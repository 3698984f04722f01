"""Deterministic train/valid/test splits that never separate examples sharing an input."""

from __future__ import annotations

import random


def split_groups(keys: list[bytes], valid_fraction: float, test_fraction: float,
                 seed: int = 0, train_only: set[bytes] = frozenset()) -> list[str]:
    """The split ("train", "valid" or "test") of each example, given its group key.

    Groups (examples with the same normalised input) are shuffled with `seed` and dealt to
    valid, then test, until each holds its fraction of the examples (at least one when the
    fraction is above zero and there are examples to spare); the rest train. Groups in
    `train_only` (outliers, such as outputs far longer than the rest) always train, so that
    one of them cannot dominate the held-out loss.
    """
    if not 0 <= valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise ValueError("valid and test fractions must be in [0, 1) and sum to less than 1")
    sizes: dict[bytes, int] = {}
    for key in keys:
        sizes[key] = sizes.get(key, 0) + 1
    order = list(sizes)
    random.Random(seed).shuffle(order)
    n = len(keys)
    targets = [("valid", _target(n, valid_fraction)), ("test", _target(n, test_fraction))]
    assigned: dict[bytes, str] = {}
    filled = {"valid": 0, "test": 0}
    for key in order:
        for name, target in targets if key not in train_only else ():
            if filled[name] < target and filled["valid"] + filled["test"] + sizes[key] < n:
                assigned[key] = name
                filled[name] += sizes[key]
                break
        else:
            assigned[key] = "train"
    return [assigned[key] for key in keys]


def _target(n: int, fraction: float) -> int:
    return max(1, round(n * fraction)) if fraction > 0 and n >= 3 else 0
