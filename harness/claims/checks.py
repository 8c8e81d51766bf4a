"""One check per claim: (what the probe observed, what the article says) -> a verdict.

Checks are pure functions, so each verdict kind can be tested by feeding a check a small
observation. A verdict always carries its evidence: the observed excerpt beside the article's.

- holds: the article is right, as worded.
- drifted: it works, but no longer as the article words it (extra items, changed wording,
  a setting that no longer does anything).
- broken: following the article fails, or the article's statement is false.
- not checked: the probe could not get far enough to observe it; the reason says why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from harness.claims.article import Article
from harness.claims.helptext import help_commands, help_options
from harness.claims.output import (
    READER_STEPS,
    SHOWN,
    UNACCOUNTED,
    classify,
    reader_lines,
    revision_files_shown,
    unaccounted,
    upgrades_shown,
)
from harness.claims.probe import Observations
from harness.judge import BROKEN, DRIFTED, HOLDS, NOT_CHECKED, VERDICTS
from harness.observe.migration import parse_ops
from harness.runners.base import CommandResult
from harness.runners.base import error_line as output_error_line


@dataclass(frozen=True)
class Verdict:
    verdict: str
    observed: str
    article: str
    reason: str = ""
    # the evidence the check computed, as plain data (command sets, missing and extra items,
    # quoted lines); normalised by `run_check` and kept on record beside the verdict
    details: dict[str, Any] = field(default_factory=dict)


Check = Callable[[Observations, Article], Verdict]
CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(func: Check) -> Check:
        CHECKS[name] = func
        return func

    return register


def error_line(result: CommandResult | None) -> str:
    """The line of a command's output that says what went wrong."""
    if result is None:
        return "(not run)"
    return output_error_line(result.output).strip() or f"exit {result.exit_code}"


def _not_reached(what: str, result: CommandResult | None, article: str) -> Verdict:
    return Verdict(NOT_CHECKED, error_line(result), article, reason=f"the probe stopped at {what}")


def app_load_error(obs: Observations) -> str | None:
    """Why the article's app does not load on this stack, if it does not.

    When the app cannot be imported, flask hides the `db` command and every later step fails
    for that one reason; the claims that depend on it are then "not checked", and the cause is
    reported once, by install_line.
    """
    help_out = obs.flask_help.output if obs.flask_help else ""
    if any(sign in help_out for sign in ("While importing", "Could not import", "Could not locate")):
        return error_line(obs.flask_help)
    return None


def needs_app(func: Check) -> Check:
    """Mark a check whose observation needs the article's app to load."""

    def wrapper(obs: Observations, art: Article) -> Verdict:
        error = app_load_error(obs)
        if error:
            why = "the article's app does not load on this stack (see install_line)"
            return Verdict(NOT_CHECKED, error, "", reason=why)
        return func(obs, art)

    wrapper.__doc__ = func.__doc__
    return wrapper


# -- Configuring Flask to use Alembic ---------------------------------------------------------


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ ;\[]", requirement, maxsplit=1)[0].lower()


@check("install_line")
def install_line(obs: Observations, art: Article) -> Verdict:
    said = "pipenv install ... " + " ".join(art.install_packages)
    load_error = app_load_error(obs)
    if load_error:
        return Verdict(
            BROKEN,
            f"the article's app does not load: {load_error}; so flask has no `db` command",
            said,
            reason="the packages the line installs today do not run the article's files",
        )
    steps = [
        ("flask db init", obs.init),
        ("flask db migrate", obs.migrate),
        ("flask db upgrade", obs.upgrade),
    ]
    for label, result in steps:
        if result is None or not result.ok:
            return Verdict(
                BROKEN,
                f"{label} failed: {error_line(result)}",
                said,
                reason="the packages the line installs today do not run the article's files",
            )
    article_names = {p.lower() for p in art.install_packages}
    shown = article_names | {"sqlalchemy"}
    versions = ", ".join(f"{k}=={v}" for k, v in sorted(obs.versions.items()) if k in shown)
    # anything beyond the article's bare names: a pin, or a package the line does not name
    extra = [r for r in obs.requirements if r.lower() not in article_names]
    if extra:
        return Verdict(
            DRIFTED,
            f"runs only with requirements the article lacks: {', '.join(extra)}; installed {versions}",
            said,
        )
    return Verdict(HOLDS, f"init, migrate and upgrade ran; installed {versions}", said)


