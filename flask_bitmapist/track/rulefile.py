"""A rules file, from disk to a YAML document, read as if hostile.

Rules files come from disk, so the loader expects the worst: it reads only
regular files of UTF-8 text up to :data:`MAX_RULES_FILE_BYTES`, and refuses
YAML aliases, deep nesting and oversized documents while composing, before
they can cost time or memory. Every problem is a :class:`RulesError` that
names the file, the line and the reason.
"""

from __future__ import annotations

import codecs
import errno
import os
import reprlib
import stat
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml

RULE_FILE_SUFFIXES = (".yaml", ".yml")
#: Rules files larger than this are refused: a real one is a few kilobytes,
#: and parsing YAML in pure Python takes seconds per megabyte.
MAX_RULES_FILE_BYTES = 1024 * 1024
#: How deep YAML nodes may nest; a rules file needs 5 levels.
MAX_NESTING = 32
#: How many YAML nodes (keys, values, list items) a rules file may hold. A
#: rule takes 5 to 15; the limit keeps a file of a million tiny items from
#: costing many seconds and hundreds of megabytes to load.
MAX_NODES = 50_000
#: How many characters a YAML integer may have. Rules need only status codes,
#: and longer ones are slow to build (60-based ``1:2:3`` ints are quadratic)
#: or too long for Python to print.
MAX_INT_CHARACTERS = 100


class RulesError(ValueError):
    """A rules file cannot be used; the message names the file, line and reason."""


def rule_files(paths: Sequence[str], root_path: str) -> list[Path]:
    """The files that ``BITMAPIST_RULES`` names: each path is a file, or a folder
    whose ``*.yaml`` and ``*.yml`` entries are taken in name order.

    Whether each one is a readable regular file is judged when it is read, by
    :func:`read_rules_file`, so a dangling symlink or a folder named
    ``d.yaml`` gets the same error as any other unreadable file.

    :raises RulesError: for a path that does not exist, or a folder that
        cannot be listed.
    """
    files = []
    for name in paths:
        path = Path(root_path, name)
        try:
            if path.is_dir():
                files.extend(
                    sorted(p for p in path.iterdir() if p.suffix in RULE_FILE_SUFFIXES)
                )
            elif path.is_symlink() or path.exists():
                files.append(path)
            else:
                raise RulesError(
                    f"BITMAPIST_RULES names {str(path)!r}, which does not exist."
                )
        except OSError as error:
            raise RulesError(
                f"BITMAPIST_RULES names {str(path)!r}, which cannot be read: "
                f"{error.strerror}."
            ) from None
    return files


def read_rules_file(path: Path) -> str:
    """The text of one rules file: a regular file of UTF-8 text (a byte order
    mark is allowed) of at most :data:`MAX_RULES_FILE_BYTES`.

    Anything else is refused by ``stat`` before it is opened, and again by
    ``fstat`` on the descriptor, opened without blocking, in case the path
    was swapped in between: a FIFO cannot hang the app, and no more than
    the limit plus one byte is ever read, whatever the file turns out to be.

    :raises RulesError: ``"FILE, line N: reason."`` for anything else: a
        FIFO, a device, a folder, a dangling or looping symlink, a file that
        is too large or not UTF-8.
    """
    name = str(path)
    try:
        # Judged before opening too, as opening some devices does something
        # (a tape rewinds, a terminal can become the controlling one).
        _refuse_unless_regular(path, os.stat(path).st_mode)
        # Windows has neither FIFOs nor O_NONBLOCK nor O_NOCTTY, but needs
        # O_BINARY to read bytes as they are.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(
            path, flags | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        )
    except OSError as error:
        raise RulesError(f"{name}, line 1: {_open_problem(path, error)}.") from None
    try:
        info = os.fstat(fd)
        # The path may have been swapped since it was judged.
        _refuse_unless_regular(path, info.st_mode)
        if info.st_size > MAX_RULES_FILE_BYTES:
            raise RulesError(f"{name}, line 1: {_too_large(info.st_size)}.")
        data = _read_at_most(fd, MAX_RULES_FILE_BYTES + 1)
    except OSError as error:
        raise RulesError(
            f"{name}, line 1: it cannot be read: {error.strerror}."
        ) from None
    finally:
        os.close(fd)
    # The file grew after fstat.
    if len(data) > MAX_RULES_FILE_BYTES:
        raise RulesError(f"{name}, line 1: {_too_large(len(data))}.")
    return _decode(data, name)


def _refuse_unless_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = _file_kind(mode)
    if path.is_symlink():
        kind = f"a symbolic link to {os.readlink(path)!r}, {kind}"
    raise RulesError(f"{path}, line 1: it is {kind}, not a regular file.")


