"""An HTML view of one instance's top-k projection grid with the found trace highlighted
(the layout of the paper's Figure 4): columns are positions, rows are ranks; a cell on the trace
is coloured and titled with the value it stands for. A small script counts the highlighted
cells after load and writes the count into `#status`, so a headless browser can check that the
page rendered and the trace is on it.
"""

from __future__ import annotations

import html
import math
from typing import Sequence


def render(title: str, question: str, labels: Sequence[str], tokens: Sequence[Sequence[str]],
           logprobs: Sequence[Sequence[float]], trace: Sequence[tuple[str, int, int]], note: str = "") -> str:
    """`tokens[p][r]`: the rank-r token at position p; `trace`: (value, position, rank) nodes
    (position -1 = taken from the question)."""
    on_trace = {(p, r): v for v, p, r in trace if p >= 0}
    from_question = sorted({v for v, p, _ in trace if p < 0})
    k = max(len(t) for t in tokens)
    head = "".join(f"<th>{html.escape(label)}</th>" for label in labels)
    rows = []
    for r in range(k):
        cells = []
        for p in range(len(labels)):
            tok = tokens[p][r] if r < len(tokens[p]) else ""
            prob = math.exp(logprobs[p][r]) if r < len(logprobs[p]) else 0.0
            cls = ' class="trace"' if (p, r) in on_trace else ""
            tip = f' title="trace value {html.escape(on_trace[(p, r)])}"' if (p, r) in on_trace else ""
            cells.append(f"<td{cls}{tip}>{html.escape(repr(tok)[1:-1])}<small>{prob:.2f}</small></td>")
        rows.append(f"<tr><th>{r}</th>{''.join(cells)}</tr>")
    q_note = f"<p>Operands taken from the question: {html.escape(', '.join(from_question))}</p>" if from_question else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; font-family: monospace; text-align: center; }}
td small {{ display: block; color: #888; font-size: 70%; }}
td.trace {{ background: #ffd54f; font-weight: bold; }}
</style></head>
<body>
<h2>{html.escape(title)}</h2>
<p><b>Question:</b> {html.escape(question)}</p>
<p>{html.escape(note)}</p>{q_note}
<table id="grid"><tr><th>rank</th>{head}</tr>
{''.join(rows)}
</table>
<p id="status" data-trace-cells="">rendering...</p>
<script>
const n = document.querySelectorAll("#grid td.trace").length;
const s = document.getElementById("status");
s.dataset.traceCells = String(n);
s.textContent = n + " highlighted trace cell(s)";
</script>
</body></html>
"""
