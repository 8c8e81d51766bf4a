"""Scenario files: YAML in, validated dataclasses out.

A scenario is the one thing an author writes, so its errors must point at the author's file
and line, never at a traceback inside the harness. Validation is done by JSON Schema
(``scenario.schema.json``) on the loaded data; the YAML node tree is kept only to turn a
schema error's path back into a line number.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness import commands_spec
from harness.commands_spec import COMMAND_NAMES, SPECS
from harness.edit import Edit


class ScenarioError(Exception):
    """A scenario file that cannot be used; the message names file, line and what to do."""


@dataclass(frozen=True)
class Command:
    """One thing a step does: a ``flask db`` command, or SQL run by the harness itself."""

    name: str  # one of COMMAND_NAMES
    arg: str | None = None  # migrate message, upgrade/downgrade target, SQL text (the scalar form)
    expect_failure: bool = False
    expect_any: bool = False  # the outcome is observed (and snapshotted) but not judged: stacks differ
    line: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # a `flask db` command's options (commands_spec)
    match: str | None = None  # with expect_failure: a regular expression the error line must match
    why: str | None = None  # with expect_failure: why it fails, in the author's words
    edit: Edit | None = None  # for `edit`

    @property
    def label(self) -> str:
        """How the command reads in reports: the CLI line a reader would type."""
        if self.edit is not None:
            return self.edit.label
        if self.name in ("sql", "query"):
            return f"{self.name}: {self.arg}"
        # the first six commands keep the labels their snapshots hold; the rest show the full line
        if (self.options and self.arg is None) or self.name not in (
            "init",
            "migrate",
            "upgrade",
            "downgrade",
        ):
            return commands_spec.label(self.name, self.options)
        if self.name == "migrate":
            return f"flask db migrate -m {self.arg!r}"
        return " ".join(["flask db", self.name, *([self.arg] if self.arg else [])])

    def argv(self, resolver: Any = lambda s: s) -> list[str]:
        """The arguments after `flask db`, revision references resolved by `resolver`."""
        return commands_spec.argv(self.name, self.options, resolver)


@dataclass(frozen=True)
class Step:
    name: str
    models: str | None  # None: the models stay as the previous step left them
    models_line: int  # 1-based line in the scenario file where the models text starts
    commands: tuple[Command, ...]
    line: int = 0


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    path: Path
    steps: tuple[Step, ...]
    migrate_options: dict[str, Any] = field(default_factory=dict)
    known_failures: dict[str, str] = field(default_factory=dict)  # invariant name -> why
    requires: dict[str, str] = field(default_factory=dict)  # distribution -> version specifier
    broken_on: dict[str, str] = field(default_factory=dict)  # stack -> why it cannot pass there
    hooks: str | None = None  # Python text written before Migrate(...) in app/__init__.py
    fixes: tuple[str, ...] = ()  # ids of the scenarios whose pitfall this one fixes

    @property
    def snapshot_dir(self) -> Path:
        return self.path.parent / "__snapshots__"


def _schema() -> dict[str, Any]:
    text = resources.files("harness").joinpath("scenario.schema.json").read_text()
    return json.loads(text)


def _node_at(node: yaml.Node, path: list[Any]) -> yaml.Node:
    """Follow a JSON path through the composed YAML tree, as far as it goes."""
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if k.value == part]
            if not match:
                break
            node = match[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
    return node


def _key_line(node: yaml.Node, key: str) -> int | None:
    if isinstance(node, yaml.MappingNode):
        for k, _ in node.value:
            if k.value == key:
                return k.start_mark.line + 1
    return None


def _where(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(error: jsonschema.ValidationError, root: yaml.Node) -> tuple[int, str]:
    """Turn a schema error into (line, message) in the author's terms."""
    path = list(error.absolute_path)
    node = _node_at(root, path)
    line = node.start_mark.line + 1
    where = _where(path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        key = extra[0] if extra else "?"
        line = _key_line(node, key) or line
        if path and path[-1] in SPECS:
            return line, (
                f"{where}: unknown option {key!r} for `flask db {path[-1]}`; its options: "
                f"{', '.join(o.key for o in SPECS[path[-1]].options) or 'none'}"
            )
        if not error.absolute_path or "commands" not in error.absolute_path or path[-1] == "edit":
            return line, f"{where}: unknown key {key!r}; allowed keys here: {', '.join(allowed)}"
        return line, f"{where}: unknown key {key!r}; a command is one of {', '.join(COMMAND_NAMES)}"
    if error.validator == "not" and path == ["migrate_options"]:
        # Migrate(directory=...) would put the migrations folder outside the temporary project, and
        # command=... would rename the `flask db` the harness runs: both belong to the harness.
        return _key_line(node, error.instance) or line, (
            f"migrate_options: {error.instance!r} cannot be set by a scenario: the migrations folder "
            "and the `flask db` command stay the temporary project's own"
        )
    if error.validator == "oneOf" and path and path[-1] == "edit":
        return line, f"{where}: an edit needs exactly one of diff, replace, or upgrade/downgrade bodies"
    if error.validator == "not" and path and path[-1] == "edit":
        return line, f"{where}: an edit names either `revision` or `file`, not both"
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        return line, f"{where}: a command needs exactly one of {', '.join(COMMAND_NAMES)}"
    if error.validator == "anyOf":
        # Report the branch written for this kind of value, so 'upgarde' is called an
        # unknown command, not "not valid under any of the given schemas".
        context = error.context or []
        wrong_shape = {e.schema_path[0] for e in context if e.validator == "type" and not e.relative_path}
        shaped = [e for e in context if e.schema_path[0] not in wrong_shape]
        if shaped:
            return _describe(shaped[0], root)
    if error.validator in ("oneOf", "anyOf") and error.context:
        # A value of a shape no branch takes (a list where a message or options go): name the
        # shapes that are taken, not "not valid under any of the given schemas".
        kinds = [e.validator_value for e in error.context if e.validator == "type" and not e.relative_path]
        if len(kinds) == len(error.context):
            names = [repr(t) for k in kinds for t in ([k] if isinstance(k, str) else k)]
            names = list(dict.fromkeys(names))
            shapes = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
            return line, f"{where}: {error.instance!r} is not of type {shapes}"
    if error.validator == "enum" and "commands" in path:
        return line, (
            f"{where}: unknown command {error.instance!r}; write a `flask db` command alone "
            f"({', '.join(SPECS)}), or with a value or options, or one of sql, query, edit with a value"
        )
    return line, f"{where}: {error.message}"


def _edit(raw: dict[str, Any]) -> Edit:
    return Edit(
        revision=raw.get("revision"),
        file=raw.get("file"),
        diff=raw.get("diff"),
        replace=tuple((r["old"], r["new"]) for r in raw.get("replace") or ()),
        upgrade=raw.get("upgrade"),
        downgrade=raw.get("downgrade"),
    )


def _command(item: dict[str, Any], line: int, where: str) -> Command:
    name = next(k for k in COMMAND_NAMES if k in item)
    arg = item[name]
    expect = item.get("expect")
    for key in ("match", "why"):
        if key in item and expect != "failure":
            raise ScenarioError(f"{where}: `{key}` goes with `expect: failure`; add it or remove `{key}`.")
    if "match" in item:
        try:
            re.compile(item["match"])
        except re.error as exc:
            raise ScenarioError(f"{where}: `match` is not a valid regular expression: {exc}.") from None
    edit = _edit(arg) if name == "edit" else None
    if edit and edit.file and (edit.upgrade is not None or edit.downgrade is not None):
        raise ScenarioError(f"{where}: new upgrade()/downgrade() bodies go in a revision, not in `file`.")
    scalar = not isinstance(arg, dict | list) and arg is not None
    return Command(
        name=name,
        arg=str(arg) if scalar else None,
        expect_failure=expect == "failure",
        expect_any=expect == "any",
        line=line,
        options=commands_spec.options_of(name, arg) if name in SPECS else {},
        match=item.get("match"),
        why=item.get("why"),
        edit=edit,
    )


def _step_commands(raw: list[Any], nodes: yaml.SequenceNode, path: Path) -> tuple[Command, ...]:
    commands = []
    for item, node in zip(raw, nodes.value, strict=True):
        line = node.start_mark.line + 1
        if isinstance(item, str):
            commands.append(Command(name=item, line=line))
            continue
        commands.append(_command(item, line, f"{path}:{line}"))
    return tuple(commands)


def _text_start(node: yaml.Node) -> int:
    """1-based line of a scalar's first character of content (block scalars start a line later)."""
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        return node.start_mark.line + 2
    return node.start_mark.line + 1


def parse_scenario(text: str, path: Path) -> Scenario:
    """Parse and validate one scenario file's text; raise ScenarioError naming file and line."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}:{line}: not valid YAML: {problem}. Fix the YAML syntax.") from None
    if root is None:
        raise ScenarioError(f"{path}:1: the file is empty; a scenario needs id, title and steps.")
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        described = sorted({_describe(e, root) for e in errors})
        lines = [f"{path}:{line}: {msg}" for line, msg in described]
        raise ScenarioError(
            "\n".join(lines) + "\nFix the scenario file; its format is described in docs/scenarios.md."
        )
    steps_node = _node_at(root, ["steps"])
    steps = []
    for index, raw_step in enumerate(data["steps"]):
        step_node = steps_node.value[index]
        models_node = _node_at(step_node, ["models"])
        steps.append(
            Step(
                name=raw_step["name"],
                models=raw_step.get("models"),
                models_line=_text_start(models_node) if "models" in raw_step else 0,
                commands=_step_commands(raw_step["commands"], _node_at(step_node, ["commands"]), path),
                line=step_node.start_mark.line + 1,
            )
        )
    return Scenario(
        id=data["id"],
        title=data["title"],
        path=path,
        steps=tuple(steps),
        migrate_options=dict(data.get("migrate_options", {})),
        known_failures=dict(data.get("known_failures", {})),
        requires={k.lower(): v for k, v in data.get("requires", {}).items()},
        broken_on=dict(data.get("broken_on", {})),
        hooks=data.get("hooks"),
        fixes=tuple(data.get("fixes", ())),
    )


def load_scenario(path: Path) -> Scenario:
    return parse_scenario(path.read_text(encoding="utf-8"), path)


SCENARIO_SUFFIXES = (".yaml", ".yml")
SNAPSHOT_DIR = "__snapshots__"


def is_scenario_file(path: Path, roots: tuple[Path, ...] | None = None) -> bool:
    """What a scenario file is, for every part of the harness: a YAML file outside a
    ``__snapshots__`` folder, inside one of `roots` (by default: inside a ``scenarios`` folder)."""
    if path.suffix not in SCENARIO_SUFFIXES or SNAPSHOT_DIR in path.parts:
        return False
    if roots is None:
        return "scenarios" in path.parts[:-1]
    return any(path.is_relative_to(root) and path != root for root in roots)


def scenario_files(root: Path) -> list[Path]:
    """Every scenario file under `root`, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and is_scenario_file(p))


def scenario_ids_in(folder: Path) -> set[str]:
    """The ids the scenario files directly in `folder` declare (a file that does not parse counts
    by its stem, so its snapshots are not called unused while it is being fixed)."""
    ids = set()
    for path in folder.iterdir():
        if path.suffix in SCENARIO_SUFFIXES and path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
                ids.add(str(data["id"]) if isinstance(data, dict) and "id" in data else path.stem)
            except yaml.YAMLError:
                ids.add(path.stem)
    return ids
