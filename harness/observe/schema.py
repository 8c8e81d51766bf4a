"""What the database holds, as plain sorted data: the complete view and a short summary.

Both run in the harness's own interpreter against the scenario's database, so the observed schema
does not depend on the stack under test: two stacks that produce the same DDL give the same schema.

``catalog_schema`` is the complete view. Snapshots and the roundtrip invariant use it. It reads
PostgreSQL's own catalogs and lets the server render each object the way it would itself
(``pg_get_indexdef``, ``pg_get_constraintdef``, ``pg_get_triggerdef``, ``pg_get_viewdef``,
``pg_get_functiondef``, ``pg_get_expr`` for defaults and generated columns, ``format_type``).
Why the catalogs and not a normalised ``pg_dump --schema-only``:

* pg_dump must be at least the server's major version, and the harness runs against PostgreSQL 15
  and the embedded wheel's 18 (and any ``--pg-url``); a catalog query needs only the connection
  the harness already has, so the view cannot fail for want of a matching client binary;
* the result is structured (table -> columns, constraints, indexes...), so a difference is named
  by its path (``tables.users.indexes.ix_users_email``) rather than found in a text diff, and the
  snapshot reads per object;
* pg_dump's text carries what varies and what is not schema (``SET`` lines, ownership, the
  ``restrict`` key of newer releases, dump-order comments), all of which would need stripping.

What varies is kept out rather than rewritten: no OID is ever selected; internal triggers (whose
names embed OIDs), TOAST tables, and the array types, row types and range constructors that
PostgreSQL makes implicitly are left out; objects in the connection's current schema are named
without it, others as ``schema.name``. The database name never appears in catalog output (the
session's replacements would normalise it if it did). NOT NULL is recorded on the column;
PostgreSQL 18's catalogued not-null constraints are therefore not listed again, so 15 and 18
give the same view.

Not observed (say so rather than pretend): owners and privileges, tablespaces, statistics
targets, row data other than ``alembic_version``'s, and ``plpgsql`` (present in every database
created from template1). An extension is recorded by name, schema and version, not member by member.

``inspect_schema`` is the short summary from SQLAlchemy's inspector (column types as SQLAlchemy
compiles them). The claims' checks read it; it hides what the inspector cannot express (an index
on ``lower(email)`` shows as ``columns: [null]``), which is why snapshots and the roundtrip do
not use it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from harness.database import connection

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
    """The short summary (the claims read it): tables (alembic_version aside), enum types,
    sequences and the alembic_version rows, as SQLAlchemy's inspector reports them."""
    with connection(url) as conn:
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
    return {
        "tables": tables,
        "enums": enums,
        "sequences": sequences,
        "alembic_version": versions if has_version_table or versions else None,
    }


# --- the complete view, from PostgreSQL's catalogs ------------------------------------------------

# A schema the harness looks into: not PostgreSQL's own.
_USER_NS = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"


def _not_in_extension(catalog: str, oid: str) -> str:
    """SQL: the object is not a member of an extension (those are listed under the extension)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass "
        f"AND e.objid = {oid} AND e.deptype = 'e')"
    )


_SCHEMAS = f"""
SELECT n.nspname, obj_description(n.oid, 'pg_namespace')
FROM pg_namespace n WHERE {_USER_NS} AND {_not_in_extension("pg_namespace", "n.oid")}
"""

_EXTENSIONS = """
SELECT x.extname, n.nspname, x.extversion
FROM pg_extension x JOIN pg_namespace n ON n.oid = x.extnamespace
WHERE x.extname <> 'plpgsql'
"""

_RELATIONS = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind, c.relpersistence, c.relrowsecurity,
       c.reloptions, obj_description(c.oid, 'pg_class'),
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END,
       ARRAY(SELECT pn.nspname || '.' || p.relname FROM pg_inherits i
             JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace pn ON pn.oid = p.relnamespace
             WHERE i.inhrelid = c.oid ORDER BY i.inhseqno)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND {_USER_NS}
  AND {_not_in_extension("pg_class", "c.oid")}
"""

