"""LocalAI's prompt template data structs (Go field names, json tags) and the pipeline's constants."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from compat.gotemplate import go_field

# --- LocalAI's data structs (Go field names; json tags where LocalAI's structs have them) ------


@dataclass
class Function:
    """pkg/functions.Function."""

    # Go's type name, as Go's error messages print it.
    __go_type__ = "functions.Function"

    Name: str = field(default="", metadata=go_field(json="name"))
    Description: str = field(default="", metadata=go_field(json="description"))
    Strict: bool = field(default=False, metadata=go_field(json="strict"))
    Parameters: dict | None = field(default=None, metadata=go_field(json="parameters"))


@dataclass
class FunctionCall:
    """core/schema.FunctionCall (inside a tool call)."""

    # Go's type name, as Go's error messages print it.
    __go_type__ = "schema.FunctionCall"

    Name: str = field(default="", metadata=go_field(json="name,omitempty"))
    Arguments: str = field(default="", metadata=go_field(json="arguments"))


@dataclass
class ToolCall:
    """core/schema.ToolCall."""

    # Go's type name, as Go's error messages print it.
    __go_type__ = "schema.ToolCall"

    Index: int = field(default=0, metadata=go_field(json="index"))
    ID: str = field(default="", metadata=go_field(json="id"))
    Type: str = field(default="", metadata=go_field(json="type"))
    FunctionCall: FunctionCall = field(default_factory=FunctionCall, metadata=go_field(json="function"))


@dataclass
class PromptTemplateData:
    """Data of chat, completion, edit and function templates (core/templates/evaluator.go)."""

    # Go's type name, as Go's error messages print it.
    __go_type__ = "templates.PromptTemplateData"

    SystemPrompt: str = ""
    SuppressSystemPrompt: bool = False
    Input: str = ""
    Instruction: str = ""
    Functions: list[Function] | None = None
    MessageIndex: int = 0
    ReasoningEffort: str = ""
    Metadata: dict[str, str] | None = None


@dataclass
class ChatMessageTemplateData:
    """Data of the per-message chat_message template."""

    # Go's type name, as Go's error messages print it.
    __go_type__ = "templates.ChatMessageTemplateData"

    SystemPrompt: str = ""
    Role: str = ""
    RoleName: str = ""
    FunctionName: str = ""
    Content: str = ""
    MessageIndex: int = 0
    Function: bool = False
    FunctionCall: Any = None
    LastMessage: bool = False


@dataclass
class MultimodalContent:
    ID: int = 0


@dataclass
class MultimodalTemplateData:
    Audio: list[MultimodalContent] = field(default_factory=list)
    Images: list[MultimodalContent] = field(default_factory=list)
    Video: list[MultimodalContent] = field(default_factory=list)
    Text: str = ""


DEFAULT_MULTIMODAL_TEMPLATE = (
    "{{ range .Audio }}<__media__>{{end}}{{ range .Images }}<__media__>{{end}}"
    "{{ range .Video }}[vid-{{.ID}}]{{end}}{{.Text}}"
)
NO_ACTION_NAME = "answer"
NO_ACTION_DESCRIPTION = "use this action to answer without performing any action"
# Metadata keys the chat handler consumes before templating (MCP / assistant features).
METADATA_ALWAYS_DELETED = ("localai_assistant",)
METADATA_DELETED_WHEN_NONEMPTY = ("mcp_servers", "mcp_prompt", "mcp_prompt_args", "mcp_resources")