@check("psycopg2_connects")
def psycopg2_connects(obs: Observations, art: Article) -> Verdict:
    said = art.quote("psycopg2-binary will allow SQLAlchemy to connect")
    load_error = app_load_error(obs)
    if load_error:
        if "psycopg" in load_error:
            return Verdict(
                BROKEN,
                f"with the article's postgresql:// URL: {load_error}",
                said,
                reason="this SQLAlchemy maps postgresql:// to a driver other than psycopg2",
            )
        return Verdict(NOT_CHECKED, load_error, said, reason="the article's app does not load on this stack")
    if obs.upgrade is None or not obs.upgrade.ok:
        return _not_reached("flask db upgrade", obs.upgrade, said)
    if "psycopg" in obs.versions:
        return Verdict(
            NOT_CHECKED,
            "psycopg (3) is installed too, so the connection may not use psycopg2",
            said,
            reason="cannot tell which driver connected",
        )
    return Verdict(
        HOLDS,
        f"postgresql:// connected through psycopg2-binary {obs.versions.get('psycopg2-binary')} "
        f"(SQLAlchemy {obs.versions.get('sqlalchemy')}, no other PostgreSQL driver installed)",
        said,
    )


@check("dotenv_config")
@needs_app
def dotenv_config(obs: Observations, art: Article) -> Verdict:
    said = art.quote("First, create a .env or .flaskenv file")
    if obs.init is None or not obs.init.ok:
        return Verdict(BROKEN, f"with .flaskenv, flask db init failed: {error_line(obs.init)}", said)
    without = obs.without_flaskenv
    dotenv = obs.with_dotenv
    observed = (
        "the harness's environment has no FLASK_APP or DATABASE_URL; with .flaskenv the commands ran; "
        f"without it `flask db current` failed ({error_line(without)}); "
        f"with the same lines in .env it {'ran' if dotenv and dotenv.ok else 'failed: ' + error_line(dotenv)}"
    )
    if without is None or without.ok:
        return Verdict(
            DRIFTED, observed, said, reason="the project runs without the file: it is not what configures it"
        )
    if dotenv is None or not dotenv.ok:
        return Verdict(DRIFTED, observed, said, reason=".env is not read as the article says")
    return Verdict(HOLDS, observed, said)


@check("flask_env_development")
@needs_app
def flask_env_development(obs: Observations, art: Article) -> Verdict:
    # the setting the article uses for development mode (FLASK_ENV as written, FLASK_DEBUG once edited)
    key = "FLASK_DEBUG" if "FLASK_DEBUG" in art.flaskenv else "FLASK_ENV"
    said = f"{key}={art.flaskenv.get(key)} in .flaskenv"
    shell = obs.shell
    match = re.search(r"app\.debug = (True|False)", shell.output if shell else "")
    if not match:
        return _not_reached("flask shell", shell, said)
    flask_version = obs.versions.get("flask", "?")
    if match.group(1) == "True":
        return Verdict(HOLDS, f"Flask {flask_version}: app.debug is True (development mode)", said)
    return Verdict(
        DRIFTED,
        f"Flask {flask_version}: app.debug is False; FLASK_ENV no longer selects development mode",
        said,
        reason="Flask 2.3 removed FLASK_ENV; `flask --debug` or FLASK_DEBUG=1 replace it",
    )


@check("db_command_added")
@needs_app
def db_command_added(obs: Observations, art: Article) -> Verdict:
    said = art.quote("The Flask-Migrate extension adds the db command")
    if obs.flask_help is None or not obs.flask_help.ok:
        return _not_reached("flask --help", obs.flask_help, said)
    line = next(
        (ln.strip() for ln in obs.flask_help.stdout.splitlines() if ln.strip().startswith("db ")), None
    )
    if line:
        return Verdict(HOLDS, f"flask --help lists: {line}", said)
    return Verdict(BROKEN, "flask --help lists no db command", said)


