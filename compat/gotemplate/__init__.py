"""Pure-Python Go text/template with sprig functions, as LocalAI renders prompt templates."""

from .errors import ExecError, ParseError, TemplateError
from .template import Template, parse
from .values import go_field

__all__ = ["parse", "Template", "TemplateError", "ParseError", "ExecError", "go_field"]
