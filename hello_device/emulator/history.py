"""The conversations this emulator ran, as the platform lists and details them, and the
feedback given after a call (``POST …/feedback``).

Every accepted conversation (one that got its metadata) is listed, newest first. Its
transcript is what the emulator produced: the greeting and the replies (agent), the user
turns (their ``user_transcript`` text, or the text of a ``user_message``), tool calls with
their results. Feedback sent over the socket rates the agent turn with that ``event_id``
(``likes``/``dislikes``); feedback posted afterwards is the ``overall_score`` (1 / -1)."""

from __future__ import annotations

import time
from typing import Any

from hello_device.emulator.answers import (
    _Answer,
    _Call,
    _cursor_page,
    _error,
    _first,
    _Invalid,
    _json,
    _not_found,
)
from hello_device.emulator.config import ConversationRecord, TurnRecord


def conversation_status(record: ConversationRecord) -> str:
    """``in-progress`` | ``done`` (closed 1000/1001) | ``failed`` (any other close)."""
    if not record.finished.is_set():
        return "in-progress"
    return "done" if record.close_code in (1000, 1001) else "failed"


def _duration(record: ConversationRecord) -> int:
    start = record.started_at or time.time()
    end = record.ended_at if record.ended_at is not None else time.time()
    return max(0, int(end - start))


def _turn(turn: TurnRecord) -> dict[str, Any]:
    return {
        "role": turn.role,
        "message": turn.message,
        "time_in_call_secs": turn.time_in_call_secs,
        "tool_calls": [dict(c) for c in turn.tool_calls],
        "tool_results": [dict(r) for r in turn.tool_results],
        "feedback": None if turn.feedback is None else {"score": turn.feedback},
    }


class _History:
    """The conversation endpoints (a part of :class:`~hello_device.emulator.server.Emulator`)."""

    conversations: list[ConversationRecord]
    feedback_posts: list[tuple[str, str]]

    def agent_document(self, agent_id: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _accepted(self) -> list[ConversationRecord]:
        """The conversations that got their metadata, newest first."""
        return [r for r in reversed(self.conversations) if r.started_at is not None]

    def _find_conversation(self, conversation_id: str) -> ConversationRecord | None:
        return next((r for r in self._accepted() if r.conversation_id == conversation_id), None)

    def _list_conversations(self, call: _Call) -> _Answer:
        agent_id = _first(call.query, "agent_id")
        items = []
        for record in self._accepted():
            if agent_id and record.agent_id != agent_id:
                continue
            status = conversation_status(record)
            items.append(
                {
                    "agent_id": record.agent_id,
                    "agent_name": self._agent_name(record.agent_id),
                    "conversation_id": record.conversation_id,
                    "start_time_unix_secs": int(record.started_at or 0),
                    "call_duration_secs": _duration(record),
                    "message_count": len(record.turns),
                    "status": status,
                    "call_successful": {"done": "success", "failed": "failure"}.get(
                        status, "unknown"
                    ),
                }
            )
        page, cursor = _cursor_page(items, "conversation_id", call.query, "conversation")
        body = {"conversations": page, "next_cursor": cursor, "has_more": cursor is not None}
        return _json(200, body)

    def _agent_name(self, agent_id: str) -> str:
        try:
            return str(self.agent_document(agent_id)["name"])
        except KeyError:
            return agent_id

    def _get_conversation(self, call: _Call, conversation_id: str) -> _Answer:
        record = self._find_conversation(conversation_id)
        if record is None:
            return _not_found("conversation", conversation_id)
        likes = sum(1 for t in record.turns if t.feedback == "like")
        dislikes = sum(1 for t in record.turns if t.feedback == "dislike")
        overall = {"like": 1, "dislike": -1}.get(record.feedback or "")
        return _json(
            200,
            {
                "agent_id": record.agent_id,
                "conversation_id": record.conversation_id,
                "status": conversation_status(record),
                "transcript": [_turn(t) for t in record.turns],
                "metadata": {
                    "start_time_unix_secs": int(record.started_at or 0),
                    "call_duration_secs": _duration(record),
                    "feedback": {
                        "overall_score": overall,
                        "likes": likes,
                        "dislikes": dislikes,
                    },
                },
                "has_audio": False,
                "has_user_audio": False,
                "has_response_audio": False,
            },
        )

    def _post_feedback(self, call: _Call, conversation_id: str) -> _Answer:
        record = self._find_conversation(conversation_id)
        if record is None:
            return _not_found("conversation", conversation_id)
        body = call.json()
        if not isinstance(body, dict):
            raise _Invalid([_error(["body"], "Input should be a valid dictionary", "dict_type")])
        if "feedback" not in body:
            raise _Invalid([_error(["body", "feedback"], "Field required", "missing")])
        if body["feedback"] not in ("like", "dislike"):
            msg = "Input should be 'like' or 'dislike'"
            raise _Invalid([_error(["body", "feedback"], msg, "enum")])
        record.feedback = body["feedback"]
        self.feedback_posts.append((conversation_id, body["feedback"]))
        return _json(200, {})
