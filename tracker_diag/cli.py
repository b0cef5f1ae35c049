"""Command line: the only module that prints, configures logging or exits."""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing, contextmanager

import click

from tracker_diag import __version__, report, settings
from tracker_diag.batch import BatchResult, label
from tracker_diag.errors import ConnectorError, InputError, MissingExtraError, TrackerDiagError
from tracker_diag.keys import parse_mapping
from tracker_diag.model import ACTIONS, DEFAULT_GAP, REGIMES, SEVERITY, Thresholds, order_key, parse_regimes
from tracker_diag.text import printable, redact

EXIT_OK, EXIT_FAILED_RUNS, EXIT_USAGE, EXIT_FAIL_ON = 0, 1, 2, 3
REGIME_STYLE = {"learning": "green", "overfitting": "yellow", "data_issue": "magenta", "plateau": "cyan",
                "diverging": "red", "insufficient_data": "dim"}


def _echo(message: object, err: bool = False, nl: bool = True) -> None:
    """Every line tracker-diag prints: user data in it (run names, keys, error texts quoting
    them) cannot move the cursor, retitle the terminal or make links; no URI userinfo."""
    click.echo(printable(message, newlines=True), err=err, nl=nl)


def _regimes(ctx, param, value: str | None) -> tuple[str, ...]:
    try:
        return parse_regimes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _mapping(ctx, param, value: str | None) -> dict[str, str]:
    try:
        return parse_mapping(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _thresholds(gap: float) -> Thresholds:
    try:
        return Thresholds(acc_gap=gap)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gap-threshold") from exc


def common_options(f=None, *, report: bool = True):
    """--keys, --gap-threshold, --json, --report (unless ``report=False``), --fail-on, --quiet."""
    if f is None:
        return lambda g: common_options(g, report=report)
    f = click.option("--keys", "keys", callback=_mapping, metavar="ROLE=KEY,...",
                     help="Metric keys for the roles train_loss, test_loss, train_acc, test_acc; "
                          "wins over recognition. Example: train_loss=loss,test_loss=val_loss")(f)
    f = click.option("--gap-threshold", default=DEFAULT_GAP, show_default=True, type=float,
                     help="Train minus test accuracy at or above which a run is overfitting.")(f)
    f = click.option("--json", "json_path", metavar="PATH|-", help="Write the JSON report (schema_version 1).")(f)
    if report:
        f = click.option("--report", "html_path", metavar="PATH.html",
                         help="Write a self-contained HTML report with every run's curves (works offline).")(f)
    f = click.option("--fail-on", callback=_regimes, metavar="REGIMES",
                     help="Exit with code 3 when any run has one of these regimes, e.g. overfitting,diverging.")(f)
    f = click.option("--quiet", "-q", is_flag=True, help="No table; only errors and the summary line.")(f)
    return f


def relabel_options(f):
    """--force, --attach-plots and --deadline, the same for every tracker."""
    f = click.option("--deadline", type=click.FloatRange(min=1), metavar="SECONDS", envvar="TRACKER_DIAG_DEADLINE",
                     help="Stop making requests after this long (exit 2, saying how many runs were written and how "
                          "many not attempted; a rerun finishes them). Default: no limit ($TRACKER_DIAG_DEADLINE).")(f)
    f = click.option("--attach-plots", is_flag=True,
                     help="With --write: upload each changed run's diagnosis plot as tracker_diag/diagnosis.png.")(f)
    return click.option("--force", is_flag=True, help="Relabel runs whose data did not change since the last check.")(f)


def tracker_options(name: str):
    """A tracker's declared options (connectors.REGISTRY) as click arguments and flags: the
    same names, types, bounds and environment defaults as the sweep's TOML keys."""
    from tracker_diag.connectors import REGISTRY

    def decorate(f):
        for o in reversed(REGISTRY[name].options):
            if o.positional:
                f = click.argument(o.dest, metavar=o.metavar, required=False)(f)
                continue
            decls = [o.cli or f"--{o.name}", *([o.short] if o.short else []), o.dest]
            kw = {"help": o.help, "metavar": o.metavar, "envvar": o.envvar}
            if o.kind == "flag":
                kw = {"help": o.help, "is_flag": True}
            elif o.kind == "int":
                lo, hi = o.bounds or (1, 2**31)
                kw.update(type=click.IntRange(int(lo), int(hi)), default=o.default, show_default=True)
            elif o.kind == "list":
                kw["multiple"] = True
            f = click.option(*decls, **kw)(f)
        return f
    return decorate


@contextmanager
def _progress(enabled: bool, what: str, total: int | Callable[[], int | None] | None = None):
    """A progress bar on a terminal (stderr), nothing in pipes or CI; ``total`` when known
    (a callable, e.g. ``backend.total``, is asked only when the bar is shown)."""
    if not enabled or not sys.stderr.isatty() or settings.get("CI"):
        yield lambda r: None
        return
    if callable(total):
        total = total()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [SpinnerColumn(), TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
               TimeElapsedColumn(), *([TimeRemainingColumn()] if total else [])]
    with Progress(*columns, transient=True, console=_console(err=True)) as bar:
        task = bar.add_task(what, total=total)
        yield lambda r: bar.advance(task)


def _console(err: bool = False):
    from rich.console import Console

    stream = sys.stderr if err else sys.stdout
    # In a pipe, rich would wrap at 80 columns; a log file reads better with whole rows.
    wide = stream.isatty() or settings.get("COLUMNS")
    return Console(stderr=err, highlight=False, soft_wrap=False, width=None if wide else 160)


def severity_order(results):
    """Failed runs first, then diverging, overfitting, data_issue, plateau, insufficient_data,
    learning; surest first within a regime, then by name (model.order_key)."""
    return sorted(results, key=lambda r: order_key(r.diagnosis.regime if r.diagnosis else None,
                                                   r.diagnosis.confidence if r.diagnosis else None,
                                                   r.ref.run_name or r.ref.run_id))


def middle(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` characters (run names differ at both ends)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


def _print_table(batch: BatchResult, title: str) -> None:
    """Cells are rich Text, never markup: a run named ``bad[/]name`` or ``[link=…]`` prints as is.
    Rows in severity order under the counts; names cut in the middle to fit the terminal."""
    from rich.table import Table
    from rich.text import Text

    console = _console()
    room = max(12, min(48, console.width - 68))  # the other columns need about 68 at 80 columns
    rows = []
    for r in severity_order(batch.results):
        d = r.diagnosis
        regime = d.regime if d else "—"
        gap = "" if not d or d.acc_gap is None else f"{round(d.acc_gap, 3) + 0.0:.3f}"
        best = "" if not d or d.best_step is None else str(d.to_dict()["best_step"])
        flags = ",".join(d.flags) if d else ""
        action = r.action + (f": {r.error}" if r.error else "")
        name = middle(printable(r.ref.run_name or r.ref.run_id), room)
        if r.ref.run_name and r.ref.run_name != r.ref.run_id:
            name = f"{middle(printable(r.ref.run_name), max(room - 11, 6))} ({r.ref.run_id[:8]})"
        sure = "" if not d else d.confidence + (f" (or {d.runner_up})" if d.runner_up else "")
        cells = [Text(printable(c)) for c in (name, regime, sure, gap, best, flags, action)]
        cells[1].stylize(REGIME_STYLE.get(regime, ""))
        rows.append(cells)
    table = Table(title=Text(printable(title) + "\n" + _summary_line(batch)), title_justify="left")
    table.add_column("run", no_wrap=True, min_width=max((len(c[0]) for c in rows), default=3))
    for col in ("regime", "confidence", "gap", "best"):  # gap: train-test accuracy; best: step of the best test loss
        table.add_column(col, no_wrap=True)
    table.add_column("flags", overflow="fold")
    table.add_column("action", overflow="fold", min_width=7)
    for cells in rows:
        table.add_row(*cells, end_section=False)
    console.print(table)


def _summary_line(batch: BatchResult) -> str:
    regimes = Counter(r.diagnosis.regime for r in batch.results if r.diagnosis)
    actions = Counter(r.action for r in batch.results)
    parts = [f"{len(batch.results)} runs"]
    parts += [f"{regimes[k]} {k}" for k in REGIMES if regimes[k]]
    acts = [f"{actions[a]} {a}" for a in ACTIONS if actions[a]]
    if batch.skipped:
        acts.append(f"{batch.skipped} skipped (unchanged since last check)")
    return ", ".join(parts) + (" | " + ", ".join(acts) if acts else "")


def _finish(batch: BatchResult, *, title: str, json_path: str | None, fail_on: tuple[str, ...], quiet: bool,
            footer: Sequence[str] = (), html_path: str | None = None) -> int:
    if not quiet and json_path != "-":
        _print_table(batch, title)
    rep = report.build(batch)  # once, for the JSON, the HTML and the findings
    if json_path == "-":
        click.echo(report.to_json(rep), nl=False)  # JSON escapes control characters itself
    elif json_path:
        report.write_json(rep, json_path)
    if html_path:
        report.write_html(batch, html_path, title, rep=rep)
        footer = [*footer, f"HTML report: {html_path}"]
    out = _echo if json_path != "-" else (lambda m: _echo(m, err=True))
    findings = rep["hyperparameters"]["findings"]
    if findings and not quiet:
        out("What the hyper-parameters say:")
        for f in findings[:8]:
            out(f"  {f['text']}")
    out(_summary_line(batch))
    for line in footer:
        out(line)
    for r in batch.results:
        if r.action == "failed" and not (batch.stopped and r.error.startswith("not attempted")):
            _echo(f"failed: {r.ref.run_name or r.ref.run_id}: {r.error}", err=True)
    if batch.stopped:
        written = sum(r.action == "written" for r in batch.results)
        _echo(f"stopped: {batch.stopped}. {written} run(s) written, {batch.not_attempted} listed but not attempted, "
              "the rest not listed; rerun to finish (runs already labelled are skipped)", err=True)
        return EXIT_USAGE
    matched = sorted(r.diagnosis.regime for r in batch.results if r.diagnosis and r.diagnosis.regime in fail_on)
    if matched:
        _echo(f"--fail-on: {len(matched)} run(s) are {'/'.join(sorted(set(matched)))}", err=True)
        return EXIT_FAIL_ON
    return EXIT_FAILED_RUNS if batch.failed else EXIT_OK


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tracker-diag")
def cli():
    """Label every run's training regime (learning, overfitting, data_issue, plateau, diverging,
    insufficient_data) from its logged loss/accuracy curves, and write it back to MLflow or W&B.

    \b
    Examples:
      tracker-diag demo
      tracker-diag label mlflow --experiment my-exp            # dry run: shows what would change
      tracker-diag label mlflow --experiment my-exp --write
      tracker-diag diagnose metrics.csv --json report.json
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@common_options
def diagnose(paths, keys, gap_threshold, json_path, html_path, fail_on, quiet):
    """Diagnose runs from long-format files (CSV, TSV, parquet, JSON lines) or W&B offline runs.

    Columns: run_id (or run_name), key, step, value; an optional timestamp is ignored.
    A directory (wandb/offline-run-*) or a .wandb file is read as a W&B offline run;
    a truncated one gives what was written before the damage, and a warning.

    \b
    Examples:
      tracker-diag diagnose samples/runs.csv
      tracker-diag diagnose a.parquet b.csv --json - --fail-on overfitting,diverging
      tracker-diag diagnose samples/runs.csv --report report.html
      tracker-diag diagnose runs.csv --keys train_loss=loss,test_loss=val_loss
      tracker-diag diagnose wandb/offline-run-*
    """
    from tracker_diag.connectors import build

    th = _thresholds(gap_threshold)
    backend = build("file", {"paths": list(paths)})
    for line in backend.warnings:
        _echo(f"warning: {line}", err=True)
    with closing(backend), _progress(not quiet, "analysing", total=backend.total) as tick:
        batch = label(backend, keys=keys, thresholds=th, progress=tick, keep_curves=bool(html_path))
    sys.exit(_finish(batch, title="tracker-diag", json_path=json_path, fail_on=fail_on, quiet=quiet,
                     html_path=html_path))


@cli.group(name="label")
def label_group():
    """Label the runs of a tracker (dry run unless --write).

    \b
    Examples:
      tracker-diag label mlflow --experiment my-exp
      tracker-diag label mlflow --experiment my-exp --write --json labels.json
    """


def _label_tracker(make_backend, *, keys, thresholds, write, force, workers, html_path, attach_plots, quiet,
                   deadline=None):
    """Connect, label with a progress bar, and exit 2 on a connection error; the same for every
    tracker. A --write holds a lock on the store and experiments (or project), so two writers
    on one machine never write the same runs. Returns the backend, the batch and the footer."""
    from tracker_diag.locks import labelling

    backend = make_backend()
    with closing(backend), contextlib.ExitStack() as stack:
        if write:
            stack.enter_context(labelling(backend.source, backend.describe()))
        tick = stack.enter_context(_progress(not quiet, "labelling" if write else "dry run", total=backend.total))
        batch = label(backend, keys=keys, thresholds=thresholds, write=write, force=force, progress=tick,
                      write_workers=workers, keep_curves=bool(html_path), attach_plots=attach_plots and write,
                      deadline=deadline)
    if not batch.results and not batch.stopped:  # an empty success is said, not silent
        _echo(f"no runs matched: searched {backend.scope()}", err=True)
    return backend, batch, [] if write else ["dry run: nothing was written; add --write to tag the runs"]


@label_group.command(name="mlflow")
@tracker_options("mlflow")
@click.option("--write", is_flag=True, help="Write tags and descriptions (default: dry run).")
@relabel_options
@common_options
def label_mlflow(write, force, attach_plots, deadline, keys, gap_threshold, json_path, html_path, fail_on, quiet,
                 **source):
    """Label the runs of MLflow experiments and (with --write) tag them.

    Writes the tags diag_regime, diag_confidence, diag_acc_gap, diag_best_step, diag_flags,
    diag_version, diag_checked, the metric diag_acc_gap and a marked section of the run
    description.
    Runs whose data did not change since their last check are skipped.

    \b
    Examples:
      tracker-diag label mlflow --experiment my-exp
      tracker-diag label mlflow --tracking-uri http://127.0.0.1:5000 --all-experiments --write
      tracker-diag label mlflow -e my-exp --filter "params.optimizer = 'adam'" --json labels.json
      MLFLOW_TRACKING_URI=sqlite:///mlflow.db tracker-diag label mlflow -e 1 --write --fail-on diverging
    """
    from tracker_diag.connectors import build

    backend, batch, footer = _label_tracker(lambda: build("mlflow", source), keys=keys,
                                            thresholds=_thresholds(gap_threshold), write=write, force=force,
                                            workers=source["workers"], html_path=html_path,
                                            attach_plots=attach_plots, quiet=quiet, deadline=deadline)
    footer += _mlflow_links(backend, batch, write)
    sys.exit(_finish(batch, title=f"tracker-diag · {backend.describe()}", json_path=json_path,
                     fail_on=fail_on, quiet=quiet, footer=footer, html_path=html_path))


def _mlflow_links(backend, batch: BatchResult, write: bool) -> list[str]:
    """After a write: a ready URL of the runs table filtered by the most severe regime found."""
    found = {r.diagnosis.regime for r in batch.results if r.diagnosis}
    regime = next((g for g in SEVERITY if g in found), "overfitting")
    lines = [(f"In the MLflow UI, filter with:  tags.diag_regime = '{regime}'   "
             f"(or metrics.diag_acc_gap > {DEFAULT_GAP:g})")]
    if write and found:
        first, *rest = backend.links(regime)
        lines += [f"The {regime} runs:  {first}", *rest]
    return lines


@label_group.command(name="wandb")
@tracker_options("wandb")
@click.option("--offline", "offline_dir", type=click.Path(exists=True, file_okay=False), metavar="DIR",
              help="Read the offline runs under DIR (wandb/offline-run-*) instead of a server; read-only.")
@click.option("--write", is_flag=True, help="Tag the runs and write the diag_* summary keys and notes.")
@relabel_options
@common_options
def label_wandb(offline_dir, write, force, attach_plots, deadline, keys, gap_threshold, json_path, html_path, fail_on,
                quiet, **source):
    """Label the runs of a W&B project and (with --write) tag them.

    Reads WANDB_API_KEY, WANDB_BASE_URL, WANDB_ENTITY and WANDB_PROJECT. Every key's
    history of a run comes back in one request, on the run's step metric when it defined
    one (define_metric, e.g. train/global_step or epoch/epoch), else on _step. Writes the
    regime as a tag, the summary keys diag_regime, diag_confidence, diag_acc_gap, diag_best_step,
    diag_flags, diag_version, diag_checked and a marked section of the notes; runs whose data did not
    change since their last check cost no history request and no write.

    \b
    Examples:
      tracker-diag label wandb my-team/my-project
      tracker-diag label wandb my-team/my-project --filter '{"state": "finished"}' --json labels.json
      tracker-diag label wandb my-team/my-project --write
      tracker-diag label wandb --offline ./wandb          # runs of an air-gapped cluster, before sync
      WANDB_ENTITY=my-team WANDB_PROJECT=my-project tracker-diag label wandb --fail-on diverging
    """
    th = _thresholds(gap_threshold)
    if offline_dir:
        return _label_offline(offline_dir, write, keys, gap_threshold, json_path, html_path, fail_on, quiet)
    from tracker_diag.connectors import build

    backend, batch, footer = _label_tracker(lambda: build("wandb", source), keys=keys, thresholds=th, write=write,
                                            force=force, workers=source["workers"], html_path=html_path,
                                            attach_plots=attach_plots, quiet=quiet, deadline=deadline)
    sampled = sum(bool(r.ref.extra.get("history", {}).get("sampled")) for r in batch.results)
    if sampled:
        from tracker_diag.connectors.wandb import SAMPLES

        footer.append(f"{sampled} run(s) have longer histories than W&B serves whole: read as {SAMPLES} evenly "
                      "spaced rows per key (the analyzer bins curves to 64 points anyway; see the report)")
    footer.append("In the W&B UI, filter by the tag (e.g. overfitting) or sort by the summary key diag_acc_gap")
    sys.exit(_finish(batch, title=f"tracker-diag · W&B {backend.describe()}", json_path=json_path,
                     fail_on=fail_on, quiet=quiet, html_path=html_path, footer=footer))


def _label_offline(offline_dir, write, keys, gap_threshold, json_path, html_path, fail_on, quiet):
    """W&B offline runs are files: diagnose them (labels are written after `wandb sync`)."""
    from pathlib import Path

    if write:
        raise InputError("offline runs are files: label them here, write the labels after `wandb sync`")
    runs = sorted(str(p) for p in Path(offline_dir).rglob("offline-run-*") if p.is_dir())
    if not runs:
        raise InputError("no offline-run-* directories", offline_dir)
    return diagnose.callback(runs, keys, gap_threshold, json_path, html_path, fail_on, quiet)


@cli.command(name="spark")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", default="sqlite:///mlflow.db", show_default=True,
              metavar="URI", help="The MLflow database (sqlite, postgresql, mysql): read over JDBC, written through "
                                  "the MLflow client. Default: $MLFLOW_TRACKING_URI.")
@click.option("--experiment", "-e", "experiments", multiple=True, required=True, metavar="NAME|ID",
              help="Experiment to label (repeatable).")
@click.option("--histories", metavar="PATH", help="Read the metric histories from this Parquet export "
                                                   "(run_id, key, step, value[, timestamp]) instead of the metrics table.")
@click.option("--master", metavar="URL", help="Spark master. Default: spark-submit's, else local[*].")
@click.option("--jar", "jars", multiple=True, metavar="PATH",
              help="JDBC driver jar (repeatable). Default: Debian's sqlite and PostgreSQL drivers if installed.")
@click.option("--runs-per-bucket", default=200, show_default=True, type=click.IntRange(min=1),
              help="Runs handed to each analyzer call.")
@click.option("--writes-in-flight", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Concurrent writes per executor partition.")
@click.option("--include-running", is_flag=True, help="Label RUNNING runs too (flagged provisional).")
@click.option("--write", is_flag=True, help="Write tags and descriptions (default: dry run).")
@click.option("--force", is_flag=True, help="Relabel runs whose data did not change since the last check.")
@click.option("--verbose", "-v", is_flag=True, help="Let Spark's and py4j's own log lines through to the terminal "
              "(default: the JVM's output goes to a log file, named when something fails).")
@common_options(report=False)
def spark_cmd(tracking_uri, experiments, histories, master, jars, runs_per_bucket, writes_in_flight, include_running,
              write, force, verbose, keys, gap_threshold, json_path, fail_on, quiet):
    """Label the runs of MLflow experiments on Spark: the same analyzer, write-back and JSON
    report as `label mlflow`, for stores of millions of runs (pip install 'tracker-diag[spark]').

    Histories are read in parallel over JDBC (or from a Parquet export), analysed in buckets
    of runs on the executors and written back from them; runs whose data did not change
    since their last check are skipped before any history is read. The curves stay on the
    executors: for the HTML page, `tracker-diag report labels.json --tracking-uri URI`.

    \b
    Examples:
      tracker-diag spark --tracking-uri sqlite:////data/mlflow.db -e my-exp --json labels.json
      tracker-diag spark --tracking-uri postgresql://ml@db/mlflow -e 12 --write --jar postgresql.jar
      spark-submit --jars /usr/share/java/postgresql.jar "$(python -c 'import tracker_diag.__main__ as m; print(m.__file__)')" \\
          spark --tracking-uri postgresql://ml@db/mlflow -e 12 --write
    """
    from tracker_diag.settings import cache_dir
    from tracker_diag.spark import SparkJob, default_jars, session

    jvm_log = None if verbose else os.path.join(cache_dir(), "spark.log")
    if not verbose:
        _quiet_spark()
    job = SparkJob(tracking_uri, list(experiments), write=write, force=force, keys=keys or None,
                   thresholds=_thresholds(gap_threshold), histories=histories, runs_per_bucket=runs_per_bucket,
                   writes_in_flight=writes_in_flight, include_running=include_running)
    try:
        batch = job.run(session(master, jars=list(jars) or default_jars(), jvm_log=jvm_log))
    except ConnectorError as exc:
        if jvm_log:
            exc.hint = f"Spark's own log: {jvm_log} (or rerun with -v)"
        raise
    footer = [] if write else ["dry run: nothing was written; add --write to tag the runs"]
    sys.exit(_finish(batch, title=f"tracker-diag on Spark · {redact(tracking_uri)}", json_path=json_path,
                     fail_on=fail_on, quiet=quiet, footer=footer))


@cli.command(name="report")
@click.argument("json_report", type=click.Path(exists=True, dir_okay=False))
@click.option("--source", "sources", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="The metric file(s) the report was made from (tracker-diag diagnose).")
@click.option("--tracking-uri", metavar="URI", help="The MLflow store the report was made from (tracker-diag label); "
              "a W&B report reads its runs' project, with WANDB_API_KEY from the environment.")
@click.option("--output", "-o", default="tracker-diag-report.html", show_default=True, metavar="PATH.html")
def report_cmd(json_report, sources, tracking_uri, output):
    """Render the HTML report of a saved JSON report, with the curves read again from its source.

    \b
    Examples:
      tracker-diag report labels.json --tracking-uri sqlite:///mlflow.db -o labels.html
      tracker-diag report diag.json --source samples/runs.csv
    """
    import json

    try:
        with open(json_report, encoding="utf-8") as fh:
            batch = report.from_json(json.load(fh))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"not a tracker-diag JSON report ({exc})", json_report) from exc
    from tracker_diag.connectors import build

    projects = {r.ref.experiment for r in batch.results if r.ref.source == "wandb"}
    if sources:
        backend = build("file", {"paths": list(sources)})
    elif projects and not tracking_uri:  # a W&B report: its runs name their project
        backend = build("wandb", {"project": min(projects)})
    else:
        backend = build("mlflow", {"tracking_uri": tracking_uri, "all_experiments": True})
    with closing(backend):
        problems = report.with_curves(batch, backend)
    for line in problems:
        _echo(f"warning: drawn without curves: {line}", err=True)
    report.write_html(batch, output, f"tracker-diag · {json_report}")
    _echo(f"HTML report: {output} ({len(batch.results)} runs)")


@cli.command()
@click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="tracker-diag.toml, or a pyproject.toml with [tool.tracker-diag]. "
                   "Default: ./tracker-diag.toml, else ./pyproject.toml.")
@click.option("--quiet", "-q", is_flag=True, help="Only what changed, errors and the summary line.")
def sweep(config_path, quiet):
    """Label every source of a configuration incrementally (the nightly job).

    Holds a lock so two sweeps never overlap, prints what changed since the previous sweep
    (newly diverging and overfitting runs first) and exits 0, 1 (some runs failed),
    2 (a configuration error or an unreachable source; the other sources are still
    labelled) or 3 (fail-on matched).

    \b
    Examples:
      tracker-diag sweep --config tracker-diag.toml
      tracker-diag sweep -c pyproject.toml -q
      15 2 * * *  cd /srv/ml && tracker-diag sweep -q >> sweep.log 2>&1   # crontab
    """
    from tracker_diag import sweep as sweeper

    if config_path is None:
        config_path = next((p for p in ("tracker-diag.toml", "pyproject.toml") if os.path.exists(p)), None)
        if config_path is None:
            raise InputError("no --config given and no tracker-diag.toml or pyproject.toml here")
    cfg = sweeper.load(config_path)
    for line in cfg.errors:
        _echo(f"error: {line}", err=True)
    with sweeper.lock(cfg.state), _progress(not quiet, "sweeping") as tick:
        result = sweeper.run(cfg, progress=tick, keep_curves=bool(cfg.report))
    failed_sources = [err for _, b, err in result.per_source if b is None]
    for line in failed_sources:
        _echo(f"error: {line}", err=True)
    for name, b, _ in result.per_source:
        if b is not None:
            _echo(f"{name}: {_summary_line(b)}")
    if result.changes:
        _echo(f"Changed since the last sweep ({len(result.changes)}):")
        for c in result.changes[:50]:
            _echo(f"  {c['after']:<17} was {c['before'] or 'new':<17} {c['source']}: "
                       f"{c['run_name'] or c['run_id']} {c['url']}".rstrip())
        if len(result.changes) > 50:
            _echo(f"  … and {len(result.changes) - 50} more (see the JSON report)")
    else:
        _echo("Nothing changed since the last sweep.")
    code = _finish(result.batch, title=f"tracker-diag sweep · {cfg.path}", json_path=cfg.json,
                   fail_on=cfg.fail_on, quiet=True, html_path=cfg.report,
                   footer=[] if cfg.write else ["dry run: set write = true in the configuration to tag runs"])
    if cfg.errors or failed_sources:
        code = EXIT_USAGE
    sys.exit(code)


@cli.command()
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", metavar="URI",
              help="Store to fill; default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here.")
@click.option("--runs", "n_runs", default=24, show_default=True, type=click.IntRange(8, 500),
              help="How many small models to train (a few seconds each batch of 8).")
@click.option("--seed", default=0, show_default=True, type=int)
def demo(tracking_uri, n_runs, seed):
    """Train small models into a local MLflow store, label them, and show the result.

    Every regime is covered: the models are genuinely trained (numpy, scikit-learn
    datasets) under settings known to cause each one. Re-running reuses the store.

    \b
    Examples:
      tracker-diag demo
      tracker-diag demo --tracking-uri sqlite:///demo.db --runs 48
    """
    try:
        from tracker_diag.connectors.mlflow import MlflowBackend
        from tracker_diag.training.numpy_mlp import iterate
        from tracker_diag.training.to_mlflow import log_runs, mark_model_training
    except ImportError as exc:
        raise MissingExtraError(exc.name or "a demo dependency", "demo") from exc
    backend = MlflowBackend.open(tracking_uri, experiments=["tracker-diag-demo"], create=True)
    have = backend.total()
    if (sum(1 for _ in backend.list_runs()) if have is None else have) < n_runs:
        _echo(f"training {n_runs} small models into {backend.describe()} …", err=True)
        mark_model_training(backend.client, backend.experiment_ids)
        with _progress(True, "training", total=n_runs) as tick:
            log_runs(backend.client, backend.experiment_ids[0], iterate(n_runs, seed=seed), progress=tick)
    with _progress(True, "labelling", total=backend.total) as tick:
        batch = label(backend, write=True, progress=tick)
    code = _finish(batch, title=f"tracker-diag demo · {backend.describe()}", json_path=None, fail_on=(),
                   quiet=False, footer=["Look at it:", *backend.links("overfitting")])
    sys.exit(code)


def _quiet_spark() -> None:
    """py4j's log lines and PySpark's version warnings (pandas, pyarrow) off the terminal."""
    import logging
    import warnings

    logging.getLogger("py4j").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pyspark\.")
    warnings.filterwarnings("ignore", message=r".*PySpark", category=UserWarning)


def _redact_logs() -> None:
    """Log records of every library (MLflow's retries, urllib3's warnings) pass through
    printable(): no URI userinfo, no control character reaches stderr or a log file."""
    import logging

    make = logging.getLogRecordFactory()
    if getattr(make, "tracker_diag", False):
        return

    def factory(*args, **kwargs):
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not format: logging reports that itself
            return record
        record.msg, record.args = printable(message, newlines=True), ()
        return record

    factory.tracker_diag = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def main(argv: list[str] | None = None) -> None:
    """Entry point; ``argv`` for tests (defaults to sys.argv)."""
    _redact_logs()
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "Creating initial MLflow database tables..."
    for name, value in settings.mlflow_http_defaults().items():  # a dead server costs seconds, not minutes
        os.environ.setdefault(name, value)
    os.environ.setdefault("WANDB_SILENT", "true")  # the SDK's own "wandb: ERROR ..." lines repeat the error we print
    try:
        cli.main(args=argv, prog_name="tracker-diag", standalone_mode=True)
    except TrackerDiagError as exc:  # the one place errors become messages and exit codes
        sys.exit(report_error(exc))


def report_error(exc: TrackerDiagError) -> int:
    """Print ``exc`` (one "error:" line per problem it names, then its hint) and return its exit code."""
    for line in str(exc).splitlines() or [type(exc).__name__]:
        _echo(f"error: {line}", err=True)
    if exc.hint:
        _echo(exc.hint, err=True)
    return EXIT_USAGE
