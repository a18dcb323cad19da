"""The device in a fleet's own engines: MQTT with Home Assistant discovery (docs/fleet.md).

:mod:`.discovery` builds the Home Assistant payloads (pure); :mod:`.mqtt` (aiomqtt,
imported only when ``[mqtt] url`` is set) connects, publishes and takes commands
through the local API's code path.
"""
