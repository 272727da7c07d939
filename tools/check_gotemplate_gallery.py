"""Dev-only: render every template of a LocalAI checkout's gallery with real Go and compat.gotemplate.

Not run in CI. Usage: /work/main/.venv/bin/python tools/check_gotemplate_gallery.py /path/to/LocalAI
Collects `template:` values from gallery/*.yaml (including embedded config_file YAML) and the
repository's *.tmpl files, renders each with five chat/prompt data variants in both engines, and
prints any difference in output or error message.
"""
import glob
import json
import os
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
LOCALAI = Path(sys.argv[1])
from concurrent.futures import ThreadPoolExecutor
from gen_gotemplate_goldens import run_oracle
from compat.gotemplate import parse, TemplateError
temps = {}
def walk(x, src):
    if isinstance(x, dict):
        for k, v in x.items():
            if k == "config_file" and isinstance(v, str):
                try: walk(yaml.safe_load(v), src)
                except Exception as e: print("bad yaml", src, e)
            elif k == "template" and isinstance(v, dict):
                for tk, tv in v.items():
                    if isinstance(tv, str) and tk not in ("use_tokenizer_template", "join_chat_messages_by_character"):
                        temps.setdefault(tv, f"{src}:{tk}")
            else:
                walk(v, src)
    elif isinstance(x, list):
        for v in x: walk(v, src)
for f in sorted(glob.glob(str(LOCALAI / "gallery" / "*.yaml"))):
    if f.endswith("index.yaml"):
        continue
    try: walk(yaml.safe_load(open(f)), os.path.basename(f))
    except Exception as e: print("bad", f, e)
for f in glob.glob(str(LOCALAI / "**" / "*.tmpl"), recursive=True):
    temps.setdefault(open(f).read(), os.path.basename(f))
print(len(temps), "distinct templates")
fn = [{"Name": "get_weather", "Description": "Get <weather> & more", "Strict": False, "Parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "c"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}]
base = {"SystemPrompt": "You are helpful.", "SuppressSystemPrompt": False, "Input": "<|user|>hi\n<|assistant|>", "Instruction": "", "Functions": fn, "MessageIndex": 1, "ReasoningEffort": "", "Metadata": {},
        "Role": "user", "RoleName": "user", "FunctionName": "", "Content": "Hello <b> & \"bye\"", "Function": False, "FunctionCall": None, "LastMessage": True,
        "Text": "describe", "Images": [{"ID": 0}], "Audio": [], "Video": [], "ID": 0}
variants = [base,
    {**base, "RoleName": "assistant", "Role": "assistant", "Content": "", "FunctionCall": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
    {**base, "RoleName": "system", "Role": "system", "SystemPrompt": "", "Functions": None},
    {**base, "RoleName": "tool", "Role": "tool", "Content": "{\"t\": 20}", "FunctionName": "get_weather"},
    {**base, "RoleName": "assistant", "Content": "x", "FunctionCall": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}], "Functions": []},
]
jobs = [(t, src, i, v) for t, src in temps.items() for i, v in enumerate(variants)]
def one(job):
    t, src, i, v = job
    res = run_oracle(t, v)
    data = json.loads(json.dumps(v), parse_int=float)
    try: mine = {"expected": parse(t).execute(data)}
    except TemplateError as e: mine = {"error": str(e)}
    except Exception as e: mine = {"error": "CRASH " + repr(e)}
    return src, i, t, res, mine
bad = 0; errs = 0
with ThreadPoolExecutor(4) as ex:
    for src, i, t, res, mine in ex.map(one, jobs):
        if "error" in res: errs += 1
        if res != mine:
            bad += 1
            print("MISMATCH", src, "variant", i, repr(t)[:300]); print("  GO  :", str(res)[:400]); print("  MINE:", str(mine)[:400])
print("jobs", len(jobs), "mismatches", bad, "oracle errors", errs)
