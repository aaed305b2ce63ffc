"""YAML for the files a user hands iclreg (configs, a run's ``config.yaml``, ``sweep.yaml``), with
the size a document stands for bounded.

YAML's anchors and aliases (``&a``, ``*a``) let a few lines stand for an exponentially large
document: nine levels of nine aliases to the level below (the "billion laughs") stand for
9^9 values. PyYAML shares the object an alias names, so loading is cheap, but whatever walks the
config afterwards (validation, overrides, copies, JSON) meets every expansion and runs out of
memory without a word. :func:`load` composes the node graph first, counts the values it stands
for with every alias expanded (each node counted once and memoised, so counting is linear in the
file) and refuses more than ``MAX_VALUES``, or an alias inside itself, before any object is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import UsageError

MAX_VALUES = 100_000  # a config holds tens of values; a sweep.yaml one per member and axis


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(root: yaml.Node, what: str) -> int:
    """The number of values (scalars, lists and mappings) of ``root`` with every alias expanded.

    Raises:
        UsageError: an alias refers to a node that contains it (an infinite document).
    """
    sizes: dict[int, int] = {}
    ancestors: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:  # depth first without recursion: a deeply nested file is no RecursionError
        node, done = stack.pop()
        if done:
            ancestors.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if id(node) in sizes:
            continue
        ancestors.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in ancestors:
                raise UsageError(f"{what} holds an alias (*name) inside the value it names, an "
                                 "endless document; write the value out")
            stack.append((child, False))
    return sizes[id(root)]


def load(text: str, what: str) -> Any:
    """``yaml.safe_load(text)``, refusing a document that stands for more than ``MAX_VALUES``
    values through its aliases; ``what`` names the file in the messages.

    Raises:
        UsageError: too large, or endless (:func:`expanded_size`), or nested too deeply.
        yaml.YAMLError: malformed YAML (the caller says which file).
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = expanded_size(node, what)
        if size > MAX_VALUES:
            raise UsageError(f"{what} stands for {size:,} values through its YAML aliases (*name), more "
                             f"than the {MAX_VALUES:,} a config may hold; write its values out")
        return loader.construct_document(node)
    except RecursionError:
        raise UsageError(f"{what} is nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()
