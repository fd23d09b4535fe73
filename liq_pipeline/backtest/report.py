"""The backtest's report as Markdown: what was graded, then the figures overall and per scenario."""

from __future__ import annotations

from collections.abc import Mapping

# (key, label) of the figures table, overall and per scenario
FIGURES: tuple[tuple[str, str], ...] = (
    ("crossings", "crossings (Pool: HF >= 1, then < 1)"),
    ("recall_at_cross", "recall at the crossing block"),
    ("flagged_ahead_share", "crossings flagged >= 1 block ahead"),
    ("lead_time_p50_blocks", "lead time p50, blocks"),
    ("lead_time_p50_s", "lead time p50, seconds"),
    ("lead_censored", "lead times cut at the replay's first block"),
    ("eta_error_p50_s", "ETA error p50 at the first flag, s (> 0: later than predicted)"),
    ("precision_within_horizon", "precision within the horizon"),
    ("base_rate_within_horizon", "base rate (a predictor flagging everyone)"),
    ("flags_judged", "flags judged for precision"),
    ("candidates_per_block_p50", "candidates per block p50"),
    ("recall_liquidatable", "(block, user) below HF 1 flagged"),
    ("liquidations_onchain", "liquidations on chain"),
    ("liquidations_unflagged", "liquidations never flagged before"),
    ("liquidations_flagged_late", "liquidations flagged only once below HF 1"),
    ("liquidation_late_blocks_p50", "blocks late p50 (flagged liquidations)"),
    ("liquidation_late_blocks_max", "blocks late max"),
    ("liquidation_lead_blocks_p50", "first flag to liquidation p50, blocks"),
)
MOVE_FIGURES = (
    "crossings",
    "recall_at_cross",
    "flagged_ahead_share",
    "lead_time_p50_blocks",
    "lead_time_p50_s",
    "blocks",
    "precision_within_horizon",
    "candidates_per_block_p50",
)
CALIBRATION = ("eta_bucket", "flags", "crossed_share", "time_to_liquidatable_p50_s", "eta_error_p50_s")
# (key, column) of the sweep's tables
SWEEP_FIGURES: tuple[tuple[str, str], ...] = (
    ("recall_at_cross", "recall at cross"),
    ("flagged_ahead_share", "flagged ahead"),
    ("precision_within_horizon", "precision"),
    ("base_rate_within_horizon", "base rate"),
    ("precision_lift", "lift"),
    ("lead_time_p50_s", "lead p50 s"),
    ("candidates_per_block_p50", "cand./block p50"),
    ("liquidations_unflagged", "liq. unflagged"),
)


def render_markdown(report: dict, images: Mapping[str, str] | None = None) -> str:
    """The report as Markdown; `images` (title -> relative path of a PNG) adds a Plots section."""
    scenarios = report.get("scenarios", {})
    engine = report["engine"]
    lines = [
        f"# Backtest of blocks {report['graded_from_block']}-{report['to_block']}",
        "",
        "Graded by the chain: Pool.getUserAccountData of every known borrower at every block, and the on-chain "
        "LiquidationCall events, against the engine replayed block by block (docs/backtest.md).",
        "",
        *_coverage(report),
        "",
        f"Engine: Aave V{engine['protocol_version']}, scenarios {', '.join(engine['scenarios'])}, horizon "
        f"{engine['engine_horizon_sec']:g} s, buffer {engine['hf_buffer_bps']} bps"
        + ("" if engine["predictive_enabled"] else " (PREDICTIVE_ENABLED=false: baseline only, no look-ahead)")
        + f"; precision judged within {engine['graded_horizon_sec']} s.",
        "",
        "## Figures",
        "",
        _table(
            ["figure", "overall", *scenarios],
            [[label, report.get(key), *(s.get(key) for s in scenarios.values())] for key, label in FIGURES],
        ),
        "",
        "## By the price move at the crossing block",
        "",
        "The largest one-block change of any oracle price at the crossing block; blocks, precision and candidates "
        "per block: the flags raised and the candidates held at the graded blocks with such a move.",
        "",
    ]
    moves = report.get("by_price_move", {})
    lines.append(
        _table(
            ["move", "scenario", *MOVE_FIGURES],
            [
                [bucket, name, *(row.get(k) for k in MOVE_FIGURES)]
                for bucket in moves
                for name, row in (
                    ("overall", moves[bucket]),
                    *((n, s.get("by_price_move", {}).get(bucket, {})) for n, s in scenarios.items()),
                )
            ],
        )
    )
    lines += [
        "",
        "## ETA calibration (overall)",
        "",
        "Flags at HF >= 1 whose horizon the range covers, by their ETA.",
        "",
    ]
    calibration = report.get("calibration", [])
    lines.append(
        _table(list(CALIBRATION), [[row.get(k) for k in CALIBRATION] for row in calibration])
        if calibration
        else "No flag could be judged."
    )
    if "sweep" in report:
        lines += ["", *_sweep(report)]
    if images:
        lines += ["", "## Plots", ""]
        lines += [f"![{title}]({path})" for title, path in images.items()]
    lines += ["", f"Seconds: {report.get('seconds', {})}", ""]
    return "\n".join(lines)


