"""compat.gotemplate.goregex beyond the recorded Go goldens: Go >= 1.22 syntax the oracle's Go
1.20 lacks, what this server refuses, and the classes where Python's re alone differs from Go."""
from __future__ import annotations

import pytest

from compat.gotemplate import goregex, parse


def render(template: str, **data) -> str:
    return parse(template, "prompt").execute(data)


def test_digits_are_ascii_in_templates():
    # Python's re: \d matches ARABIC-INDIC DIGIT THREE; Go's \d is [0-9].
    assert render('{{regexMatch "^\\\\d$" .s}}', s="\u0663") == "false"
    assert render('{{regexMatch "^\\\\d$" .s}}', s="3") == "true"


def test_posix_classes_in_templates():
    assert render('{{regexMatch "[[:alpha:]]" .s}}', s="a") == "true"
    assert render('{{regexFindAll "[[:upper:][:digit:]]+" .s -1}}', s="ab CD12 e") == "[CD12]"


def test_angle_bracket_named_group_is_go_1_22_syntax():
    rx = goregex.compile("(?<word>[a-z]+)-(?P<n>[0-9])")
    assert rx.replace_all_string("ab-1 c-2", "${n}${word}") == "1ab 2c"


def test_group_names_go_allows_and_python_does_not():
    rx = goregex.compile("(?P<1st>a)")
    assert rx.replace_all_string("a", "[${1st}]") == "[a]"


@pytest.mark.parametrize("pattern, fragment", [
    ("(?=x)a", "(?="), ("(?<=x)a", "(?<=x)a"), ("(a)\\1", "\\1"), ("a*+", "*+"), ("(?>a)", "(?>"),
])
def test_constructs_go_refuses_are_named(pattern, fragment):
    with pytest.raises(goregex.GoRegexError) as ei:
        goregex.compile(pattern)
    assert ei.value.fragment == fragment
    assert not ei.value.unsupported


def test_scripts_are_refused_as_unsupported_not_as_invalid():
    with pytest.raises(goregex.GoRegexError) as ei:
        goregex.compile(r"\p{Han}+")
    assert ei.value.unsupported
    assert "Go accepts it" in str(ei.value)


def test_flags_last_to_the_end_of_the_group_across_alternatives():
    rx = goregex.compile("x(?i)a|b")
    assert rx.match("B") and rx.match("xA") and not rx.match("XA")


def test_empty_matches_follow_go_not_python():
    rx = goregex.compile("x*")
    # Python's re.sub gives '-a-b--d-': it also replaces the empty match right after "x".
    assert rx.replace_all_string("abxd", "-") == "-a-b-d-"
    assert [m.group(0) for m in rx.find_all("abxxd")] == ["", "", "xx", ""]


def test_unicode_categories():
    assert goregex.compile(r"^\p{Lu}\p{Ll}+$").match("Émile")
    assert not goregex.compile(r"^\pN$").match("x")
