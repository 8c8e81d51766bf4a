"""`python -m harness.mutants` (`tox -e mutants`): how many realistic faults the project catches.

1. Copy the stack's environment (files copied, not hard-linked: see `envcopy`) into a temporary
   folder and prove the copy imports its own libraries.
2. Start one PostgreSQL server for every run (or use --pg-url).
3. Run the claims and the scenario library against the unmodified copy; any failure aborts with
   one line (the measurement would mean nothing).
4. For each fault: seed it into the copy, run the same tests, put the file back. The harness is
   pointed at the copy by `MIGRATE_HARNESS_STACK_ENV=<stack>=<copy>` (harness/stacks.py).
5. Print the table, write docs/verification-power.md.

Each run stops at its first failure (`-x`): the first failing test and its first line are what
the table shows, and a caught fault then costs seconds instead of the whole library.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness.mutants.envcopy import CopyError, copy_env, verify_copy
from harness.mutants.faults import (
    WOULD_CATCH,
    Fault,
    FaultError,
    by_name,
    check_anchors,
    seed,
    unseed,
)
from harness.mutants.results import (
    BROKEN,
    CAUGHT,
    MISSED,
    Outcome,
    RunResult,
    dump,
    judge_run,
    load,
    markdown,
    print_table,
    summary,
)
from harness.session import Options, Session, stop_on_sigterm
from harness.stacks import DEFAULT_STACKS_FILE, ENV_OVERRIDE, StackError

ROOT = DEFAULT_STACKS_FILE.parent
PAGE = ROOT / "docs" / "verification-power.md"
# The fixed subset `--library subset` runs: one or two scenarios per kind of change, chosen so that
# every comparator and renderer the faults touch has a scenario exercising it.
SUBSET = (
    "scenarios/article/article.yaml",
    "scenarios/columns/add_column.yaml",
    "scenarios/columns/drop_column.yaml",
    "scenarios/columns/nullable_to_not_null.yaml",
    "scenarios/columns/add_not_null_with_server_default.yaml",
    "scenarios/types/string_length.yaml",
    "scenarios/defaults/server_default_changed_compare_on.yaml",
    "scenarios/tables/second_model.yaml",
    "scenarios/tables/drop_table.yaml",
    "scenarios/indexes/unique_index.yaml",
    "scenarios/indexes/index_added_dropped.yaml",
    "scenarios/constraints/foreign_key_added_dropped.yaml",
    "scenarios/comments/column_comment.yaml",
    "scenarios/comments/table_comment.yaml",
    "scenarios/comments/table_created_with_comment.yaml",
    "scenarios/tables/automatic_table_name.yaml",
    "scenarios/workflow/two_pending.yaml",
)


def pytest_argv(
    stack: str, library: str, junit: Path, workers: int, stop_first: bool, claims_first: bool = True
) -> list[str]:
    """The pytest command line one run uses (fork runner for the scenarios). `claims_first` only
    orders what runs: with `-x` and one worker, a fault the first half catches never pays for the
    second half; a missed fault runs everything either way."""
    scenarios = list(SUBSET) if library == "subset" else ["scenarios"]
    paths = ["claims", *scenarios] if claims_first else [*scenarios, "claims"]
    argv = [sys.executable, "-m", "pytest", *paths, "--claims-stack", stack, "--stack", stack]
    argv += ["--runner", "fork", "-p", "no:cacheprovider", "-q", "--junitxml", str(junit)]
    if stop_first:
        argv.append("-x")
    if workers > 1:
        argv += ["-n", str(workers), "--dist", "loadgroup"]
    return argv


def claims_first(fault: Fault) -> bool:
    """Autogenerate's comparison and rendering are what the scenarios pin; everything else (the
    CLI, the templates, dotenv, messages) is what the claims probe sees first."""
    return not fault.path.startswith("alembic/autogenerate/")


def run_tests(argv: list[str], env: dict[str, str], folder: Path, label: str) -> RunResult:
    junit = Path(argv[argv.index("--junitxml") + 1])
    junit.unlink(missing_ok=True)
    log = folder / f"{label}.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait()
        except BaseException:
            # Ctrl-C or SIGTERM: pytest's own teardown stops its fork servers and databases
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    xml = junit.read_text() if junit.exists() else None
    return RunResult(proc.returncode, xml, tail, time.perf_counter() - start)


def _one_fault(
    fault: Fault, site: Path, args: argparse.Namespace, env: dict[str, str], folder: Path
) -> Outcome:
    argv = _argv(args, folder, claims_first(fault))
    try:
        seeded = seed(fault, site)
    except FaultError as exc:
        return Outcome(fault.name, BROKEN, why=fault.why, detail=str(exc))
    try:
        run = run_tests(argv, env, folder, fault.name)
    finally:
        unseed(seeded)
    outcome = judge_run(fault.name, run, fault.why)
    if outcome.status == MISSED:
        outcome.would_catch = WOULD_CATCH.get(fault.name, "")
    return outcome


def _intro(
    stack: str, versions: dict[str, str], library: str, workers: int, seconds: float, base: float
) -> str:
    pins = ", ".join(
        f"{k} {versions[k]}"
        for k in ("alembic", "flask-migrate", "flask", "flask-sqlalchemy")
        if k in versions
    )
    scope = (
        "the whole scenario library"
        if library == "full"
        else f"a fixed subset of {len(SUBSET)} scenarios (harness/mutants/__main__.py SUBSET)"
    )
    return f"""# Verification power

