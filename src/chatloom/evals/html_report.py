"""The HTML report of an evaluation: one self-contained file that opens offline in any browser.

Per dataset it draws accuracy per scorer per agent and p50/p95 latency per agent (plotly, whose
JavaScript bundle is inlined once, so viewing needs no network), the side-by-side table, the paired
sign tests, and the per-case grid: one row per case, one column per agent, a pass/fail mark per
scorer and the answer on hover and on expand.

Everything from cases and models is text: the page is rendered by Jinja2 with autoescaping, the
chart data sits in ``<script type="application/json">`` blocks written with the HTML-safe
``tojson`` filter, and a Content-Security-Policy lets only the page's own nonce'd scripts run
and no request leave it, should anything slip through.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatloom.errors import ConfigError, install_hint
from chatloom.evals.report import MEASURES, format_score, scorer_order

__all__ = ["render_html", "require_plotly", "write_html"]

Row = dict[str, Any]
_ANSWER_ON_HOVER = 600  # characters in a cell's tooltip; the expanded answer is whole


def require_plotly() -> tuple[Any, Any, str]:
    """plotly's graph objects, its io module and its JavaScript bundle, or a one-line install hint."""
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise ConfigError(
            "the HTML report needs plotly, which is not installed", install_hint("eval", "plotly")
        ) from None
    return go, pio, get_plotlyjs()


def _chart_text(text: str) -> str:
    # Plotly reads a subset of HTML in labels (<b>, <a href>): an agent named "<a href=...>" must
    # show as that text, not become a link.
    return html.escape(str(text), quote=False)


def _figure_data(pio: Any, figure: Any) -> dict[str, Any]:
    return json.loads(pio.to_json(figure, validate=False))


