"""The ``cryptocast evaluate`` command: score a pair's models on data, and report it.

The data is the database's newest week or a user's candle file, checked before anything runs; the
report is written as JSON with a PNG plot beside it, and printed as two tables: the point forecast's
skill and the intervals' calibration, per model and horizon (with ``--json``, as one summary document:
the same scores without their per-day and per-group series, and where the report and plot are).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cryptocast.clioutput import Json, emit, progress_bar
from cryptocast.cliutil import Pair, console, fail, pair_id, pair_name, with_database
from cryptocast.settings import get_settings
from cryptocast.sql.database import Database

if TYPE_CHECKING:
    from cryptocast.tune.candlefile import CandleFile
    from cryptocast.tune.candles import Candles
    from cryptocast.tune.evaluation_needs import EvaluationNeeds
    from cryptocast.tune.predictor import Predictor


def evaluate(
    pair: Pair,
    data: Annotated[
        Path | None,
        typer.Option(
            help="1-minute candles: CSV (plain, gzipped or zipped) or Parquet with open_time_ms,open,high,low,close,"
            "volume, or Binance's 12-field kline CSV (with or without its header); checked before anything runs"
        ),
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="score only origins from this UTC time on")] = None,
    report: Annotated[
        Path | None, typer.Option(help="where to write the JSON report (the PNG goes beside it)")
    ] = None,
    daily_calibration: Annotated[
        bool,
        typer.Option(
            "--daily-calibration/--fixed-calibration",
            help="refit the intervals each day on the days before it, as the daily retrain does when serving",
        ),
    ] = True,
    as_json: Json = False,
) -> None:
    """Score the pair's served models and persistence on data (by default the newest week in the database);
    writes the report as JSON and as a PNG plot beside it."""
    from cryptocast.sql.queries import symbol_id
    from cryptocast.tune.conformal import SERVED
    from cryptocast.tune.evaluation import evaluate as run_evaluation
    from cryptocast.tune.evaluation import truth
    from cryptocast.tune.evaluation_needs import EvaluationNeeds, scored_warning
    from cryptocast.tune.models import evaluation_set, file_set
    from cryptocast.tune.plot import write_png
    from cryptocast.tune.registry import NoChampion
    from cryptocast.tune.walkforward import DailyRecalibrated

    settings = get_settings()
    pair = pair_name(pair)  # a malformed name ends the command here; it is part of the report's file name
    calib_ms = SERVED.span_ms if daily_calibration else 0  # the longest span any interval method refits on
    given = _candle_file(data, EvaluationNeeds(calib_ms)) if data is not None else None

    async def work(db: Database) -> tuple[Candles, dict[str, Predictor], str] | None:
        """The stored models on the data; None when a file's pair has none stored here."""
        sid = await pair_id(db, pair) if given is None else await symbol_id(db, pair.upper())
        if sid is None:
            return None
        try:
            return await evaluation_set(db, sid, given)
        except NoChampion as exc:
            if given is not None:
                return None
            raise fail(escape(f"{pair.upper()}: {exc}")) from None

    # A file needs no database: one is asked only where one is configured or was already made here.
    asked = given is None or settings.database_url is not None or settings.pg_dir.exists()
    stored = with_database(settings, work) if asked else None
    if stored is None:
        assert given is not None  # without a file, work() found the pair or ended the command
        if not daily_calibration:
            raise fail(
                f"--fixed-calibration scores stored models, and no model of {pair.upper()} is stored here; "
                "without it the intervals are refitted day by day on the file's own days"
            )
        console.print(
            f"no model of {pair.upper()} is stored here: scoring the served interval method, the RV30 method "
            "and plain conformal, each refitted day by day on the file's own days"
        )
        stored = (given.candles, file_set(given), given.name)
    candles, predictors, source = stored
    if daily_calibration:
        # each on its method's span
        predictors = {name: DailyRecalibrated(p) for name, p in predictors.items()}
    since_ms = int(since.replace(tzinfo=since.tzinfo or UTC).timestamp() * 1000) if since else None
    if len(truth(candles, list(predictors.values()), since_ms).idx) == 0:
        after = f" from {since:%Y-%m-%d %H:%M} on" if since else ""
        needs = "its feature window and its targets" + (
            ", and its calibration span before it" if daily_calibration else ""
        )
        raise fail(escape(f"{source}: no minute{after} can be scored: none has {needs}"))
    with progress_bar(as_json) as bar:  # a step per model scored, and the plot
        task = bar.add_task(f"scoring {pair.upper()}", total=len(predictors) + 1)
        result = run_evaluation(
            candles, predictors, since_ms=since_ms, on_scored=lambda _: bar.advance(task)
        ) | {
            "pair": pair.upper(),
            "data": source,
            "calibration": "daily" if daily_calibration else "fixed",
        }
        if given is not None:
            result["data_check"] = given.report.to_dict()
        if warning := scored_warning(result["days"]):
            console.print(f"[yellow]warning:[/] {escape(warning)}")
        path = (
            report
            or settings.data_dir
            / "reports"
            / f"evaluate-{pair.upper()}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
        png = write_png(result, path.with_suffix(".png"))
        bar.advance(task)
    if as_json:
        emit(summary(result, path, png))
        return
    Console().print(results_table(result))
    Console().print(calibration_table(result))
    console.print(f"report: {path} and {png.name}")


def _candle_file(path: Path, needs: EvaluationNeeds) -> CandleFile:
    """The file's candles, checked before the database or a model is touched; what was found is printed,
    and a malformed or too short file ends the command with one line."""
    from cryptocast.tune.candlecheck import CandleFileError
    from cryptocast.tune.candlefile import read_candle_file
    from cryptocast.tune.evaluation_needs import TooShort

    try:
        given = read_candle_file(path)
    except CandleFileError as exc:
        raise fail(escape(str(exc))) from None
    try:
        warning = needs.check(given.report.held_ms)
    except TooShort as exc:
        raise fail(escape(f"{given.name} {exc}")) from None
    for line in given.report.lines():
        console.print(f"data: {escape(line)}")
    if warning:
        console.print(f"[yellow]warning:[/] {escape(f'{given.name} {warning}')}")
    return given


def summary(result: dict, report: Path, plot: Path) -> dict:
    """What ``evaluate --json`` prints: the run and each model's scores per horizon, without the series
    (per day, per group, the plotted sample) that the report file holds."""
    return {
        "pair": result["pair"],
        "data": result["data"],
        "calibration": result["calibration"],
        "origins": result["origins"],
        "days": result["days"],
        "first_origin": datetime.fromtimestamp(result["first_origin_ms"] / 1000, UTC),
        "last_origin": datetime.fromtimestamp(result["last_origin_ms"] / 1000, UTC),
        "test_level": result["test_level"],
        "power": result["power"],
        "models": {
            name: {h: _scalars(scores) for h, scores in per_horizon.items()}
            for name, per_horizon in result["models"].items()
        },
        "report": report.resolve(),
        "plot": plot.resolve(),
    }


def _scalars(scores: dict) -> dict:
    """The numbers of a score and of its nested tests, without lists."""
    kept = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            if nested := _scalars(value):
                kept[key] = nested
        elif not isinstance(value, list):
            kept[key] = value
    return kept


def results_table(result: dict) -> Table:
    """Per model and horizon: skill (± SE over days), p and MDE of the paired test on MAE, direction,
    coverage, width, pinball."""
    days = result["days"]
    table = Table(title=f"{result['pair']} on {result['data']}: {result['origins']:,} origins, {days} days")
    for column in (
        "model",
        "h",
        "skill",
        "daily skill ± se",
        "p(better)",
        "MDE %",
        "direction",
        "cov 80",
        "cov 95",
        "width 80 bps",
        "pinball vs pers.",
    ):
        table.add_column(column, justify="right")
    for name, scores in result["models"].items():
        for h, s in scores.items():
            table.add_row(
                name,
                h,
                f"{s['skill']:+.4f}",
                f"{s['daily_skill']:+.4f} ± {_number(s['daily_skill_se'])}",
                f"{s['p_better_than_persistence']:.3g}",
                _percent(s["test_vs_persistence"]["mae"]["mde"]),
                f"{s['direction_accuracy']:.3f}",
                f"{s['coverage_80']:.3f}",
                f"{s['coverage_95']:.3f}",
                f"{s['width_80_bps']:.1f}",
                f"{s['pinball_vs_persistence']:.4f}",
            )
    return table


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _worst(groups: dict, nominal: float, label: str) -> str:  # label: a format for the group's number
    """The group whose coverage is farthest from nominal: 'coverage ± day-block SE (group)'."""
    found = [
        (abs(c - nominal), c, se, g)
        for g, (c, se) in enumerate(zip(groups["coverage"], groups["se"], strict=True))
        if c is not None
    ]
    if not found:
        return "n/a"
    _, cov, se, group = max(found, key=lambda row: row[0])
    return f"{cov:.3f} ± {'n/a' if se is None else f'{se:.3f}'} ({label.format(group)})"


def calibration_table(result: dict) -> Table:
    """Per model and horizon: interval and weighted interval scores, the Gaussian CRPS, Kupiec and
    Christoffersen p-values per band, the worst RV30 decile and UTC hour at 80 %, and the paired
    test vs persistence on the interval score with its minimum detectable effect."""
    table = Table(
        title=f"intervals, in bps; vs persistence: paired test on complete days at level {result['test_level']:.4f}, "
        f"MDE at {result['power']:.0%} power; worst group: farthest from 80 % (± day-block SE)"
    )
    for column in (
        "model",
        "h",
        "IS 80",
        "IS 95",
        "WIS",
        "CRPS (gauss.)",
        "Kupiec p 80/95",
        "Christ. p 80/95",
        "worst RV decile, 80",
        "worst hour, 80",
        "IS vs pers. % (MDE %)",
    ):
        table.add_column(column, justify="right")
    for name, scores in result["models"].items():
        for h, s in scores.items():
            versus = s["test_vs_persistence"]["interval_score"]
            table.add_row(
                name,
                h,
                f"{s['interval_score_80_bps']:.1f}",
                f"{s['interval_score_95_bps']:.1f}",
                f"{s['wis_bps']:.2f}",
                f"{s['crps_gaussian_bps']:.2f}",
                f"{s['backtest_80']['kupiec_p']:.2g} / {s['backtest_95']['kupiec_p']:.2g}",
                f"{s['backtest_80']['christoffersen_p']:.2g} / {s['backtest_95']['christoffersen_p']:.2g}",
                _worst(s["by_vol_decile_80"], 0.8, "decile {}"),  # 0: calmest
                _worst(s["by_hour_80"], 0.8, "{:02d}h UTC"),
                f"{_percent(versus['improvement'])} ({_percent(versus['mde'])})",
            )
    return table
