"""YAML read with the line of every value, and a reader that collects every problem instead of the first."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import yaml

from notifier.errors import Problem

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")  # ids of campaigns, deadlines and template folders


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
            self.fail(node.line, path, f"{value!r} must be lowercase letters, digits, '-' or '_'")
            return None
        return value

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
