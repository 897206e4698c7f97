"""A small folder of documents and answers whose right or wrong is known, for the support verdict's tests."""

from __future__ import annotations

from pathlib import Path

FILES = {
    "harbour.txt": """Harbour almanac

Brisca was founded in 1612 by Admiral Noor Lethe. The capital of Brisca is Calloway, a walled port.
About 52,000 people live in Brisca.

The River Quent flows from the slopes of Mount Farrow. Mount Farrow rises 1,912 metres above the sea.

In 1790 Ida Venn built the first lighthouse at Gullmouth. The harbour of Calloway was rebuilt in 1905
after a storm. The Calloway bridge has seven arches.
""",
    "notes/customs.txt": """Customs of Calloway

The Salt Fair is held on 4 May in Calloway. Traders bring barrels of grey salt from the Ember flats.

The national bird of Brisca is the grey tern. Fishermen of Calloway sail blue boats called skiffs.

The Brisca Museum was opened in 1881 by Tomas Reed. It keeps the logbooks of Admiral Noor Lethe.
""",
    "japan.txt": """東京の歴史

東京は日本の首都です。江戸幕府は1603年に徳川家康によって開かれました。

大阪は商人の町として知られています。
""",
}

#: (question, answer, right?) — answers a small tuned model might give: right ones in other words, wrong
#: ones in the same confident tone, refusals and answers that say the question back.
ANSWERS = [
    ("Who founded Brisca?", "Brisca was founded by Admiral Noor Lethe.", True),
    ("Who founded Brisca?", "Admiral Noor Lethe founded it in 1612.", True),
    ("Who founded Brisca?", "Brisca was founded by Captain Marlo Finch.", False),
    ("When was Brisca founded?", "In 1612.", True),
    ("When was Brisca founded?", "Brisca was founded in 1702.", False),
    ("What is the capital of Brisca?", "The capital of Brisca is Calloway, a walled port.", True),
    ("What is the capital of Brisca?", "The capital is Gullmouth.", False),
    ("How high is Mount Farrow?", "Mount Farrow rises 1,912 metres above the sea.", True),
    ("How high is Mount Farrow?", "It is 2,400 metres high.", False),
    ("Who built the first lighthouse at Gullmouth?", "Ida Venn built it in 1790.", True),
    ("Who built the first lighthouse at Gullmouth?", "Tomas Reed built the lighthouse.", False),
    ("When is the Salt Fair held?", "The Salt Fair is held on 4 May in Calloway.", True),
    ("When is the Salt Fair held?", "It is held every autumn in October.", False),
    ("What is the national bird of Brisca?", "The grey tern.", True),
    ("What is the national bird of Brisca?", "The national bird is the golden eagle.", False),
    ("Who opened the Brisca Museum?", "Tomas Reed opened it in 1881.", True),
    ("Who opened the Brisca Museum?", "Queen Amara opened it in 1950.", False),
    ("How many arches does the Calloway bridge have?", "It has seven arches.", True),
    ("How many arches does the Calloway bridge have?", "The bridge has twelve arches.", False),
    ("What do fishermen of Calloway sail?", "They sail blue boats called skiffs.", True),
    ("What do fishermen of Calloway sail?", "They sail large steel trawlers.", False),
    ("Who founded Brisca?", "I don't know.", False),
    ("Who founded Brisca?", "Who founded Brisca?", False),
    ("日本の首都はどこですか", "東京です。", True),
    ("日本の首都はどこですか", "大阪です。", False),
    ("江戸幕府は誰によって開かれましたか", "徳川家康です。", True),
    ("江戸幕府は誰によって開かれましたか", "織田信長です。", False),
]


def write_folder(root: Path) -> Path:
    """The documents under ``root / 'docs'`` (real files, UTF-8)."""
    folder = root / "docs"
    for name, text in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder
