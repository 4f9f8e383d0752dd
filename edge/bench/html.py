"""The self-contained HTML report: tables and inline SVG plots, no script, nothing loaded.

Each plot is an `<svg>` with a stable id: `latency-over-time`, `throughput-over-time`,
`concurrency-over-time` and `latency-distribution`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape
from typing import Any

_WIDTH, _HEIGHT = 720, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 28, 40
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")

Series = tuple[str, Sequence[float]]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def line_chart(
    element_id: str,
    title: str,
    xs: Sequence[float],
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """An inline SVG line chart of `series` over `xs` (a note when there is nothing to plot)."""
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    parts = [
        f'<svg id="{escape(element_id)}" class="plot" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'width="{_WIDTH}" height="{_HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<text x="{_LEFT}" y="16" class="title">{escape(title)}</text>',
    ]
    values = [v for _, ys in series for v in ys]
    if not xs or not values:
        parts.append(f'<text x="{_LEFT}" y="{_TOP + 40}">no data</text></svg>')
        return "".join(parts)
    x_min, x_max = min(xs), max(xs)
    if x_max == x_min:
        x_max = x_min + 1
    y_max = _nice_max(max(values))

    def px(x: float) -> float:
        return _LEFT + (x - x_min) / (x_max - x_min) * plot_w

    def py(y: float) -> float:
        return _TOP + plot_h - (y / y_max) * plot_h

    parts.append(f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    for step in range(5):
        y = y_max * step / 4
        parts.append(
            f'<line x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" '
            f'class="grid"/><text x="{_LEFT - 6}" y="{py(y) + 4:.1f}" class="ytick">'
            f"{_fmt(y)}</text>"
        )
    if x_ticks is None:
        step = max(1, math.ceil((x_max - x_min) / 6)) if x_max - x_min >= 3 else 0
        x_ticks = (
            [(float(x), "") for x in range(math.ceil(x_min), math.floor(x_max) + 1, step)]
            if step
            else [(x_min + (x_max - x_min) * i / 5, "") for i in range(6)]
        )
    ticks = x_ticks
    for x, label in ticks:
        if x_min <= x <= x_max:
            parts.append(
                f'<text x="{px(x):.1f}" y="{_TOP + plot_h + 16}" class="xtick">'
                f"{escape(label or _fmt(x))}</text>"
            )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_HEIGHT - 6}" class="xlabel">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{_TOP + plot_h / 2:.0f}" class="ylabel" '
        f'transform="rotate(-90 14 {_TOP + plot_h / 2:.0f})">{escape(y_label)}</text>'
    )
    for index, (name, ys) in enumerate(series):
        color = _COLORS[index % len(_COLORS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys, strict=False))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.8" '
            f'data-series="{escape(name)}"/>'
        )
        if len(xs) < 3:  # too few samples for a line to show: mark each one
            for x, y in zip(xs, ys, strict=False):
                parts.append(
                    f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}" '
                    f'data-series="{escape(name)}"/>'
                )
        legend_x = _LEFT + 8 + index * 130
        parts.append(
            f'<rect x="{legend_x}" y="{_TOP + 6}" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 14}" y="{_TOP + 15}" class="legend">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _nines(percentile: float) -> float:
    """The x of a percentile on a distribution plot: 90 -> 1, 99 -> 2, 99.9 -> 3 ..."""
    return -math.log10(max(1e-7, 1 - min(percentile, 99.99999) / 100))


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:980px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
svg.plot{display:block;margin:12px 0;font-size:11px}.frame{fill:none;stroke:#999}
.grid{stroke:#e4e4e4}.ytick{text-anchor:end}.xtick,.xlabel{text-anchor:middle}
.ylabel{text-anchor:middle}.title{font-weight:bold;font-size:13px}.warn{color:#a40}
"""