def _open_problem(path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "it is a symbolic link that loops (too many levels of symbolic links)"
    if error.errno == errno.ENOENT and path.is_symlink():
        return f"it is a symbolic link to {os.readlink(path)!r}, which does not exist"
    if error.errno == errno.ENOENT:
        return "it does not exist"
    return f"it cannot be opened: {error.strerror}"


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _too_large(size: int) -> str:
    return (
        f"it is {size} bytes, over the limit of 1 MiB "
        f"({MAX_RULES_FILE_BYTES} bytes) for a rules file"
    )


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = []
    left = limit
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _decode(data: bytes, name: str) -> str:
    """``data`` as UTF-8 text without its byte order mark."""
    # UTF-16 text that is plain ASCII has a NUL byte in every character, and
    # would decode as UTF-8 without an error.
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) or b"\0" in data[:2]:
        raise RulesError(
            f"{name}, line 1: it is not UTF-8 text (it looks like UTF-16); "
            "rules files must be UTF-8."
        )
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise RulesError(
            f"{name}, line {line}: it is not UTF-8 text "
            f"(byte 0x{data[error.start]:02X} is not valid there); "
            "rules files must be UTF-8."
        ) from None


class _RefusedYAML(yaml.MarkedYAMLError):
    """Valid YAML that a rules file may not hold; the problem is the whole
    reason, without the ``invalid YAML:`` of a syntax error."""

    def __init__(self, problem: str, mark: yaml.Mark | None) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _RulesLoader(yaml.SafeLoader):
    """A safe loader that refuses, at the node where they start, what could
    hang or crash the loader: aliases (a "billion laughs" file expands a few
    of them into gigabytes), deep nesting, too many nodes, long integers, and
    keys that are lists or mappings. A key given twice is an error too, and
    so is any value its constructor cannot build (``2020-13-45``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # check_event parses the next event into current_event.
        if self.check_event(yaml.AliasEvent):
            raise _RefusedYAML(
                f"rules files cannot use YAML aliases (*{self.current_event.anchor})",
                self.current_event.start_mark,
            )
        if self.depth == MAX_NESTING:
            raise _RefusedYAML(
                f"the YAML nests deeper than {MAX_NESTING} levels",
                self.current_event.start_mark,
            )
        if self.nodes == MAX_NODES:
            raise _RefusedYAML(
                f"the YAML has more than {MAX_NODES} nodes (keys, values and list "
                "items), the limit for a rules file",
                self.current_event.start_mark,
            )
        self.nodes += 1
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ArithmeticError, LookupError, TypeError, ValueError) as error:
            # A ValueError says what is wrong (month must be in 1..12); the
            # others only say where the constructor stumbled.
            detail = f" ({error})" if type(error) is ValueError else ""
            kind = node.tag.rsplit(":", 1)[-1]
            raise _RefusedYAML(
                f"{reprlib.repr(node.value)} is not a valid {kind}{detail}",
                node.start_mark,
            ) from None

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        # Merge keys (<<) first, as the base class does, so that they are
        # not taken for keys of their own.
        self.flatten_mapping(node)
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                kind = "a list" if isinstance(key, list) else "a mapping"
                raise _RefusedYAML(
                    f"a key must be a single value, not {kind}", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(node.value) > MAX_INT_CHARACTERS:
            raise _RefusedYAML(
                f"the integer {reprlib.repr(node.value)} is {len(node.value)} "
                f"characters long, over the limit of {MAX_INT_CHARACTERS}",
                node.start_mark,
            )
        return super().construct_yaml_int(node)


_RulesLoader.add_constructor("tag:yaml.org,2002:int", _RulesLoader.construct_yaml_int)


def load_document(text: str, filename: str) -> tuple[Any, yaml.Node | None]:
    """The YAML ``text`` as a document, with its composed root node for line
    numbers.

    :raises RulesError: ``"FILE, line N: reason."`` for invalid YAML, what
        :class:`_RulesLoader` refuses, and an empty file.
    """
    loader = None
    try:
        # The reader checks every character as the loader is made.
        loader = _RulesLoader(text)
        root = loader.get_single_node()
        document = loader.construct_document(root) if root is not None else None
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise RulesError(
            f"{filename}, line {line}: invalid YAML: "
            f"the character U+{error.character:04X} is not allowed."
        ) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 1
        problem = error.problem or error.context or "cannot be parsed"
        if not isinstance(error, _RefusedYAML):
            problem = f"invalid YAML: {problem}"
        raise RulesError(f"{filename}, line {line}: {problem}.") from None
    finally:
        if loader is not None:
            loader.dispose()
    if document is None:
        raise RulesError(
            f"{filename}, line 1: the file is empty; it needs a 'rules' list."
        )
    return document, root
