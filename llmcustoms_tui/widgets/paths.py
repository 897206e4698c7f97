"""The data folder picker: a tree of folders and the files the reader takes (.txt, .md, .pdf, …), and a path suggester that knows ``~``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.suggester import Suggester
from textual.validation import ValidationResult, Validator
from textual.widgets import DirectoryTree
from textual.widgets.directory_tree import DirEntry
from textual.widgets.tree import TreeNode

from llmcustoms.data.formats import format_of
from llmcustoms_tui.format import elide_text_middle


class TextFolderTree(DirectoryTree):
    """A DirectoryTree that shows folders and the files the reader takes only (hidden entries left out).

    Backspace re-roots the tree one folder up, so starting inside the data folder never traps the user.
    Names too long for the panel are cut in the middle: ``velmoria_history.txt`` and ``velmoria_harbour.txt``
    stay two different names in a narrow terminal. ``show_folder`` follows a path typed elsewhere.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("backspace", "parent", "Up a folder", id="tree-parent"),
    ]

    # Plain-text icons: emoji widths vary between terminals, and these read in any font.
    ICON_NODE = "▸ "
    ICON_NODE_EXPANDED = "▾ "
    ICON_FILE = "  "

    def render_label(self, node: TreeNode[DirEntry], base_style: Style, style: Style) -> Text:
        label = super().render_label(node, base_style, style)
        width = self.scrollable_content_region.width
        if not self.is_mounted or width <= 0:
            return label
        depth, parent = 0, node.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        return elide_text_middle(label, max(4, width - depth * self.guide_depth))

    def show_folder(self, folder: Path) -> None:
        """Move the cursor to ``folder`` when the tree shows it already (expanding it), else root the tree there."""
        folder = folder.resolve()
        node = self._find_node(self.root, folder)
        if node is None:
            if Path(self.path).resolve() != folder:
                self.path = folder
            return
        node.expand()
        self.move_cursor(node)

    def _find_node(self, node: TreeNode[DirEntry], folder: Path) -> TreeNode[DirEntry] | None:
        """The loaded node of ``folder`` under ``node``, or None (only loaded nodes: nothing is read here)."""
        entry = node.data
        if entry is not None and Path(entry.path).resolve() == folder:
            return node
        for child in node.children:
            child_entry = child.data
            if child_entry is None or not child.allow_expand:
                continue
            child_path = Path(child_entry.path).resolve()
            if child_path == folder or child_path in folder.parents:
                found = self._find_node(child, folder)
                if found is not None:
                    return found
        return None

    def action_parent(self) -> None:
        """Backspace: show the folder above the current root."""
        current = Path(self.path).resolve()
        if current.parent != current:
            self.path = current.parent

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        visible = []
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                if path.is_dir() or format_of(path.name) is not None:  # .txt, .md, .pdf, … .jsonl
                    visible.append(path)
            except OSError:  # unreadable entries are skipped, not fatal
                continue
        return visible


class PathSuggester(Suggester):
    """Completes the last part of a folder path from the file system; ``~`` is expanded for lookup
    but kept as typed, so ``~/Do`` suggests ``~/Documents/``."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete_path(value)


def complete_path(value: str) -> str | None:
    """``value`` completed to the first folder whose name starts with its last part, or None."""
    if not value:
        return None
    if value == "~":
        return "~/"
    expanded = os.path.expanduser(value)
    folder_part, sep, prefix = expanded.rpartition(os.sep)
    folder = Path(folder_part or os.sep) if sep else Path(".")
    try:
        names = sorted(
            entry.name for entry in os.scandir(folder)
            if entry.name.startswith(prefix) and (prefix.startswith(".") or not entry.name.startswith("."))
            and entry.is_dir()
        )
    except OSError:
        return None
    if not names:
        return None
    return value + names[0][len(prefix):] + os.sep


class FolderValidator(Validator):
    """An existing folder (after ``~`` expansion)."""

    def validate(self, value: str) -> ValidationResult:
        if not value.strip():
            return self.failure("Type or pick a folder of documents.")
        path = Path(value.strip()).expanduser()
        if not path.exists():
            return self.failure(f"{value} does not exist.")
        if not path.is_dir():
            return self.failure(f"{value} is a file; choose the folder that holds it.")
        return self.success()
