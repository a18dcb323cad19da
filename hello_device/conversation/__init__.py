"""One conversation over the platform's WebSocket: the session, its URLs, the device tools."""
