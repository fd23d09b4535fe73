"""The backtest's figures as PNG bytes (matplotlib, Agg canvas: no display, no pyplot state): pure functions of the
report dict and the frames it was graded from.

- `lead_time_histogram`: crossing - first flag, seconds, per scenario and overall (`grading.crossing_leads`);
- `frontier`: precision within the horizon against the share flagged ahead, one point per scenario (and overall),
  sized and labelled by the lead time p50; a later parameter sweep adds points (`points` of any set of reports);
- `eta_calibration`: per ETA bucket, the share of judged flags that crossed within the horizon, and the ETA's error;
- `candidates_per_block`: users flagged per graded block, per scenario and overall.

`grading.crossing_leads` gives the crossings `grading.grade` summarizes, one row each, so the histogram's median is the
report's `lead_time_p50_s`; `candidates_frame` counts the users flagged per block.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .grading import ETA_BUCKETS, Window

OVERALL = "overall"
DPI = 100
SIZE = (8.0, 4.5)  # inches: 800 x 450 px, readable in the Dagster UI's metadata panel
COLORS = {OVERALL: "#222222", "baseline": "#1f77b4", "adverse": "#ff7f0e", "extreme": "#d62728"}
PLOTS = ("lead_time_histogram", "frontier", "eta_calibration", "candidates_per_block")


def candidates_frame(predictions: pl.DataFrame, window: Window, scenarios: Sequence[str]) -> pl.DataFrame:
    """(scenario, block, users) for every graded block, per scenario and overall: users flagged there (0 if none)."""
    graded = pl.DataFrame({"block": range(window.from_block, window.to_block + 1)}, schema={"block": pl.Int64})
    rows = predictions.select(pl.col("block").cast(pl.Int64), pl.col("user"), pl.col("scenario").cast(pl.String))
    parts = []
    for name in (OVERALL, *scenarios):
        chosen = rows if name == OVERALL else rows.filter(pl.col("scenario") == name)
        per_block = chosen.group_by("block").agg(pl.col("user").n_unique().cast(pl.Int64).alias("users"))
        parts.append(
            graded.join(per_block, on="block", how="left").select(
                pl.lit(name).alias("scenario"), "block", pl.col("users").fill_null(0)
            )
        )
    return pl.concat(parts)


def render_all(report: Mapping, leads: pl.DataFrame, candidates: pl.DataFrame) -> dict[str, bytes]:
    """Every figure of one report: name (PLOTS) -> PNG bytes."""
    title = f"blocks {report['graded_from_block']}-{report['to_block']}"
    return {
        "lead_time_histogram": lead_time_histogram(leads, title),
        "frontier": frontier(points(report), report.get("base_rate_within_horizon"), title),
        "eta_calibration": eta_calibration(report, title),
        "candidates_per_block": candidates_per_block(candidates, title),
    }


def points(report: Mapping, label: str = "") -> list[dict]:
    """The frontier's points of one report: overall and each scenario (name, precision, recall ahead, lead p50)."""
    named = [(OVERALL, report), *report.get("scenarios", {}).items()]
    return [
        {
            "name": f"{label}{name}",
            "color": COLORS.get(name, "#7f7f7f"),
            "precision": values.get("precision_within_horizon"),
            "recall_ahead": values.get("flagged_ahead_share"),
            "lead_s": values.get("lead_time_p50_s"),
        }
        for name, values in named
    ]


def lead_time_histogram(leads: pl.DataFrame, title: str = "") -> bytes:
    figure, axes = _figure()
    names = list(dict.fromkeys(leads["scenario"].to_list())) if leads.height else []
    flagged = leads.filter(pl.col("lead_s").is_not_null())
    high = float(flagged["lead_s"].max() or 0.0) if flagged.height else 0.0
    edges = _edges(high)
    drawn = False
    for name in names:
        values = flagged.filter(pl.col("scenario") == name)["lead_s"].to_list()
        if not values:
            continue
        median = flagged.filter(pl.col("scenario") == name)["lead_s"].median()
        color = COLORS.get(name)
        axes.hist(
            values,
            bins=edges,
            histtype="step" if name != OVERALL else "stepfilled",
            alpha=0.25 if name == OVERALL else 1.0,
            linewidth=2,
            color=color,
            label=f"{name} (n={len(values)}, p50 {median:g} s)",
        )
        axes.axvline(median, color=color, linestyle=":", linewidth=1)
        drawn = True
    if not drawn:
        _empty(axes, "no crossing flagged at or before its block")
    else:
        axes.legend(fontsize=8)
    axes.set_xlabel("lead time: crossing - first flag (s)")
    axes.set_ylabel("crossings")
    axes.set_title(f"Lead time at the HF < 1 crossing ({title})")
    return _png(figure)


