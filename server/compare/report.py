"""The comparison's outcome: findings per answer, speed per side, and the report as Markdown and self-contained HTML."""
from __future__ import annotations

import html
import statistics
from dataclasses import dataclass, field
from typing import Optional, Sequence

from server.compare.findings import KINDS, MARKERS, Answer, Finding, answer_findings, first_difference, stream_mismatch
from server.compare.prompts import Prompt
from server.compare.runner import SidePass


@dataclass
class Judged:
    answer: Answer
    findings: list[Finding]


@dataclass
class SideSummary:
    name: str
    url: str
    judged: list[Judged]
    wall_s: float
    special_tokens: tuple[str, ...]
    listed: bool = False  # the server listed its models' own special tokens
    counts: dict[str, int] = field(default_factory=dict)
    ttft_p50: Optional[float] = None
    tokens_per_s: Optional[float] = None  # median over answers that reported usage
    answered: int = 0


@dataclass
class PromptRow:
    prompt: Prompt
    a: Optional[Judged]
    b: Optional[Judged]
    differs_at: Optional[int]  # first differing character of the two texts, None if equal or missing


@dataclass
class Report:
    sides: list[SideSummary]
    rows: list[PromptRow]
    settings: dict[str, str]
    swap: list[SideSummary] = field(default_factory=list)


def judge(side_pass: SidePass, prompts: list[Prompt]) -> SideSummary:
    judged: list[Judged] = []
    for a in side_pass.answers:
        judged.append(Judged(a, answer_findings(a, special_tokens=side_pass.tokens_for(a.model),
                                                wants_json=prompts[a.prompt].wants_json)))
    by_key: dict[tuple[int, int, str], dict[bool, Judged]] = {}
    for j in judged:
        by_key.setdefault((j.answer.prompt, j.answer.repeat, j.answer.model), {})[j.answer.stream] = j
    for pair in by_key.values():
        if True in pair and False in pair:
            found = stream_mismatch(pair[True].answer, pair[False].answer)
            if found is not None:
                pair[True].findings.append(found)
    summary = SideSummary(side_pass.side.name, side_pass.side.url, judged, side_pass.wall_s,
                          side_pass.all_tokens, listed=any(side_pass.special_tokens.values()))
    for j in judged:
        for f in j.findings:
            summary.counts[f.kind] = summary.counts.get(f.kind, 0) + 1
    ok = [j.answer for j in judged if j.answer.ok]
    summary.answered = len(ok)
    ttfts = [a.ttft_s for a in ok if a.ttft_s is not None]
    summary.ttft_p50 = statistics.median(ttfts) if ttfts else None
    rates = [a.completion_tokens / a.total_s for a in ok if a.completion_tokens and a.total_s > 0]
    summary.tokens_per_s = statistics.median(rates) if rates else None
    return summary


def rows(prompts: list[Prompt], a: SideSummary, b: SideSummary) -> list[PromptRow]:
    def pick(s: SideSummary, i: int) -> Optional[Judged]:
        mine = [j for j in s.judged if j.answer.prompt == i and j.answer.repeat == 0]
        mine.sort(key=lambda j: j.answer.stream)  # the non-streamed answer first, when there is one
        return mine[0] if mine else None

    out = []
    for i, p in enumerate(prompts):
        ja, jb = pick(a, i), pick(b, i)
        differs = None
        if ja and jb and ja.answer.ok and jb.answer.ok and ja.answer.text != jb.answer.text:
            differs = first_difference(ja.answer.text, jb.answer.text)
        out.append(PromptRow(p, ja, jb, differs))
    return out


# -- Markdown --------------------------------------------------------------------------------

def _fmt(x: Optional[float], unit: str = "", digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}{unit}"