def render_html(result: dict[str, Any]) -> str:
    """The report of one run as one HTML document."""
    load = result["load"]
    latency = result["latency_ms"]
    timeline = result["timeline"]
    xs = [float(point["second"] + 1) for point in timeline]
    sections = [
        f"<h1>edge bench: {escape(result['target'])}</h1>",
        _table(
            [
                ("started", result["started_at"]),
                ("load model", load["model"]),
                ("connections", load["connections"]),
                ("rate (open model)", load["rate"] or "-"),
                ("processes", load["processes"]),
                ("elapsed", f"{result['elapsed_seconds']} s"),
                ("requests", f"{result['requests']:,}"),
                ("requests per second", f"{result['requests_per_second']:,}"),
                *(
                    (f"latency {key.replace('_', '.')}", f"{value} ms")
                    for key, value in latency.items()
                ),
                ("statuses", ", ".join(f"{k}: {v}" for k, v in result["statuses"].items())),
                ("errors", ", ".join(f"{k}: {v}" for k, v in result["errors"].items()) or "0"),
            ],
            ("figure", "value"),
        ),
        "<h2>Latency over time</h2>",
        line_chart(
            "latency-over-time",
            "latency per second (ms)",
            xs,
            [(key, [float(p[key]) for p in timeline]) for key in ("p50", "p90", "p99", "max")],
            x_label="second",
            y_label="ms",
        ),
        "<h2>Throughput over time</h2>",
        line_chart(
            "throughput-over-time",
            "requests and errors per second",
            xs,
            [
                ("requests/s", [float(p["requests"]) for p in timeline]),
                ("errors/s", [float(p["errors"]) for p in timeline]),
            ],
            x_label="second",
            y_label="per second",
        ),
    ]
    admin = result.get("admin") or {}
    samples = admin.get("timeline") or []
    sample_xs = [float(s["t"]) for s in samples]
    names = sorted({key for s in samples for key in s if key.startswith("in_flight:")})
    concurrency: list[Series] = [
        (name.partition(":")[2] + " in flight", [float(s.get(name, 0)) for s in samples])
        for name in names
    ]
    cold = [float(s.get("cold_starts", 0)) for s in samples]
    concurrency.append(
        ("cold starts", [0.0] + [max(0.0, b - a) for a, b in itertools.pairwise(cold)])
    )
    sections += [
        "<h2>Concurrency and cold starts over time</h2>",
        "<p>Sampled from the edge's admin listener about once a second: invocations in "
        "flight by function, and the cold starts since the sample before.</p>"
        if samples
        else "<p>No admin listener.</p>",
        line_chart(
            "concurrency-over-time",
            "function concurrency and cold starts",
            sample_xs,
            concurrency if samples else [],
            x_label="second",
            y_label="count",
        ),
    ]
    distribution = result["latency_distribution"]
    ticks = [
        (_nines(p), label)
        for p, label in (
            (0, "0%"),
            (90, "90%"),
            (99, "99%"),
            (99.9, "99.9%"),
            (99.99, "99.99%"),
            (99.999, "99.999%"),
        )
    ]
    sections += [
        "<h2>Latency distribution</h2>",
        line_chart(
            "latency-distribution",
            "latency by percentile (ms)",
            [_nines(p) for p, _ in distribution],
            [("latency", [float(v) for _, v in distribution])],
            x_label="percentile",
            y_label="ms",
            x_ticks=ticks,
        ),
    ]
    cache = result["x_cache"]
    sections += [
        "<h2>X-Cache</h2>",
        _table(
            [
                ("hit ratio", f"{cache['hit_ratio']:.2%}"),
                ("function-generated", f"{cache['function_generated_ratio']:.2%}"),
                ("errors", f"{cache['error_ratio']:.2%}"),
                *((f"X-Cache: {k}", v) for k, v in cache["values"].items()),
            ],
            ("figure", "value"),
        ),
    ]
    if len(result["mix"]) > 1:
        sections += [
            "<h2>Request mix</h2>",
            _table(
                [(e["name"], e["weight"], e["requests"]) for e in result["mix"]],
                ("request", "weight", "answered"),
            ),
        ]
    if admin.get("functions"):
        cost = admin["cost"]
        sections += [
            "<h2>Functions</h2>",
            _table(
                [
                    (
                        key,
                        fn["invocations"],
                        fn["cold_starts"],
                        fn["throttles"],
                        fn["errors"],
                        fn["peak_concurrency"],
                        fn["duration_p50_ms"],
                        fn["duration_p99_ms"],
                        fn["billed_ms"],
                        f"{cost['functions'][key]['cost_usd']:.6f}",
                    )
                    for key, fn in admin["functions"].items()
                ],
                (
                    "function",
                    "invocations",
                    "cold starts",
                    "throttles",
                    "errors",
                    "peak concurrency",
                    "p50 ms",
                    "p99 ms",
                    "billed ms",
                    "AWS cost (USD)",
                ),
            ),
            f"<p>AWS estimate: {cost['total_usd']:.6f} USD for this traffic, "
            f"{cost['per_million_viewer_requests_usd']:.4f} USD per million viewer requests. "
            f"Prices: {escape(str(cost['source']))}, as of {escape(str(cost['as_of']))}.</p>",
            *(f'<p class="warn">warning: {escape(w)}</p>' for w in cost["limits"]["warnings"]),
        ]
    elif admin.get("error"):
        sections.append(f"<p>Admin listener: {escape(admin['error'])}</p>")
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>edge bench report</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )
