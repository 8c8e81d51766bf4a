"""What the article says, read from the article's own text.

Every expected value a claim is checked against (the install line, the ``.flaskenv`` lines,
the ``migrations/`` tree, the quoted ``upgrade()``/``downgrade()``, the ``Owner`` model, the
``flask db --help`` listing) is extracted here from the article file, never typed into the
harness. If the article is edited, the checks follow it.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

from harness.claims.helptext import help_commands, help_options

ARTICLE_ENV = "MIGRATE_HARNESS_ARTICLE"
DEFAULT_ARTICLE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "article" / "flask-migrate-autogenerate.txt"
)


class ArticleError(Exception):
    """The article text lacks a part a claim needs; names the part."""


@dataclass(frozen=True)
class Article:
    path: Path
    text: str
    install_packages: tuple[str, ...]  # the from-scratch `pipenv install` line
    flaskenv: dict[str, str]  # FLASK_APP, FLASK_ENV, DATABASE_URL
    init_tree: tuple[str, ...]  # entries under migrations/, directories with a trailing "/"
    migrate_message: str
    owner_model: str  # the Owner class, as the article writes it
    upgrade_body: str  # the quoted listing's function bodies, dedented
    downgrade_body: str
    help_commands: dict[str, str]  # `flask db --help` command -> description, as quoted
    help_options: tuple[str, ...]
    # Alembic commands the article says flask db lacks ("..., except ensure_version."); none as written
    alembic_exceptions: tuple[str, ...] = ()

    def quote(self, start: str, lines: int = 1) -> str:
        """The article's line(s) starting with `start`, for evidence."""
        all_lines = self.text.splitlines()
        for index, line in enumerate(all_lines):
            if line.strip().startswith(start):
                return "\n".join(all_lines[index : index + lines]).strip()
        return start

    @property
    def owner_columns(self) -> dict[str, dict[str, object]]:
        """Columns of the article's Owner model: name -> {type, length, nullable, primary_key}."""
        tree = ast.parse(self.owner_model)
        columns: dict[str, dict[str, object]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                call = node.value
                if not (isinstance(call.func, ast.Attribute) and call.func.attr == "Column"):
                    continue
                name = node.targets[0].id  # type: ignore[attr-defined]
                type_node = call.args[0]
                length = None
                if isinstance(type_node, ast.Call):
                    length = ast.literal_eval(type_node.args[0]) if type_node.args else None
                    type_node = type_node.func
                kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
                primary = bool(kwargs.get("primary_key", False))
                columns[name] = {
                    "type": type_node.attr,  # type: ignore[attr-defined]
                    "length": length,
                    "nullable": bool(kwargs.get("nullable", not primary)),
                    "primary_key": primary,
                }
        return columns


def _between(text: str, start: str, end: str) -> str:
    begin = text.find(start)
    if begin < 0:
        raise ArticleError(f"the article has no {start!r}")
    stop = text.find(end, begin)
    if stop < 0:
        raise ArticleError(f"the article has no {end!r} after {start!r}")
    return text[begin:stop]


INSTALL_START = "pipenv install --python"
INSTALL_END = "That will install"
ALEMBIC_SENTENCE = "All of the Alembic commands are there, like"


def _install_packages(text: str) -> tuple[str, ...]:
    """The requirements of the from-scratch line, read as a shell reads it (so a quoted
    'SQLAlchemy<2.1' is one requirement, and the --python value is not a package)."""
    block = _between(text, INSTALL_START, INSTALL_END)
    words = shlex.split(block.replace("\\\n", " "), comments=False)[2:]
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word == "--python":
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return tuple(out)


def install_line_numbers(text: str) -> list[int]:
    """1-based numbers of the lines the from-scratch install command spans."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.strip().startswith(INSTALL_START))
    end = start
    while lines[end].rstrip().endswith("\\"):
        end += 1
    return list(range(start + 1, end + 2))


def _flaskenv(text: str) -> dict[str, str]:
    """The .flaskenv block: the run of KEY=VALUE lines that starts with FLASK_APP=."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("FLASK_APP=")), None)
    found: dict[str, str] = {}
    for line in lines[start:] if start is not None else []:
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(\S+)", line.strip())
        if not match:
            break
        found[match.group(1)] = match.group(2)
    if "FLASK_APP" not in found or "DATABASE_URL" not in found:
        raise ArticleError("the article's .flaskenv lines (FLASK_APP=, DATABASE_URL=) were not found")
    return found


def _alembic_exceptions(text: str) -> tuple[str, ...]:
    line = next((ln for ln in text.splitlines() if ln.strip().startswith(ALEMBIC_SENTENCE)), "")
    sentence = line.split(". ", 1)[0]
    match = re.search(r"except ([a-z_]+(?:(?:, | and )[a-z_]+)*)", sentence)
    return tuple(re.split(r", | and ", match.group(1))) if match else ()


def _init_tree(text: str) -> tuple[str, ...]:
    block = _between(text, "└── migrations", "You can see that")
    entries = []
    for line in block.splitlines()[1:]:
        match = re.search(r"[├└]── (\S+)", line)
        if match:
            entries.append(match.group(1))
    # the article's tree shows folders without a slash; versions is the one folder Alembic makes
    return tuple(f"{e}/" if e == "versions" else e for e in entries)


def _function_bodies(listing: str) -> tuple[str, str]:
    up = _between(listing, "def upgrade():", "def downgrade():")
    down = listing[listing.index("def downgrade():") :]

    def body(block: str) -> str:
        lines = block.strip("\n").splitlines()[1:]
        return textwrap.dedent("\n".join(lines)).strip("\n") + "\n"

    return body(up), body(down)


def _help(text: str) -> tuple[dict[str, str], tuple[str, ...]]:
    block = _between(
        text, "Usage: flask db [OPTIONS] COMMAND [ARGS]...", "All of the Alembic commands are there, like"
    )
    return help_commands(block), tuple(help_options(block))


def load_article(path: Path | None = None) -> Article:
    path = path or Path(os.environ.get(ARTICLE_ENV) or DEFAULT_ARTICLE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ArticleError(
            f"cannot read the article at {path}: {exc}; pass --article PATH or set {ARTICLE_ENV}"
        ) from None
    return parse_article(text, path)


def parse_article(text: str, path: Path) -> Article:
    """The article's claims from its text (`path` only names it: an edited text keeps the name)."""
    listing = _between(text, "def upgrade():", "It autogenerated")
    upgrade_body, downgrade_body = _function_bodies(listing)
    model = _between(text, "class Owner(db.Model):", "Ok. Here it comes")
    message = re.search(r'flask db migrate -m "([^"]+)"', text)
    if not message:
        raise ArticleError('the article has no `flask db migrate -m "..."` command')
    commands, options = _help(text)
    return Article(
        path=path,
        text=text,
        install_packages=_install_packages(text),
        flaskenv=_flaskenv(text),
        init_tree=_init_tree(text),
        migrate_message=message.group(1),
        owner_model=model.strip() + "\n",
        upgrade_body=upgrade_body,
        downgrade_body=downgrade_body,
        help_commands=commands,
        help_options=options,
        alembic_exceptions=_alembic_exceptions(text),
    )
