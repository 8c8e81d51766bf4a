"""Scenario parsing and every kind of validation error: file, line and key in the message."""

from pathlib import Path

import pytest

from harness.edit import Edit
from harness.scenario import Scenario, ScenarioError, parse_scenario

PATH = Path("scenarios/x/example.yaml")

GOOD = """\
id: example
title: an example
migrate_options:
  compare_server_default: true
steps:
  - name: first
    models: |
      class Owner(db.Model):
          id = db.Column(db.Integer, primary_key=True)
    commands:
      - init
      - migrate: "it's \\"quoted\\" & $(not a shell)"
      - upgrade
  - name: second
    commands:
      - downgrade: base
        expect: failure
      - upgrade: head
      - sql: INSERT INTO owners DEFAULT VALUES
      - query: SELECT id FROM owners
"""


def error_of(text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, PATH)
    return str(info.value)


def test_a_valid_scenario_parses_into_steps_and_commands():
    scenario = parse_scenario(GOOD, PATH)
    assert scenario.id == "example"
    assert scenario.migrate_options == {"compare_server_default": True}
    first, second = scenario.steps
    assert first.models.startswith("class Owner(db.Model):")
    assert first.models_line == 8  # the line after `models: |`
    assert [c.name for c in first.commands] == ["init", "migrate", "upgrade"]
    assert first.commands[1].arg == 'it\'s "quoted" & $(not a shell)'
    assert first.commands[1].line == 12
    assert second.models is None
    downgrade = second.commands[0]
    assert (downgrade.name, downgrade.arg, downgrade.expect_failure) == ("downgrade", "base", True)
    assert second.commands[1].arg == "head"
    assert [c.name for c in second.commands[2:]] == ["sql", "query"]


def test_a_misspelt_bare_command_names_the_line_and_the_word():
    text = GOOD.replace("      - upgrade\n  - name: second", "      - upgarde\n  - name: second")
    message = error_of(text)
    assert "scenarios/x/example.yaml:13:" in message
    assert "steps[0].commands[2]" in message
    assert "unknown command 'upgarde'" in message


def test_a_misspelt_command_key_names_the_line_and_the_key():
    text = GOOD.replace("      - upgrade: head", "      - upgarde: head")
    message = error_of(text)
    assert "example.yaml:18:" in message
    assert "unknown key 'upgarde'" in message


def test_an_unknown_step_key_lists_the_allowed_keys():
    message = error_of(GOOD.replace("    models: |", "    modles: |"))
    assert "example.yaml:7:" in message
    assert "unknown key 'modles'; allowed keys here: commands, models, name" in message


def test_a_missing_field_is_named():
    message = error_of(GOOD.replace("title: an example\n", ""))
    assert "example.yaml:1:" in message and "'title' is a required property" in message


def test_a_wrong_type_names_the_key_and_line():
    message = error_of(GOOD.replace("  - name: second\n", "  - name: second\n    models: 3\n"))
    assert "example.yaml:15:" in message and "steps[1].models: 3 is not of type 'string'" in message


def test_two_commands_in_one_item_are_refused():
    message = error_of(GOOD.replace("      - upgrade: head", "      - upgrade: head\n        migrate: m"))
    assert "example.yaml:18:" in message and "needs exactly one of" in message


def test_malformed_yaml_names_the_line():
    message = error_of("id: a\ntitle: t\nsteps:\n  - name: s\n   commands: [init]\n")
    assert "example.yaml:5:" in message and "not valid YAML" in message


def test_an_empty_file_is_refused():
    assert "the file is empty" in error_of("")


def test_a_bad_id_and_a_bad_option_name_are_refused():
    message = error_of(GOOD.replace("id: example", "id: Bad Id").replace("compare_server_default", "a-b"))
    assert "example.yaml:1:" in message and "id: 'Bad Id' does not match" in message
    assert "example.yaml:4:" in message


def test_requires_broken_on_and_expect_any_are_read():
    text = GOOD.replace(
        "steps:\n",
        'requires:\n  SQLAlchemy: ">=2.0"\nbroken_on:\n  mid2023: a bug in that alembic\nsteps:\n',
        1,
    ).replace("        expect: failure", "        expect: any")
    scenario = parse_scenario(text, PATH)
    assert scenario.requires == {"sqlalchemy": ">=2.0"}
    assert scenario.broken_on == {"mid2023": "a bug in that alembic"}
    downgrade = scenario.steps[1].commands[0]
    assert (downgrade.expect_any, downgrade.expect_failure) == (True, False)
    assert "expect" in error_of(GOOD.replace("expect: failure", "expect: maybe"))


def test_unmet_requirements_compare_with_the_installed_versions():
    from harness.judge import unmet_requirements

    assert unmet_requirements({"sqlalchemy": ">=2.0"}, {"SQLAlchemy": "2.0.58"}) == []
    assert unmet_requirements({"sqlalchemy": ">=2.0"}, {"sqlalchemy": "1.4.54"}) == [
        "sqlalchemy>=2.0 (installed: 1.4.54)"
    ]
    assert unmet_requirements({"flask_migrate": ">=4"}, {}) == ["flask_migrate>=4 (installed: none)"]


# -- parsing ------------------------------------------------------------------------------------

BASE = """\
id: lang
title: t
steps:
  - name: s
    commands:
{commands}"""


def _parse(commands: str) -> Scenario:
    return parse_scenario(BASE.format(commands=commands), Path("scenarios/x/lang.yaml"))


def _error(commands: str) -> str:
    with pytest.raises(ScenarioError) as info:
        _parse(commands)
    return str(info.value)


def test_every_flask_command_parses_bare_with_a_value_and_with_options():
    scenario = _parse(
        "      - heads\n      - stamp: head\n"
        "      - revision:\n          message: m\n          splice: true\n"
        "      - edit:\n          revision: <rev1>\n          upgrade: pass\n"
        "      - check:\n        expect: failure\n        match: New upgrade\n        why: a change\n"
    )
    heads, stamp, revision, edit, check = scenario.steps[0].commands
    assert heads.argv() == ["heads"] and stamp.argv() == ["stamp", "head"]
    assert revision.label == "flask db revision -m m --splice"
    assert edit.edit == Edit(revision="<rev1>", upgrade="pass") and edit.label == "edit <rev1>: new upgrade()"
    assert (check.match, check.why, check.expect_failure) == ("New upgrade", "a change", True)


def test_language_errors_name_the_line_and_what_is_allowed():
    assert "unknown option 'splyce' for `flask db revision`" in _error(
        "      - revision:\n          splyce: true\n"
    )
    assert "`match` goes with `expect: failure`" in _error("      - upgrade:\n        match: x\n")
    assert "not a valid regular expression" in _error(
        "      - upgrade:\n        expect: failure\n        match: '('\n"
    )
    assert "exactly one of diff, replace" in _error("      - edit:\n          revision: <rev1>\n")
    assert "either `revision` or `file`" in _error(
        "      - edit:\n          revision: <rev1>\n          file: a.py\n          diff: x\n"
    )
    assert "go in a revision, not in `file`" in _error(
        "      - edit:\n          file: migrations/env.py\n          upgrade: pass\n"
    )
    assert "lang.yaml:6:" in _error("      - heads: 3\n")
