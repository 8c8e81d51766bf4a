"""The floor: the scenarios' models driven through Alembic's Python API in ONE process.

Runs in the STACK's interpreter (``<stack>/bin/python floor_main.py``), like the fork server,
so it must import only the standard library and the stack's packages. It reads a JSON job on
stdin and prints timings as JSON on stdout. For each scenario, on its own fresh database:

- each step with models declares them on a new ``SQLAlchemy()`` (the project's own header);
- each ``migrate`` is timed as autogenerate (compare with the database) + rendering the
  upgrade code, which is what ``flask db migrate`` does besides imports and file writing;
- each ``upgrade`` is timed as running the pending rendered code through ``Operations`` in
  one transaction: the DDL an upgrade sends;
- ``sql``/``query`` commands run untimed so that data-dependent steps see the same rows.

No Flask app, no CLI, no logging configuration, no migration files: what remains is the work
itself, the floor a runner can approach but not beat.
"""

import json
import sys
import time
import traceback


def _upgrade_code(script, batch):
    from alembic.autogenerate import render_python_code

    code = render_python_code(script.upgrade_ops, render_as_batch=batch)
    # the code a migration file's `def upgrade():` holds (first line unindented, as the template)
    return "def upgrade():\n    " + code + "\n"


def run_scenario(scenario, header, timings, errors):
    import sqlalchemy as sa
    from alembic.autogenerate import produce_migrations
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    engine = sa.create_engine(scenario["url"], poolclass=sa.pool.NullPool)
    options = {"compare_type": True, **scenario.get("options", {})}
    batch = bool(options.pop("render_as_batch", False))
    metadata, pending = None, []
    try:
        for step in scenario["steps"]:
            if step["models"] is not None:
                namespace = {"__name__": "app.models"}
                exec(compile(header + "\n\n" + step["models"], "app/models.py", "exec"), namespace)
                metadata = namespace["db"].metadata
            for name, arg in step["commands"]:
                try:
                    if name in ("sql", "query"):
                        with engine.begin() as conn:
                            conn.execute(sa.text(arg))
                    elif name == "migrate" and metadata is not None:
                        start = time.perf_counter()
                        with engine.begin() as conn:
                            context = MigrationContext.configure(
                                conn, opts={"target_metadata": metadata, **options}
                            )
                            code = _upgrade_code(produce_migrations(context, metadata), batch)
                        timings.append(
                            {
                                "scenario": scenario["id"],
                                "op": "migrate",
                                "seconds": time.perf_counter() - start,
                            }
                        )
                        pending.append(code)
                    elif name == "upgrade" and pending:
                        start = time.perf_counter()
                        with engine.begin() as conn:
                            context = MigrationContext.configure(conn)
                            namespace = {"op": Operations(context), "sa": sa}
                            namespace["postgresql"] = __import__(
                                "sqlalchemy.dialects.postgresql", fromlist=["postgresql"]
                            )
                            for code in pending:
                                exec(code, namespace)
                                namespace["upgrade"]()
                        timings.append(
                            {
                                "scenario": scenario["id"],
                                "op": "upgrade",
                                "seconds": time.perf_counter() - start,
                            }
                        )
                        pending = []
                except Exception as exc:  # an expected failure in the scenario: note it, go on
                    errors.append(f"{scenario['id']}: {name}: {type(exc).__name__}: {str(exc)[:200]}")
                    pending = []
    finally:
        engine.dispose()


def main():
    job = json.load(sys.stdin)
    import alembic  # noqa: F401  (imports are not the floor: pay them before timing anything)
    import flask_sqlalchemy  # noqa: F401
    import psycopg2  # noqa: F401
    import sqlalchemy.dialects.postgresql  # noqa: F401

    timings, errors = [], []
    for scenario in job["scenarios"]:
        try:
            run_scenario(scenario, job["header"], timings, errors)
        except Exception:
            errors.append(f"{scenario['id']}: {traceback.format_exc(limit=3)}")
    json.dump({"timings": timings, "errors": errors}, sys.stdout)


if __name__ == "__main__":
    main()