@check("no_warnings")
@needs_app
def no_warnings(obs: Observations, art: Article) -> Verdict:
    """Judged from the whole transcript of the commands the article has the reader run: every
    line must be shown or implied by the article, or one of Alembic's routine INFO lines
    (`harness.claims.output`). `flask db --help`'s listing is db_help_listing's to judge."""
    said = art.quote('(The "SQLALCHEMY_TRACK_MODIFICATIONS" is a deprecated feature')
    if obs.init is None or not obs.init.ok:
        return _not_reached("flask db init", obs.init, said)
    steps = tuple(s for s in READER_STEPS if s != "db_help")
    lines = reader_lines(obs, art, steps)
    commands = [r.command for r in obs.transcript if r.step in steps]
    counts = {kind: sum(1 for ln in lines if ln.kind == kind) for kind in (SHOWN, "routine", UNACCOUNTED)}
    details: dict[str, Any] = {"commands": commands, "lines": counts}
    extra = unaccounted(lines)
    if extra:
        details["unaccounted"] = extra
        return Verdict(
            DRIFTED,
            f"{len(extra)} line(s) the article does not account for, in the output of "
            f"{len(commands)} commands:\n" + "\n".join(extra),
            said,
            reason="a reader sees lines the article neither shows nor implies, and that are not "
            "Alembic's routine INFO log",
            details=details,
        )
    return Verdict(
        HOLDS,
        f"every line of the {len(commands)} commands' output ({len(lines)} lines) is shown or implied "
        "by the article, or is Alembic's routine INFO log",
        said,
        details=details,
    )


# -- Managing your database ---------------------------------------------------------------------


@check("init_tree")
@needs_app
def init_tree(obs: Observations, art: Article) -> Verdict:
    said = "migrations/ holds " + ", ".join(art.init_tree)
    if obs.init is None or not obs.init.ok or obs.init_tree is None:
        return Verdict(BROKEN, f"flask db init failed: {error_line(obs.init)}", said)
    observed_top = [e for e in obs.init_tree if e.count("/") == 0 or (e.endswith("/") and e.count("/") == 1)]
    missing = sorted(set(art.init_tree) - set(observed_top))
    extra = sorted(set(observed_top) - set(art.init_tree))
    observed = "migrations/ holds " + ", ".join(observed_top)
    if missing:
        return Verdict(BROKEN, observed + f"; missing: {', '.join(missing)}", said)
    if extra:
        return Verdict(DRIFTED, observed + f"; not in the article: {', '.join(extra)}", said)
    return Verdict(HOLDS, observed, said)


@check("init_not_database")
@needs_app
def init_not_database(obs: Observations, art: Article) -> Verdict:
    said = art.quote("The Flask-Migrate extension adds the db command").split(". ", 1)[-1]
    schema = obs.schema_after_init
    if schema is None:
        return _not_reached("flask db init", obs.init, said)
    touched = list(schema["tables"]) + (["alembic_version"] if schema["alembic_version"] is not None else [])
    if touched:
        return Verdict(BROKEN, f"after init the database holds: {', '.join(touched)}", said)
    return Verdict(HOLDS, "after init the database holds no table (not even alembic_version)", said)


@check("migrate_one_file")
@needs_app
def migrate_one_file(obs: Observations, art: Article) -> Verdict:
    said = art.quote("It created a file in the migrations/versions directory")
    if obs.migrate is None or obs.migrate_revisions is None:
        return _not_reached("flask db migrate", obs.migrate, said)
    if not obs.migrate.ok:
        return Verdict(BROKEN, f"flask db migrate failed: {error_line(obs.migrate)}", said)
    count = len(obs.migrate_revisions)
    written = [r.revision for r in obs.migrate_revisions]
    shown = revision_files_shown(obs.ran("migrate"), obs.normalise)
    observed = (
        f"flask db migrate -m {art.migrate_message!r} wrote {count} file(s) in migrations/versions; "
        f"its output announces {len(shown)}: {', '.join(shown) or 'none'}"
    )
    details = {"files": obs.normalise(written), "announced": shown}
    if count == 0:
        return Verdict(BROKEN, observed, said, details=details)
    if count > 1:
        return Verdict(DRIFTED, observed, said, details=details)
    if shown != obs.normalise(written):
        return Verdict(
            DRIFTED, observed, said, reason="the output does not tell the reader which file", details=details
        )
    return Verdict(HOLDS, observed, said, details=details)


def _listing(upgrade: str, downgrade: str) -> str:
    indent = lambda body: "".join(f"    {ln}\n" if ln else "\n" for ln in body.splitlines())  # noqa: E731
    return f"def upgrade():\n{indent(upgrade)}\n\ndef downgrade():\n{indent(downgrade)}"


