"""Rules files written to hurt: each is refused with a RulesError that names the
file, the line and the reason, quickly and without eating memory, and never
with a raw exception or a hang.

The hostile files (FIFOs, symlinks, devices, huge files) are made in tmp_path
at test time. Every test has a timeout, so a regression fails instead of
hanging the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from flask_bitmapist import FlaskBitmapist, RulesError
from flask_bitmapist.track.rules import MAX_RULES_FILE_BYTES, Rule, parse_rules

pytestmark = pytest.mark.timeout(10)

GOOD = 'rules:\n  - event: "home:viewed"\n    endpoint: index\n'


@pytest.fixture
def start_app(redis_url: str, tmp_path: Path) -> Callable[[object], list[Rule]]:
    """Start a real app on ``BITMAPIST_RULES``; its rules if it starts."""

    def start(rules: object) -> list[Rule]:
        app = Flask("hostile", root_path=str(tmp_path))
        app.config.update(BITMAPIST_REDIS_URL=redis_url, BITMAPIST_RULES=rules)
        app.add_url_rule("/", "index", lambda: "home")
        FlaskBitmapist(app)
        return list(app.extensions["bitmapist"].state(app).ruleset.rules)

    return start


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A rules folder with one good file, which sorts before the hostile ones."""
    path = tmp_path / "rules"
    path.mkdir()
    (path / "a.yaml").write_text(GOOD)
    return path


def refused(start_app: Callable[[object], list[Rule]], rules: object) -> str:
    with pytest.raises(RulesError) as error:
        start_app(rules)
    return str(error.value)


# --- files that are not regular files


@pytest.mark.parametrize("named", ["in a folder", "directly"])
def test_a_fifo_is_refused_without_waiting_for_a_writer(
    start_app: Callable[[object], list[Rule]], folder: Path, named: str
) -> None:
    fifo = folder / "x.yaml"
    os.mkfifo(fifo)
    rules = str(folder) if named == "in a folder" else str(fifo)
    assert refused(start_app, rules) == (
        f"{fifo}, line 1: it is a named pipe (FIFO), not a regular file."
    )


def test_a_symlink_to_dev_zero_is_refused_without_reading_it(
    start_app: Callable[[object], list[Rule]], folder: Path
) -> None:
    link = folder / "z.yaml"
    link.symlink_to("/dev/zero")
    assert refused(start_app, str(folder)) == (
        f"{link}, line 1: it is a symbolic link to '/dev/zero', a character "
        "device, not a regular file."
    )


def test_a_folder_named_like_a_rules_file_is_refused(
    start_app: Callable[[object], list[Rule]], folder: Path
) -> None:
    (folder / "d.yaml").mkdir()
    assert refused(start_app, str(folder)) == (
        f"{folder / 'd.yaml'}, line 1: it is a folder, not a regular file."
    )


@pytest.mark.parametrize("named", ["in a folder", "directly"])
def test_a_dangling_symlink_is_refused(
    start_app: Callable[[object], list[Rule]], folder: Path, named: str
) -> None:
    link = folder / "gone.yaml"
    link.symlink_to("deleted.yaml")
    rules = str(folder) if named == "in a folder" else str(link)
    assert refused(start_app, rules) == (
        f"{link}, line 1: it is a symbolic link to 'deleted.yaml', "
        "which does not exist."
    )


@pytest.mark.parametrize("named", ["in a folder", "directly"])
def test_a_symlink_loop_is_refused(
    start_app: Callable[[object], list[Rule]], folder: Path, named: str
) -> None:
    link = folder / "loop.yaml"
    link.symlink_to("loop.yaml")
    rules = str(folder) if named == "in a folder" else str(link)
    assert refused(start_app, rules) == (
        f"{link}, line 1: it is a symbolic link that loops "
        "(too many levels of symbolic links)."
    )


