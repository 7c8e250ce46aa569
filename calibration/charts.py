"""Server-side SVG charts (no JavaScript, no CDN: the pages work offline)."""

from __future__ import annotations

import math
from datetime import date
from html import escape

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 36


def round_ticks(highest: float, most: int = 5) -> list[float]:
    """Axis ticks from 0 at a round step (1, 2 or 5 x 10^k) with at most `most` steps, the
    last at or above `highest`: 0, 0.2, 0.4, 0.6 rather than 0, 0.14, 0.29, 0.43."""
    highest = highest if highest > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(highest / most))
    step = next(m * magnitude for m in (1, 2, 5, 10) if highest / (m * magnitude) <= most * (1 + 1e-9))
    steps = math.ceil(highest / step - 1e-9)
    digits = max(0, -math.floor(math.log10(step)))
    return [round(i * step, digits) for i in range(steps + 1)]


def drift_chart_svg(points: list[tuple[date, float, str]], *, tau_warning: float, tau_critical: float,
                    proposed: dict[str, float] | None = None, title: str = "Daily KL divergence") -> str:
    """A line of daily KL values with the thresholds drawn; `points` are (day, KL, status).
    `proposed` draws the proposed thresholds dashed (e.g. {"tau_warning": 0.35})."""
    proposed = proposed or {}
    values = [kl for _, kl, _ in points]
    ticks = round_ticks(max([*values, tau_critical, *proposed.values(), 0.0]) * 1.15)
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / top)

    def x(index: int) -> float:
        return LEFT + (plot_w * index / max(1, len(points) - 1) if len(points) > 1 else plot_w / 2)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" class="chart" width="100%">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fbfcfe" stroke="#d9dee7"/>']
    for value in ticks:
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="#5b6475" data-tick="{value:g}">{value:g}</text>')
    lines = [("tau_warning", tau_warning, "#9a6700"), ("tau_critical", tau_critical, "#b3261e")]
    for name, value, colour in lines:
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="{colour}" stroke-width="1.5" data-threshold="{name}"/>')
        parts.append(f'<text x="{LEFT + plot_w - 4}" y="{y(value) - 4:.1f}" font-size="11" text-anchor="end" '
                     f'fill="{colour}">{name} {value:g}</text>')
        if name in proposed:
            parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(proposed[name]):.1f}" '
                         f'y2="{y(proposed[name]):.1f}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="6 4" '
                         f'data-threshold="proposed-{name}"/>')
            parts.append(f'<text x="{LEFT + 4}" y="{y(proposed[name]) - 4:.1f}" font-size="11" fill="{colour}">'
                         f'proposed {name} {proposed[name]:g}</text>')
    if points:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y(kl):.1f}" for i, (_, kl, _) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="#2454c5" stroke-width="2"/>')
        colours = {"critical": "#b3261e", "warning": "#9a6700"}
        for i, (day, kl, status) in enumerate(points):
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(kl):.1f}" r="3.5" fill="{colours.get(status, "#2454c5")}">'
                         f'<title>{day.isoformat()}: KL {kl:.4f} ({escape(status)})</title></circle>')
        last = len(points) - 1
        for i in sorted({0, len(points) // 2, last}):
            anchor = "start" if i == 0 and last else "end" if i == last and last else "middle"  # inside the chart
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 12}" font-size="11" text-anchor="{anchor}" '
                         f'fill="#5b6475">{points[i][0].isoformat()}</text>')
    else:
        parts.append(f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" font-size="13" text-anchor="middle" '
                     f'fill="#5b6475">No drift measured yet</text>')
    parts.append("</svg>")
    return "".join(parts)
