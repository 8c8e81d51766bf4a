"""Realistic faults, seeded one at a time into a copy of a stack's installed libraries.

Each fault is one exact text replacement in one installed file: the kind of one-line slip a
release of Alembic, Flask-Migrate, Flask or Flask-SQLAlchemy could ship (a comparison that
no longer fires, a keyword the renderer forgets, a default flipped, a message reworded). The
anchor must occur exactly once in the file, or the fault refuses to apply: a new release that
moved the code makes the tool fail loudly instead of measuring nothing.

The anchors are written against the releases of the `current` stack on the day they were
written (alembic 1.20, Flask-Migrate 4.1, Flask 3.1, Flask-SQLAlchemy 3.1); `python -m
harness.mutants --check-anchors` says which no longer apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class FaultError(Exception):
    """A fault that cannot be seeded; the message names the fault, the file and the anchor."""


@dataclass(frozen=True)
class Fault:
    name: str
    path: str  # relative to site-packages
    old: str  # must occur exactly once in the file
    new: str
    why: str  # why a release could plausibly ship it


@dataclass
class Seeded:
    """A fault in place: the file it changed and the bytes to put back."""

    fault: Fault
    file: Path
    original: bytes


ALEMBIC = "alembic/autogenerate"
COMPARE = f"{ALEMBIC}/compare"
RENDER = f"{ALEMBIC}/render.py"
FM = "flask_migrate"
FM_TEMPLATE = "flask_migrate/templates/flask"

FAULTS: tuple[Fault, ...] = (
    # -- Alembic: autogenerate's comparison --------------------------------------------------
    Fault(
        "compare-nullable-skipped",
        f"{COMPARE}/constraints.py",
        "    if conn_col_nullable is not metadata_col_nullable:\n",
        "    if False and conn_col_nullable is not metadata_col_nullable:\n",
        "the nullable comparator returns early: a NULL/NOT NULL change goes unnoticed "
        "(the kind of slip a refactor of the comparator dispatch makes)",
    ),
    Fault(
        "compare-type-skipped",
        f"{COMPARE}/types.py",
        "    is_diff = migration_context.impl.compare_type(conn_col, metadata_col)\n",
        "    is_diff = False\n",
        "the dialect's type comparison is never consulted (compare_type silently off)",
    ),
    Fault(
        "compare-added-column-missed",
        f"{COMPARE}/tables.py",
        "    for cname in metadata_col_names.difference(conn_col_names):\n",
        "    for cname in metadata_col_names.difference(conn_col_names, metadata_col_names):\n",
        "a set operation with one operand too many: added columns are never detected",
    ),
    Fault(
        "compare-removed-column-missed",
        f"{COMPARE}/tables.py",
        "    for cname in set(conn_col_names).difference(metadata_col_names):\n",
        "    for cname in set(conn_col_names).difference(metadata_col_names, conn_col_names):\n",
        "removed columns are never detected (the reverse slip)",
    ),
    Fault(
        "compare-removed-table-missed",
        f"{COMPARE}/tables.py",
        "    for s, tname in conn_table_names.difference(metadata_table_names):\n",
        "    for s, tname in conn_table_names.difference(metadata_table_names, conn_table_names):\n",
        "a dropped model does not produce drop_table",
    ),
    Fault(
        "compare-server-default-skipped",
        f"{COMPARE}/server_defaults.py",
        "    is_diff = migration_context.impl.compare_server_default(",
        "    is_diff = False and migration_context.impl.compare_server_default(",
        "compare_server_default=True no longer compares anything",
    ),
    Fault(
        "compare-removed-index-missed",
        f"{COMPARE}/constraints.py",
        "                modify_ops.ops.append(ops.DropIndexOp.from_index(obj.const))\n",
        "                pass\n",
        "an index removed from the model is logged nowhere and not dropped",
    ),
    Fault(
        "compare-added-fk-missed",
        f"{COMPARE}/constraints.py",
        "            modify_table_ops.ops.append(\n"
        "                ops.CreateForeignKeyOp.from_constraint(const.const)\n"
        "            )\n",
        "            pass\n",
        "a foreign key added to an existing table is logged but no operation is emitted",
    ),
    Fault(
        "compare-column-comment-missed",
        f"{COMPARE}/comments.py",
        "    if conn_col_comment != metadata_comment:\n",
        "    if conn_col_comment != metadata_comment and conn_col_comment is not None:\n",
        "a comment added to a column that had none is not detected (an over-eager guard)",
    ),
    Fault(
        "log-added-table-reworded",
        f"{COMPARE}/tables.py",
        'log.info("Detected added table %r", name)',
        'log.info("Detected new table %r", name)',
        "an INFO line the reader sees (and the article shows) is reworded",
    ),
    Fault(
        "log-added-column-reworded",
        f"{COMPARE}/tables.py",
        "log.info(\"Detected added column '%s.%s'\", name, cname)",
        "log.info(\"Detected new column '%s.%s'\", name, cname)",
        "an INFO line the reader sees on every added column is reworded",
    ),
    # -- Alembic: rendering the migration file ------------------------------------------------
    Fault(
        "render-server-default-dropped",
        RENDER,
        "    if column.server_default:\n        rendered = _render_server_default(",
        "    if False:\n        rendered = _render_server_default(",
        "add_column/create_table forget server_default=: the migration creates a column without its default",
    ),
    Fault(
        "render-nullable-dropped",
        RENDER,
        '    if column.nullable is not None:\n        opts.append(("nullable", column.nullable))\n',
        "",
        "Column(...) is rendered without nullable=: NOT NULL columns come out nullable",
    ),
    Fault(
        "render-alter-nullable-dropped",
        RENDER,
        '    if nullable is not None:\n        text += ",\\n%snullable=%r" % (indent, nullable)\n',
        "",
        "alter_column forgets nullable=: the change is detected and logged, the migration is a no-op",
    ),
    Fault(
        "render-index-not-unique",
        RENDER,
        '        "unique": index.unique or False,\n',
        '        "unique": False,\n',
        "create_index loses unique=True",
    ),
    Fault(
        "render-table-comment-dropped",
        RENDER,
        '    if comment is not None:\n        text += ",\\ncomment=%r" % _ident(comment)\n',
        "    if comment is not None:\n        pass\n",  # same line count: a warning's line number stays
        "create_table forgets the table's comment",
    ),
    # -- Alembic: messages --------------------------------------------------------------------
    Fault(
        "init-message-reworded",
        "alembic/command.py",
        '            "Please edit configuration/connection/logging "\n',
        '            "Please review the configuration/connection/logging "\n',
        "the closing line of `flask db init` is reworded",
    ),
    # -- Flask-Migrate: the CLI ----------------------------------------------------------------
    Fault(
        "fm-upgrade-offline",
        f"{FM}/__init__.py",
        "    command.upgrade(config, revision, sql=sql, tag=tag)\n",
        "    command.upgrade(config, revision, sql=True, tag=tag)\n",
        "`flask db upgrade` prints the SQL instead of running it (a flag passed wrongly)",
    ),
    Fault(
        "fm-compare-type-off",
        f"{FM}/__init__.py",
        "                 compare_type=True, render_as_batch=True, **kwargs):\n",
        "                 compare_type=False, render_as_batch=True, **kwargs):\n",
        "compare_type's default flipped back to False (Flask-Migrate before 3.0)",
    ),
    Fault(
        "fm-directory-default",
        f"{FM}/__init__.py",
        "    def __init__(self, app=None, db=None, directory='migrations', command='db',\n",
        "    def __init__(self, app=None, db=None, directory='migration', command='db',\n",
        "the default migration folder misspelled",
    ),
    Fault(
        "fm-migrate-help-changed",
        f"{FM}/cli.py",
        '    """Autogenerate a new revision file (Alias for\n',
        '    """Autogenerate a revision file (Alias for\n',
        "`flask db --help` describes `migrate` differently",
    ),
    Fault(
        "fm-check-command-renamed",
        f"{FM}/cli.py",
        "@with_appcontext\ndef check(directory):\n",
        "@with_appcontext\ndef check_migrations(directory):\n",
        "a command renamed by its function's name (`flask db check` becomes `check-migrations`)",
    ),
    # -- Flask-Migrate: the templates `flask db init` writes -----------------------------------
    Fault(
        "fm-template-downgrade-lost",
        f"{FM_TEMPLATE}/script.py.mako",
        'def downgrade():\n    ${downgrades if downgrades else "pass"}\n',
        "def downgrade():\n    pass\n",
        "the revision template's downgrade() body is lost: downgrades do nothing",
    ),
    Fault(
        "fm-template-empty-revisions",
        f"{FM_TEMPLATE}/env.py",
        '        conf_args["process_revision_directives"] = process_revision_directives\n',
        "        pass\n",
        "env.py no longer suppresses empty revisions: `flask db migrate` with no change writes a file",
    ),
    Fault(
        "fm-template-no-changes-reworded",
        f"{FM_TEMPLATE}/env.py",
        "                logger.info('No changes in schema detected.')\n",
        "                logger.info('Nothing to migrate.')\n",
        "the line a reader sees when nothing changed is reworded",
    ),
    # -- Flask: loading .flaskenv -----------------------------------------------------------------
    Fault(
        "flask-flaskenv-not-loaded",
        "flask/cli.py",
        '        for default_name in (".flaskenv", ".env"):\n',
        '        for default_name in (".env",):\n',
        "`.flaskenv` is no longer read: FLASK_APP and DATABASE_URL are not set",
    ),
    Fault(
        "flask-dotenv-overrides-environment",
        "flask/cli.py",
        "        if key in os.environ or value is None:\n",
        "        if value is None:\n",
        "values from .flaskenv/.env override variables already set in the environment",
    ),
    # -- Flask-SQLAlchemy ---------------------------------------------------------------------------
    Fault(
        "fsa-echo-default-on",
        "flask_sqlalchemy/extension.py",
        '        echo: bool = app.config.setdefault("SQLALCHEMY_ECHO", False)\n',
        '        echo: bool = app.config.setdefault("SQLALCHEMY_ECHO", True)\n',
        "SQLALCHEMY_ECHO's default flipped: every command prints the SQL it runs",
    ),
    Fault(
        "fsa-tablename-not-snake-case",
        "flask_sqlalchemy/model.py",
        '    name = re.sub(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))", r"_\\1", name)\n',
        "",
        "automatic table names lose their underscores (OwnerPet -> ownerpet)",
    ),
)