def test_a_symlink_to_a_regular_file_is_followed(
    start_app: Callable[[object], list[Rule]], folder: Path
) -> None:
    (folder / "b.yaml").symlink_to(folder / "a.yaml")
    assert [rule.event for rule in start_app(str(folder))] == ["home:viewed"] * 2


# --- size


def test_a_50_mb_file_is_refused_by_its_size(
    start_app: Callable[[object], list[Rule]], tmp_path: Path
) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as file:
        file.truncate(50_000_000)
    assert refused(start_app, str(path)) == (
        f"{path}, line 1: it is 50000000 bytes, over the limit of 1 MiB "
        "(1048576 bytes) for a rules file."
    )


def test_one_byte_over_1_mib_is_refused_and_1_mib_is_read(
    start_app: Callable[[object], list[Rule]], tmp_path: Path
) -> None:
    path = tmp_path / "padded.yaml"
    padding = "#" * (MAX_RULES_FILE_BYTES - len(GOOD) - 1) + "\n"
    path.write_text(GOOD + padding)
    assert path.stat().st_size == MAX_RULES_FILE_BYTES
    assert [rule.event for rule in start_app(str(path))] == ["home:viewed"]
    path.write_text(GOOD + "#" + padding)
    assert refused(start_app, str(path)) == (
        f"{path}, line 1: it is 1048577 bytes, over the limit of 1 MiB "
        "(1048576 bytes) for a rules file."
    )


# --- encodings