Generated by `tox -e mutants` (`python -m harness.mutants`); do not edit by hand.

How many realistic faults in the libraries the article uses would the project notice? The tool
copies the `{stack}` stack's environment ({pins}) into a temporary folder (files copied, never
hard-linked: uv's cache stays untouched), seeds one fault at a time into the copy's installed
libraries (an exact text replacement; the catalogue and why each fault is realistic are in
`harness/mutants/faults.py`), and runs the claims and {scope} against it with the fork runner
and one PostgreSQL server. A fault is **caught** when the run fails; each run stops at its
first failure (`-x`), which the table shows. The unmodified copy passes first (otherwise the
tool stops).

Run: {workers} worker(s); the claims run before the scenarios except for faults in autogenerate's
compare and render (harness/mutants/__main__.py `claims_first`);
the unmodified copy took {base:.0f}s; all runs {seconds / 60:.1f} min."""


def _argv(args: argparse.Namespace, folder: Path, first_claims: bool) -> list[str]:
    junit = folder / "junit.xml"
    return pytest_argv(args.stack, args.library, junit, args.workers, not args.all_failures, first_claims)


def _write(page: Path, outcomes: list[Outcome], intro: str) -> None:
    """The page, and its JSON twin beside it (what `--render` reads)."""
    page.write_text(markdown(outcomes, intro), encoding="utf-8")
    page.with_suffix(".json").write_text(dump(outcomes, intro), encoding="utf-8")


def _elapsed(start: float) -> float:
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Seed faults into a copy of a stack and report which the claims and the library catch."""
    parser = argparse.ArgumentParser(prog="python -m harness.mutants", description=main.__doc__)
    parser.add_argument("faults", nargs="*", metavar="FAULT", help="faults to seed (default: all)")
    parser.add_argument("--stack", default="current", help="the stack to copy (default: current)")
    parser.add_argument("--library", choices=("full", "subset"), default="full", help="scenarios per run")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="xdist workers per run (default 1: under -x, xdist still waits for the other worker's "
        "test in flight, usually the whole claims probe)",
    )
    parser.add_argument("--all-failures", action="store_true", help="do not stop a run at its first failure")
    parser.add_argument("--pg-url", default=None, help="use this running PostgreSQL (default: one throwaway)")
    parser.add_argument("--page", type=Path, default=PAGE, help=f"where to write the page (default {PAGE})")
    parser.add_argument("--no-page", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the copy and the run logs (prints where)")
    parser.add_argument("--check-anchors", action="store_true", help="only check every fault still applies")
    parser.add_argument(
        "--render",
        type=Path,
        metavar="JSON",
        help="only write the page again from a measurement's JSON (the page's .json twin), "
        "with today's notes on what would catch each missed fault",
    )
    parser.add_argument(
        "--baseline-only", action="store_true", help="only run the unmodified copy (it must give no failure)"
    )
    args = parser.parse_args(argv)
    try:
        faults = by_name(args.faults)
    except FaultError as exc:
        parser.error(str(exc))

    if args.render:
        outcomes, intro = load(args.render.read_text(encoding="utf-8"))
        for o in outcomes:
            o.would_catch = WOULD_CATCH.get(o.fault, "") if o.status == MISSED else ""
        _write(args.page, outcomes, intro)
        print_table(outcomes)
        return 0
    stop_on_sigterm()  # SIGTERM unwinds like Ctrl-C: the copy, the server and the run are cleaned up
    os.environ.pop(ENV_OVERRIDE, None)  # the original, never a copy of a copy
    folder = Path(tempfile.mkdtemp(prefix="migrate-harness-mutants-"))
    folder.chmod(0o755)  # as root, the copy is run by the scenario account (harness/account.py)
    session = Session(Options(pg_url=args.pg_url))
    try:
        try:
            src = session.stack_env(args.stack)
        except StackError as exc:
            print(f"mutants: cannot build stack {args.stack!r}: {exc}", file=sys.stderr)
            return 2
        copy = folder / "env"
        copy_env(src.path, copy)
        try:
            check = verify_copy(copy, src.path)
        except CopyError as exc:
            print(f"mutants: the copy of {src.path} is not self-contained: {exc}", file=sys.stderr)
            return 2
        print(f"copy of {src.path}\n  at {check.prefix}")
        for module, file in check.files.items():
            print(f"  {module:17} {file}")
        site = Path(check.files["alembic"]).parent.parent
        if args.check_anchors:
            errors = check_anchors(site, faults)
            print("\n".join(errors) or f"all {len(faults)} faults apply to {args.stack}")
            return 1 if errors else 0

        url = session.server().url.render_as_string(hide_password=False)
        env = os.environ | {ENV_OVERRIDE: f"{args.stack}={copy}", "MIGRATE_HARNESS_PG_URL": url}
        test_argv = _argv(args, folder, True)
        print(f"each run: {' '.join(test_argv[1:])}", flush=True)
        start = time.perf_counter()
        base = run_tests(test_argv, env, folder, "unmodified")
        outcome = judge_run("unmodified", base)
        if outcome.status == CAUGHT:
            fail = outcome.failure
            print(
                f"mutants: the unmodified copy of stack {args.stack!r} fails {fail.test}: {fail.line} "
                "(fix that first: a fault cannot be measured against a failing baseline)",
                file=sys.stderr,
            )
            print(base.output_tail, file=sys.stderr)
            return 2
        print(f"unmodified copy: no failure ({base.seconds:.0f}s)", flush=True)
        if args.baseline_only:
            return 0
        outcomes = []
        for i, fault in enumerate(faults, 1):
            outcome = _one_fault(fault, site, args, env, folder)
            outcomes.append(outcome)
            where = outcome.failure.test if outcome.failure else outcome.detail
            print(
                f"[{i}/{len(faults)}] {fault.name}: {outcome.status} in {outcome.seconds:.0f}s {where}",
                flush=True,
            )
            if not args.no_page:  # after every fault: an interrupted measurement still leaves its rows
                intro = _intro(
                    args.stack, src.versions, args.library, args.workers, _elapsed(start), base.seconds
                )
                _write(args.page, outcomes, intro)
        total = _elapsed(start)
        print_table(outcomes)
        print(f"{summary(outcomes)}; {total / 60:.1f} min for {len(faults) + 1} runs")
        if not args.no_page:
            print(f"written {args.page}")
        return 1 if any(o.status == BROKEN for o in outcomes) else 0
    except KeyboardInterrupt as exc:
        print(
            f"mutants: interrupted ({exc or 'Ctrl-C'}); the copy, the run and the server are cleaned up",
            file=sys.stderr,
        )
        return 130
    finally:
        session.close()
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