# For a fault the project misses: the check that would catch it (filled from the measurement).
WOULD_CATCH: dict[str, str] = {
    "log-added-table-reworded": "a transcript snapshot of `flask db migrate` (issue 11, transcripts): the "
    "reworded INFO line is a changed line",
    "log-added-column-reworded": "scenario transcripts (issue 11): every scenario that adds a column would "
    "show the changed INFO line; today scenario snapshots keep no output",
    "init-message-reworded": "the claims' transcript of `flask db init` (issue 11), and classifying every "
    "line a reader sees (the closing line is routine Alembic output the article shows)",
    "fm-template-no-changes-reworded": "the transcript of the probe's no-change `flask db migrate` "
    "(issue 11); today stronger_environment matches the text only when it judges that step",
    "fm-migrate-help-changed": "evidence on record (issue 11): db_help_listing is already drifted on this "
    "stack, so a new reworded description keeps the verdict word; the recorded evidence would change",
    "fm-check-command-renamed": "evidence on record (issue 11): db_help_listing stays drifted ('added: "
    "check' becomes 'added: check-migrations'); the recorded command set would change",
    "fsa-echo-default-on": "transcripts (issue 11): every command would print SQLAlchemy's SQL log lines, "
    "lines the article does not account for",
    "flask-dotenv-overrides-environment": "nothing the article claims: it tells the reader to put "
    "FLASK_APP and DATABASE_URL in .env or .flaskenv and says nothing of variables already set in the "
    "shell; and every command runs with a reader's environment that has neither (harness/runners/base.py "
    "PASS_ENV), so no probe can set one. Catching it needs a per-command environment in the runners and a "
    "check of Flask's own documented precedence (environment over .env over .flaskenv), which is Flask's "
    "contract, not the article's",
    "fsa-tablename-not-snake-case": "tables/automatic_table_name (a CamelCase model without __tablename__, "
    "in the subset): its snapshot names the table pet_owner; if this row says missed, that scenario no "
    "longer reaches Flask-SQLAlchemy's naming",
    "render-table-comment-dropped": "comments/table_created_with_comment (in the subset): its first "
    "migration creates a table with a comment, and the complete schema (obj_description) and "
    "autogenerate_clean would both see the comment missing; if this row says missed, look there",
    "compare-column-comment-missed": "the complete schema (issue 11, col_description) compared after "
    "upgrade, and a scenario adding a comment to a column that had none",
}


