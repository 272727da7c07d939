"""Dev-only differential fuzzer: random templates rendered by real Go (py-go-template) and compat.gotemplate.

Not run in CI. Usage: /work/main/.venv/bin/python tools/fuzz_gotemplate.py SEED COUNT
Prints every template whose output or error message differs. Known, deliberate differences
(Go 1.20 oracle vs the current Go LocalAI builds with): range over integers, `else with`,
`range $i, $e = ...` assignment order, line numbers after multi-line comments.
"""
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))
from concurrent.futures import ThreadPoolExecutor
from gen_gotemplate_goldens import run_oracle, D
from compat.gotemplate import parse, TemplateError
rnd = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
ATOMS = ['.s', '.e', '.n', '.t', '.f', '.i', '.z', '.fl', '.big', '.l', '.nl', '.el', '.m', '.em', '.u', '.html',
         '.nested.inner.v', '.json.name', '.mixed', '"x"', '"héllo"', '`raw`', '1.0', '2.5', '-2.0', '1.5', '2.0', '1e3', "'c'",
         'true', 'false', 'nil', '.', '$', '$.s', '(index .l 1)', '(index .m "a")', '(list 1 "a")', '(dict "k" 1)', '.nested.list']
FUNCS = ['printf "%+v %#v"', 'printf "%q %c %U"', 'printf "%e %g %G"', 'printf "%08.3f|%-6s|%+d"', 'printf "%t %o %b"', 'printf "%5q %.1s %T"', 'print', 'printf "%v"', 'printf "%d"', 'printf "%s|%q"', 'printf "%5.2f"', 'printf "%x"', 'println', 'len', 'index', 'not', 'and', 'or',
         'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'html', 'js', 'urlquery', 'toJson', 'toRawJson', 'toPrettyJson', 'upper',
         'lower', 'title', 'trim', 'quote', 'squote', 'default "d"', 'empty', 'first', 'last', 'rest', 'initial', 'add',
         'add1', 'sub', 'mul', 'div', 'mod', 'max', 'min', 'toString', 'int', 'float64', 'atoi', 'len', 'list', 'join ","',
         'has', 'uniq', 'coalesce', 'ternary "a" "b"', 'contains "l"', 'hasPrefix "h"', 'replace "l" "L"', 'repeat 2',
         'substr 1 3', 'trunc 2', 'nospace', 'indent 2', 'nindent 1', 'b64enc', 'splitList ","', 'keys', 'slice', 'append',
         'typeOf', 'kindOf', 'sortAlpha', 'regexMatch "l+"', 'regexFind "[a-z]+"', 'trimAll "h"', 'trimPrefix "h"', 'cat']
def atom(d=0):
    if d < 2 and rnd.random() < 0.25:
        return "(" + expr(d + 1) + ")"
    return rnd.choice(ATOMS)
def expr(d=0):
    r = rnd.random()
    if r < 0.3:
        return atom(d)
    f = rnd.choice(FUNCS)
    n = rnd.choice([0, 1, 1, 1, 2, 2, 3])
    e = f + "".join(" " + atom(d) for _ in range(n))
    if rnd.random() < 0.2:
        e = atom(d) + " | " + e
    return e
def block(d=0):
    r = rnd.random()
    if d > 2 or r < 0.4:
        return "{{" + rnd.choice(["", "- "]) + expr() + rnd.choice(["", " -"]) + "}}" + rnd.choice(["", " ", "\n", "x"])
    if r < 0.55:
        return "{{if " + expr() + "}}" + block(d+1) + rnd.choice(["", "{{else}}" + block(d+1), "{{else if " + expr() + "}}" + block(d+1)]) + "{{end}}"
    if r < 0.7:
        v = rnd.choice(["", "$e := ", "$i, $e := "])
        body = block(d+1) + rnd.choice(["", "{{$e}}" if "$e" in v else "", "{{$i}}" if "$i" in v else "", "{{break}}", "{{continue}}"])
        return "{{range " + v + expr() + "}}" + body + rnd.choice(["", "{{else}}E"]) + "{{end}}"
    if r < 0.8:
        return "{{with " + expr() + "}}" + block(d+1) + "{{end}}"
    if r < 0.9:
        return "{{$v := " + expr() + "}}{{$v}}"
    return "{{" + expr() + " | " + rnd.choice(["print", "len", "printf \"%v\"", "upper", "toJson"]) + "}}"
def gen():
    return "".join(block() for _ in range(rnd.randint(1, 3)))
cases = [gen() for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 300)]
def one(t):
    res = run_oracle(t, D)
    data = json.loads(json.dumps(D), parse_int=float)
    try:
        mine = {"expected": parse(t).execute(data)}
    except TemplateError as e:
        mine = {"error": str(e)}
    except Exception as e:
        mine = {"error": "CRASH " + repr(e)}
    return t, res, mine
bad = 0
with ThreadPoolExecutor(4) as ex:
    for t, res, mine in ex.map(one, cases):
        if "map has no entry" in res.get("error", "") or "iterate over" in res.get("error", "") or "iterate over" in mine.get("error", ""):
            continue
        if "expected_bytes_b64" in res:
            continue
        if res != mine:
            bad += 1
            print("TEMPLATE:", repr(t)); print("  GO  :", res); print("  MINE:", mine)
print("mismatches", bad, "of", len(cases))