@check("migrate_listing")
@needs_app
def migrate_listing(obs: Observations, art: Article) -> Verdict:
    said = _listing(art.upgrade_body, art.downgrade_body)
    if not obs.migrate_revisions:
        return _not_reached("flask db migrate", obs.migrate, said)
    rev = obs.migrate_revisions[0]
    observed = _listing(rev.upgrade, rev.downgrade)
    if (rev.upgrade, rev.downgrade) == (art.upgrade_body, art.downgrade_body):
        return Verdict(HOLDS, observed, said)
    same_ops = [o.as_dict() for o in rev.upgrade_ops] == [
        o.as_dict() for o in parse_ops(art.upgrade_body)
    ] and [o.as_dict() for o in rev.downgrade_ops] == [o.as_dict() for o in parse_ops(art.downgrade_body)]
    if same_ops:
        return Verdict(DRIFTED, observed, said, reason="the same operations, rendered differently")
    return Verdict(BROKEN, observed, said, reason="the generated operations differ from the listing")


@check("migrate_no_db_change")
@needs_app
def migrate_no_db_change(obs: Observations, art: Article) -> Verdict:
    said = art.quote("Just to be clear: flask db migrate generates migrations.").split(". To do")[0]
    before, after = obs.schema_before_migrate, obs.schema_after_migrate
    if before is None or after is None:
        return _not_reached("flask db migrate", obs.migrate, said)
    if after["tables"] != before["tables"] or (after["alembic_version"] or []):
        return Verdict(
            BROKEN,
            f"after migrate the database holds tables {sorted(after['tables'])}, "
            f"alembic_version rows {after['alembic_version']}",
            said,
        )
    note = (
        " (it did create the empty alembic_version table)"
        if after["alembic_version"] == [] and before["alembic_version"] is None
        else ""
    )
    return Verdict(HOLDS, f"no table created and no revision applied by migrate{note}", said)


@check("upgrade_all_pending")
@needs_app
def upgrade_all_pending(obs: Observations, art: Article) -> Verdict:
    said = art.quote("But, unlike Alembic, if you don't specify a revision")
    if obs.pending_upgrade is None or obs.pending_before_upgrade is None or obs.pending_after is None:
        return _not_reached("the two-pending-revisions step", obs.pending_upgrade or obs.recipe_upgrade, said)
    pending = len(obs.pending_before_upgrade)
    applied = obs.pending_after["alembic_version"] or []
    tables = sorted(obs.pending_after["tables"])
    observed = (
        f"{pending} revisions pending; `flask db upgrade` exited {obs.pending_upgrade.exit_code}, "
        f"database at {len(applied)} head(s), tables {', '.join(tables)}"
    )
    shown = upgrades_shown(obs.ran("pending_upgrade"), obs.normalise)
    observed += f"; its output shows: {', '.join(shown) or 'no upgrade'}"
    # sorted after normalising: the raw ids are random, their order is not an observation
    details = {"pending": sorted(obs.normalise(obs.pending_before_upgrade)), "shown": shown}
    if pending < 2:
        return Verdict(
            NOT_CHECKED, observed, said, reason="fewer than two revisions were pending", details=details
        )
    if not (
        obs.pending_upgrade.ok
        and sorted(applied) == sorted(obs.heads or [])
        and {"owners", "pets"} <= set(tables)
    ):
        return Verdict(BROKEN, observed, said, details=details)
    if len(shown) != pending:
        return Verdict(
            DRIFTED,
            observed,
            said,
            reason="every pending revision was applied, but the output does not show each one "
            "(the article: you should see that the database has upgraded)",
            details=details,
        )
    return Verdict(HOLDS, observed + ": every pending revision applied", said, details=details)


@check("plain_alembic_needs_revision")
def plain_alembic_needs_revision(obs: Observations, art: Article) -> Verdict:
    said = art.quote("But, unlike Alembic, if you don't specify a revision")
    result = obs.alembic_upgrade_no_revision
    if result is None:
        return _not_reached("alembic init", obs.alembic_init, said)
    observed = f"`alembic upgrade` with no revision exited {result.exit_code}: {error_line(result)}"
    if not result.ok and "revision" in result.output:
        return Verdict(HOLDS, observed, said)
    return Verdict(DRIFTED, observed, said, reason="plain Alembic no longer needs a revision")


_TYPES = {"Integer": "INTEGER", "String": "VARCHAR", "Text": "TEXT", "Boolean": "BOOLEAN"}


def _describe_column(name: str, col: dict[str, Any]) -> str:
    length = f"({col['length']})" if col["length"] else ""
    flags = (" NOT NULL" if not col["nullable"] else "") + (" PRIMARY KEY" if col["primary_key"] else "")
    return f"{name} {col['type']}{length}{flags}"