def accuracy_figure(go: Any, labels: Sequence[str], summary: Mapping[str, Any], scorers: Sequence[str]) -> Any:
    """Grouped bars: one group per scorer, one bar per agent; pass/fail scorers as shares, f1 as its mean."""
    bars = []
    for label in labels:
        scores = summary[label]["scores"]
        shown = [s for s in scorers if s in scores]
        bars.append(
            go.Bar(
                name=_chart_text(label),
                x=shown,
                y=[scores[s]["mean"] for s in shown],
                text=[f"{scores[s]['mean']:.0%}" if scores[s]["binary"] else f"{scores[s]['mean']:.2f}" for s in shown],
                textposition="outside",
                customdata=[format_score(scores[s]) for s in shown],
                hovertemplate="%{x}: %{customdata}<extra>" + _chart_text(label) + "</extra>",
            )
        )
    figure = go.Figure(bars)
    figure.update_layout(
        title="Accuracy per scorer",
        barmode="group",
        template="plotly_white",
        height=380,
        yaxis={"title": "share passed (f1: mean)", "range": [0, 1.15], "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "b": 40, "l": 60, "r": 20},
    )
    return figure


def latency_figure(go: Any, labels: Sequence[str], summary: Mapping[str, Any]) -> Any:
    """Grouped bars: p50 and p95 seconds per answer, one group per agent."""
    names = [_chart_text(label) for label in labels]
    figure = go.Figure(
        [
            go.Bar(
                name=title,
                x=names,
                y=[summary[label][key] for label in labels],
                text=[f"{summary[label][key]:.2f} s" for label in labels],
                textposition="outside",
            )
            for title, key in (("p50", "p50_s"), ("p95", "p95_s"))
        ]
    )
    figure.update_layout(
        title="Seconds per answer",
        barmode="group",
        template="plotly_white",
        height=380,
        yaxis={"title": "seconds", "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 50, "b": 40, "l": 60, "r": 20},
    )
    return figure


def _mark(scorer: str, value: Any, reason: str | None) -> dict[str, str]:
    """How one score shows in the grid: a class (pass, fail, graded, none), a symbol and a tooltip."""
    if value is None:
        kind, symbol = "none", "–"
        title = reason or f"{scorer} does not apply to this case"
    elif isinstance(value, bool):
        kind, symbol, title = ("pass", "✓", f"{scorer}: pass") if value else ("fail", "✗", f"{scorer}: fail")
    else:
        kind, symbol, title = "graded", f"{float(value):.2f}", f"{scorer}: {float(value):.3f}"
    if reason and value is not None:
        title += f" — {reason}"
    return {"scorer": scorer, "kind": kind, "symbol": symbol, "title": title}


def _grid(rows: Sequence[Row], labels: Sequence[str], case_ids: Sequence[str]) -> list[dict[str, Any]]:
    by_case: dict[str, dict[str, Row]] = {}
    for each in rows:
        by_case.setdefault(str(each["case"]), {})[each["agent"]] = each
    grid = []
    for case_id in (c for c in case_ids if c in by_case):
        cells = by_case[case_id]
        first = next(iter(cells.values()))
        out_cells = []
        for label in labels:
            row = cells.get(label)
            if row is None:
                out_cells.append({"agent": label, "missing": True})
                continue
            reason = (row.get("judge") or {}).get("reason")
            marks = [_mark(s, row["scores"][s], reason if s == "judge" else None) for s in scorer_order(row["scores"])]
            answer = row.get("answer") or ""
            out_cells.append(
                {
                    "agent": label,
                    "missing": False,
                    "marks": marks,
                    "answer": answer,
                    "error": row.get("error"),
                    "hover": answer[:_ANSWER_ON_HOVER] + ("…" if len(answer) > _ANSWER_ON_HOVER else ""),
                    "judge_reason": reason,
                    "seconds": row.get("seconds"),
                    "steps": row.get("steps"),
                }
            )
        scorers = {s for row in cells.values() for s in row["scores"]}
        differs = any(
            len({v for row in cells.values() if isinstance(v := row["scores"].get(s), bool)}) > 1 for s in scorers
        )
        grid.append(
            {
                "id": case_id,
                "input": first.get("input") or "",
                "expected": first.get("expected"),
                "kind": first.get("kind") or "",
                "cells": out_cells,
                "differs": differs,
            }
        )
    return grid


def _dataset_view(
    go: Any, pio: Any, name: str, info: Mapping[str, Any], rows: Sequence[Row], labels: Sequence[str]
) -> dict[str, Any]:
    summary = info["agents"]
    present = [label for label in labels if label in summary]
    scorers = scorer_order(s for label in present for s in summary[label]["scores"])
    case_ids = info.get("case_ids") or list(dict.fromkeys(str(r["case"]) for r in rows))
    return {
        "name": name,
        "format": info.get("format", ""),
        "cases": info.get("cases", len(case_ids)),
        "labels": present,
        "summary": summary,
        "scorers": scorers,
        "score_rows": [(s, [format_score(summary[label]["scores"].get(s)) for label in present]) for s in scorers],
        "measure_rows": [(title, [cell(summary[label]) for label in present]) for title, cell in MEASURES],
        "comparisons": info.get("comparisons", []),
        "grid": _grid(rows, present, case_ids),
        "accuracy": _figure_data(pio, accuracy_figure(go, present, summary, scorers)) if scorers else None,
        "latency": _figure_data(pio, latency_figure(go, present, summary)) if present else None,
    }


def render_html(results: Mapping[str, Any], rows: Mapping[str, Sequence[Row]]) -> str:
    """The report page for ``results`` (the results JSON of ``chatloom eval``) and each dataset's rows."""
    import jinja2

    go, pio, plotly_js = require_plotly()
    labels = list(results.get("agents", []))
    datasets = [
        _dataset_view(go, pio, name, info, rows.get(name, ()), labels)
        for name, info in results.get("datasets", {}).items()
    ]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("chatloom.evals", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template("report.html.j2")
    return template.render(
        # The bundle is trusted library code; the replace only guarantees it cannot end its own <script>.
        datasets=datasets,
        labels=labels,
        nonce=secrets.token_urlsafe(18),
        plotly_js=re.sub(r"</(script)", r"<\\/\1", plotly_js, flags=re.IGNORECASE),
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=results.get("seconds"),
    )


def write_html(path: Path, results: Mapping[str, Any], rows: Mapping[str, Sequence[Row]]) -> Path:
    """Write :func:`render_html`'s page to ``path`` (folders are created); returns the path."""
    page = render_html(results, rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"can't write the HTML report to {str(path)!r}: {exc.strerror or exc}", "pass another --html path"
        ) from None
    return path
