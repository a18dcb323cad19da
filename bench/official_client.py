"""The official Python client in a room made of files, for ``bench/compare_official.py``.

Holds one conversation with the official ``elevenlabs`` SDK's ``Conversation`` (the
synchronous client, as in the SDK's own examples), with an audio interface that keeps
``DefaultAudioInterface``'s buffer sizes and threads but reads and writes WAV files
instead of PortAudio streams:

- microphone: a thread reads ``INPUT`` (16 kHz mono 16-bit) from disk in 250 ms chunks
  (4000 samples, ``INPUT_FRAMES_PER_BUFFER``), each handed to the SDK when its last
  sample has "been captured" by the wall clock, as PortAudio's input callback would;
  after the input, silence, and 2 s later (like the daemon's ``exit_at_end``) the
  session is ended;
- loudspeaker: ``output()`` queues the agent's audio, and a thread like
  ``DefaultAudioInterface._output_thread`` takes it off the queue (``get(timeout=0.25)``)
  and "plays" it in 62.5 ms blocks (1000 samples, ``OUTPUT_FRAMES_PER_BUFFER``) into
  ``OUTPUT`` like a blocking write to a stream of two such buffers: each block is taken
  when the one before starts to sound, and sounds right after it (silence fills the
  gaps, so time t in the input and in the output file is the same instant);
  ``interrupt()`` clears the queue, as the SDK's does.

It prints one JSON line (chunks fed, seconds played, interruptions, transcripts) at the
end. Nothing here is measured by itself: the parent takes the process's CPU and peak RSS.

Usage: python bench/official_client.py HTTP_URL AGENT_ID INPUT.wav OUTPUT.wav
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import warnings
import wave
from collections.abc import Callable

with warnings.catch_warnings():  # the SDK still imports websockets' legacy API
    warnings.simplefilter("ignore", DeprecationWarning)
    from elevenlabs.client import ElevenLabs
    from elevenlabs.conversational_ai.conversation import AudioInterface, Conversation

RATE = 16_000
IN_FRAMES = 4000  # DefaultAudioInterface.INPUT_FRAMES_PER_BUFFER: 250 ms
OUT_FRAMES = 1000  # DefaultAudioInterface.OUTPUT_FRAMES_PER_BUFFER: 62.5 ms
TAIL_S = 2.0  # like the daemon's exit_at_end


class FileAudioInterface(AudioInterface):  # type: ignore[misc]
    """``DefaultAudioInterface`` with a WAV file as the microphone and one as the speaker."""

    def __init__(self, input_path: str, output_path: str) -> None:
        self.input_path = input_path
        self.output_path = output_path
        self.finished = threading.Event()
        """Set once the input and the tail of silence after it have been fed."""
        self.chunks_fed = 0
        self.samples_played = 0
        self.interrupts = 0
        self.mic_late_max_s = 0.0
        """Longest delay between a chunk's last sample and its hand-over to the SDK."""
        self._queue: queue.Queue[bytes] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self._out: wave.Wave_write | None = None
        self._out_samples = 0  # samples written to the output file, silence included

    def start(self, input_callback: Callable[[bytes], None]) -> None:
        self._t0 = time.monotonic()
        self._out = wave.open(self.output_path, "wb")  # noqa: SIM115 - closed in stop()
        self._out.setnchannels(1)
        self._out.setsampwidth(2)
        self._out.setframerate(RATE)
        for target, name in ((self._input_thread, "mic"), (self._output_thread, "speaker")):
            thread = threading.Thread(target=target, args=(input_callback,), name=name)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.finished.set()  # the session ended early: main() must not wait for the input
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        if self._out is not None:
            self._write_at(time.monotonic(), b"")  # silence up to the end
            self._out.close()

    def output(self, audio: bytes) -> None:
        self._queue.put(audio)

    def interrupt(self) -> None:
        self.interrupts += 1
        try:
            while True:
                self._queue.get(block=False)
        except queue.Empty:
            pass

    # -- the microphone: 250 ms chunks on the wall clock ------------------------------

    def _input_thread(self, input_callback: Callable[[bytes], None]) -> None:
        step = IN_FRAMES * 2
        silence = bytes(step)
        tail = round(TAIL_S * RATE / IN_FRAMES)
        with wave.open(self.input_path, "rb") as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
                raise SystemExit(f"{self.input_path}: not 16 kHz mono 16-bit")
            index = 0
            after_end = 0
            while True:
                deadline = self._t0 + (index + 1) * IN_FRAMES / RATE
                if self._stop.wait(max(0.0, deadline - time.monotonic())):
                    return
                data = w.readframes(IN_FRAMES)
                if data:
                    chunk = data.ljust(step, b"\0")
                else:
                    chunk = silence
                    after_end += 1
                self.mic_late_max_s = max(self.mic_late_max_s, time.monotonic() - deadline)
                input_callback(chunk)
                self.chunks_fed += 1
                index += 1
                if after_end == tail:
                    self.finished.set()

    # -- the loudspeaker: DefaultAudioInterface._output_thread, 62.5 ms blocks ---------

    def _output_thread(self, _input_callback: object) -> None:
        """A blocking write to a stream of two 62.5 ms buffers: a block is taken as soon
        as the block before it has started to sound, and sounds right after it."""
        step = OUT_FRAMES * 2
        free_at = 0.0  # when the last block taken has finished sounding
        while not self._stop.is_set():
            try:
                audio = self._queue.get(timeout=0.25)
            except queue.Empty:
                continue
            for offset in range(0, len(audio), step):
                block = audio[offset : offset + step]
                room_at = free_at - OUT_FRAMES / RATE
                now = time.monotonic()
                if room_at > now and self._stop.wait(room_at - now):
                    return
                start = max(free_at, time.monotonic())
                self._write_at(start, block)
                self.samples_played += len(block) // 2
                free_at = start + len(block) / 2 / RATE

    def _write_at(self, t: float, pcm: bytes) -> None:
        """Write ``pcm`` to the output file at wall-clock time ``t`` (silence before)."""
        assert self._out is not None
        at = round((t - self._t0) * RATE)
        if at > self._out_samples:
            self._out.writeframes(bytes(2 * (at - self._out_samples)))
            self._out_samples = at
        self._out.writeframes(pcm)
        self._out_samples += len(pcm) // 2


def main() -> int:
    url, agent_id, input_path, output_path = sys.argv[1:5]
    transcripts: list[str] = []
    responses: list[str] = []
    disconnects: list[str] = []
    audio = FileAudioInterface(input_path, output_path)
    conversation = Conversation(
        ElevenLabs(base_url=url, api_key="bench-unused"),
        agent_id,
        requires_auth=False,
        audio_interface=audio,
        callback_user_transcript=transcripts.append,
        callback_agent_response=responses.append,
        callback_disconnect=lambda details: disconnects.append(details.reason),
    )
    conversation.start_session()  # type: ignore[no-untyped-call]
    audio.finished.wait()
    conversation.end_session()  # type: ignore[no-untyped-call]
    conversation_id = conversation.wait_for_session_end()
    summary = {
        "conversation_id": conversation_id,
        "chunks_fed": audio.chunks_fed,
        "played_s": audio.samples_played / RATE,
        "interrupts": audio.interrupts,
        "mic_late_max_ms": round(audio.mic_late_max_s * 1000, 1),
        "transcripts": transcripts,
        "responses": responses,
        "disconnects": disconnects,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