@check("owners_table")
@needs_app
def owners_table(obs: Observations, art: Article) -> Verdict:
    expected = art.owner_columns
    said = "owners: " + ", ".join(_describe_column(n, c) for n, c in expected.items())
    schema = obs.schema_after_upgrade
    if schema is None:
        return _not_reached("flask db upgrade", obs.upgrade, said)
    table = schema["tables"].get("owners")
    if table is None:
        return Verdict(BROKEN, f"no owners table after upgrade; tables: {sorted(schema['tables'])}", said)
    got = {c["name"]: c for c in table["columns"]}
    observed = (
        "owners: "
        + ", ".join(
            f"{c['name']} {c['type']}{'' if c['nullable'] else ' NOT NULL'}" for c in table["columns"]
        )
        + f"; primary key {table['primary_key']['columns']}"
    )
    problems = []
    for name, col in expected.items():
        want = _TYPES.get(str(col["type"]), str(col["type"]).upper()) + (
            f"({col['length']})" if col["length"] else ""
        )
        have = got.get(name)
        if have is None:
            problems.append(f"no column {name}")
            continue
        if have["type"] != want:
            problems.append(f"{name} is {have['type']}, not {want}")
        if have["nullable"] != col["nullable"]:
            problems.append(f"{name} nullable={have['nullable']}")
    pk = [n for n, c in expected.items() if c["primary_key"]]
    if table["primary_key"]["columns"] != pk:
        problems.append(f"primary key {table['primary_key']['columns']}, not {pk}")
    if problems:
        return Verdict(BROKEN, observed + "; " + "; ".join(problems), said)
    return Verdict(HOLDS, observed, said)


@check("recipe_repeats")
@needs_app
def recipe_repeats(obs: Observations, art: Article) -> Verdict:
    said = "The recipe is simple: add a model, flask db migrate, flask db upgrade"
    if obs.recipe_revisions is None:
        return _not_reached("the recipe's migrate", obs.recipe_migrate or obs.upgrade, said)
    ops = [(o.name, o.table) for r in obs.recipe_revisions for o in r.upgrade_ops]
    upgraded = obs.recipe_upgrade is not None and obs.recipe_upgrade.ok
    observed = (
        f"{len(obs.recipe_revisions)} file(s) with ops {ops}; upgrade {'ran' if upgraded else 'failed'}"
    )
    if not upgraded or ("create_table", "pets") not in ops:
        return Verdict(BROKEN, observed, said)
    if ops != [("create_table", "pets")]:
        return Verdict(DRIFTED, observed, said, reason="the migration holds more than the new table")
    return Verdict(HOLDS, observed, said)


def _same_description(a: str, b: str) -> bool:
    a, b = a.rstrip(".").rstrip(), b.rstrip(".").rstrip()
    return a.startswith(b) or b.startswith(a)


@check("db_help_listing")
@needs_app
def db_help_listing(obs: Observations, art: Article) -> Verdict:
    said = "Commands: " + ", ".join(art.help_commands)
    if obs.db_help is None or not obs.db_help.ok:
        return Verdict(BROKEN, f"flask db --help failed: {error_line(obs.db_help)}", said)
    seen = help_commands(obs.db_help.stdout)
    options = help_options(obs.db_help.stdout)
    missing = sorted(set(art.help_commands) - set(seen))
    added = sorted(set(seen) - set(art.help_commands))
    reworded = sorted(
        c for c in set(seen) & set(art.help_commands) if not _same_description(seen[c], art.help_commands[c])
    )
    new_options = sorted(set(options) - set(art.help_options))
    ran = obs.ran("db_help")
    lines = classify(ran, art, obs.normalise) if ran is not None else []
    other = [ln.text.strip() for ln in lines if ln.kind == UNACCOUNTED]
    observed = f"Commands: {', '.join(seen)}"
    items = (
        ("added", added),
        ("missing", missing),
        ("reworded", reworded),
        ("new options", new_options),
    )
    notes = [f"{label}: {', '.join(found)}" for label, found in items if found]
    details: dict[str, Any] = {label.replace(" ", "_"): found for label, found in items if found}
    if other:
        details["lines_not_in_the_article"] = other
        notes.append(f"{len(other)} line(s) not in the article's listing:\n" + "\n".join(other))
    if notes:
        observed += "; " + "; ".join(notes)
    if missing:
        return Verdict(BROKEN, observed, said, details=details)
    if added or reworded or new_options or other:
        return Verdict(DRIFTED, observed, said, details=details)
    return Verdict(HOLDS, observed, said, details=details)


