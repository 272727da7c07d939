"""The `llamaslots compare` command line: run the prompts against both sides, write and print the report."""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path

from tqdm import tqdm

from server.compare.prompts import Prompt, PromptsError, load_prompts
from server.compare.report import Report, html_page, judge, markdown, rows
from server.compare.runner import Job, Side, SidePass, run_side


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llamaslots compare",
        description="Send the same chat prompts to two OpenAI-compatible servers (LocalAI, llamaslots, "
                    "llama-server, llama-cpp-python) and report leaked special tokens, cut answers, errors, "
                    "stream/non-stream disagreement, where the answers differ, and speed.")
    for side in ("a", "b"):
        p.add_argument(f"--{side}", required=True, metavar="URL", help=f"side {side.upper()}: the server's base URL")
        p.add_argument(f"--{side}-model", metavar="NAME", help="model for every prompt (else the prompt's own)")
        p.add_argument(f"--{side}-key", metavar="KEY", help="API key (sent as Authorization: Bearer)")
        p.add_argument(f"--{side}-model2", metavar="NAME",
                       help="a second model: the swap pass asks both models at once, as the field note did")
    p.add_argument("--prompts", required=True, type=Path, help="JSONL of OpenAI chat bodies, or lines of text")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight per side (default 4)")
    p.add_argument("--repeat", type=int, default=1, help="times each prompt is asked (default 1)")
    p.add_argument("--stream", choices=("both", "on", "off"), default="both",
                   help="ask streamed, not streamed, or both (default; they must agree)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per answer (default 300)")
    p.add_argument("--special-token", action="append", default=[], metavar="TEXT",
                   help="another text that must not appear in answers (repeatable)")
    p.add_argument("--out", type=Path, default=Path("compare-report"),
                   help="where report.md, report.html and answers.json go (default ./compare-report)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no Markdown on stdout")
    return p


def jobs_for(prompts: list[Prompt], model: str | None, repeat: int, stream: str) -> list[Job]:
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[stream]
    return [Job(i, p, r, s, model) for i, p in enumerate(prompts) for r in range(repeat) for s in modes]


def swap_jobs(prompts: list[Prompt], first: str, second: str) -> list[Job]:
    """Every prompt to both models, interleaved so that the two are asked at the same time."""
    return [Job(i, p, 0, False, m) for i, p in enumerate(prompts) for m in (first, second)]


async def run(args: argparse.Namespace, prompts: list[Prompt]) -> Report:
    sides = [Side("A", args.a, args.a_model, args.a_key, args.a_model2),
             Side("B", args.b, args.b_model, args.b_key, args.b_model2)]
    passes: list[SidePass] = []
    swaps: list[SidePass] = []
    per_side = {s.name: jobs_for(prompts, s.model, args.repeat, args.stream) for s in sides}
    swap_plan = {s.name: swap_jobs(prompts, s.model or "", s.second_model) for s in sides
                 if s.second_model and s.model}
    total = sum(map(len, per_side.values())) + sum(map(len, swap_plan.values()))
    with tqdm(total=total, unit="answer", disable=args.quiet, file=sys.stderr) as bar:
        # One side after the other: on a shared machine, each gets it to itself.
        for side in sides:
            bar.set_description(f"side {side.name}")
            passes.append(await run_side(side, per_side[side.name], concurrency=args.concurrency,
                                         timeout=args.timeout, on_done=lambda: bar.update(1)))
        for side in sides:
            if side.name in swap_plan:
                bar.set_description(f"side {side.name}, two models")
                swaps.append(await run_side(side, swap_plan[side.name], concurrency=args.concurrency,
                                            timeout=args.timeout, on_done=lambda: bar.update(1)))
    extra = tuple(args.special_token)
    summaries = [judge(_with_tokens(p, extra), prompts) for p in passes]
    swap_summaries = [judge(_with_tokens(p, extra), prompts) for p in swaps]
    if len(swap_summaries) != 2:
        swap_summaries = []
    settings = {"prompts": f"{args.prompts} ({len(prompts)})", "concurrency": str(args.concurrency),
                "repeat": str(args.repeat), "stream": args.stream,
                "models": f"A {args.a_model or '(each prompt its own)'}, B {args.b_model or '(each prompt its own)'}"}
    return Report(summaries, rows(prompts, summaries[0], summaries[1]), settings, swap_summaries)


def _with_tokens(p: SidePass, extra: tuple[str, ...]) -> SidePass:
    return dataclasses.replace(p, extra_tokens=extra)


def _answers_json(report: Report) -> list[dict]:
    out = []
    for s in [*report.sides, *report.swap]:
        for j in s.judged:
            out.append({**dataclasses.asdict(j.answer), "findings": [dataclasses.asdict(f) for f in j.findings]})
    return out


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.concurrency < 1 or args.repeat < 1:
        print("llamaslots compare: --concurrency and --repeat must be at least 1", file=sys.stderr)
        return 2
    if bool(args.a_model2) != bool(args.b_model2) or (args.a_model2 and not (args.a_model and args.b_model)):
        print("llamaslots compare: the swap pass needs --a-model, --a-model2, --b-model and --b-model2",
              file=sys.stderr)
        return 2
    try:
        prompts = load_prompts(args.prompts)
    except PromptsError as exc:
        print(f"llamaslots compare: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(run(args, prompts))
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        md = markdown(report)
        (args.out / "report.md").write_text(md, encoding="utf-8")
        (args.out / "report.html").write_text(html_page(report), encoding="utf-8")
        (args.out / "answers.json").write_text(json.dumps(_answers_json(report), ensure_ascii=False, indent=1),
                                               encoding="utf-8")
    except OSError as exc:
        print(f"llamaslots compare: cannot write the report to {args.out}: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(md)
    print(f"report: {args.out / 'report.md'}, {args.out / 'report.html'}", file=sys.stderr)
    return 0  # a report, whatever it found