def markdown(report: Report) -> str:
    a, b = report.sides
    lines = ["# llamaslots compare", ""]
    lines += [f"- **A**: {a.url}", f"- **B**: {b.url}"]
    lines += [f"- {k}: {v}" for k, v in report.settings.items()]
    lines += ["", "## Findings", "", "| finding | A | B |", "|---|---|---|"]
    for kind, label in KINDS.items():
        lines.append(f"| {label} | {a.counts.get(kind, 0)} | {b.counts.get(kind, 0)} |")
    lines += ["", "## Speed", "", "| | A | B |", "|---|---|---|",
              f"| answers | {a.answered} of {len(a.judged)} | {b.answered} of {len(b.judged)} |",
              f"| p50 time to first token | {_fmt(a.ttft_p50, ' s')} | {_fmt(b.ttft_p50, ' s')} |",
              f"| tokens/s per answer (median) | {_fmt(a.tokens_per_s, '', 1)} | {_fmt(b.tokens_per_s, '', 1)} |",
              f"| total time | {_fmt(a.wall_s, ' s', 1)} | {_fmt(b.wall_s, ' s', 1)} |"]
    if not (a.listed and b.listed):
        lines += ["", "Special tokens checked: the common chat markers; a side that is not llamaslots does not "
                      "list its model's own (pass them with --special-token)"]
    if report.swap:
        sa, sb = report.swap
        lines += ["", "## Two models at once (swap pass)", "", "| finding | A | B |", "|---|---|---|"]
        for kind, label in KINDS.items():
            if sa.counts.get(kind) or sb.counts.get(kind):
                lines.append(f"| {label} | {sa.counts.get(kind, 0)} | {sb.counts.get(kind, 0)} |")
        lines.append(f"| answers | {sa.answered} of {len(sa.judged)} | {sb.answered} of {len(sb.judged)} |")
    lines += ["", "## Answers with findings", ""]
    any_found = False
    for side in [*report.sides, *report.swap]:
        for j in side.judged:
            for f in j.findings:
                any_found = True
                a_ = j.answer
                lines.append(f"- **{side.name}** prompt {a_.prompt + 1} ({'stream' if a_.stream else 'whole'}, "
                             f"repeat {a_.repeat + 1}, model {a_.model or '-'}): {f.label}: {f.detail}")
    if not any_found:
        lines.append("None.")
    lines += ["", "## Where the answers differ", ""]
    diffs = [r for r in report.rows if r.differs_at is not None]
    for r in diffs:
        assert r.a is not None and r.b is not None
        i = r.differs_at or 0
        lines.append(f"- prompt {report.rows.index(r) + 1} ({r.prompt.title}): at character {i}: "
                     f"A {r.a.answer.text[i:i + 40]!r} / B {r.b.answer.text[i:i + 40]!r}")
    if not diffs:
        both = [r for r in report.rows if r.a and r.b and r.a.answer.ok and r.b.answer.ok]
        if len(both) == len(report.rows):
            lines.append("Nowhere: every prompt answered by both got the same text.")
        elif both:
            lines.append(f"Nowhere among the {len(both)} prompts both sides answered "
                         f"({len(report.rows) - len(both)} got an answer from one side or none).")
        else:
            lines.append("No prompt got an answer from both sides to compare.")
    return "\n".join(lines) + "\n"


# -- HTML ------------------------------------------------------------------------------------

_COLORS = {"A": "#0969da", "B": "#8250df"}


def _bars(title: str, values: Sequence[tuple[str, Optional[float]]], unit: str, label_width: int = 90) -> str:
    """A horizontal bar chart as inline SVG."""
    top = max([v for _, v in values if v is not None] or [1.0]) or 1.0
    rows = []
    for i, (name, v) in enumerate(values):
        width = 0 if v is None else 300 * v / top
        y = 28 + i * 26
        color = _COLORS.get(name[:1], "#57606a")
        rows.append(f'<text x="0" y="{y + 14}" font-size="12">{html.escape(name)}</text>'
                    f'<rect x="{label_width}" y="{y}" width="{width:.1f}" height="18" fill="{color}"></rect>'
                    f'<text x="{label_width + 6 + width:.1f}" y="{y + 14}" font-size="12">'
                    f'{"-" if v is None else f"{v:.3g}{unit}"}</text>')
    height = 36 + 26 * len(values)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + 370}" height="{height}" role="img">'
            f'<text x="0" y="16" font-size="13" font-weight="600">{html.escape(title)}</text>{"".join(rows)}</svg>')


