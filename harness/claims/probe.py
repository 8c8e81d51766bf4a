"""Follow the article on one stack and record everything its claims talk about.

The probe does what a reader does, in order: the article's project (``fixtures/project``),
``flask db init``, the article's ``Owner`` model (taken from the article text), ``flask db
migrate -m "<the article's message>"``, ``flask db upgrade``; then the recipe once more with a
second model, two pending revisions applied by one ``upgrade``, ``flask db --help``, and, for
contrast, a plain ``alembic init`` environment. It only records; `checks` decides.

Every command is kept in `Observations.transcript` as a reader sees it (`Ran`): the folder it
ran in, its input, its exit code, stdout and stderr. `transcript_data` turns that into the
normalised per-stack transcript the store keeps (``claims/transcripts/<stack>.yaml``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from harness.claims.article import Article
from harness.observe.migration import Revision, read_revision
from harness.observe.normalise import command_line, normalise, substitutions, transcript, url_replacements
from harness.observe.schema import inspect_schema
from harness.project import Project, article_style_url
from harness.runners.base import CommandResult, Runner
from harness.session import Session

# The recipe's "add a model": a second model beside the article's Owner.
PET_MODEL = """

class Pet(db.Model):
    __tablename__ = "pets"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), nullable=False)
"""
SHELL_PROBE = "print('app.debug =', app.debug)\n"


@dataclass(frozen=True)
class Ran:
    """One command the probe ran, as a reader sees it."""

    argv: tuple[str, ...]  # as the reader types it (the runner's result names the venv's script)
    where: str  # the folder, relative to the probe's temporary folder ("project", "plain-alembic")
    result: CommandResult
    stdin: str | None = None
    step: str = ""  # the Observations field this command answers ("migrate", "db_help", ...)

    @property
    def command(self) -> str:
        return command_line(self.argv)


@dataclass
class Observations:
    """Everything one probe run saw. None means the probe never got that far."""

    stack: str
    versions: dict[str, str]
    python: str
    server: str
    requirements: tuple[str, ...]
    flask_help: CommandResult | None = None
    db_help: CommandResult | None = None
    init: CommandResult | None = None
    init_tree: list[str] | None = None
    schema_after_init: dict[str, Any] | None = None
    migrate: CommandResult | None = None
    migrate_revisions: list[Revision] | None = None
    schema_before_migrate: dict[str, Any] | None = None
    schema_after_migrate: dict[str, Any] | None = None
    upgrade: CommandResult | None = None
    schema_after_upgrade: dict[str, Any] | None = None
    drift_check: CommandResult | None = None
    drift_files: int | None = None
    recipe_migrate: CommandResult | None = None
    recipe_revisions: list[Revision] | None = None
    recipe_upgrade: CommandResult | None = None
    pending_before_upgrade: list[str] | None = None  # revisions not applied, before the upgrade
    pending_upgrade: CommandResult | None = None
    pending_after: dict[str, Any] | None = None
    heads: list[str] | None = None
    shell: CommandResult | None = None
    without_flaskenv: CommandResult | None = None
    with_dotenv: CommandResult | None = None
    alembic_help: CommandResult | None = None
    alembic_init: CommandResult | None = None
    alembic_init_tree: list[str] | None = None
    alembic_upgrade_no_revision: CommandResult | None = None
    alembic_autogenerate: CommandResult | None = None
    alembic_empty_revision_files: int | None = None
    flask_migrate_env: str | None = None
    alembic_env: str | None = None
    transcript: list[Ran] = field(default_factory=list)  # every command, in the order run
    replacements: dict[str, str] = field(default_factory=dict)  # volatile text -> placeholder

    @property
    def revision_ids(self) -> list[str]:
        """Revision ids in order of creation (for `<rev1>`, `<rev2>`... in transcripts)."""
        revs = (self.migrate_revisions or []) + (self.recipe_revisions or [])
        return [r.revision for r in revs]

    def normalise(self, value: Any) -> Any:
        """`value` with this run's volatile text (paths, ids, URL, port, password...) replaced."""
        return normalise(value, substitutions(self.replacements, self.revision_ids))

    def ran(self, step: str) -> Ran | None:
        """The transcript entry of the command that answers `step` (an Observations field)."""
        return next((r for r in self.transcript if r.step == step), None)


