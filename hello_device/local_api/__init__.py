"""The local API: the device's state and transcripts out, commands in, for a kiosk's
screen app and local tools (HTTP and WebSocket on one port; docs/local-api.md).

:mod:`.hub` fans the daemon's events out to clients (no web framework), :mod:`.commands`
checks commands, :mod:`.security` decides who may ask; :mod:`.server` (aiohttp,
imported only when the API is enabled) serves them.
"""