def frontier(points: Sequence[Mapping], base_rate: float | None = None, title: str = "", zoom: bool = False) -> bytes:
    """`zoom`: the axes around the points (a sweep's many close points), not the whole unit square."""
    figure, axes = _figure()
    shown = [p for p in points if p.get("precision") is not None and p.get("recall_ahead") is not None]
    leads = [p["lead_s"] or 0.0 for p in shown]
    biggest = max(leads, default=0.0) or 1.0
    for point, lead in zip(shown, leads, strict=True):
        axes.scatter(
            point["precision"],
            point["recall_ahead"],
            s=(20 + 160 * lead / biggest) if zoom else (60 + 440 * lead / biggest),
            color=point.get("color", "#7f7f7f"),
            marker="*" if point["name"].endswith(OVERALL) else "o",
            alpha=0.8,
            edgecolors="black",
            zorder=3,
        )
    labels: dict[tuple, list[str]] = {}  # points at the same place share one label
    for point in shown:
        if not point.get("labelled", True):  # a sweep's unnamed points: drawn, not labelled
            continue
        lead_text = "-" if point.get("lead_s") is None else f"{point['lead_s']:g} s"
        labels.setdefault((point["precision"], point["recall_ahead"]), []).append(f"{point['name']} ({lead_text})")
    for (x, y), names in labels.items():
        axes.annotate("\n".join(names), (x, y), textcoords="offset points", xytext=(14, -4), fontsize=8, va="center")
    if base_rate is not None:
        axes.axvline(base_rate, color="#999999", linestyle="--", linewidth=1, label=f"base rate {base_rate:g}")
        axes.legend(fontsize=8, loc="lower right")
    if not shown:
        _empty(axes, "no precision or recall to show (no flag judged, no crossing)")
    if zoom and shown:
        axes.set_xlim(0, max(p["precision"] for p in shown) * 1.2)
        low = min(p["recall_ahead"] for p in shown)
        axes.set_ylim(max(0.0, low - 0.05), min(1.05, max(p["recall_ahead"] for p in shown) + 0.05))
    else:
        axes.set_xlim(0, 1.05)
        axes.set_ylim(0, 1.05)
    axes.set_xlabel("precision within the horizon")
    axes.set_ylabel("crossings flagged >= 1 block ahead")
    axes.set_title(f"Precision / recall ahead / lead time ({title})")
    axes.text(0.01, 0.01, "marker size and (s): lead time p50", transform=axes.transAxes, fontsize=7, color="#666666")
    axes.grid(True, alpha=0.3)
    return _png(figure)


def eta_calibration(report: Mapping, title: str = "") -> bytes:
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    share_axes, error_axes = figure.subplots(1, 2)
    labels = [label for _, label in ETA_BUCKETS]
    named = [(OVERALL, report.get("calibration", [])), *((n, s.get("calibration", [])) for n, s in _scenarios(report))]
    width = 0.8 / max(1, len(named))
    drawn = False
    for index, (name, rows) in enumerate(named):
        by_bucket = {row["eta_bucket"]: row for row in rows}
        xs = [at + (index - (len(named) - 1) / 2) * width for at in range(len(labels))]
        shares = [by_bucket.get(label, {}).get("crossed_share") for label in labels]
        color = COLORS.get(name, "#7f7f7f")
        bars = share_axes.bar(xs, [s or 0.0 for s in shares], width=width, color=color, label=name)
        for bar, label in zip(bars, labels, strict=True):
            flags = by_bucket.get(label, {}).get("flags")
            if flags:
                share_axes.annotate(
                    str(flags), (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", fontsize=6
                )
        errors = [by_bucket.get(label, {}).get("eta_error_p50_s") for label in labels]
        points = [(x, e) for x, e in zip(range(len(labels)), errors, strict=True) if e is not None]
        if points:
            error_axes.plot(*zip(*points, strict=True), marker="o", color=color, label=name)
        drawn = drawn or bool(rows)
    share_axes.set_xticks(range(len(labels)), labels)
    share_axes.set_ylim(0, 1.1)
    share_axes.set_xlabel("ETA at the flag")
    share_axes.set_ylabel("share crossed within the horizon")
    share_axes.set_title("Crossed within H (numbers: flags)", fontsize=9)
    error_axes.axhline(0, color="#999999", linewidth=1)
    error_axes.set_xticks(range(len(labels)), labels)
    error_axes.set_xlabel("ETA at the flag")
    error_axes.set_ylabel("time taken - ETA, p50 (s)")
    error_axes.set_title("ETA error (> 0: later than predicted)", fontsize=9)
    if drawn:
        share_axes.legend(fontsize=7)
    else:
        _empty(share_axes, "no flag could be judged")
    figure.suptitle(f"ETA calibration ({title})")
    return _png(figure)


def candidates_per_block(candidates: pl.DataFrame, title: str = "") -> bytes:
    figure, axes = _figure()
    names = list(dict.fromkeys(candidates["scenario"].to_list())) if candidates.height else []
    for name in names:
        rows = candidates.filter(pl.col("scenario") == name).sort("block")
        median = rows["users"].median()
        axes.step(
            rows["block"].to_list(),
            rows["users"].to_list(),
            where="mid",
            color=COLORS.get(name),
            linewidth=2 if name == OVERALL else 1,
            label=f"{name} (p50 {median:g})",
        )
    if names:
        axes.legend(fontsize=8)
    else:
        _empty(axes, "no graded block")
    axes.set_xlabel("block")
    axes.set_ylabel("users flagged")
    axes.set_title(f"Candidates per block ({title})")
    axes.grid(True, alpha=0.3)
    return _png(figure)


def _scenarios(report: Mapping) -> list[tuple[str, Mapping]]:
    return list(report.get("scenarios", {}).items())


def _edges(high: float) -> list[float]:
    """Histogram bin edges from 0 to past `high`: about 20 bins of a round width."""
    step = next((s for s in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600) if high / s <= 20), 7200)
    return [float(step * k) for k in range(int(high // step) + 2)]


def _figure():
    figure = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots()


def _empty(axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="#666666")


def _png(figure: Figure) -> bytes:
    out = io.BytesIO()
    figure.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()
