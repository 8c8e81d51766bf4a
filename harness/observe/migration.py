"""Reading the revision files that ``flask db migrate`` wrote.

The files are parsed with ``ast``, never imported: importing would run Alembic's code in the
harness's interpreter (a different SQLAlchemy from the stack's) and any code an author put
there. What comes out is what a reviewer looks at: the rendered ``upgrade()``/``downgrade()``
bodies, and a structured list of the ``op.*`` calls in them.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Op:
    """One ``op.<name>(...)`` call, or ``batch_op.<name>(...)`` inside ``op.batch_alter_table``."""

    name: str
    table: str | None = None
    column: str | None = None
    args: tuple[str, ...] = ()  # the other positional arguments, as source
    kwargs: dict[str, str] = field(default_factory=dict)  # keyword arguments, as source
    batch: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.name}
        for key in ("table", "column"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.args:
            out["args"] = list(self.args)
        if self.kwargs:
            out["kwargs"] = dict(self.kwargs)
        if self.batch:
            out["batch"] = True
        return out


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | tuple[str, ...] | None
    message: str
    upgrade: str  # the function body as Alembic rendered it, dedented
    downgrade: str
    upgrade_ops: tuple[Op, ...]
    downgrade_ops: tuple[Op, ...]


class RevisionFileError(Exception):
    pass


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.unparse(node)


def _string(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


# op name -> positions of (table, column) among the positional arguments of `op.<name>`.
# Inside `op.batch_alter_table(...)` the table comes from the context and is not an argument.
_POSITIONS: dict[str, tuple[int | None, int | None]] = {
    "create_table": (0, None),
    "drop_table": (0, None),
    "rename_table": (0, None),
    "add_column": (0, None),
    "drop_column": (0, 1),
    "alter_column": (0, 1),
    "create_index": (1, None),
    "create_unique_constraint": (1, None),
    "create_foreign_key": (1, None),
    "create_check_constraint": (1, None),
    "create_primary_key": (1, None),
    "drop_constraint": (1, None),
    "create_table_comment": (0, None),
    "drop_table_comment": (0, None),
}


def _column_name(node: ast.AST) -> str | None:
    """`sa.Column('name', ...)` -> 'name'."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Column":
        return _string(node.args[0]) if node.args else None
    return None


def _op_from_call(call: ast.Call, batch_table: str | None) -> Op:
    name = call.func.attr  # type: ignore[attr-defined]
    args = list(call.args)
    table_pos, column_pos = _POSITIONS.get(name, (None, None))
    table, column = batch_table, None
    taken: set[int] = set()
    if batch_table is None and table_pos is not None and table_pos < len(args):
        table = _string(args[table_pos])
        taken.add(table_pos)
    if column_pos is not None:
        column_pos -= 0 if batch_table is None else 1
        if column_pos < len(args):
            column = _string(args[column_pos])
            taken.add(column_pos)
    if name == "add_column":
        column = _column_name(args[-1]) if args else None
    kwargs = {kw.arg or "**": ast.unparse(kw.value) for kw in call.keywords}
    if name == "drop_index" and "table_name" in kwargs:
        table = str(_literal(ast.parse(kwargs.pop("table_name"), mode="eval").body))
    rest = tuple(ast.unparse(a) for i, a in enumerate(args) if i not in taken)
    return Op(name=name, table=table, column=column, args=rest, kwargs=kwargs, batch=batch_table is not None)


def _call_on(stmt: ast.stmt, receiver: str) -> ast.Call | None:
    """`receiver.something(...)` as a statement -> the call, else None."""
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == receiver:
            return stmt.value
    return None


def _ops(body: list[ast.stmt]) -> list[Op]:
    ops: list[Op] = []
    for stmt in body:
        if call := _call_on(stmt, "op"):
            ops.append(_op_from_call(call, None))
        elif isinstance(stmt, ast.With):
            for item in stmt.items:
                ctx = item.context_expr
                if (
                    isinstance(ctx, ast.Call)
                    and isinstance(ctx.func, ast.Attribute)
                    and ctx.func.attr == "batch_alter_table"
                    and isinstance(item.optional_vars, ast.Name)
                ):
                    table = (_string(ctx.args[0]) if ctx.args else None) or "?"
                    inner = [_call_on(s, item.optional_vars.id) for s in stmt.body]
                    ops += [_op_from_call(c, table) for c in inner if c]
    return ops


def parse_ops(body: str) -> tuple[Op, ...]:
    """The ops of a function body given as source text (e.g. a listing quoted in an article)."""
    return tuple(_ops(ast.parse(textwrap.dedent(body)).body))


def _body_text(source_lines: list[str], func: ast.FunctionDef, next_line: int) -> str:
    """The function's body as written, up to the next top-level statement (trailing comments
    such as Alembic's `# ### end Alembic commands ###` included)."""
    body = source_lines[func.lineno : next_line - 1]
    return textwrap.dedent("\n".join(body)).strip("\n") + "\n"


def read_revision(path: Path) -> Revision:
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise RevisionFileError(f"{path.name}: not valid Python: {exc}") from None
    values: dict[str, Any] = {}
    funcs: dict[str, ast.FunctionDef] = {}
    lines = source.splitlines()
    ends: dict[str, int] = {}
    for index, node in enumerate(tree.body):
        if isinstance(node, ast.FunctionDef):
            following = tree.body[index + 1] if index + 1 < len(tree.body) else None
            ends[node.name] = following.lineno if following else len(lines) + 1
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = _literal(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            values[node.target.id] = _literal(node.value)
        elif isinstance(node, ast.FunctionDef):
            funcs[node.name] = node
    if "revision" not in values or "upgrade" not in funcs or "downgrade" not in funcs:
        raise RevisionFileError(f"{path.name}: no `revision`, `upgrade()` or `downgrade()` found")
    docstring = ast.get_docstring(tree) or ""
    down = values.get("down_revision")
    return Revision(
        revision=str(values["revision"]),
        down_revision=tuple(down) if isinstance(down, list | tuple) else down,
        # the whole message: Alembic's template writes it above a blank line and "Revision ID:"
        # (a message with a newline in it keeps every line)
        message=docstring.split("\n\nRevision ID:")[0].strip() if docstring else "",
        upgrade=_body_text(lines, funcs["upgrade"], ends["upgrade"]),
        downgrade=_body_text(lines, funcs["downgrade"], ends["downgrade"]),
        upgrade_ops=tuple(_ops(funcs["upgrade"].body)),
        downgrade_ops=tuple(_ops(funcs["downgrade"].body)),
    )
