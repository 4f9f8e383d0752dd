"""A run's result in the terminal, and two runs side by side (`edge bench --compare`)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table

from edge.bench.runner import Progress


def progress_view(progress: Progress) -> Table:
    """The live line: elapsed, req/s, errors and the latency percentiles so far."""
    table = Table(box=None, pad_edge=False, show_header=True)
    for column in ("phase", "elapsed", "requests", "req/s", "errors", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    latency = progress.latency_ms
    elapsed = f"{max(0.0, progress.elapsed_seconds):.0f} s"
    if progress.total_seconds:
        elapsed += f" / {progress.total_seconds:.0f} s"
    if progress.phase == "warmup":
        elapsed = f"{progress.elapsed_seconds:.0f} s"
    table.add_row(
        progress.phase,
        elapsed,
        f"{progress.requests:,}",
        f"{progress.requests_per_second:,.0f}",
        f"{progress.errors:,}",
        *(f"{latency[key]:.2f} ms" for key in ("p50", "p90", "p99", "max")),
    )
    return table


def _usd(value: float) -> str:
    return f"${value:.6f}" if value < 1 else f"${value:,.2f}"


def result_view(result: dict[str, Any]) -> Group:
    parts: list[Any] = []
    load = result["load"]
    head = Table.grid(padding=(0, 2))
    head.add_row("target", result["target"])
    model = (
        f"open, {load['rate']:g} req/s over {load['connections']} connections"
        if load["model"] == "open"
        else f"closed, {load['connections']} connections"
    )
    head.add_row("load", f"{model}; {load['processes']} processes")
    head.add_row(
        "requests",
        f"{result['requests']:,} in {result['elapsed_seconds']:.1f} s = "
        f"[bold]{result['requests_per_second']:,.0f} req/s[/]",
    )
    latency = result["latency_ms"]
    head.add_row(
        "latency",
        "  ".join(
            f"{name} {latency[key]:.2f} ms"
            for name, key in (
                ("p50", "p50"),
                ("p90", "p90"),
                ("p99", "p99"),
                ("p99.9", "p99_9"),
                ("max", "max"),
            )
        ),
    )
    head.add_row("statuses", ", ".join(f"{k}: {v:,}" for k, v in result["statuses"].items()))
    if result["errors"]:
        head.add_row("errors", ", ".join(f"{k}: {v:,}" for k, v in result["errors"].items()))
    cache = result["x_cache"]
    if cache["values"]:
        head.add_row(
            "X-Cache",
            f"hit ratio {cache['hit_ratio']:.1%}, function-generated "
            f"{cache['function_generated_ratio']:.1%}, errors {cache['error_ratio']:.1%}  ("
            + ", ".join(f"{k}: {v:,}" for k, v in cache["values"].items())
            + ")",
        )
    if len(result["mix"]) > 1:
        head.add_row("mix", ", ".join(f"{e['name']}: {e['requests']:,}" for e in result["mix"]))
    parts.append(head)
    admin = result.get("admin")
    if admin and "error" in admin:
        parts.append(f"[yellow]admin listener: {admin['error']}[/]")
    elif admin and admin["functions"]:
        table = Table(title="functions (from the edge's admin listener)", title_justify="left")
        columns = (
            "function",
            "invocations",
            "cold starts",
            "throttles",
            "errors",
            "peak conc.",
            "p50 ms",
            "p99 ms",
            "billed ms",
            "AWS cost",
        )
        for column in columns:
            table.add_column(column, justify="left" if column == "function" else "right")
        cost = admin["cost"]
        for key, fn in admin["functions"].items():
            table.add_row(
                key,
                f"{fn['invocations']:,}",
                f"{fn['cold_starts']:,}",
                f"{fn['throttles']:,}",
                f"{fn['errors']:,}",
                f"{fn['peak_concurrency']:,}",
                f"{fn['duration_p50_ms']:.2f}",
                f"{fn['duration_p99_ms']:.2f}",
                f"{fn['billed_ms']:,}",
                _usd(cost["functions"][key]["cost_usd"]),
            )
        parts.append(table)
        limits = cost["limits"]
        parts.append(
            f"AWS estimate: {_usd(cost['total_usd'])} for this traffic, "
            f"{_usd(cost['per_million_viewer_requests_usd'])} per million viewer requests "
            f"(prices as of {cost['as_of']}); peak concurrency {limits['peak_concurrency']}, "
            f"at this rate AWS would need ~{limits['aws_concurrency_at_this_rate']:g} "
            f"of the {limits['concurrent_executions']:,} default"
        )
        parts.extend(f"[bold yellow]warning:[/] {warning}" for warning in limits["warnings"])
    return Group(*parts)


# (label, path into the result, higher is better)
_COMPARED: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("requests", ("requests",), True),
    ("req/s", ("requests_per_second",), True),
    ("p50 ms", ("latency_ms", "p50"), False),
    ("p90 ms", ("latency_ms", "p90"), False),
    ("p99 ms", ("latency_ms", "p99"), False),
    ("p99.9 ms", ("latency_ms", "p99_9"), False),
    ("max ms", ("latency_ms", "max"), False),
    ("hit ratio", ("x_cache", "hit_ratio"), True),
    ("error ratio", ("x_cache", "error_ratio"), False),
)


def _dig(document: Any, path: tuple[str, ...]) -> float | None:
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return float(document) if isinstance(document, int | float) else None


def compare_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, A, B, delta) rows: the headline figures and each function's."""
    rows: list[tuple[str, str, str, str]] = []

    def add(label: str, left: float | None, right: float | None) -> None:
        if left is None and right is None:
            return
        delta = ""
        if left is not None and right is not None:
            delta = f"{right - left:+,.3g}"
            if left:
                delta += f" ({(right - left) / left:+.1%})"
        rows.append(
            (
                label,
                "-" if left is None else f"{left:,.4g}",
                "-" if right is None else f"{right:,.4g}",
                delta,
            )
        )

    for label, path, _ in _COMPARED:
        add(label, _dig(a, path), _dig(b, path))
    errors_a = sum(a.get("errors", {}).values())
    errors_b = sum(b.get("errors", {}).values())
    add("transport errors", errors_a, errors_b)
    functions_a = (a.get("admin") or {}).get("functions") or {}
    functions_b = (b.get("admin") or {}).get("functions") or {}
    for key in sorted(set(functions_a) | set(functions_b)):
        for figure in ("invocations", "cold_starts", "throttles", "peak_concurrency"):
            add(
                f"{key} {figure.replace('_', ' ')}",
                _dig(functions_a, (key, figure)),
                _dig(functions_b, (key, figure)),
            )
        for figure in ("duration_p50_ms", "duration_p99_ms"):
            add(
                f"{key} {figure.replace('_', ' ')}",
                _dig(functions_a, (key, figure)),
                _dig(functions_b, (key, figure)),
            )
    cost_a = _dig(a, ("admin", "cost", "per_million_viewer_requests_usd"))
    cost_b = _dig(b, ("admin", "cost", "per_million_viewer_requests_usd"))
    add("AWS $ per million requests", cost_a, cost_b)
    return rows


def print_compare(
    console: Console, a: dict[str, Any], b: dict[str, Any], names: tuple[str, str]
) -> None:
    table = Table("figure", names[0], names[1], "delta (B - A)")
    for row in compare_rows(a, b):
        table.add_row(*row)
    console.print(table)
