"""Error types raised by compat.gotemplate (messages follow Go's text/template wording)."""


class TemplateError(Exception):
    """Any failure to parse or execute a Go template."""


class ParseError(TemplateError):
    """The template text does not parse; message like Go's "template: name:line: ..."."""

    def __init__(self, message: str, name: str = "", line: int = 0):
        super().__init__(message)
        self.name = name
        self.line = line


class ExecError(TemplateError):
    """Execution failed; message like Go's "template: name:line:col: executing ... at <...>: ..."."""

    def __init__(self, message: str, line: int = 0, col: int = 0):
        super().__init__(message)
        # Where in the template text (1-based; 0 when Go names no place).
        self.line = line
        self.col = col


class FuncError(Exception):
    """A template function's returned error (reported as "error calling NAME: MSG")."""
