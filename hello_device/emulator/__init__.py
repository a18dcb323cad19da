"""A local agent server for demos and tests: the platform's REST subset and conversation socket.

One loopback port serves both surfaces of an ElevenLabs-compatible Agents Platform, written
from ``shared/PROTOCOL.md`` and ``shared/protocol/agent.asyncapi.yaml`` (the *server* side,
independently of the device's client code in :mod:`hello_device.core.protocol`, so that the two
cannot share a misreading):

* **REST** (an aiohttp application; ``GET``, ``POST``, ``PATCH``, ``PUT`` with JSON bodies):
  what the device boots with, ``/v1/convai/agents/{agent_id}`` (the agent configuration, in
  the real platform's shape) and one of the three signed-URL endpoints (``get-signed-url``,
  ``…/signed-url``, ``…/link``; the others answer 404, as on a server that only has one);
  and what a technician's commands use (:mod:`.management`, :mod:`.history`): the agents
  list (cursor or page style) and agent update (``tool_ids``), client tools (list, create,
  read, replace; their schema validated, 422 naming the field), the conversations this
  emulator ran (list, details with the transcript) and feedback after a call. An API key
  can be required, failures can be injected (:meth:`Emulator.fail_rest`) and answers
  delayed; a known path with a wrong method answers 405, every request is recorded
  (``rest_requests``, with its JSON body).
* **WebSocket** ``/v1/convai/conversation?agent_id=…[&conversation_signature=…]``: a
  *parrot* agent. It answers the initiation with ``conversation_initiation_metadata``, pings
  the client, decodes the user's audio (any ``pcm_*`` rate or ``ulaw_8000``) to 16 kHz,
  finds the end of each utterance with its own VAD (webrtcvad plus an energy floor), sends
  ``user_transcript`` and ``agent_response``, and plays the utterance back as ``audio``
  events in the negotiated output format, faster than real time, in ~100 ms chunks. It
  sends ``interruption`` when the user talks over a reply that the client is still playing.
  The WebSocket is aiohttp's, behind a narrow adapter (:mod:`.wsocket`) with the close-code
  semantics of the websockets library (the device's client side uses websockets).
  It calls a tool the agent declared through the API (``declared_tool_call``, or a
  ``/tool NAME {json}`` text message) only if that tool is attached to the agent.

Time model: the VAD, the utterance boundaries and the "is the client still playing the
reply?" estimate all run on the *user-audio timeline* (samples received / 16 kHz), not on
the wall clock. A client streaming its microphone in real time sees the same behaviour as
on the real platform; a test may stream a file much faster than real time and still get
deterministic turns and interruptions. Only the pacing of the agent's audio (``send_speed``
times real time), pings and ``max_duration_s`` use the wall clock. If the client stops
streaming in the middle of an utterance, a wall-clock watchdog ends the utterance anyway.

Event ids (``event_id``): one increasing counter per conversation. Each ping, each user
transcript, each agent reply and each tool call takes the next value; all the ``audio``
chunks of one reply carry the id of that reply's ``agent_response``, and an
``interruption`` carries the id of the reply it cuts. This matches what the official
clients rely on (they drop audio whose ``event_id`` is ≤ the last interruption's, and the
browser client treats the audio's ``event_id`` as the id of the agent turn for feedback).

Secrets: the API key and signed-URL tokens are never logged; the debug log of request lines
and headers (logger ``hello_device.emulator.ws``) goes through a redacting filter, and
aiohttp's access log is off.

Layout: configuration and records, audio helpers, VAD, log redaction, the conversation
handler, the socket adapter, the REST API (routes and the boot subset; management; history;
tool schema validation; shared answers), the server (aiohttp: REST and WebSocket on one
port), and the ``hello-device emulator`` CLI glue
(:func:`add_arguments`, :func:`run_from_args`).
"""

from hello_device.emulator.config import (
    FAULT_ACTIONS,
    FAULT_STAGES,
    REPLY_PREROLL_S,
    ConversationRecord,
    EmulatorConfig,
    Fault,
    ReplyRecord,
    RestRecord,
    TurnRecord,
)
from hello_device.emulator.server import Emulator

__all__ = [
    "FAULT_ACTIONS",
    "FAULT_STAGES",
    "REPLY_PREROLL_S",
    "ConversationRecord",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "ReplyRecord",
    "RestRecord",
    "TurnRecord",
]
