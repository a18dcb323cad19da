"""Microphone and loudspeaker, opened the way the daemon opens them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from hello_device.doctor.context import AudioProbe, Context, with_stop_hint, writable_dir
from hello_device.doctor.results import CheckResult, failed, passed, skipped, warned

log = logging.getLogger(__name__)

SILENCE_PROBE_S = 0.3
"""How long the microphone is listened to for the digital-silence check."""

# -- audio


def _probe_audio(ctx: Context) -> AudioProbe:
    """Open the sound card exactly like the daemon (once), then close it again."""
    if ctx._audio is None:
        assert ctx.settings is not None
        try:
            ctx._audio = _run_audio_probe(ctx)
        except Exception as exc:  # PortAudio missing or an unexpected failure
            log.debug("audio probe failed", exc_info=True)
            ctx._audio = AudioProbe(problem=f"{type(exc).__name__}: {exc}")
    return ctx._audio


def _run_audio_probe(ctx: Context) -> AudioProbe:
    from hello_device.audio.backends.base import Frame
    from hello_device.audio.backends.pyaudio import PyAudioBackend
    from hello_device.audio.player import Player

    assert ctx.settings is not None
    audio = ctx.settings.audio
    limit = ctx.probes.limits.audio_s
    kwargs: dict[str, Any] = {}
    if ctx.probes.pyaudio_factory is not None:
        kwargs["pyaudio_factory"] = ctx.probes.pyaudio_factory
    backend = PyAudioBackend(audio, Player(16000, volume=0.0), **kwargs)
    result = AudioProbe()

    async def go() -> None:
        problems: list[str] = []
        failed = asyncio.Event()
        heard = False
        listening = False

        def on_frame(frame: Frame) -> None:
            nonlocal heard
            if listening and any(frame.pcm):
                heard = True

        def on_status(problem: str | None) -> None:
            if problem:
                problems.append(problem)
                failed.set()

        task = asyncio.create_task(backend.run(on_frame, on_status), name="doctor-audio")
        ready = asyncio.ensure_future(backend.ready.wait())
        broken = asyncio.ensure_future(failed.wait())
        try:
            done, _ = await asyncio.wait(
                {ready, broken}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
            if failed.is_set():
                result.problem = problems[0]
                return
            if not done:
                result.problem = (
                    f"the sound card did not deliver audio within {limit:g} s "
                    "(PortAudio is stuck or the device never starts)"
                )
                return
            streams = backend.streams
            if streams is not None:
                resampled = (
                    " (resampled to 16 kHz)" if streams.in_rate != 16000 else " (no resampling)"
                )
                n = streams.in_channels
                channels = (
                    "mono"
                    if n == 1
                    else f"{n} channels "
                    + ("mixed" if streams.channel == "mix" else f"(channel {streams.channel} used)")
                )
                result.mic = f"{streams.mic.label} at {streams.in_rate} Hz, {channels}{resampled}"
                result.speaker = (
                    f"{streams.speaker.label} at {streams.out_rate} Hz, "
                    f"{'mono' if streams.out_channels == 1 else 'stereo (mono duplicated)'}"
                )
            listening = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(failed.wait(), SILENCE_PROBE_S)
            if failed.is_set():
                result.problem = problems[0]
                return
            result.silent = not heard
        finally:
            for waiter in (ready, broken):
                waiter.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(go())
    return result


def _audio_fix(problem: str, ctx: Context) -> str:
    text = problem.lower()
    if "found no" in text:
        fix = (
            "no sound card is visible: check arecord -l and aplay -l; a HAT needs its "
            "dtoverlay= line in /boot/firmware/config.txt and a reboot, a USB device a replug "
            "(see hardware/sound-cards.md)"
        )
    elif "matches" in text or "no default" in text or "no device #" in text:
        fix = (
            "list the sound devices with: hello-device devices; set audio.input_device / "
            'audio.output_device to part of a name shown there (e.g. "USB" or "seeed")'
        )
    elif "accepts none of the sample rates" in text:
        fix = (
            "the card takes none of the usual rates: pick its plughw/default device in "
            "hello-device devices, or another card"
        )
    elif "unavailable" in text or "busy" in text:
        fix = (
            "another program holds the sound card (a desktop sound server, or the running "
            "service): see hardware/sound-cards.md"
        )
    elif "portaudio failed" in text or "pyaudio" in text:
        fix = "install PortAudio: sudo apt install portaudio19-dev, then reinstall hello-device"
    else:
        fix = "check the card with arecord -l, aplay -l and hello-device audio-test"
    return with_stop_hint(ctx, fix)


def _is_speaker_problem(problem: str) -> bool:
    text = problem.lower()
    if "microphone" in text or "input device" in text or "input channels" in text:
        return False
    return "loudspeaker" in text or "output device" in text or "output channels" in text


def check_microphone(ctx: Context) -> CheckResult:
    """The microphone opens at a usable rate and delivers audio (file: the input file reads)."""
    name = "microphone"
    if ctx.skip_audio:
        return skipped(name, "--skip-audio")
    assert ctx.settings is not None
    audio = ctx.settings.audio
    if audio.backend == "file":
        from hello_device.audio.wav import read_wav

        path = audio.input_file or ""
        try:
            samples, rate = read_wav(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return failed(
                name,
                f"the input file {path} cannot be read: {reason}",
                "set audio.input_file to a WAV file the service user can read",
            )
        frames, channels = samples.shape[0], samples.shape[1] if samples.ndim > 1 else 1
        return passed(
            name,
            f"file backend: {path} reads ({frames / rate:.1f} s, {rate} Hz, "
            f"{channels} channel{'s' if channels != 1 else ''})",
        )
    probe = _probe_audio(ctx)
    if probe.problem is not None and not _is_speaker_problem(probe.problem):
        return failed(name, probe.problem, _audio_fix(probe.problem, ctx))
    if probe.problem is not None:
        return skipped(name, "not tried to the end: the loudspeaker failed first (see below)")
    if probe.silent:
        return warned(
            name,
            f"{probe.mic}, but it delivers only digital silence",
            "unmute it and raise the capture level in alsamixer (F6 picks the card, F4 shows "
            "capture; then sudo alsactl store), or check audio.input_channel",
        )
    return passed(name, f"{probe.mic}, delivering audio")


def check_loudspeaker(ctx: Context) -> CheckResult:
    """The loudspeaker opens at a usable rate (file: the output directory is writable)."""
    name = "loudspeaker"
    if ctx.skip_audio:
        return skipped(name, "--skip-audio")
    assert ctx.settings is not None
    audio = ctx.settings.audio
    if audio.backend == "file":
        path = Path(audio.output_file or "")
        parent = path.parent
        if not parent.is_dir():
            return failed(
                name,
                f"the output file's directory {parent} does not exist",
                f"create it (mkdir -p {parent}) or change audio.output_file",
            )
        why = writable_dir(parent)
        if why is None and path.exists() and not os.access(path, os.W_OK):
            why = f"{path.name} is read-only"
        if why is not None:
            return failed(
                name,
                f"the output file {path} cannot be written ({why})",
                "change audio.output_file, or the directory's owner",
            )
        return passed(name, f"file backend: {path} can be written")
    probe = _probe_audio(ctx)
    if probe.problem is not None and _is_speaker_problem(probe.problem):
        return failed(name, probe.problem, _audio_fix(probe.problem, ctx))
    if probe.problem is not None:
        return skipped(name, "not tried: the microphone failed first (see above)")
    return passed(name, probe.speaker)