def _sweep(report: dict) -> list[str]:
    """The frontier, the recommendation against the current settings, then every point."""
    points = report["sweep"]
    names = list(dict.fromkeys(name for point in points for name in point["settings"]))
    header = ["point", *(n.removeprefix("PREDICTIVE_") for n in names), *(label for _, label in SWEEP_FIGURES)]

    def rows(selected: list[dict]) -> list[list]:
        return [
            [_point_name(p), *(p["settings"].get(n) for n in names), *(p.get(k) for k, _ in SWEEP_FIGURES)]
            for p in selected
        ]

    best = report.get("recommended")
    current = [p for p in points if p.get("label") == "current"]
    lines = [
        "## Sweep",
        "",
        f"{len(points)} engine settings graded on the same history (the figures above are the current settings'). "
        "Each point's precision is judged within its own PREDICTIVE_HORIZON_SEC, hence its own base rate: a longer "
        "horizon raises both, the lift (precision / base rate) compares across horizons.",
        "",
        "### Frontier",
        "",
        "Points flagging every crossing at its block (recall 1.0) that no other such point beats on both "
        "the flagged-ahead share and the precision within the horizon.",
        "",
        _table(header, rows(report.get("frontier", []))) if report.get("frontier") else "No point reaches recall 1.0.",
        "",
        "### Recommended",
        "",
    ]
    if best is None:
        lines.append("None: no point reaches recall 1.0 with at least the current flagged-ahead share.")
    else:
        target = best.get("target_flagged_ahead_share", 0.0)
        why = (
            f"the target share, BACKTEST_TARGET_FLAGGED_AHEAD={target:g}"
            if best["min_flagged_ahead_share"] >= target > 0
            else "the current settings' share"
            + (f"; no point flags BACKTEST_TARGET_FLAGGED_AHEAD={target:g} ahead with recall 1.0" if target else "")
        )
        lines += [
            f"`{best['env']}`: the best precision among the frontier points flagging at least "
            f"{best['min_flagged_ahead_share']:g} of the crossings ahead ({why}).",
            "",
            _table(header, rows([best, *current])),
            "",
            f"Change from the current settings: {_changes(best.get('vs_current'))}",
        ]
    same = report.get("recommended_same_horizon")
    if same is not None and (best is None or same["point"] != best["point"]):
        lines += [
            "",
            f"At the current horizon (precision judged over the same window, like for like): `{same['env']}`, "
            f"flagging at least {same['min_flagged_ahead_share']:g} ahead; "
            f"change from the current settings: {_changes(same.get('vs_current'))}",
        ]
    lines += ["", "### Every point", "", _table(header, rows(points))]
    return lines


def _changes(delta: dict | None) -> str:
    if not delta:
        return "-"
    return ", ".join(f"{key} {value:+g}" if value is not None else f"{key} -" for key, value in delta.items())


def _point_name(point: dict) -> str:
    return f"{point['point']} ({point['label']})" if point.get("label") else str(point["point"])


def _coverage(report: dict) -> list[str]:
    out = [
        f"- blocks graded: {report['blocks']} ({report['graded_from_block']}-{report['to_block']}), "
        f"{report['borrowers']} borrowers, {report['truth_reads']} getUserAccountData answers",
    ]
    if report["graded_from_block"] > report["from_block"]:
        out.append(
            f"- the node has no state before block {report['first_block_with_state']}: blocks "
            f"{report['from_block']}-{report['graded_from_block'] - 1} were asked but cannot be graded"
        )
    warm = report["graded_from_block"] - report["replay_from_block"]
    out.append(f"- the engine replayed from block {report['replay_from_block']} ({warm} blocks of price window first)")
    if report.get("deferred_users"):
        out.append(f"- {report['deferred_users']} touched users re-read a block late (PREDICTIVE_MAX_USERS_PER_TICK)")
    return out


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
