"""YAML read with the line of every value, and a reader that collects every problem instead of the first.

A file larger than MAX_FILE_BYTES is refused before it is parsed; nesting deeper than MAX_DEPTH, anchors and aliases
are refused as the composer meets them, before it goes deeper: PyYAML's composer recurses once per level (10,000
``[`` were a RecursionError after 10 s of CPU) and aliases can expand a small file into a huge tree.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import yaml

from notifier.errors import CampaignError, Problem

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # ids of campaigns, deadlines and template folders
# A campaign file is a few KiB. PyYAML reads dense YAML at about 0.2 MiB a second, so 256 KiB bounds the worst case
# near a second of CPU (validate, schedule and every ledger read parse the file).
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 20  # lists and mappings inside each other; a campaign needs 4 (deadlines → deadline → waves)
TOO_LARGE = f"the file is larger than {MAX_FILE_BYTES // 1024} KiB ({MAX_FILE_BYTES:,} bytes), the most it may be"
_SHOWN = 60


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to its first few dozen characters: a message is one line, not the input."""
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[:_SHOWN]!r}… ({len(text):,} characters)"


def read_tree(text: str, file: str, problems: list[Problem]) -> Node:
    """The YAML document as Nodes (duplicate keys go to ``problems``); CampaignError when it cannot be read at all."""
    if len(text) > MAX_FILE_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise CampaignError([Problem(file, None, None, TOO_LARGE)])
    loader: _Loader | None = None
    try:
        loader = _Loader(text, file)  # reading starts here: a character YAML does not allow is refused at once
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise CampaignError([Problem(file, line, None, f"YAML syntax error: {exc.problem or exc}")]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, most control characters)
        line = text.count("\n", 0, exc.position) + 1
        raise CampaignError([Problem(file, line, None, f"YAML error: unacceptable character #x{exc.character:04x}: "
                                     f"{exc.reason}")]) from None
    except yaml.YAMLError as exc:
        raise CampaignError([Problem(file, None, None, f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise CampaignError([Problem(file, 1, None, "the file is empty")])
    return convert(root, problems, file, "")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe composer, refusing anchors, aliases and nesting deeper than MAX_DEPTH before it recurses."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise CampaignError([Problem(self.file, line, None, "YAML anchors and aliases (&, *) are not allowed "
                                         "in campaign files; write the values out")])
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CampaignError([Problem(self.file, line, None, f"lists and mappings nested more than {MAX_DEPTH} "
                                         "levels deep")])
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class Node:
    """A YAML value together with the line it starts on (1-based)."""

    __slots__ = ("line", "value")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


def convert(node: yaml.Node, problems: list[Problem], file: str, path: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, tuple[Node, int]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_line = key_node.start_mark.line + 1
            if key in out:
                problems.append(Problem(file, key_line, join(path, key), "duplicate key"))
                continue
            out[key] = (convert(value_node, problems, file, join(path, key)), key_line)
        return Node(out, line)
    if isinstance(node, yaml.SequenceNode):
        return Node(
            [convert(v, problems, file, f"{path}[{i}]") for i, v in enumerate(node.value)], line
        )
    if node.tag == "tag:yaml.org,2002:null":
        return Node(None, line)
    return Node(str(node.value), line)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """Walks the converted YAML and collects every problem instead of stopping at the first."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def fail(self, line: int | None, fld: str | None, message: str) -> None:
        self.problems.append(Problem(self.file, line, fld, message))

    def mapping(
        self, node: Node, path: str, required: Sequence[str], optional: Sequence[str]
    ) -> dict[str, Node] | None:
        if not isinstance(node.value, dict):
            self.fail(node.line, path or None, "expected a mapping of keys to values")
            return None
        known = (*required, *optional)
        out: dict[str, Node] = {}
        for key, (value, key_line) in node.value.items():
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
                self.fail(key_line, join(path, key), f"unknown key{hint}")
                continue
            out[key] = value
        for key in required:
            if key not in out:
                self.fail(node.line, join(path, key), "required key is missing")
        return out

    def text(self, node: Node | None, path: str) -> str | None:
        if node is None:
            return None
        if not isinstance(node.value, str) or not node.value.strip():
            self.fail(node.line, path, "expected a non-empty text value")
            return None
        return node.value.strip()

    def slug(self, node: Node | None, path: str) -> str | None:
        value = self.text(node, path)
        if value is not None and not SLUG.match(value):
            assert node is not None
            self.fail(node.line, path, f"{shown(value)} must be lowercase letters, digits, '-' or '_'")
            return None
        return value

    def at_most(self, node: Node | None, path: str, limit: int, what: str) -> bool:
        """False, with a problem, when a list has more than ``limit`` items: checked before any item is read."""
        if node is not None and isinstance(node.value, list) and len(node.value) > limit:
            self.fail(node.line, path, f"at most {limit} {what}, found {len(node.value):,}")
            return False
        return True

    def text_list(self, node: Node | None, path: str) -> list[tuple[str, int]] | None:
        if node is None:
            return None
        if not isinstance(node.value, list) or not node.value:
            self.fail(node.line, path, "expected a non-empty list")
            return None
        items = []
        for i, item in enumerate(node.value):
            value = self.text(item, f"{path}[{i}]")
            if value is not None:
                items.append((value, item.line))
        return items

    def parsed(self, node: Node | None, path: str, parse: Any) -> Any:
        value = self.text(node, path)
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            assert node is not None
            self.fail(node.line, path, str(exc))
            return None