def test_a_latin_1_file_names_the_line_of_the_first_bad_byte(
    start_app: Callable[[object], list[Rule]], tmp_path: Path
) -> None:
    path = tmp_path / "latin.yaml"
    path.write_bytes((GOOD + "    # café\n").encode("latin-1"))
    assert refused(start_app, str(path)) == (
        f"{path}, line 4: it is not UTF-8 text (byte 0xE9 is not valid there); "
        "rules files must be UTF-8."
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf_16_file_is_called_utf_16(
    start_app: Callable[[object], list[Rule]], tmp_path: Path, encoding: str
) -> None:
    path = tmp_path / "wide.yaml"
    path.write_bytes(GOOD.encode(encoding))
    assert refused(start_app, str(path)) == (
        f"{path}, line 1: it is not UTF-8 text (it looks like UTF-16); "
        "rules files must be UTF-8."
    )


def test_a_utf_8_byte_order_mark_is_fine(
    start_app: Callable[[object], list[Rule]], tmp_path: Path
) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(GOOD.encode("utf-8-sig"))
    assert [rule.origin for rule in start_app(str(path))] == [f"{path}, line 2"]


# --- YAML that expands, nests or overflows


def refused_text(text: str) -> str:
    with pytest.raises(RulesError) as error:
        parse_rules(text, "rules.yaml", {})
    return str(error.value)


def test_a_billion_laughs_is_refused_at_its_first_alias() -> None:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for name, previous in zip("bcdefghij", "abcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    bomb = "\n".join(lines) + "\nrules: *j\n"
    assert refused_text(bomb) == (
        "rules.yaml, line 2: rules files cannot use YAML aliases (*a)."
    )


def test_even_a_harmless_alias_is_refused_but_an_anchor_alone_is_fine() -> None:
    anchored = 'rules:\n  - &home\n    event: "home:viewed"\n    endpoint: index\n'
    assert [rule.event for rule in parse_rules(anchored, "rules.yaml", {})] == [
        "home:viewed"
    ]
    assert refused_text(anchored + "  - *home\n") == (
        "rules.yaml, line 5: rules files cannot use YAML aliases (*home)."
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("rules:\n" + "".join("  " * depth + "-\n" for depth in range(1, 2000)), 33),
        ("rules: " + "[" * 500_000 + "\n", 1),
        ("rules:\n  - event: e\n    endpoint: x\n    methods: " + "{a: " * 40, 4),
    ],
    ids=["block", "flow", "flow-mapping"],
)
def test_deep_nesting_is_refused_where_it_passes_32_levels(
    text: str, line: int
) -> None:
    assert refused_text(text) == (
        f"rules.yaml, line {line}: the YAML nests deeper than 32 levels."
    )


def test_32_levels_are_left_to_the_schema() -> None:
    assert refused_text("rules: " + "[" * 31 + "]" * 31 + "\n") == (
        "rules.yaml, line 1: rules[0] must be a mapping, got [[[[[[[...]]]]]]]."
    )
    assert refused_text("rules: " + "[" * 32 + "]" * 32 + "\n") == (
        "rules.yaml, line 1: the YAML nests deeper than 32 levels."
    )


def test_50000_nodes_are_left_to_the_schema_and_one_more_is_refused() -> None:
    # The mapping, its key and the list make 3 nodes; the items the rest.
    assert refused_text("rules: [" + "a," * 49_997 + "]\n") == (
        "rules.yaml, line 1: rules[0] must be a mapping, got 'a'."
    )
    assert refused_text("rules: [" + "a," * 49_998 + "]\n") == (
        "rules.yaml, line 1: the YAML has more than 50000 nodes (keys, values "
        "and list items), the limit for a rules file."
    )


def test_a_1_mib_file_of_tiny_items_stops_at_the_node_limit() -> None:
    # 262,000 items: without the limit, minutes of parsing and 400 MB.
    text = "rules:\n" + "- a\n" * 262_000
    assert len(text) < MAX_RULES_FILE_BYTES
    assert refused_text(text) == (
        "rules.yaml, line 49999: the YAML has more than 50000 nodes (keys, "
        "values and list items), the limit for a rules file."
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("9" * 5000, "'999999999999...9999999999999' is 5000"),
        ("0x" + "f" * 5000, "'0xffffffffff...fffffffffffff' is 5002"),
        # 60-based integers take quadratic time to build.
        ("1" + ":59" * 300_000, "'1:59:59:59:5...9:59:59:59:59' is 900001"),
    ],
    ids=["decimal", "hex", "sexagesimal"],
)
def test_huge_integers_are_refused(value: str, shown: str) -> None:
    text = f'rules:\n  - event: "e"\n    endpoint: x\n    status: [{value}]\n'
    assert refused_text(text) == (
        f"rules.yaml, line 4: the integer {shown} characters long, "
        "over the limit of 100."
    )


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2020-13-45", "'2020-13-45' is not a valid timestamp (month must be in 1..12)"),
        ("0000-01-01", "'0000-01-01' is not a valid timestamp (year 0 is out of range)"),
        ("!!int ''", "'' is not a valid int"),
        ("!!bool maybe", "'maybe' is not a valid bool"),
        ("!!float abc", "'abc' is not a valid float (could not convert string to float: 'abc')"),
    ],
)  # fmt: skip
def test_values_yaml_cannot_build_name_their_line(value: str, reason: str) -> None:
    text = f'rules:\n  - event: "e"\n    endpoint: x\n    when: {value}\n'
    assert refused_text(text) == f"rules.yaml, line 4: {reason}."


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("rules:\n  ? [a, b]\n  : 1\n", "a list"),
        ("rules:\n  - {[1, 2]: x}\n", "a list"),
        ("rules:\n  - {{a: 1}: x}\n", "a mapping"),
    ],
)
def test_keys_that_are_lists_or_mappings_are_refused(text: str, kind: str) -> None:
    assert refused_text(text) == (
        f"rules.yaml, line 2: a key must be a single value, not {kind}."
    )


def test_a_control_character_names_its_line() -> None:
    assert refused_text(GOOD + "  - event: 'a\x07'\n    endpoint: x\n") == (
        "rules.yaml, line 4: invalid YAML: the character U+0007 is not allowed."
    )


def test_merge_keys_without_aliases_still_work() -> None:
    text = 'rules:\n  - event: "e"\n    <<: {endpoint: x, methods: [POST]}\n'
    [rule] = parse_rules(text, "rules.yaml", {})
    assert (rule.endpoint, rule.methods) == ("x", frozenset({"POST"}))