def alembic_commands(text: str) -> list[str]:
    """`alembic --help` -> its subcommands, from the `{a,b,c}` usage group."""
    match = re.search(r"\{([a-z_,]+)\}", text)
    return sorted(match.group(1).split(",")) if match else []


@check("all_alembic_commands")
@needs_app
def all_alembic_commands(obs: Observations, art: Article) -> Verdict:
    said = art.quote("All of the Alembic commands are there, like merge and history.")
    if obs.alembic_help is None or obs.db_help is None or not obs.db_help.ok:
        failed = obs.db_help if obs.db_help is None or not obs.db_help.ok else obs.alembic_help
        return _not_reached("alembic --help / flask db --help", failed, said)
    alembic = alembic_commands(obs.alembic_help.stdout)
    if not alembic:
        return _not_reached("alembic --help", obs.alembic_help, said)
    flask_db = {c.replace("-", "_") for c in help_commands(obs.db_help.stdout)}
    missing = [c for c in alembic if c not in flask_db]
    observed = f"alembic {obs.versions.get('alembic', '?')} has {len(alembic)} commands: {', '.join(alembic)}"
    if missing and sorted(missing) == sorted(art.alembic_exceptions):
        return Verdict(
            HOLDS, observed + f"; no flask db counterpart, as the article says: {', '.join(missing)}", said
        )
    if missing or art.alembic_exceptions:
        return Verdict(DRIFTED, observed + f"; no flask db counterpart: {', '.join(missing) or 'none'}", said)
    return Verdict(HOLDS, observed + "; each has a flask db counterpart", said)


@check("autogenerated_entire")
@needs_app
def autogenerated_entire(obs: Observations, art: Article) -> Verdict:
    said = art.quote("It autogenerated the entire migration from your mapping file!")
    if obs.drift_check is None or obs.drift_files is None:
        return _not_reached("flask db upgrade", obs.upgrade, said)
    observed = f"a second `flask db migrate` after upgrade wrote {obs.drift_files} file(s): " + error_line(
        obs.drift_check
    )
    if obs.drift_check.ok and obs.drift_files == 0:
        return Verdict(HOLDS, observed, said)
    return Verdict(
        BROKEN, observed, said, reason="autogenerate left changes the first migration did not hold"
    )


@check("stronger_environment")
@needs_app
def stronger_environment(obs: Observations, art: Article) -> Verdict:
    said = art.quote("However, the Flask-Migrate extension will generate a stronger, faster, smarter")
    if obs.flask_migrate_env is None or obs.alembic_env is None or obs.alembic_autogenerate is None:
        return _not_reached("flask db init / alembic init", obs.init or obs.alembic_init, said)
    url_from_app = "current_app" in obs.flask_migrate_env and "sqlalchemy.url" in obs.alembic_env
    metadata_wired = obs.migrate is not None and obs.migrate.ok and not obs.alembic_autogenerate.ok
    no_empty = obs.drift_files == 0 and "No changes in schema detected" in error_line(obs.drift_check)
    found = {
        "the database URL comes from the Flask app (current_app), not alembic.ini": url_from_app,
        "the models' metadata is wired in, so autogenerate works with no edit (plain env.py: "
        + error_line(obs.alembic_autogenerate)
        + ")": metadata_wired,
        "an autogenerate that finds no change writes no empty revision": no_empty,
    }
    seen = [k for k, v in found.items() if v]
    observed = "observed: " + ("; ".join(seen) if seen else "no difference")
    if len(seen) == len(found):
        return Verdict(HOLDS, observed, said, reason="'faster' is not measured")
    not_seen = [k.split(" (")[0] for k, v in found.items() if not v]
    return Verdict(DRIFTED if seen else BROKEN, observed + "; not observed: " + "; ".join(not_seen), said)


def run_check(name: str, obs: Observations, art: Article) -> Verdict:
    """The claim's verdict, with temporary paths replaced so that reports are reproducible."""
    try:
        verdict = CHECKS[name](obs, art)
    except Exception as exc:  # a check that crashes must say so, not take the report down
        verdict = Verdict(
            NOT_CHECKED, f"the check raised {type(exc).__name__}: {exc}", "", reason="harness bug"
        )
    return replace(
        verdict,
        observed=obs.normalise(verdict.observed),
        reason=obs.normalise(verdict.reason),
        details=obs.normalise(verdict.details),
    )


def summary(verdicts: dict[str, Verdict]) -> dict[str, Any]:
    counts = {v: 0 for v in VERDICTS}
    for verdict in verdicts.values():
        counts[verdict.verdict] += 1
    return counts
