"""The errors compat raises for a request the client must fix (the HTTP layer answers them with 400)."""
from __future__ import annotations


class RequestError(ValueError):
    """A request that cannot be served as sent: a field of the wrong type, messages a template
    refuses, a schema that does not compile. The message says what to change."""