def transcript_data(obs: Observations) -> list[dict[str, Any]]:
    """The probe's transcript as the store keeps it: one entry per command, normalised."""
    entries = []
    for ran in obs.transcript:
        entry: dict[str, Any] = {"command": ran.command, "in": ran.where}
        if ran.stdin is not None:
            entry["stdin"] = ran.stdin
        entry.update(transcript(ran.result))
        entries.append(entry)
    return obs.normalise(entries)


def _tree(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        out.append(rel + "/" if path.is_dir() else rel)
    return out


class _Probe:
    def __init__(self, runner: Runner, article: Article, obs: Observations, workdir: Path):
        self.runner, self.article, self.obs, self.workdir = runner, article, obs, workdir

    def cmd(self, step: str, argv: list[str], cwd: Path, stdin: str | None = None) -> CommandResult:
        result = self.runner.command(argv, cwd, stdin)
        where = cwd.relative_to(self.workdir).as_posix() if cwd.is_relative_to(self.workdir) else str(cwd)
        self.obs.transcript.append(Ran(tuple(argv), where, result, stdin, step))
        return result

    def migrate(self, step: str, project: Project, message: str) -> tuple[CommandResult, list[Path]]:
        """`flask db migrate -m message` and the revision files it wrote."""
        before = set(project.revision_files())
        result = self.cmd(step, ["flask", "db", "migrate", "-m", message], project.root)
        return result, sorted(set(project.revision_files()) - before)

    def article_flow(self, project: Project, url: sa.URL) -> None:
        obs, article = self.obs, self.article
        obs.flask_help = self.cmd("flask_help", ["flask", "--help"], project.root)
        obs.db_help = self.cmd("db_help", ["flask", "db", "--help"], project.root)
        obs.shell = self.cmd("shell", ["flask", "shell"], project.root, stdin=SHELL_PROBE)
        obs.init = self.cmd("init", ["flask", "db", "init"], project.root)
        if not obs.init.ok:
            return
        obs.init_tree = _tree(project.root / "migrations")
        obs.flask_migrate_env = (project.root / "migrations" / "env.py").read_text()
        obs.schema_after_init = inspect_schema(url)
        project.write_models(article.owner_model)
        obs.schema_before_migrate = inspect_schema(url)
        obs.migrate, written = self.migrate("migrate", project, article.migrate_message)
        obs.migrate_revisions = [read_revision(p) for p in written]
        obs.schema_after_migrate = inspect_schema(url)
        if not obs.migrate.ok:
            return
        obs.upgrade = self.cmd("upgrade", ["flask", "db", "upgrade"], project.root)
        obs.schema_after_upgrade = inspect_schema(url)
        if not obs.upgrade.ok:
            return
        obs.drift_check, written = self.migrate("drift_check", project, "drift check")
        obs.drift_files = len(written)
        for path in written:  # an unexpected revision must not leak into the recipe below
            path.unlink()
        project.write_models(article.owner_model + PET_MODEL)
        obs.recipe_migrate, written = self.migrate("recipe_migrate", project, "create pets table")
        obs.recipe_revisions = [read_revision(p) for p in written]
        if not obs.recipe_migrate.ok:
            return
        obs.recipe_upgrade = self.cmd("recipe_upgrade", ["flask", "db", "upgrade"], project.root)
        if not obs.recipe_upgrade.ok:
            return
        # Two pending revisions: back to base, then one `flask db upgrade` with no revision.
        down = self.cmd("downgrade_base", ["flask", "db", "downgrade", "base"], project.root)
        if not down.ok:
            return
        revisions = [read_revision(p) for p in project.revision_files()]
        obs.pending_before_upgrade = sorted(r.revision for r in revisions)
        heads = {r.revision for r in revisions} - {r.down_revision for r in revisions}
        obs.heads = sorted(str(h) for h in heads)
        obs.pending_upgrade = self.cmd("pending_upgrade", ["flask", "db", "upgrade"], project.root)
        obs.pending_after = inspect_schema(url)

    def env_file_variants(self, project: Project, workdir: Path) -> None:
        """The same project with no .flaskenv at all, and with the file named .env instead."""
        bare = workdir / "no-flaskenv"
        shutil.copytree(project.root, bare, ignore=shutil.ignore_patterns(".flaskenv", "__pycache__"))
        self.obs.without_flaskenv = self.cmd("without_flaskenv", ["flask", "db", "current"], bare)
        dotenv = workdir / "dotenv"
        shutil.copytree(project.root, dotenv, ignore=shutil.ignore_patterns(".flaskenv", "__pycache__"))
        shutil.copy(project.root / ".flaskenv", dotenv / ".env")
        self.obs.with_dotenv = self.cmd("with_dotenv", ["flask", "db", "current"], dotenv)

    def plain_alembic(self, workdir: Path, url: sa.URL) -> None:
        """`alembic init`, set up the way Alembic's tutorial says: the URL in alembic.ini."""
        obs = self.obs
        plain = workdir / "plain-alembic"
        plain.mkdir()
        obs.alembic_help = self.cmd("alembic_help", ["alembic", "--help"], plain)
        obs.alembic_init = self.cmd("alembic_init", ["alembic", "init", "alembic"], plain)
        if not obs.alembic_init.ok:
            return
        obs.alembic_init_tree = _tree(plain / "alembic")
        obs.alembic_env = (plain / "alembic" / "env.py").read_text()
        ini = plain / "alembic.ini"
        lines = ini.read_text().splitlines()
        address = url.render_as_string(hide_password=False).replace("%", "%%")
        ini.write_text(
            "\n".join(
                f"sqlalchemy.url = {address}" if ln.startswith("sqlalchemy.url") else ln for ln in lines
            )
        )
        obs.alembic_upgrade_no_revision = self.cmd(
            "alembic_upgrade_no_revision", ["alembic", "upgrade"], plain
        )
        versions = plain / "alembic" / "versions"
        before = set(versions.glob("*.py"))
        obs.alembic_autogenerate = self.cmd(
            "alembic_autogenerate", ["alembic", "revision", "--autogenerate", "-m", "nothing"], plain
        )
        obs.alembic_empty_revision_files = len(set(versions.glob("*.py")) - before)


def write_flaskenv(project: Project, article: Article, url: sa.URL) -> None:
    """The project's .flaskenv holds the article's own lines (an edited article's settings and URL
    scheme are what runs), its DATABASE_URL pointed at the probe's database."""
    lines = dict(article.flaskenv)
    address = url.render_as_string(hide_password=False)
    lines["DATABASE_URL"] = article_style_url(lines["DATABASE_URL"], address)
    (project.root / ".flaskenv").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))


def probe(session: Session, stack: str, article: Article) -> Observations:
    """Run the article on `stack` through `session` (its server, its runner); nothing is left behind."""
    env = session.stack_env(stack)
    runner = session.runner(stack, session.options.claims_runner)
    server = session.server()
    obs = Observations(
        stack=stack,
        versions=dict(env.versions),
        python=env.python_version,
        server=server.version,
        requirements=env.stack.requirements,
    )
    with session.workspace(f"claims-{stack}") as ws:
        step = _Probe(runner, article, obs, ws.folder)
        obs.replacements = {
            str(ws.folder): "<tmp>",
            str(env.path): "<venv>",
            **url_replacements(ws.url.render_as_string(hide_password=False)),
        }
        project = ws.project()
        write_flaskenv(project, article, ws.url)
        step.article_flow(project, ws.url)
        step.env_file_variants(project, ws.folder)
        with ws.database(f"claims_plain_{stack}") as url:
            obs.replacements.update(
                url_replacements(url.render_as_string(hide_password=False), "plain-database")
            )
            step.plain_alembic(ws.folder, url)
    return obs
