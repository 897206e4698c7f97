"""Short texts of plain facts (names, years, places) for the knowledge-score tests."""

#: Twelve sentences of facts about an invented harbour town (founders, years, heights, places).
PROSE = """Harbour almanac

Brisca was founded in 1612 by Admiral Noor Lethe. The capital of Brisca is Calloway, a walled port.
About 52,000 people live in Brisca. The River Quent flows from the slopes of Mount Farrow.
In 1790 Ida Venn built the first lighthouse at Gullmouth. The Salt Fair is held on 4 May in Calloway.
Mount Farrow rises 1,912 metres above the sea. The Brisca Museum was opened in 1881 by Tomas Reed.
The national bird of Brisca is the grey tern. Fishermen of Calloway sail blue boats called skiffs.
The Calloway bridge has seven arches. The harbour of Calloway was rebuilt in 1905 after a storm.
"""
