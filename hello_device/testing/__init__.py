"""The fakes tests use, shipped with the package the way gpiozero ships ``MockFactory``.

Each stands in for one outside part where the real one cannot run (or cannot be made to
misbehave on cue), with the same interface the code under test sees:

- :mod:`.connection`: a conversation WebSocket in memory, for the session's own tests;
- :mod:`.clock`: a virtual clock with its ``sleep``, for timers without waiting.
"""
