"""Pure-Python Go text/template with sprig functions, as LocalAI renders prompt templates.

    tmpl = parse(text, name="prompt")   # ParseError like Go: "template: prompt:3: unexpected EOF"
    tmpl.execute(data) -> str           # ExecError like Go: "template: prompt:1:5: executing ... at <.X>: ..."

Both errors derive from TemplateError. A Template is immutable and thread-safe; parse() memoizes.

Data model (Go value <- Python value):
  map[string]any <- dict (missing key prints "<no value>", as with LocalAI's default options)
  struct         <- dataclass instance; fields are looked up by their Python name, which should be
                    the Go name (CapitalizedNames); an unknown field is an ExecError naming the type
                    from the class attribute __go_type__ (e.g. "templates.PromptTemplateData").
                    JSON names/omitempty/"-" come from field(metadata=go_field(json="name,omitempty")).
                    A field annotated Any holds an interface value (None prints "<no value>");
                    a None in a list/dict-annotated field is a nil slice/map ("[]", "map[]", JSON null).
  []any          <- list / tuple
  string, int, float64, bool, nil <- str, int, float, bool, None
  time.Time      <- datetime (and what sprig's `now` returns)
JSON-decoded numbers in Go are float64: convert JSON-sourced data with go_json_value().
"""

from .errors import ExecError, ParseError, TemplateError
from .template import Template, parse
from .values import go_field, go_json_value

__all__ = ["parse", "Template", "TemplateError", "ParseError", "ExecError", "go_field", "go_json_value"]
