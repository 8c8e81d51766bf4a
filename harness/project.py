"""The temporary project: the article's files from ``fixtures/project``, made to point at one
scenario's database and to hold one step's models.

Only three things ever differ from the fixture: the ``DATABASE_URL`` line of ``.flaskenv``,
the model classes appended to ``app/models.py``, and the ``Migrate(...)`` options a scenario
asks for. Keeping the edits this narrow is what lets a scenario speak for the article.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "project"
MIGRATE_CALL = "Migrate(app, db)"


@dataclass(frozen=True)
class Project:
    root: Path
    models_offset: int  # line in app/models.py where the step's models begin, minus one
    fixture: Path = FIXTURE

    @property
    def models_file(self) -> Path:
        return self.root / "app" / "models.py"

    @property
    def versions_dir(self) -> Path:
        return self.root / "migrations" / "versions"

    def revision_files(self) -> list[Path]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(self.versions_dir.glob("*.py"))

    def write_hooks(self, hooks: str) -> None:
        """Python a reader writes in app/__init__.py just before the ``Migrate(...)`` call (hook
        functions that `migrate_options` pass by name, e.g. ``include_object``)."""
        init = self.root / "app" / "__init__.py"
        text = init.read_text()
        start = text.rfind("\n", 0, text.index("Migrate(app, db")) + 1
        init.write_text(text[:start] + hooks.rstrip("\n") + "\n\n\n" + text[start:])

    def write_models(self, models: str) -> None:
        header = (self.fixture / "app" / "models.py").read_text()
        self.models_file.write_text(header + "\n\n" + models)
        for cache in self.root.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)


def _migrate_call(options: dict[str, Any]) -> str:
    if not options:
        return MIGRATE_CALL
    # {"code": "include_object"} is Python written as is: a hook function the scenario's `hooks` define
    args = ", ".join(
        f"{key}={value['code'] if isinstance(value, dict) else repr(value)}" for key, value in options.items()
    )
    return f"Migrate(app, db, {args})"


def article_style_url(fixture_url: str, database_url: str) -> str:
    """`database_url` written with the fixture's scheme (the article's bare ``postgresql://``).

    The scheme matters: it is what picks the DBAPI driver, and SQLAlchemy 2.1 changed the
    driver a bare ``postgresql://`` means. A harness-chosen ``postgresql+psycopg2://`` would
    hide exactly the kind of break this project exists to catch.
    """
    scheme = fixture_url.split("://", 1)[0]
    return scheme + "://" + database_url.split("://", 1)[1]


def create_project(
    dest: Path, database_url: str, migrate_options: dict[str, Any] | None = None, fixture: Path = FIXTURE
) -> Project:
    """Copy the fixture into `dest` (which must not exist yet) and point it at the database."""
    shutil.copytree(fixture, dest)
    flaskenv = dest / ".flaskenv"
    text = flaskenv.read_text()
    match = re.search(r"(?m)^DATABASE_URL=(.*)$", text)
    if match is None or text.count("DATABASE_URL=") != 1:
        raise RuntimeError(f"{fixture / '.flaskenv'} must have exactly one DATABASE_URL line")
    url = article_style_url(match.group(1), database_url)
    text = text.replace(match.group(0), f"DATABASE_URL={url}")
    flaskenv.write_text(text)
    init = dest / "app" / "__init__.py"
    init.write_text(init.read_text().replace(MIGRATE_CALL, _migrate_call(migrate_options or {})))
    header_lines = (fixture / "app" / "models.py").read_text().count("\n")
    return Project(root=dest, models_offset=header_lines + 2, fixture=fixture)