_COLUMNS = """
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname END,
       col_description(a.attrelid, a.attnum)
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE a.attrelid = ANY(:oids) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# NOT NULL lives on the column (attnotnull); PostgreSQL 18 also catalogues it as contype 'n'.
_CONSTRAINTS = """
SELECT c.conrelid, c.conname, pg_get_constraintdef(c.oid, true), obj_description(c.oid, 'pg_constraint')
FROM pg_constraint c WHERE c.conrelid = ANY(:oids) AND c.contype <> 'n'
"""

# Indexes that implement a primary key, unique or exclusion constraint are that constraint's
# definition already (pg_get_constraintdef shows INCLUDE, the method and the WHERE clause).
_INDEXES = """
SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid), obj_description(ic.oid, 'pg_class'),
       i.indisclustered
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(:oids) AND NOT EXISTS (
    SELECT 1 FROM pg_constraint k
    WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
"""

_TRIGGERS = """
SELECT t.tgrelid, t.tgname, pg_get_triggerdef(t.oid, true), t.tgenabled
FROM pg_trigger t WHERE t.tgrelid = ANY(:oids) AND NOT t.tgisinternal
"""

_POLICIES = """
SELECT p.polrelid, p.polname, p.polcmd, p.polpermissive,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
FROM pg_policy p WHERE p.polrelid = ANY(:oids)
"""

_SEQUENCES = f"""
SELECT c.oid, n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
       (SELECT tn.nspname || '.' || tc.relname || '.' || a.attname ||
               CASE d.deptype WHEN 'i' THEN ' (identity)' ELSE '' END
        FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid
        JOIN pg_namespace tn ON tn.oid = tc.relnamespace
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')),
       obj_description(c.oid, 'pg_class')
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {_USER_NS} AND {_not_in_extension("pg_class", "c.oid")}
"""

# Types a user made: not the array and row types PostgreSQL makes for every type and table.
_TYPES = f"""
SELECT t.oid, n.nspname, t.typname, t.typtype,
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END,
       t.typnotnull, t.typdefault, obj_description(t.oid, 'pg_type'),
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       ARRAY(SELECT k.conname || ': ' || pg_get_constraintdef(k.oid, true) FROM pg_constraint k
             WHERE k.contypid = t.oid AND k.contype <> 'n' ORDER BY k.conname),
       ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
       CASE WHEN t.typtype = 'r' THEN (SELECT format_type(r.rngsubtype, NULL) FROM pg_range r
                                       WHERE r.rngtypid = t.oid) END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_class tc ON tc.oid = t.typrelid
WHERE {_USER_NS} AND {_not_in_extension("pg_type", "t.oid")}
  AND NOT (t.typcategory = 'A' AND t.typelem <> 0)
  AND (t.typrelid = 0 OR tc.relkind = 'c') AND t.typtype <> 'm'
"""

# Not the constructors PostgreSQL makes for a range type (they depend on it internally).
_FUNCTIONS = f"""
SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prokind,
       CASE WHEN p.prokind IN ('f', 'p', 'w') THEN pg_get_functiondef(p.oid) END,
       obj_description(p.oid, 'pg_proc')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {_USER_NS} AND {_not_in_extension("pg_proc", "p.oid")}
  AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass
                  AND i.objid = p.oid AND i.deptype = 'i')
"""

_TYPE_KINDS = {"e": "enum", "d": "domain", "c": "composite", "r": "range", "b": "base", "p": "pseudo"}
_REL_KINDS = {
    "r": "table",
    "p": "partitioned table",
    "f": "foreign table",
    "v": "view",
    "m": "materialized view",
}
_TRIGGER_STATES = {"D": "disabled", "R": "enabled on replica only", "A": "enabled always"}
_POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Keep a key only when it says something (a comment, an option): snapshots stay short."""
    if value not in (None, False, [], {}, ""):
        out[key] = value


def _sorted(d: dict[str, Any]) -> dict[str, Any]:
    return dict(sorted(d.items()))


def catalog_schema(url: sa.URL) -> dict[str, Any]:
    """The complete schema, from PostgreSQL's catalogs (see the module docstring).

    Keys: ``schemas`` (name -> comment), ``extensions``, ``types`` (enums with labels in order,
    domains, composite and range types), ``sequences`` (options and owning column), ``tables``
    (columns in order; constraints, indexes, triggers and policies by name, each as the server
    renders it), ``views``, ``functions`` and ``alembic_version`` (its rows; ``None`` when the
    table does not exist). The ``alembic_version`` table itself is not listed under ``tables``.
    """
    with connection(url) as conn:
        return _catalog(conn)


def _catalog(conn: sa.Connection) -> dict[str, Any]:
    q = lambda sql, **kw: conn.execute(sa.text(sql), kw).all()  # noqa: E731
    default = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    name = lambda schema, obj: obj if schema == default else f"{schema}.{obj}"  # noqa: E731

    schemas = {row[0]: row[1] for row in q(_SCHEMAS)}
    extensions = {ext: {"schema": ns, "version": version} for ext, ns, version in q(_EXTENSIONS)}

    tables: dict[str, Any] = {}
    views: dict[str, Any] = {}
    by_oid: dict[int, dict[str, Any]] = {}
    versions: list[str] | None = None
    for oid, ns, rel, kind, persistence, rls, options, comment, partkey, bound, viewdef, parents in q(
        _RELATIONS
    ):
        if rel == "alembic_version" and kind == "r":
            rows = conn.execute(sa.text(f'SELECT version_num FROM "{ns}".alembic_version')).scalars()
            versions = sorted((versions or []) + list(rows))
            continue
        entry: dict[str, Any] = {}
        if kind in ("v", "m"):
            entry["kind"] = _REL_KINDS[kind]
            entry["definition"] = viewdef.strip()
            views[name(ns, rel)] = entry
        else:
            entry["columns"] = []
            entry["constraints"] = {}
            entry["indexes"] = {}
            if kind != "r":
                entry["kind"] = _REL_KINDS[kind]
            tables[name(ns, rel)] = entry
        _put(entry, "unlogged", persistence == "u")
        _put(entry, "row_security", bool(rls))
        _put(entry, "options", sorted(options or []))
        _put(entry, "partition_key", partkey)
        _put(entry, "partition_of", bound)
        _put(entry, "inherits", [p.removeprefix(f"{default}.") for p in parents])
        _put(entry, "comment", comment)
        by_oid[oid] = entry
    oids = list(by_oid)

    for relid, col, type_, notnull, default_expr, identity, generated, collation, comment in q(
        _COLUMNS, oids=oids
    ):
        if "columns" not in by_oid[relid]:
            continue  # a view's columns follow from its definition
        column: dict[str, Any] = {"name": col, "type": type_, "nullable": not notnull}
        if generated:
            column["generated"] = f"{default_expr} STORED"
        else:
            _put(column, "default", default_expr)
        _put(column, "identity", {"a": "always", "d": "by default"}.get(identity))
        _put(column, "collation", collation)
        _put(column, "comment", comment)
        by_oid[relid]["columns"].append(column)
    for relid, con, definition, comment in q(_CONSTRAINTS, oids=oids):
        by_oid[relid]["constraints"][con] = definition + (f"  -- comment: {comment}" if comment else "")
    for relid, index, definition, comment, clustered in q(_INDEXES, oids=oids):
        extra = (" CLUSTER" if clustered else "") + (f"  -- comment: {comment}" if comment else "")
        by_oid[relid].setdefault("indexes", {})[index] = definition + extra
    for relid, trigger, definition, enabled in q(_TRIGGERS, oids=oids):
        state = _TRIGGER_STATES.get(enabled)
        by_oid[relid].setdefault("triggers", {})[trigger] = definition + (f"  -- {state}" if state else "")
    for relid, policy, cmd, permissive, using, check in q(_POLICIES, oids=oids):
        text = f"{'PERMISSIVE' if permissive else 'RESTRICTIVE'} FOR {_POLICY_COMMANDS.get(cmd, cmd)}"
        text += (f" USING ({using})" if using else "") + (f" WITH CHECK ({check})" if check else "")
        by_oid[relid].setdefault("policies", {})[policy] = text
    for entry in by_oid.values():
        for key in ("constraints", "indexes", "triggers", "policies"):
            if key in entry:
                entry[key] = _sorted(entry[key])

    sequences: dict[str, Any] = {}
    for _oid, ns, seq, type_, start, incr, smin, smax, cache, cycle, owner, comment in q(_SEQUENCES):
        entry = {"type": type_, "start": start, "increment": incr, "min": smin, "max": smax, "cache": cache}
        _put(entry, "cycle", bool(cycle))
        _put(entry, "owned_by", owner.removeprefix(f"{default}.") if owner else None)
        _put(entry, "comment", comment)
        sequences[name(ns, seq)] = entry

    types: dict[str, Any] = {}
    for _oid, ns, typ, kind, base, notnull, default_, comment, labels, checks, attrs, subtype in q(_TYPES):
        entry = {"kind": _TYPE_KINDS.get(kind, kind)}
        if kind == "e":
            entry["labels"] = list(labels)
        elif kind == "d":
            entry["type"] = base
            entry["nullable"] = not notnull
            _put(entry, "default", default_)
            _put(entry, "constraints", list(checks))
        elif kind == "c":
            entry["attributes"] = list(attrs)
        elif kind == "r":
            entry["subtype"] = subtype
        _put(entry, "comment", comment)
        types[name(ns, typ)] = entry

    functions: dict[str, Any] = {}
    for ns, fn, args, kind, definition, comment in q(_FUNCTIONS):
        text = definition.strip() if definition else f"({'aggregate' if kind == 'a' else kind})"
        functions[f"{name(ns, fn)}({args})"] = text + (f"\n-- comment: {comment}" if comment else "")

    return {
        "schemas": _sorted(schemas),
        "extensions": _sorted(extensions),
        "types": _sorted(types),
        "sequences": _sorted(sequences),
        "tables": _sorted(tables),
        "views": _sorted(views),
        "functions": _sorted(functions),
        "alembic_version": versions,
    }


# --- comparing two complete views -----------------------------------------------------------------


def _show(value: Any, limit: int = 160) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _named(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def _walk(a: Any, b: Any, path: str, names: tuple[str, str], out: list[str]) -> None:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"{sub}: only {names[0]}: {_show(a[key])}")
            elif key not in a:
                out.append(f"{sub}: only {names[1]}: {_show(b[key])}")
            else:
                _walk(a[key], b[key], sub, names, out)
        return
    if isinstance(a, list) and isinstance(b, list) and a and b and _named(a) and _named(b):
        # columns: compare by name, then the order
        left, right = {i["name"]: i for i in a}, {i["name"]: i for i in b}
        _walk(left, right, path, names, out)
        common_a = [n for n in left if n in right]
        common_b = [n for n in right if n in left]
        if common_a != common_b:
            out.append(f"{path}: order {', '.join(common_a)} {names[0]}, {', '.join(common_b)} {names[1]}")
        return
    out.append(f"{path}: {_show(a)} {names[0]}, {_show(b)} {names[1]}")


def schema_diff(
    a: dict[str, Any], b: dict[str, Any], names: tuple[str, str] = ("before", "after")
) -> list[str]:
    """Every difference between two schema views, one line each, named by its path.

    ``names`` say where each side was observed ("in the baseline", "at base"); a line reads
    ``tables.users.indexes.ix_users_email: CREATE INDEX ... (lower(email)) before, CREATE INDEX
    ... (upper(email)) after``. Columns are compared by name, and then their order.
    """
    out: list[str] = []
    _walk(a, b, "", names, out)
    return out


def summarise_diff(lines: list[str], limit: int = 8) -> str:
    """The first `limit` differences joined for a one-paragraph message, with a count of the rest."""
    shown = "; ".join(lines[:limit])
    return shown + (f"; and {len(lines) - limit} more" if len(lines) > limit else "")
