"""Server-rendered SVG charts for the admin's metrics reports: plain horizontal bars with
their labels and values, readable without JavaScript and printable (like the portal's
waterfall). Every label is escaped; the result is safe to put in a page."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

WIDTH, LABEL_WIDTH, BAR_HEIGHT, GAP = 640, 240, 18, 8
COLOURS = ("#2f6fb0", "#d08a1e", "#7a3fa0")


def bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[float | None]]],
    *,
    series: Sequence[str] = ("",),
    unit: str = "",
    maximum: float | None = None,
) -> SafeString:
    """One group of bars per row (one bar per series), scaled to `maximum` (default the largest value)."""
    values = [v for _, vs in rows for v in vs if v is not None]
    top = maximum if maximum is not None else max(values, default=0) or 1
    span = WIDTH - LABEL_WIDTH - 80
    per_row = len(series) * (BAR_HEIGHT + 2) + GAP
    height = 30 + max(len(rows), 1) * per_row + (20 if len(series) > 1 else 0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="metrics-chart" role="img" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-weight="bold" font-size="13">{escape(title)}</text>',
    ]
    if not rows:
        parts.append('<text x="0" y="44" font-size="12" fill="#666">Nothing in this period.</text>')
    y = 30
    for label, row_values in rows:
        parts.append(f'<text x="0" y="{y + BAR_HEIGHT - 4}" font-size="12">{escape(label[:40])}</text>')
        for index, value in enumerate(row_values):
            length = 0 if value is None else max(1, round(span * value / top))
            colour = COLOURS[index % len(COLOURS)]
            shown = "—" if value is None else f"{value:,.4g}{unit}"
            parts.append(
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length}" height="{BAR_HEIGHT}" fill="{colour}">'
                f"<title>{escape(label)}: {escape(shown)}</title></rect>"
                f'<text x="{LABEL_WIDTH + length + 4}" y="{y + BAR_HEIGHT - 4}" font-size="12">{escape(shown)}</text>'
            )
            y += BAR_HEIGHT + 2
        y += GAP
    if len(series) > 1:
        x = LABEL_WIDTH
        for index, name in enumerate(series):
            colour = COLOURS[index % len(COLOURS)]
            parts.append(
                f'<rect x="{x}" y="{y}" width="10" height="10" fill="{colour}"></rect>'
                f'<text x="{x + 14}" y="{y + 10}" font-size="12">{escape(name)}</text>'
            )
            x += 120
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  # every interpolated text is escaped above


def percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def adoption_charts(report: dict) -> list[SafeString]:
    workflows = report["workflows"]
    return [
        bars(
            "Completed without engineering intervention (%)",
            [(w["label"], [percent(w["share_without_intervention"])]) for w in workflows],
            unit="%",
            maximum=100,
        ),
        bars(
            "4xx errors resolved by the same person within 30 minutes (%)",
            [(w["label"], [percent(w["self_resolved_share"])]) for w in workflows],
            unit="%",
            maximum=100,
        ),
        bars(
            "Time to completion (hours)",
            [
                (
                    w["label"],
                    [hours(w["time_to_completion"]["median_seconds"]), hours(w["time_to_completion"]["p90_seconds"])],
                )
                for w in workflows
            ]
            + [
                (
                    "Approval lead time",
                    [
                        hours(report["approval_lead_time"]["median_seconds"]),
                        hours(report["approval_lead_time"]["p90_seconds"]),
                    ],
                )
            ],
            series=("median", "p90"),
            unit=" h",
        ),
        bars(
            "Actions through the API and portal against the admin",
            [(d["action"], [d["api"] + d["portal"], d["admin"]]) for d in report["doors"][:15]],
            series=("API and portal", "admin"),
        ),
    ]


def policy_charts(report: dict) -> list[SafeString]:
    return [
        bars(
            "Rate limits hit (429)",
            [(f"{r['rate_class']} · {r['route']}", [r["hits"]]) for r in report["rate_limits"][:10]],
        ),
        bars("Quotas used up", [(r["route"], [r["hits"]]) for r in report["quotas"][:10]]),
        bars("Denials by action", [(r["action"], [r["hits"]]) for r in report["denials"][:10]]),
        bars("Approval requests filed by action", [(r["action"], [r["hits"]]) for r in report["approvals"][:10]]),
    ]
