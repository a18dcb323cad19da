"""Sans-I/O conversation protocol: server frames -> typed events, client messages -> JSON.

Nothing here does I/O, keeps time or starts threads; see :mod:`.client` for the design.
"""

from hello_device.core.protocol.client import (
    ClientProtocol,
    Dialect,
)
from hello_device.core.protocol.events import (
    AgentAudio,
    AgentChatResponsePart,
    AgentResponse,
    AgentResponseCorrection,
    ClientToolCall,
    ConversationMetadata,
    DroppedAudio,
    Event,
    Ignored,
    Interruption,
    Ping,
    Pong,
    ServerError,
    TentativeAgentResponse,
    TentativeUserTranscript,
    UserTranscript,
    VadScore,
)

__all__ = [
    "AgentAudio",
    "AgentChatResponsePart",
    "AgentResponse",
    "AgentResponseCorrection",
    "ClientProtocol",
    "ClientToolCall",
    "ConversationMetadata",
    "Dialect",
    "DroppedAudio",
    "Event",
    "Ignored",
    "Interruption",
    "Ping",
    "Pong",
    "ServerError",
    "TentativeAgentResponse",
    "TentativeUserTranscript",
    "UserTranscript",
    "VadScore",
]
