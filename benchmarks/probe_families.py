"""Which held-out question tracks a person's questions? One trained run, several ways of asking.

For a finished run (``llmcustoms train``), the run's held-out facts are asked again in three ways, and the
person-written questions of the folder beside them:

- ``short``: the asked family's question cut to its short form (what ``llmcustoms eval`` asks today);
- ``held full``: the asked family's question as generated (never trained on either);
- ``trained other``: a phrasing of the same fact from another family, which *was* trained on (how close
  the old score, a held-out template of a trained family, came to asking training data back);
- ``person``: the folder's person-written questions (``benchmarks/knowledge_data/questions_*.jsonl``).

Used to choose the held-out design (issue 22): the one whose score lands nearest the person's.

    python benchmarks/probe_families.py RUN_DIR QUESTIONS.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import ROOT  # noqa: F401 - puts the project on sys.path

from llmcustoms.chat.session import ChatSession
from llmcustoms.data.examples import build_examples
from llmcustoms.data.reader import validate_folder
from llmcustoms.evaluation.knowledge import generate_answers
from llmcustoms.evaluation.person_questions import load_questions, right
from llmcustoms.evaluation.scoring import is_correct
from llmcustoms.evaluation.split import ASK_ORDER, FAMILIES


def main() -> int:
    run_dir, questions_file = Path(sys.argv[1]), sys.argv[2]
    run = json.loads((run_dir / "run.json").read_text())
    facts = {f.id: f for f in build_examples(validate_folder(run["data_path"]), qa="offline").facts}
    probes = run["knowledge_probes"]
    asked: dict[str, list[tuple[str, str]]] = {"short": [], "held full": [], "trained other": []}
    for probe in probes:
        fact = facts.get(probe["fact_id"])
        if fact is None or probe["trained_phrasings"] == 0:
            continue  # unseen facts test reading alone, not the question family
        family = FAMILIES[probe["family"]]
        rank = {form: i for i, form in enumerate(ASK_ORDER)}
        held = min(((f, q) for f, q in fact.questions if f in rank), key=lambda fq: rank[fq[0]])[1]
        other = next((q for f, q in fact.questions if f not in family and f != "fill_in"), None)
        asked["short"].append((probe["question"], probe["span"]))
        asked["held full"].append((held, probe["span"]))
        if other:
            asked["trained other"].append((other, probe["span"]))
    person = load_questions(questions_file)
    session = ChatSession(run_dir).load()
    try:
        rows = []
        for name, pairs in asked.items():
            said = generate_answers(session.model, session.tokenizer, [q for q, _ in pairs])
            right_n = sum(is_correct(a, span) for a, (_, span) in zip(said, pairs, strict=True))
            rows.append((name, len(pairs), right_n))
        said = generate_answers(session.model, session.tokenizer, [q.question for q in person])
        rows.append(("person", len(person), sum(right(a, q) for a, q in zip(said, person, strict=True))))
    finally:
        session.close()
    print(f"{'asked as':<15} {'questions':>9} {'right':>6}")
    for name, n, k in rows:
        print(f"{name:<15} {n:>9} {k:>6}  {100 * k / max(1, n):.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
