"""What the database holds, from SQLAlchemy's inspector, as plain sorted data.

This runs in the harness's own interpreter against the scenario's database, so the observed
schema does not depend on the stack under test: two stacks that produce the same DDL give the
same schema snapshot. Everything is sorted so that the output is deterministic.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

SYSTEM_SCHEMAS = ("information_schema", "pg_catalog", "pg_toast")


def _user_schemas(inspector: sa.Inspector) -> list[str]:
    return sorted(
        s for s in inspector.get_schema_names() if s not in SYSTEM_SCHEMAS and not s.startswith("pg_")
    )


def _column(col: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": col["name"],
        "type": str(col["type"].compile(dialect=sa.dialects.postgresql.dialect())),
        "nullable": bool(col["nullable"]),
        "default": col.get("default"),
    }
    if col.get("autoincrement") is True:
        out["autoincrement"] = True
    if col.get("comment"):
        out["comment"] = col["comment"]
    if col.get("identity"):
        ident = col["identity"]
        out["identity"] = {"always": bool(ident.get("always")), "start": ident.get("start")}
    if col.get("computed"):
        out["computed"] = {
            "sqltext": str(col["computed"]["sqltext"]),
            "persisted": col["computed"].get("persisted"),
        }
    return out


def _table(inspector: sa.Inspector, name: str, schema: str | None, default: str | None) -> dict[str, Any]:
    pk = inspector.get_pk_constraint(name, schema=schema)
    fks = [
        {
            "name": fk.get("name"),
            "columns": fk["constrained_columns"],
            "references": (
                f"{fk['referred_schema']}." if fk.get("referred_schema") not in (None, default) else ""
            )
            + f"{fk['referred_table']}({', '.join(fk['referred_columns'])})",
            **({"options": dict(sorted(fk["options"].items()))} if fk.get("options") else {}),
        }
        for fk in inspector.get_foreign_keys(name, schema=schema)
    ]
    indexes = []
    for ix in inspector.get_indexes(name, schema=schema):
        entry: dict[str, Any] = {
            "name": ix["name"],
            "columns": ix["column_names"],
            "unique": bool(ix["unique"]),
        }
        where = (ix.get("dialect_options") or {}).get("postgresql_where")
        if where is not None:
            entry["where"] = str(where)
        indexes.append(entry)
    uniques = [
        {"name": u["name"], "columns": u["column_names"]}
        for u in inspector.get_unique_constraints(name, schema=schema)
    ]
    checks = [
        {"name": c["name"], "sqltext": str(c["sqltext"])}
        for c in inspector.get_check_constraints(name, schema=schema)
    ]
    table: dict[str, Any] = {
        "columns": [_column(c) for c in inspector.get_columns(name, schema=schema)],
        "primary_key": {"name": pk.get("name"), "columns": pk.get("constrained_columns", [])},
        "foreign_keys": sorted(fks, key=lambda f: (str(f["name"]), f["columns"])),
        "indexes": sorted(indexes, key=lambda i: str(i["name"])),
        "unique_constraints": sorted(uniques, key=lambda u: str(u["name"])),
        "check_constraints": sorted(checks, key=lambda c: str(c["name"])),
    }
    comment = inspector.get_table_comment(name, schema=schema).get("text")
    if comment:
        table["comment"] = comment
    return table


def inspect_schema(url: sa.URL) -> dict[str, Any]:
    """Tables (alembic_version aside), enum types, sequences and the alembic_version rows."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            default = inspector.default_schema_name
            tables: dict[str, Any] = {}
            sequences: list[str] = []
            versions: list[str] = []
            for schema in _user_schemas(inspector):
                prefix = "" if schema == default else f"{schema}."
                for name in sorted(inspector.get_table_names(schema=schema)):
                    if name == "alembic_version":
                        rows = conn.execute(sa.text(f'SELECT version_num FROM "{schema}".alembic_version'))
                        versions += sorted(r[0] for r in rows)
                        continue
                    tables[prefix + name] = _table(inspector, name, schema, default)
                sequences += [prefix + s for s in sorted(inspector.get_sequence_names(schema=schema))]
            enums = sorted(
                (
                    {
                        "name": ("" if e["schema"] == default else f"{e['schema']}.") + e["name"],
                        "labels": list(e["labels"]),
                    }
                    for e in inspector.get_enums(schema="*")
                ),
                key=lambda e: e["name"],
            )
            has_version_table = "alembic_version" in inspector.get_table_names(schema=default)
    finally:
        engine.dispose()
    return {
        "tables": tables,
        "enums": enums,
        "sequences": sequences,
        "alembic_version": versions if has_version_table or versions else None,
    }
