"""The loss chart of the Train tab, drawn as a small inline SVG.

Gradio's line plot draws nothing for a single point and picks fractional step ticks; this chart
shows every point from the first one, labels whole steps only, spans the run's planned steps
(so it does not rescale as it grows), and is not drawn at all before there is a point.
"""

from __future__ import annotations

import html
import math

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 36
SERIES = {"training": "#2563eb", "validation": "#ea580c"}
EXPLAIN = ("How far the model's answers are from yours (lower is better). Training: the examples it learns "
           "from; validation: examples kept aside, which show whether it learns or only memorises.")


def _step_ticks(last: int, most: int = 10) -> list[int]:
    """Whole-number ticks from 0 to `last`, at most `most` of them, at a round spacing (1, 2, 5, 10, 20, ...)."""
    magnitude = 10 ** max(0, math.floor(math.log10(max(last / most, 1))))
    spacing = next(m * magnitude for m in (1, 2, 5, 10) if last / (m * magnitude) <= most)
    return list(range(0, last + 1, spacing))


def _loss_ticks(low: float, high: float) -> list[float]:
    return [low + (high - low) * i / 4 for i in range(5)]


def chart_svg(series: dict[str, list[tuple[int, float]]], total_steps: int) -> str:
    """An SVG of loss by step for each series; "" when there is no point yet."""
    points = [(s, v) for values in series.values() for s, v in values if math.isfinite(v)]
    if not points:
        return ""
    last = max(total_steps, max(s for s, _ in points), 1)
    low, high = min(v for _, v in points), max(v for _, v in points)
    pad = max((high - low) * 0.1, 0.05)
    low, high = max(0.0, low - pad), high + pad

    def x(step: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * step / last

    def y(value: float) -> float:
        return TOP + (HEIGHT - TOP - BOTTOM) * (high - value) / (high - low)

    parts = [f'<svg id="loss-svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
             f'aria-label="Loss by step" style="max-width:{WIDTH}px;font:12px sans-serif">']
    for t in _step_ticks(last):
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#e5e7eb"/>'
                     f'<text class="x-tick" x="{x(t):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{t}</text>')
    for v in _loss_ticks(low, high):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e7eb"/>'
                     f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    parts.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 4}" text-anchor="middle">step</text>'
                 f'<text x="12" y="{TOP - 10}">loss</text>')
    legend_x = LEFT + 40
    for name, values in series.items():
        colour = SERIES.get(name, "#444")
        values = [(s, v) for s, v in values if math.isfinite(v)]
        if not values:
            continue
        line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in values)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle class="point {name}" cx="{x(s):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}">'
                  f'<title>{html.escape(name)} loss at step {s}: {v:.3f}</title></circle>' for s, v in values]
        parts.append(f'<circle cx="{legend_x}" cy="{TOP - 14}" r="4" fill="{colour}"/>'
                     f'<text x="{legend_x + 8}" y="{TOP - 10}">{html.escape(name)}</text>')
        legend_x += 110
    return "".join(parts) + "</svg>"
