"""Dev-only: render template cases with real Go (py-go-template wheel) and write tests/compat/gotemplate/goldens.json.

Not run in CI and not imported by tests. The wheel bundles Go 1.20 text/template + sprig (+ helmfile
functions) and exits the process on a template error, so each case runs in its own subprocess.
The oracle executes with missingkey=error and helmfile's `get`, so cases here avoid missing map keys
(use `index` or JSON null instead) and helmfile-shadowed functions; tests cover those by hand.

Usage: python tools/gen_gotemplate_goldens.py, in a venv with `pip install py-go-template`
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "compat" / "gotemplate" / "goldens.json"
TEMPLATE_NAME = "prompt"  # the oracle names the template after its file, as LocalAI names it "prompt"

_CHILD = r"""
import sys, json
from pathlib import Path
from go_template import render
out = render(Path(sys.argv[1]), json.loads(sys.argv[2]))
sys.stdout.buffer.write(b"\x00OK\x00" + out)
"""

_PREFIXES = ("render template failed: ", "parse template failed: ")

D = {
    "s": "hello", "e": "", "n": None, "t": True, "f": False, "i": 3, "z": 0, "fl": 1.5,
    "big": 1234567, "l": ["a", "b", "c"], "nl": [1, 2, 3], "el": [], "m": {"b": 2, "a": 1, "c": "x"},
    "em": {}, "u": "héllo wörld", "html": "<a href='x'>&\"</a>", "ws": "  \t padded \n ",
    "nested": {"inner": {"v": "deep"}, "list": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    "json": {"name": "f", "description": "d <b> & c", "parameters": {"type": "object", "properties": {"x": {"type": "string"}, "a": {"type": "integer"}}}},
    "mixed": [1, "two", None, True, 2.5],
}

# (name, template, data); data None means the shared dict D.
CASES: list[tuple[str, str, dict | None]] = [
    # --- text, fields, trimming
    ("text_only", "plain text\nline2", None),
    ("field", "{{.s}}", None),
    ("field_nested", "{{.nested.inner.v}}", None),
    ("field_null_prints_no_value", "{{.n}}", None),
    ("field_of_null_errors", "{{.n.x}}", None),
    ("field_on_string_errors", "{{.s.x}}", None),
    ("field_on_int_errors", "{{.i.x}}", None),
    ("dot", "{{.s}}|{{with .nested.inner}}{{.}}{{end}}", None),
    ("trim_left", "a  \n\t {{- .s}}", None),
    ("trim_right", "{{.s -}}  \n\t b", None),
    ("trim_both", "x \n {{- .s -}} \n y", None),
    ("trim_only_template_text", "{{.ws -}}|", None),
    ("minus_number", "{{-3}}", None),
    ("minus_number_trim", "a {{- -3}}", None),
    ("minus_dot_field_is_parse_error", "{{-.Input}}", None),
    ("trim_newline_inside_action", "a\n{{-\n.s\n-}}\nb", None),
    ("comment", "a{{/* c */}}b", None),
    ("comment_trim", "a {{- /* c */ -}} b", None),
    ("comment_bad_close", "{{/* c */ .s}}", None),
    ("comment_unclosed", "{{/* c", None),
    ("multiline_action", "{{if\n.t}}yes{{\nend}}", None),
    # --- literals
    ("lit_string_escapes", '{{"a\\tb\\n\\u00e9\\x41"}}', None),
    ("lit_raw_string", "{{`a\\nb`}}", None),
    ("lit_rune", "{{'a'}} {{'\\n'}}", None),
    ("lit_ints", "{{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}}", None),
    ("lit_floats", "{{1.5}} {{1e6}} {{1.0}} {{2.50}} {{1e-5}} {{123456.7}} {{100000.0}}", None),
    ("lit_bool_nil_print", "{{true}} {{false}} {{print nil}}", None),
    ("nil_is_not_a_command", "{{nil}}", None),
    ("big_json_number", "{{.big}} {{.i}} {{.fl}}", None),
    ("bad_number", "{{3x}}", None),
    ("unterminated_string", '{{"abc}}', None),
    # --- if / else
    ("if_true", "{{if .t}}y{{end}}", None),
    ("if_else", "{{if .f}}y{{else}}n{{end}}", None),
    ("if_else_if", "{{if .f}}a{{else if .z}}b{{else if .s}}c{{else}}d{{end}}", None),
    ("truthiness", "{{if .e}}1{{end}}{{if .z}}2{{end}}{{if .el}}3{{end}}{{if .em}}4{{end}}{{if .n}}5{{end}}{{if .l}}6{{end}}{{if .m}}7{{end}}{{if 0.0}}8{{end}}", None),
    ("if_missing_value", "{{if}}x{{end}}", None),
    ("if_unclosed", "{{if .t}}x", None),
    ("unexpected_end", "x{{end}}", None),
    ("unexpected_else", "x{{else}}", None),
    ("else_extra", "{{if .t}}a{{else}}b{{else}}c{{end}}", None),
    # --- range
    ("range_list", "{{range .l}}[{{.}}]{{end}}", None),
    ("range_index_elem", "{{range $i, $e := .l}}{{$i}}={{$e}};{{end}}", None),
    ("range_elem_only", "{{range $e := .l}}{{$e}}{{end}}", None),
    ("range_map_sorted", "{{range $k, $v := .m}}{{$k}}={{$v}};{{end}}", None),
    ("range_map_values", "{{range .m}}{{.}};{{end}}", None),
    ("range_else_empty", "{{range .el}}x{{else}}empty{{end}}", None),
    ("range_null", "{{range .n}}x{{else}}none{{end}}", None),
    ("range_string_errors", "{{range .s}}x{{end}}", None),
    ("range_float_errors", "{{range .i}}x{{end}}", None),
    ("range_break", "{{range .nl}}{{if eq . 2.0}}{{break}}{{end}}{{.}}{{end}}", None),
    ("range_continue", "{{range .nl}}{{if eq . 2.0}}{{continue}}{{end}}{{.}}{{end}}", None),
    ("break_outside_range", "{{break}}", None),
    ("range_dot_elements_field", "{{range .nested.list}}{{.role}}: {{.content}}\n{{end}}", None),
    ("range_index_expr", '{{range $key, $val := (index .json.parameters "properties")}}{{$key}}:{{$val.type}} {{end}}', None),
    ("range_nested_dollar", "{{range .l}}{{$.s}}-{{.}} {{end}}", None),
    ("range_vars_scoped", "{{range $i, $e := .l}}{{end}}{{$i}}", None),
    ("range_too_many_vars", "{{range $a, $b, $c := .l}}{{end}}", None),
    ("range_elem_field_on_string", "{{range .l}}{{.x}}{{end}}", None),
    ("range_mixed_print", "{{range .mixed}}{{.}},{{end}}", None),
    # --- with
    ("with_value", "{{with .s}}<{{.}}>{{end}}", None),
    ("with_empty_else", "{{with .e}}x{{else}}empty{{end}}", None),
    ("with_decl", "{{with $x := .nested.inner}}{{$x.v}}{{end}}", None),
    ("with_field_on_string", "{{with .s}}{{.x}}{{end}}", None),
    # --- variables
    ("var_declare", "{{$x := .s}}{{$x}}", None),
    ("var_assign_persists", "{{$x := 1}}{{if .t}}{{$x = 2}}{{end}}{{$x}}", None),
    ("var_declare_scoped", "{{if .t}}{{$y := 1}}{{end}}{{$y}}", None),
    ("var_undefined", "{{$nope}}", None),
    ("var_accumulate", '{{$tools := ""}}{{range .l}}{{$tools = print $tools . " "}}{{end}}[{{$tools}}]', None),
    ("var_dollar_root", "{{with .nested}}{{$.s}}{{end}}", None),
    ("var_field_chain", "{{$m := .nested}}{{$m.inner.v}}", None),
    ("var_shadow", "{{$x := 1}}{{with .s}}{{$x := 2}}{{$x}}{{end}}{{$x}}", None),
    ("var_decl_prints_nothing", "{{$x := .s}}", None),
    # --- pipelines
    ("pipe_last_arg", '{{.s | printf "%s!"}}', None),
    ("pipe_chain", '{{.s | upper | printf "<%s>"}}', None),
    ("pipe_paren", '{{(index .nested.list 1).role}}', None),
    ("pipe_non_function_args", "{{.s 1}}", None),
    ("pipe_nonexec_stage", "{{.s | 3}}", None),
    ("func_undefined", "{{nosuch 1}}", None),
    ("func_niladic_arg", "{{print (list)}}", None),
    ("paren_nested", "{{print (print (print 1 2))}}", None),
    ("chain_on_literal_error", '{{"a".x}}', None),
    # --- and / or / not
    ("and_operands", '{{and "a" "b"}}|{{and "" "b"}}|{{and 1 0 2}}|{{and .f "x"}}', None),
    ("or_operands", '{{or "" 0}}|{{or "" "b"}}|{{or .z .e .s}}', None),
    ("and_short_circuit", "{{and .f (index .l 10)}}", None),
    ("or_short_circuit", "{{or .t (index .l 10)}}", None),
    ("not_values", "{{not .e}} {{not .s}} {{not .n}} {{not .el}}", None),
    # --- comparisons
    ("eq_strings", '{{eq .s "hello"}} {{eq .s "x"}}', None),
    ("eq_multi", '{{eq .s "a" "hello" "b"}} {{eq .s "a" "b"}}', None),
    ("eq_int_float_error", "{{eq 1 1.0}}", None),
    ("eq_json_number_vs_int_error", "{{eq .i 3}}", None),
    ("eq_json_number_float", "{{eq .i 3.0}}", None),
    ("eq_string_int_error", '{{eq "1" 1}}', None),
    ("eq_null", '{{eq .n "x"}} {{eq .n nil}}', None),
    ("eq_index_missing", '{{eq (index .m "zz") "x"}}', None),
    ("eq_lists_error", "{{eq .l .l}}", None),
    ("eq_bools", "{{eq .t true}} {{eq .f true}}", None),
    ("eq_no_args", "{{eq .s}}", None),
    ("ne_lt_gt", '{{ne 1 2}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}', None),
    ("lt_mismatch_error", '{{lt 1 "a"}}', None),
    ("lt_null_error", "{{lt .n 1}}", None),
    ("lt_bool_error", "{{lt true false}}", None),
    # --- len / index / slice
    ("len_bytes", '{{len "héllo"}} {{len .l}} {{len .m}} {{len .em}}', None),
    ("len_int_error", "{{len 3}}", None),
    ("len_null_error", "{{len .n}}", None),
    ("index_list", "{{index .l 1}} {{index .nested.list 0 \"role\"}}", None),
    ("index_map_missing", '{{index .m "zz"}}|{{index .m "a"}}', None),
    ("index_out_of_range", "{{index .l 5}}", None),
    ("index_len_edge", "{{index .l 3}}", None),
    ("index_string_byte", '{{index "abc" 1}}', None),
    ("index_float_index_error", "{{index .l 1.0}}", None),
    ("index_json_number_error", "{{index .l .i}}", None),
    ("index_null_error", "{{index .n 1}}", None),
    ("index_int_error", "{{index 3 1}}", None),
    ("index_map_int_key_error", "{{index .m 1}}", None),
    ("index_no_indexes", "{{index .s}}", None),
    ("sprig_slice_list", "{{slice .l 1}} {{slice .l 0 2}} {{slice .l}}", None),
    ("sprig_slice_string_error", '{{slice "abc" 1}}', None),
    # --- print family
    ("print_spacing", '{{print "a" 1 2 "b"}}|{{print 1 2}}|{{print "a" "b"}}|{{print .t .f}}', None),
    ("print_composites", "{{print .l}} {{print .m}} {{print .mixed}} {{print .el}} {{print .em}}", None),
    ("print_value_forms", "{{.l}} {{.m}} {{.nested.list}}", None),
    ("println", '{{println "a" 1 "b"}}', None),
    ("print_null", "{{print .n}}|{{print .n .n}}", None),
    ("print_floats", "{{print 1e21 1e20 0.000001 0.0000001 -2.5 3.0}}", None),
    ("printf_basic", '{{printf "%s-%d-%v-%t" "a" 5 .l true}}', None),
    ("printf_width_prec", '{{printf "[%5s][%-5s][%05d][%.2f][%8.3f][%-8.2f][%x][%X][%o][%b]" "ab" "ab" 42 3.14159 2.5 2.5 255 255 8 5}}', None),
    ("printf_q", '{{printf "%q %q %q" "a\\"b\\n" 65 "é"}}', None),
    ("printf_c_U", '{{printf "%c %U %#U" 65 233 233}}', None),
    ("printf_e_g", '{{printf "%e %E %g %G %.3e %.3g %g" 123456.789 0.000123 1e6 1e-7 1234.5678 1234.5678 100000.0}}', None),
    ("printf_plus_space", '{{printf "%+d % d %+.1f %x" 5 5 2.0 "hi"}}', None),
    ("printf_wrong_type", '{{printf "%d" "hi"}}', None),
    ("printf_missing", '{{printf "%s %s" "a"}}', None),
    ("printf_extra", '{{printf "%s" "a" 5 "x"}}', None),
    ("printf_nil", '{{printf "%s|%v|%d" .n .n .n}}', None),
    ("printf_T", '{{printf "%T %T %T %T %T %T %T" .s .i .t .l .m .n 3}}', None),
    ("printf_percent", '{{printf "100%%"}}', None),
    ("printf_json_float_d", '{{printf "%d" .i}}', None),
    ("printf_v_floats", '{{printf "%v %v %v" .big .fl 1e21}}', None),
    ("printf_star", '{{printf "[%*d][%-*d]" 5 1 4 2}}', None),
    ("printf_argindex", '{{printf "%[2]s %[1]s" "a" "b"}}', None),
    ("printf_noverb", '{{printf "abc%"}}', None),
    ("printf_list_verbs", '{{printf "%d %s %q" .nl .l .l}}', None),
    ("printf_bad_format_type", "{{printf 3}}", None),
    ("printf_sharp", '{{printf "%#x %#o %#q" 255 8 "ab"}}', None),
    ("printf_zero_str", '{{printf "%05s|%-05d|%6.2s" "ab" 3 "abcdef"}}', None),
    ("printf_inf", '{{printf "%f %v" (float64 "inf") (float64 "-inf")}}', None),
    # --- html / js / urlquery
    ("html_escape", "{{html .html}}", None),
    ("html_multi", '{{html "a" 1 "<"}}', None),
    ("html_null", "{{html .n}}", None),
    ("js_escape", '{{js .html}} {{js "a\\nb\\t=\\\\x`y"}}', None),
    ("urlquery", '{{urlquery "a b&c=d/é?"}}', None),
    # --- define / template / block
    ("define_template", '{{define "T"}}<{{.}}>{{end}}{{template "T" .s}}{{template "T" .i}}', None),
    ("template_no_pipe", '{{define "T"}}[{{.}}]{{end}}{{template "T"}}', None),
    ("template_dollar_rebound", '{{define "T"}}{{$}}{{end}}{{template "T" .s}}', None),
    ("template_undefined", '{{template "nope"}}', None),
    ("block_default", '{{block "B" .s}}<{{.}}>{{end}}!', None),
    ("define_redefine_error", '{{define "T"}}a{{end}}{{define "T"}}b{{end}}', None),
    ("template_error_inside", '{{define "T"}}{{.x.y}}{{end}}{{template "T" .s}}', None),
    ("define_bad_name", "{{define T}}{{end}}", None),
    # --- sprig: json
    ("toJson_map", "{{toJson .m}}", None),
    ("toJson_escapes", '{{toJson .html}} {{toJson "\\u2028\\u2029"}}', None),
    ("toJson_nested", "{{toJson .json}}", None),
    ("toJson_numbers", "{{toJson .big}} {{toJson .fl}} {{toJson 1e21}} {{toJson 1e20}} {{toJson 0.0000001}} {{toJson 0.000001}} {{toJson 3}}", None),
    ("toJson_scalars", "{{toJson .n}} {{toJson .t}} {{toJson .s}} {{toJson .el}} {{toJson .em}} {{toJson .u}}", None),
    ("toJson_control", '{{toJson "a\\tb\\nc\\rd\\u0001e"}}', None),
    ("toPrettyJson", "{{toPrettyJson .json}}|{{toPrettyJson .el}}|{{toPrettyJson .em}}", None),
    ("toRawJson", "{{toRawJson .html}} {{toRawJson .m}}", None),
    ("toJson_functions_loop", '{{range .fns}}{{toJson .}}\n{{end}}', {"fns": [{"name": "a", "description": "x<y", "parameters": {"b": 1, "a": [1, 2]}}]}),
    # --- sprig: strings
    ("trim_family", '[{{trim .ws}}][{{trimAll "xy" "xyaxbyx"}}][{{trimPrefix "he" .s}}][{{trimSuffix "lo" .s}}][{{trimPrefix "zz" .s}}]', None),
    ("trim_unicode_space", '[{{trim "\\u00a0\\u2003 x \\u3000"}}]', None),
    ("upper_lower_title", '{{upper "straße héllo"}} {{lower "ÀB"}} {{title "hello wORLD a-b c_d"}}', None),
    ("contains_prefix_suffix", '{{contains "ell" .s}} {{hasPrefix "he" .s}} {{hasSuffix "lo" .s}} {{contains "z" .s}}', None),
    ("replace", '{{replace "l" "L" .s}} {{replace "" "-" "abc"}}', None),
    ("split_join", '{{$p := split "," "a,b,c"}}{{$p._0}}{{$p._2}} {{join "-" (splitList "," "a,b,c")}} {{join "," .mixed}}', None),
    ("splitList_empty_sep", '{{splitList "" "héy"}}', None),
    ("quote_squote", '{{quote "a\\"b" 1 .n}} {{squote "a" 2}}', None),
    ("repeat_substr_trunc", '{{repeat 3 "ab"}} {{substr 1 3 "hello"}} {{substr 0 2 "héllo"}} {{trunc 3 "hello"}} {{trunc -2 "hello"}} {{substr -1 2 "hello"}} {{substr 2 -1 "hello"}}', None),
    ("substr_out_of_range", '{{substr 4 2 "hello"}}', None),
    ("nospace", '{{nospace "a b\\tc\\nd"}} {{nospace "héllo wörld"}} {{nospace "nospace"}}', None),
    ("indent_nindent", '{{indent 2 "a\\nb"}}|{{nindent 2 "a\\nb"}}', None),
    ("b64", '{{b64enc "héllo"}} {{b64dec "aGk="}} {{b64dec "!!"}}', None),
    ("toString_atoi_int_float", '{{toString 3}} {{toString .fl}} {{toString .n}} {{atoi "42"}} {{atoi "x"}} {{int "7"}} {{int .fl}} {{float64 "2.5"}} {{int 3.9}}', None),
    ("default_empty", '{{default "d" .e}} {{default "d" .s}} {{default "d" .n}} {{default 5 .z}} {{empty .e}} {{empty .s}} {{empty .el}} {{empty .n}}', None),
    ("ternary_coalesce", '{{ternary "y" "n" .t}} {{ternary "y" "n" false}} {{coalesce .e .z .s}} {{coalesce .e}}', None),
    ("upper_wrong_type", "{{upper 3}}", None),
    ("upper_null_error", "{{upper .n}}", None),
    ("upper_index_missing_error", '{{upper (index .m "zz")}}', None),
    ("upper_json_number_error", "{{upper .i}}", None),
    ("regex", '{{regexMatch "^h.l+o$" .s}} {{regexFind "[0-9]+" "ab123cd45"}} {{regexReplaceAll "(l+)" .s "<$1>"}} {{regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W"}}', None),
    ("regex_bad_pattern", '{{regexMatch "(" "x"}}', None),
    ("regex_find_bad_pattern", '{{regexFind "(" "x"}}', None),
    # --- sprig: math
    ("math_basic", "{{add 1 2 3}} {{add1 .i}} {{sub 5 7}} {{mul 2 3 4}} {{div 7 2}} {{div -7 2}} {{mod 7 3}} {{mod -7 3}} {{max 1 5 3}} {{min 4 2 8}}", None),
    ("math_json_floats", "{{add .i .fl}} {{add1 .fl}} {{mul .fl 2}}", None),
    ("math_strings", '{{add "3" "4"}} {{add "x" 1}} {{add1 "0x10"}}', None),
    ("div_by_zero", "{{div 1 0}}", None),
    ("add1_in_loop", "{{range $i, $e := .l}}{{add1 $i}}{{end}}", None),
    # --- sprig: lists & dicts
    ("list_dict", '{{list 1 "a" .n}} {{dict "b" 1 "a" 2}} {{dict "k"}}', None),
    ("dict_field_access", '{{$d := dict "x" "y"}}{{$d.x}}', None),
    ("set_hasKey", '{{$d := dict "a" 1}}{{$_ := set $d "b" 2}}{{hasKey $d "b"}} {{hasKey $d "z"}} {{toJson $d}}', None),
    ("keys_sorted", "{{keys .m | sortAlpha}}", None),
    ("first_last_rest_initial", "{{first .l}} {{last .l}} {{rest .l}} {{initial .l}} {{first .el}}", None),
    ("first_on_string_error", '{{first "abc"}}', None),
    ("append_uniq_has", '{{append .l "d"}} {{uniq (list 1 1 2 "a" "a")}} {{has "b" .l}} {{has "z" .l}} {{has 1 .nl}}', None),
    ("has_wrong_type", '{{has "a" "abc"}}', None),
    # --- arg type errors & counts
    ("wrong_arg_count", '{{upper "a" "b"}}', None),
    ("wrong_arg_count_variadic", "{{index}}", None),
    ("int_param_with_string", '{{repeat "x" "y"}}', None),
    ("int_param_with_json_number", "{{repeat .i \"y\"}}", None),
    ("bool_param_with_string", '{{ternary 1 2 "yes"}}', None),
    ("string_param_nil", "{{upper nil}}", None),
    ("context_truncated", "{{printf \"%d\" \"a very long string here\" | len | upper}}", None),
    # --- parse errors
    ("parse_unclosed_action", "{{.s", None),
    ("parse_unclosed_paren", "{{(.s}}", None),
    ("parse_unexpected_rparen", "{{.s)}}", None),
    ("parse_bad_char", "{{.s#}}", None),
    ("parse_empty_pipe", "{{}}", None),
    ("parse_unexpected_operand", '{{.s "x"}}{{$x := }}', None),
    ("parse_missing_end_line", "line1\nline2\n{{if .t}}\nx", None),
    ("parse_error_line", "a\nb\n{{.s | }}", None),
    ("parse_else_if_chain_unclosed", "{{if .t}}{{else if .f}}", None),
    ("parse_continue_outside", "{{continue}}", None),
    ("parse_multiline_unclosed", "{{if\n.t", None),
    ("parse_assign_undeclared", "{{$x = 1}}", None),
    ("parse_dot_after_term", "{{3.x}}", None),
    ("parse_illegal_number", "{{0x}}", None),
    # --- error position and context
    ("exec_error_line_col", "line1\n  {{.n.x}}", None),
    ("exec_error_in_range", "{{range .l}}\n{{.x}}{{end}}", None),
    ("exec_error_partial_output_discarded", "abc{{.n.x}}def", None),
    # --- more pipelines, spacing, trimming, positions
    ("pipe_into_builtins", '{{"x" | len}} {{.l | len}} {{.s | eq "hello"}} {{.i | add 1}} {{"%d!" | printf "%s"}}', None),
    ("pipe_into_and_or", '{{.s | and true}} {{.e | or "dflt"}} {{"" | and 1}}', None),
    ("pipe_final_type_error", "{{.i | repeat 2}}", None),
    ("spaces_in_actions", "{{  .s  }}|{{ if  .t }}y{{ end }}|{{ $x := 1 }}{{ $x }}", None),
    ("trim_block_layout", "<ul>\n{{- range .l }}\n  <li>{{ . }}</li>\n{{- end }}\n</ul>", None),
    ("trim_both_sides_if", "a\n  {{- if .t -}}\n  yes\n  {{- end -}}\n  b", None),
    ("delims_in_string", '{{"}}{{"}}|{{`{{x}}`}}', None),
    ("paren_pipeline_inner", '{{(print "a" | upper)}} {{print (.s | upper) "!"}}', None),
    ("dollar_alone", "{{with .nested}}{{$.i}} {{len $}}{{end}}", None),
    ("define_uses_outer_var", '{{define "T"}}{{$x}}{{end}}{{$x := 1}}{{template "T"}}', None),
    ("nested_define_templates", '{{define "A"}}A({{template "B" .}}){{end}}{{define "B"}}B{{.}}{{end}}{{template "A" .s}}', None),
    ("template_in_range", '{{define "item"}}<{{.role}}>{{end}}{{range .nested.list}}{{template "item" .}}{{end}}', None),
    ("block_then_define_override", '{{block "B" .s}}default{{end}}{{define "B"}}override{{end}}', None),
    ("index_nested_map", '{{index .json "parameters" "properties" "x" "type"}}', None),
    ("len_of_nested", "{{len .nested.list}} {{len .json.parameters.properties}}", None),
    ("and_or_values", "{{and 1 2.5}} {{or 0 .l}} {{and .l .m}}", None),
    ("not_eq_and", '{{if not (eq .s "x")}}a{{end}}{{if and .t (eq .s "hello")}}b{{end}}{{if or .f (ne .s "hello")}}c{{end}}', None),
    ("end_with_args", "{{if .t}}x{{end .t}}", None),
    ("else_with_args", "{{if .t}}x{{else .t}}y{{end}}", None),
    ("range_single_assign", "{{$e := 0}}{{range $e = .l}}{{end}}{{$e}}", None),
    ("printf_map_nil", '{{printf "%v" .nested}} {{print .json.parameters}} {{printf "%v" (dict "a" nil)}}', None),
    ("context_truncated_long", '{{index .nested.list 0 "role" "x" "y"}}', None),
    ("exec_col_multibyte", "é日本{{.n.x}}", None),
    ("exec_col_second_line_multibyte", "x\nαβ {{.n.x}}", None),
    ("parse_end_extra_token", "{{if .t}}{{end x}}", None),
    ("parse_range_no_pipeline", "{{range}}{{end}}", None),
    ("parse_template_no_name", "{{template .s}}", None),
    ("parse_define_not_top_level", '{{if .t}}{{define "x"}}{{end}}{{end}}', None),
    ("parse_unexpected_pipe", "{{| .s}}", None),
    ("parse_bad_assign", "{{$x := 1 := 2}}", None),
    ("parse_declare_in_parens", "{{($x := 1)}}", None),
    ("parse_var_in_nested_scope", "{{range .l}}{{$v := .}}{{end}}{{$v}}", None),
    ("parse_char_constant_bad", "{{'ab'}}", None),
    ("parse_unterminated_raw", "{{`abc}}", None),
    ("parse_unterminated_char", "{{'a}}", None),
    ("parse_colon_alone", "{{$x : 1}}", None),
    ("non_executable_second", '{{.s | "x"}}', None),
    ("can_give_arg_to_variable", "{{$x := 1}}{{$x 2}}", None),
    ("dot_with_args", "{{. 1}}", None),
    ("string_literal_with_pipe", '{{"a" | printf "%s%s" "b"}}', None),
    ("bool_literal_as_cmd_with_pipe", "{{true | not}}", None),
    ("number_formats_print", "{{print 1.0 2.50 -0.0 1e100 123456789.0 0.1}}", None),
    ("big_int_literal", "{{9223372036854775807}} {{-9223372036854775808}}", None),
    ("int_overflow_literal", "{{9223372036854775808}}", None),
    ("float_literal_as_int_arg", "{{repeat 2.0 \"ab\"}}", None),
    ("float_literal_as_int_arg_bad", "{{repeat 2.5 \"ab\"}}", None),
    ("rune_literal_as_int_arg", "{{printf \"%c%c\" 'h' 'i'}} {{repeat 'a' \"\"}}|", None),
    ("sprig_coalesce_all_empty", "{{coalesce .e .z .n}}", None),
    ("sprig_toString_list", "{{toString .l}} {{toString .m}}", None),
    ("sprig_join_scalar", '{{join "," "abc"}} {{join "," .n}}', None),
    ("sprig_quote_list", "{{quote .l}}", None),
    ("sprig_default_list", '{{default (list 1) .el}} {{default "x" .l}}', None),
    ("sprig_dict_get_via_index", '{{$d := dict "a" (list 1 2)}}{{index $d "a" 1}}', None),
    ("sprig_rest_empty", "{{rest .el}} {{last .el}} {{initial .el}}", None),
    ("sprig_empty_struct_like", "{{empty .m}} {{empty .em}} {{empty .f}} {{empty .fl}}", None),
    ("sprig_int_conversions", '{{int "0x10"}} {{int "010"}} {{int "1e3"}} {{int .t}} {{int64 "-5"}} {{float64 .i}} {{float64 "x"}}', None),
    ("sprig_atoi_edge", '{{atoi "+5"}} {{atoi "-0"}} {{atoi " 5"}} {{atoi "0x1"}}', None),
    ("sprig_max_min_strings", '{{max "10" 9}} {{min .fl 3}}', None),
    ("sprig_mod_negative", "{{mod 7 -3}} {{div 7 -2}} {{mod 0 5}}", None),
    ("sprig_mod_zero", "{{mod 1 0}}", None),
    ("sprig_trimAll_unicode", '{{trimAll "é" "ééxéé"}}', None),
    ("sprig_replace_unicode", '{{replace "ö" "o" .u}}', None),
    ("sprig_title_unicode", '{{title "élan vital ß"}}', None),
    ("sprig_upper_special", '{{upper "ǆ ß ﬁ"}} {{lower "İ"}}', None),
    ("sprig_indent_empty", '[{{indent 2 ""}}]', None),
    ("sprig_regex_anchors", '{{regexMatch "^[a-z]+$" "abc\n"}} {{regexReplaceAll "\\s+" "a  b\tc" " "}}', None),
    ("sprig_regex_named", '{{regexReplaceAll "(?P<w>\\w+)@" "me@x" "${w} at "}}', None),
    ("sprig_b64_roundtrip", '{{b64dec (b64enc "<tag> & é")}}', None),
    ("sprig_set_overwrite", '{{$d := dict "a" 1}}{{$_ := set $d "a" 2}}{{$d.a}}', None),
    ("sprig_hasKey_nil_map", '{{hasKey .em "a"}}', None),
    ("sprig_list_append_nested", '{{$l := list}}{{range .l}}{{$l = append $l .}}{{end}}{{toJson $l}}', None),
    ("sprig_uniq_mixed", '{{uniq (list 1 1.0 "1" 1)}}', None),
    ("sprig_ternary_nonbool", '{{ternary 1 2 .i}}', None),
    ("toJson_float_forms", "{{toJson 0.1}} {{toJson 1e-7}} {{toJson 123456789.0}} {{toJson -0.0000001}} {{toJson 1.5e300}}", None),
    ("toJson_unicode", '{{toJson "日本\u007f\u0080"}}', None),
    ("toJson_invalid_utf8", '{{toJson (substr 0 2 "é")}}|{{toJson (substr 0 1 "é")}}', None),
    ("toPrettyJson_nested_empty", '{{toPrettyJson (dict "a" (list) "b" (dict) "c" (list 1 (dict "d" nil)))}}', None),
    ("html_in_range", "{{range .l}}{{html .}}{{end}}", None),
    ("js_unicode", '{{js "é\u2028<"}}', None),
    ("urlquery_multi", '{{urlquery "a" 1 "b c"}}', None),
    ("print_in_html_pipeline", '{{.html | html | printf "[%s]"}}', None),
    ("printf_padding_unicode", '{{printf "[%5s][%-5s][%.2s]" "é" "日本" "日本語"}}', None),
    ("printf_float_edge", '{{printf "%.0f %.1f %5.1f %-8.3e %g %g" 2.5 0.05 -1.25 1234.5 0.0001 0.00001}}', None),
    ("printf_int_flags", '{{printf "%+05d|%-+5d|%x|%X|%#b|%08.3d|%o" -42 42 -255 3054 5 7 -8}}', None),
    ("printf_bool_verbs", '{{printf "%t %v %d" true false true}}', None),
    ("printf_string_verbs_on_list", '{{printf "%x %X % x" "hi" "hi" "hi"}}', None),
    ("printf_T_nested", '{{printf "%T %T" .nested.list .json.parameters.properties}}', None),
    ("printf_argindex_bad", '{{printf "%[3]s" "a"}}', None),
    ("printf_star_bad", '{{printf "%*d" "x" 1}}', None),
    ("printf_q_unicode", '{{printf "%q %+q %q" "日本\x01" "日本" 0x1F600}}', None),
    ("printf_v_struct_like_map", '{{printf "%+v %v" .m .mixed}}', None),
    # --- found by differential fuzzing
    ("sprig_int64_to_int_param", '{{repeat (add 1 1) "x"}}', None),
    ("sprig_int64_type_and_kind", '{{printf "%T %d" (add 1 2) (mul 2 3)}} {{typeOf (max 1 2)}} {{kindOf (add1 1)}} {{eq (add 1 1) 2}} {{index .l (sub 2 1)}}', None),
    ("sprig_int64_in_type_error", "{{upper (add 1 2)}}", None),
    ("sprig_int64_slice_error", "{{slice (mul 2 3)}}", None),
    ("printf_bad_verb_keeps_width", '{{printf "%5.2f|%-4d|%x" "héllo" "ab" 1.5}}', None),
    ("printf_nil_inside_containers", '{{printf "%s|%d|%5v" .mixed .mixed .mixed}}', None),
    ("eq_non_comparable_types", '{{eq (list 1 "a") .m}}', None),
    ("eq_non_comparable_second", '{{eq .m .m}}', None),
    ("range_over_string_list_elems", '{{range splitList "," "a,b"}}{{.x}}{{end}}', None),
    ("parse_unexpected_dot", "{{template .}}", None),
    ("parse_unexpected_nil", "{{define nil}}{{end}}", None),
    ("parse_line_after_trim_newline", "a\n{{-\nnosuch\n-}}\nb", None),
    ("parse_line_after_right_trim", "{{.s\n-}}\n\n{{nosuch}}", None),
    ("lex_complex_bad", "{{print 12345678-9}}", None),
    ("lex_empty_char", "{{''}}", None),
    ("lex_long_char", "{{'ab'}}", None),
    ("lex_unrecognized_char", "{{.s ^}}", None),
    ("lex_bad_char_after_ident", "{{print@}}", None),
    ("printf_nil_in_container_unpadded", '{{printf "[%-6s][%6v][%6d]" .mixed .mixed .mixed}}', None),
    ("printf_bad_verb_int64", '{{printf "%G %s" (max 1 2) (add 1 2)}}', None),
    ("sprig_dateInZone_layouts", '{{dateInZone "2006-01-02 15:04:05 Mon Monday Jan January _2 2 1 01 3PM 03pm 15h -07:00 -0700 Z07:00 MST .000 .999 ,00 002 06" 86399 "UTC"}}', None),
    ("sprig_dateInZone_float_is_now_year", '{{dateInZone "2006" 1.0 "UTC" | len}} {{dateInZone "2006-01-02T15:04:05Z07:00" 1700000000 "UTC"}}', None),
    ("pipe_null_into_len", "{{.n | len}}", None),
    ("pipe_null_into_print", "{{.n | print}} {{.n | printf \"%v\"}}", None),
    ("sprig_float_math", '{{addf 1.1 2.2}} {{subf 5 1.1 1.1}} {{mulf 1.1 3}} {{divf 1 3}} {{maxf 1 2.5}} {{minf 1 2.5}} {{add1f 1.5}} {{round 2.345 2}} {{round 2.5 0}} {{floor 2.7}} {{ceil 2.1}}', None),
    ("sprig_float_math_edges", '{{round 1.005 2}} {{round -2.5 0}} {{round 2.44 1 0.4}} {{addf "1.5" 1}} {{mulf 0.1 0.2}} {{divf 10 4}} {{subf 0.3 0.1}} {{addf .fl .i}}', None),
    ("sprig_divf_zero", "{{divf 1 0}}", None),
    ("sprig_seq_concat_dig_pluck", '{{seq 3}}|{{seq 2 4}}|{{seq 5 -2 1}}|{{seq 0}}|{{seq 1 0}}|{{concat (list 1 2) (list 3)}}|{{dig "a" "b" "dflt" (dict "a" (dict "b" 1))}}|{{dig "a" "x" "dflt" (dict "a" (dict "b" 1))}}|{{pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3)}}', None),
    ("sprig_hashes_abbrev_plural", '{{sha256sum "hi"}} {{sha1sum "hi"}} {{adler32sum "hi"}} {{abbrev 5 "hello world"}} {{abbrev 3 "hello"}} {{plural "one" "many" 1}} {{plural "one" "many" 2}}', None),
    ("sprig_paths", '{{base "/a/b.txt"}} {{dir "/a/b.txt"}} {{ext "/a/b.txt"}} {{clean "//a/../b/./c/"}} {{isAbs "/a"}} {{base ""}} {{dir ""}} {{clean ""}} {{base "/"}} {{dir "a"}} {{clean "../../x/.."}}', None),
    ("sprig_encodings_misc", '{{b32enc "hi"}} {{b32dec "NBUQ===="}} {{toDecimal "777"}} {{toDecimal "9"}} {{regexQuoteMeta "a.b*c"}} {{mustFirst (list 1)}} {{mustToJson (list 1)}} {{len uuidv4}}', None),
    ("sprig_mustFirst_error", '{{mustFirst "x"}}', None),
    ("sprig_concat_error", '{{concat (list 1) "x"}}', None),
    ("sprig_mustRegexMatch_error", '{{mustRegexMatch "(" "x"}}', None),
    ("printf_hex_float", '{{printf "%x %X %.1x" 1.0 -3.75 0.1}}', None),
    # --- gallery-like templates
    ("gallery_chatml",
     "{{.Input -}}\n<|im_start|>assistant\n", {"Input": "<|im_start|>user\nhi<|im_end|>"}),
    ("gallery_chat_message",
     "<|im_start|>{{if eq .RoleName \"assistant\"}}assistant{{else if eq .RoleName \"system\"}}system{{else if eq .RoleName \"tool\"}}tool{{else if eq .RoleName \"user\"}}user{{end}}\n"
     "{{- if .FunctionCall }}\n<tool_call>\n{{- else if eq .RoleName \"tool\" }}\n<tool_response>\n{{- end }}\n"
     "{{- if .Content}}\n{{.Content }}\n{{- end }}\n{{- if .FunctionCall}}\n{{toJson .FunctionCall}}\n{{- end }}\n"
     "{{- if .FunctionCall }}\n</tool_call>\n{{- else if eq .RoleName \"tool\" }}\n</tool_response>\n{{- end }}<|im_end|>",
     {"RoleName": "assistant", "Content": "", "FunctionCall": {"name": "get", "arguments": "{\"a\":1}"}}),
    ("gallery_function",
     "<|im_start|>system\nYou have tools:\n{{range .Functions}}\n{'type': 'function', 'function': {'name': '{{.name}}', 'description': '{{.description}}', 'parameters': {{toJson .parameters}} }}\n{{end}}\n<|im_end|>\n{{.Input -}}\n<|im_start|>assistant",
     {"Input": "x", "Functions": [{"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}}]}),
    ("gallery_tools_accumulate",
     '{{$tools := ""}}{{range .Functions}}{{$tools = print $tools .name " "}}{{end}}Tools: {{$tools}}\n{{- range $key, $val := (index (index .Functions 0).parameters "properties")}}\n- {{$key}}: {{$val.type}}{{end}}',
     {"Functions": [{"name": "a", "parameters": {"properties": {"q": {"type": "string"}, "n": {"type": "integer"}}}}, {"name": "b", "parameters": {}}]}),
    ("gallery_llama3",
     "<|start_header_id|>{{if eq .RoleName \"assistant\"}}assistant{{else if eq .RoleName \"system\"}}system{{else if eq .RoleName \"tool\"}}tool{{else if eq .RoleName \"user\"}}user{{end}}<|end_header_id|>\n\n"
     "{{ if .FunctionCall -}}\nFunction call:\n{{ else if eq .RoleName \"tool\" -}}\nFunction response:\n{{ end -}}\n{{ if .Content -}}\n{{.Content -}}\n{{ else if .FunctionCall -}}\n{{ toJson .FunctionCall -}}\n{{ end -}}\n<|eot_id|>",
     {"RoleName": "user", "Content": "Hello <b> & bye", "FunctionCall": None}),
    ("gallery_system_prompt_branch",
     "{{if .SystemPrompt}}[INST] <<SYS>>\n{{.SystemPrompt}}\n<</SYS>>\n\n{{.Content}} [/INST]{{else}}{{.Content}}{{end}}",
     {"SystemPrompt": "be nice", "Content": "q"}),
]


# --- Go regexp semantics, through sprig (compat/gotemplate/goregex.py): each pattern against each
# input with match, find-all, replace-all (with $0 expansion) and split. The oracle's Go is 1.20,
# which predates `(?<name>...)` (Go 1.22), so that spelling is tested by hand.
REGEX_PATTERNS = [
    r"^\d$", r"\d+", r"\w+", r"\s", r"\S+", r"\bab\b", r"\Bb", "[[:alpha:]]+", "[[:^digit:]]+",
    "[[:punct:][:space:]]", r"[^\D5]", r"\pL+", r"\p{Lu}", r"\PL", r"\p{^N}+", "(?i)straße", "(?i)k",
    "a$", "(?m)a$", "(?m)^b", r"a\z", r"\Aa", "(?s)a.b", "a.b", "x*", "|b", "a|ab", "(?U)a+", "(?U)a+?",
    "a{2}", "a{,2}", "a{2,}", "a{1,2}?", "{", "a{x}", r"\Q.*\E", r"\x41\x{42}\101", r"[\x{3b1}-\x{3c9}]+",
    "(?P<w>[a-z])(?P<n>[0-9])", "(a)(b)?", "(?i:A)b", "a(?i)b|c", r"[\]a-]", "[]a]", "[^]a]", r"\.",
    r"[a\-z]", "é+", "(?:ab)+", r"\n",
]
REGEX_INPUTS = ["", "a", "ab", "a\n", "aab b", "x1y22", "٣3", "Ab aB", "STRASSE straße", "KK k",
                "b\nb", "a.b a\nb", "ab12 C3", "αβγ abc", "{a{x}", "aaa", "é-ée", ".*?", "AB ab 5 7"]
REGEX_BAD = [r"(?=x)", r"(a)\1", r"a\Z", "[a", "(a", "a)", "a**", "*a", "a{1001}", "[z-a]", "(?x)a",
             "[[:foo:]]", "(?P<>a)", "a*+", r"\8", r"\C", "x{2}{3}", r"[\b]", r"\p{Foo}", "(?i-)a", r"a\\\\"]
REGEX_TEMPLATE = ('{{regexMatch .p .s}}|{{regexFindAll .p .s -1}}|{{regexFindAll .p .s 2}}|'
                  '{{regexReplaceAll .p .s "<$0>"}}|{{regexSplit .p .s -1}}|{{regexSplit .p .s 2}}|'
                  '{{regexReplaceAllLiteral .p .s "$1"}}')
for _i, _p in enumerate(REGEX_PATTERNS):
    for _j, _s in enumerate(REGEX_INPUTS):
        CASES.append((f"goregex_{_i:02d}_{_j:02d}", REGEX_TEMPLATE, {"p": _p, "s": _s}))
for _i, _p in enumerate(REGEX_BAD):
    CASES.append((f"goregex_bad_{_i:02d}", "{{mustRegexMatch .p .s}}", {"p": _p, "s": "x"}))
    CASES.append((f"goregex_bad_panic_{_i:02d}", "{{regexFind .p .s}}", {"p": _p, "s": "x"}))
CASES.append(("goregex_expand_names", '{{regexReplaceAll "(?P<w>[a-z]+)(?P<d>[0-9])" "ab1 c2" "${d}$w|$1x|${1}x|$$|$9|${x}"}}', None))


def run_oracle(template: str, data: dict) -> dict:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, TEMPLATE_NAME)
        with open(path, "wb") as fh:
            fh.write(template.encode("utf-8"))
        r = subprocess.run([sys.executable, "-c", _CHILD, path, json.dumps(data)], capture_output=True, timeout=60)
    if r.stdout.startswith(b"\x00OK\x00"):
        raw = r.stdout[4:]
        try:
            return {"expected": raw.decode("utf-8")}
        except UnicodeDecodeError:  # Go strings are bytes; sprig's substr/nospace can split UTF-8
            return {"expected_bytes_b64": base64.b64encode(raw).decode("ascii")}
    msg = (r.stderr + r.stdout).decode("utf-8", "replace").removesuffix("\n")
    for p in _PREFIXES:
        if msg.startswith(p):
            msg = msg[len(p):]
    return {"error": msg}


def main() -> int:
    names = [c[0] for c in CASES]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SystemExit(f"duplicate case names: {sorted(dupes)}")

    def one(case):
        name, template, data = case
        data = D if data is None else data
        res = run_oracle(template, data)
        if "map has no entry for key" in res.get("error", ""):
            raise SystemExit(f"case {name} hits the oracle's missingkey=error: {res['error']}")
        return {"name": name, "template": template, "data": data, **res}

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        out = list(ex.map(one, CASES))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(out)} goldens to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