def by_name(names: list[str] | None, faults: tuple[Fault, ...] = FAULTS) -> list[Fault]:
    """The faults named (all when `names` is empty), in catalogue order."""
    if not names:
        return list(faults)
    known = {f.name: f for f in faults}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise FaultError(f"unknown fault(s) {unknown}; known: {', '.join(known)}")
    return [f for f in faults if f.name in names]


def seed(fault: Fault, site_packages: Path) -> Seeded:
    """Apply `fault` to its file under `site_packages`; raises FaultError unless the anchor
    occurs exactly once. Removes the file's cached bytecode so the edit is what runs."""
    file = Path(site_packages) / fault.path
    try:
        original = file.read_bytes()
    except OSError as exc:
        raise FaultError(f"fault {fault.name}: cannot read {file}: {exc}") from None
    text = original.decode("utf-8")
    count = text.count(fault.old)
    if count != 1:
        where = "does not occur" if count == 0 else f"occurs {count} times"
        raise FaultError(
            f"fault {fault.name}: the anchor {fault.old.strip()[:60]!r} {where} in {file}. "
            "The installed release differs from the one the fault was written for: update the fault's anchor."
        )
    mutated = text.replace(fault.old, fault.new)
    if file.suffix == ".py":
        try:
            compile(mutated, str(file), "exec")
        except SyntaxError as exc:
            raise FaultError(f"fault {fault.name}: the replacement breaks {file}'s syntax: {exc}") from None
    file.write_bytes(mutated.encode("utf-8"))
    _drop_bytecode(file)
    return Seeded(fault, file, original)


def unseed(seeded: Seeded) -> None:
    """Put the file back exactly as it was."""
    seeded.file.write_bytes(seeded.original)
    _drop_bytecode(seeded.file)


def _drop_bytecode(file: Path) -> None:
    for pyc in (file.parent / "__pycache__").glob(f"{file.stem}.*.pyc"):
        pyc.unlink(missing_ok=True)


def check_anchors(site_packages: Path, faults: list[Fault]) -> list[str]:
    """Seed and unseed every fault; return the errors of those that do not apply."""
    errors = []
    for fault in faults:
        try:
            unseed(seed(fault, site_packages))
        except FaultError as exc:
            errors.append(str(exc))
    return errors