def _marked(text: str, findings: list[Finding], special: tuple[str, ...]) -> str:
    out = html.escape(text)
    if any(f.kind == "leaked_token" for f in findings):
        for m in sorted({*MARKERS, *special}, key=len, reverse=True):
            if m:
                out = out.replace(html.escape(m), f"<mark>{html.escape(m)}</mark>")
    return out


def _cell(j: Optional[Judged], special: tuple[str, ...]) -> str:
    if j is None:
        return "<td>-</td>"
    a = j.answer
    meta = f"{a.status or 'no response'} · finish {a.finish_reason or '-'}"
    notes = "".join(f'<li class="f-{f.kind}">{html.escape(f.label)}: {html.escape(f.detail)}</li>' for f in j.findings)
    body = html.escape(a.error) if a.error and not a.text else _marked(a.text, j.findings, special)
    return (f'<td class="{"bad" if j.findings else "good"}"><div class="meta">{html.escape(meta)}</div>'
            f'<pre>{body}</pre>{f"<ul>{notes}</ul>" if notes else ""}</td>')


def html_page(report: Report) -> str:
    a, b = report.sides
    kinds = [(k, label) for k, label in KINDS.items() if a.counts.get(k) or b.counts.get(k)]
    failure_bars = [(f"{s.name} {label}", float(s.counts.get(k, 0))) for k, label in kinds for s in (a, b)]
    charts = [_bars("p50 time to first token", [("A", a.ttft_p50), ("B", b.ttft_p50)], " s"),
              _bars("tokens/s per answer", [("A", a.tokens_per_s), ("B", b.tokens_per_s)], "")]
    if failure_bars:
        charts.append(_bars("findings by kind", failure_bars, "", label_width=250))
    table_rows = []
    for i, r in enumerate(report.rows):
        diff = "" if r.differs_at is None else f'<div class="meta">differ from character {r.differs_at}</div>'
        table_rows.append(f"<tr><td>{i + 1}. {html.escape(r.prompt.title)}{diff}</td>"
                          f"{_cell(r.a, a.special_tokens)}{_cell(r.b, b.special_tokens)}</tr>")
    counts = "".join(f"<tr><td>{html.escape(label)}</td><td>{a.counts.get(k, 0)}</td><td>{b.counts.get(k, 0)}</td></tr>"
                     for k, label in KINDS.items())
    settings = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in report.settings.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>llamaslots compare</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1f2328; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #d0d7de; padding: 4px 8px; vertical-align: top; }}
th {{ background: #f6f8fa; }} pre {{ white-space: pre-wrap; margin: 0; max-width: 38em; }}
td.bad {{ background: #fff8f5; }} mark {{ background: #ffd8d3; color: #a40e26; }}
.meta {{ color: #57606a; font-size: 12px; }} td ul {{ margin: .3em 0 0 1.2em; padding: 0; color: #a40e26; }}
.charts svg {{ margin-right: 2em; }}
</style></head><body>
<h1>llamaslots compare</h1>
<p><b>A</b>: {html.escape(a.url)} &nbsp; <b>B</b>: {html.escape(b.url)}</p><ul class="settings">{settings}</ul>
<div class="charts">{"".join(charts)}</div>
<h2>Findings</h2><table><tr><th>finding</th><th>A</th><th>B</th></tr>{counts}</table>
<h2>Answers</h2><table><tr><th>prompt</th><th>A</th><th>B</th></tr>{"".join(table_rows)}</table>
</body></html>
"""
