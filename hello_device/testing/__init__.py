"""The fakes tests use, shipped with the package the way gpiozero ships ``MockFactory``.

Each stands in for one outside part where the real one cannot run (or cannot be made to
misbehave on cue), with the same interface the code under test sees:

- :mod:`.connection`: a conversation WebSocket in memory, for the session's own tests;
- :mod:`.clock`: a virtual clock with its ``sleep``, for timers without waiting;
- :mod:`.virtual_time`: an asyncio loop whose clock jumps to the next timer, so the
  ``file`` audio backend (paced by ``loop.call_at``) runs unpaced on the audio timeline:
  end-to-end tests take as long as the work, not as the audio;
- :mod:`.fake_pyaudio`: sound devices that refuse rates, get unplugged or stall;
- :mod:`.transport`: the platform's REST answers and failures, scripted;
- :mod:`.notify`: systemd's notification socket, read as systemd reads it.
"""
