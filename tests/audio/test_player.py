"""The playout queue: reads, shaping (fades, volume), flush, levels, counters, threads."""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray

from hello_device.audio.player import SILENCE_DBFS, Player
from tests.conftest import UNIT


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def samples(data: bytes) -> NDArray[np.int16]:
    return np.frombuffer(data, dtype=np.int16)


def const(value: int, n: int) -> NDArray[np.int16]:
    return np.full(n, value, dtype=np.int16)


def read_all(p: Player, total: int, n: int = 160) -> NDArray[np.int16]:
    out = [samples(p.read(n)) for _ in range(-(-total // n))]
    return np.concatenate(out)[:total]


# --- reads ----------------------------------------------------------------------------------


def test_reads_are_exactly_n_samples_and_silent_when_empty() -> None:
    p = Player()
    assert p.read(160) == bytes(320)
    assert p.read(1) == b"\x00\x00"
    assert p.read(0) == b""
    assert not p.playing
    assert p.level_dbfs() == SILENCE_DBFS


def test_samples_come_out_unchanged_in_order_and_padded() -> None:
    p = Player(fade_ms=0)
    x = np.arange(1, 1001, dtype=np.int16)
    p.push(x[:400])
    p.push(x[400:].tobytes())
    out = np.concatenate([samples(p.read(n)) for n in (160, 333, 7, 600)])
    assert len(out) == 1100
    assert np.array_equal(out[:1000], x)
    assert np.all(out[1000:] == 0)
    assert p.samples_played == 1000 and p.queued_samples == 0


def test_push_copies_writable_arrays_and_drops_odd_byte() -> None:
    p = Player(fade_ms=0)
    x = const(500, 10)
    p.push(x)
    x[:] = -1  # the caller reuses its buffer
    p.push(b"\x01\x00\x02")
    assert samples(p.read(12)).tolist() == [500] * 10 + [1, 0]
    with pytest.raises(TypeError):
        p.push(np.zeros(4, dtype=np.float32))


# --- fades ------------------------------------------------------------------------------------


def test_fade_in_when_audio_starts_after_silence() -> None:
    p = Player(rate=16000, fade_ms=5)  # 80 samples
    p.push(const(10000, 1600))
    out = samples(p.read(160)).astype(np.int32)
    ramp = out[:80]
    assert ramp[0] < 500
    assert np.all(np.diff(ramp) > 0)
    assert ramp[-1] < 10000
    assert np.all(out[80:] == 10000)


def test_fade_in_spans_small_reads_identically() -> None:
    big, small = Player(fade_ms=5), Player(fade_ms=5)
    big.push(const(-12000, 400))
    small.push(const(-12000, 400))
    assert read_all(small, 320, n=32).tolist() == read_all(big, 320, n=160).tolist()


def test_no_fade_while_the_stream_continues() -> None:
    p = Player(fade_ms=5)
    p.push(const(10000, 160))
    p.read(160)  # fades in, ends exactly when the queue does
    p.push(const(10000, 160))
    assert np.all(samples(p.read(160)) == 10000)


def test_starved_stream_fades_out_and_in_again() -> None:
    p = Player(fade_ms=5)
    p.push(const(10000, 400))
    p.read(160)
    p.read(160)
    out = samples(p.read(160)).astype(np.int32)  # 80 left, then the queue is dry
    assert np.all(np.diff(out[:80]) < 0) and out[79] < 500
    assert np.all(out[80:] == 0)
    p.push(const(10000, 400))
    again = samples(p.read(160)).astype(np.int32)
    assert again[0] < 500 and np.all(again[80:] == 10000)


def test_fade_ms_zero_disables_all_shaping() -> None:
    p = Player(fade_ms=0)
    p.push(const(20000, 100))
    assert samples(p.read(160)).tolist() == [20000] * 100 + [0] * 60


# --- volume -------------------------------------------------------------------------------------


def test_volume_scales_and_rounds() -> None:
    p = Player(fade_ms=0, volume=0.5)
    x = np.array([1001, -1001, 32767, -32768, 3], dtype=np.int16)
    p.push(x)
    assert samples(p.read(5)).tolist() == [500, -500, 16384, -16384, 2]
    p.volume = 0.0
    p.push(x)
    assert p.read(5) == bytes(10)
    assert p.samples_played == 10


def test_volume_boost_saturates_instead_of_wrapping() -> None:
    p = Player(fade_ms=0, volume=2.0)
    p.push(np.array([30000, -30000, 100, -20000], dtype=np.int16))
    assert samples(p.read(4)).tolist() == [32767, -32768, 200, -32768]


@pytest.mark.parametrize("bad", [-0.1, 4.5, math.nan])
def test_volume_rejects_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match="volume"):
        Player(volume=bad)
    p = Player()
    with pytest.raises(ValueError, match="volume"):
        p.volume = bad
    assert p.volume == 1.0


# --- flush -------------------------------------------------------------------------------------


def test_flush_fades_out_then_silence() -> None:
    p = Player(rate=16000, fade_ms=5)
    p.push(const(10000, 16000))
    p.read(160)
    assert p.playing
    discarded = p.flush()
    assert discarded == 16000 - 160 - 80  # the 80-sample fade-out still plays
    assert p.queued_samples == 0
    out = samples(p.read(160)).astype(np.int32)
    fade = out[:80]
    assert fade[0] > 9000 and fade[-1] < 500
    assert np.all(np.diff(fade) < 0)
    assert np.all(out[80:] == 0)
    assert p.read(160) == bytes(320)
    assert not p.playing
    assert p.samples_pushed == p.samples_played + discarded + p.queued_samples


def test_flush_while_fading_in_does_not_jump_up() -> None:
    p = Player(rate=16000, fade_ms=5)
    p.push(const(10000, 1600))
    first = samples(p.read(40)).astype(np.int32)  # halfway up the fade-in
    p.flush()
    after = samples(p.read(160)).astype(np.int32)
    assert after[0] <= first[-1] + 300
    assert np.all(np.diff(after[:80]) <= 0)
    assert np.all(after[80:] == 0)


def test_flush_before_playing_discards_everything() -> None:
    p = Player(fade_ms=5)
    p.push(const(10000, 500))
    assert p.flush() == 500
    assert p.read(160) == bytes(320)


def test_audio_pushed_after_flush_starts_on_the_read_after_the_fade_out() -> None:
    p = Player(rate=16000, fade_ms=5)
    p.push(const(10000, 1600))
    p.read(160)
    p.flush()
    p.push(const(-8000, 1600))
    out = samples(p.read(160))
    assert np.all(out[:80] >= 0) and np.all(out[80:] == 0)  # fade-out of the old audio only
    new = samples(p.read(160)).astype(np.int32)
    assert new[0] > -500 and np.all(new[80:] == -8000)  # new audio, faded in


def test_flush_with_no_fade_is_silent_at_once() -> None:
    p = Player(fade_ms=0)
    p.push(const(10000, 1000))
    p.read(160)
    assert p.flush() == 840
    assert p.read(160) == bytes(320)


def test_set_rate_empties_the_queue_and_rescales_the_fade() -> None:
    p = Player(rate=16000, fade_ms=5)
    p.push(const(10000, 1000))
    p.set_rate(48000)
    assert p.rate == 48000 and p.queued_samples == 0
    assert p.read(480) == bytes(960)
    p.push(const(10000, 4800))
    out = samples(p.read(480)).astype(np.int32)
    assert out[200] < 9500 and np.all(out[240:] == 10000)  # 5 ms = 240 samples
    with pytest.raises(ValueError):
        p.set_rate(0)


# --- queue, level, counters ----------------------------------------------------------------------


def test_queued_ms_and_playing() -> None:
    p = Player(rate=16000)
    assert p.queued_ms == 0 and not p.playing
    p.push(const(1, 1600))
    assert p.queued_samples == 1600 and p.queued_ms == 100
    assert p.playing
    p.read(160)
    assert p.queued_ms == 90
    read_all(p, 1440)
    assert p.queued_ms == 0 and p.playing  # the last read still played audio
    p.read(160)
    assert not p.playing


def test_level_dbfs_follows_the_output() -> None:
    rate = 16000
    p = Player(rate=rate, fade_ms=0)
    amp = 0.5
    t = np.arange(rate) / rate
    p.push(np.rint(amp * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16))
    read_all(p, 3200)  # 200 ms
    tone_db = 20 * math.log10(amp / math.sqrt(2))
    assert p.level_dbfs(200) == pytest.approx(tone_db, abs=0.1)
    assert p.level_dbfs(50) == pytest.approx(tone_db, abs=0.1)
    p.volume = 0.5
    read_all(p, 1600)
    assert p.level_dbfs(100) == pytest.approx(tone_db - 6.02, abs=0.1)
    assert p.level_dbfs(200) == pytest.approx(tone_db - 10 * math.log10(2 / 1.25), abs=0.1)
    p.flush()
    read_all(p, 1600)  # 100 ms of (fade-free) silence: half the window
    assert p.level_dbfs(200) == pytest.approx(tone_db - 6.02 - 3.01, abs=0.1)
    read_all(p, 3200)
    assert p.level_dbfs(200) == SILENCE_DBFS


# --- underruns -------------------------------------------------------------------------------------


def test_underrun_counted_when_audio_resumes_within_a_second() -> None:
    clock = FakeClock()
    p = Player(clock=clock)
    p.push(const(1000, 100))
    p.read(160)  # runs dry in the middle of the read
    clock.now += 0.5
    assert p.underruns == 0
    p.push(const(1000, 100))
    assert p.underruns == 1
    p.push(const(1000, 100))  # one starvation counts once
    assert p.underruns == 1


def test_underrun_when_the_queue_ends_on_a_read_boundary() -> None:
    clock = FakeClock()
    p = Player(clock=clock)
    p.push(const(1000, 320))
    p.read(160)
    p.read(160)  # queue now empty, but the stream did not know yet
    clock.now += 0.3
    p.read(160)  # dry here
    clock.now += 0.9
    p.push(const(1000, 160))
    assert p.underruns == 1


def test_end_of_turn_is_not_an_underrun() -> None:
    clock = FakeClock()
    p = Player(clock=clock)
    p.push(const(1000, 100))
    p.read(160)
    clock.now += 1.5  # the agent's turn ended; the next one starts later
    p.push(const(1000, 100))
    assert p.underruns == 0


def test_flush_and_idle_starts_are_not_underruns() -> None:
    clock = FakeClock()
    p = Player(clock=clock)
    p.push(const(1000, 10000))
    p.read(160)
    p.flush()
    p.read(160)
    p.read(160)
    clock.now += 0.1
    p.push(const(1000, 100))  # new turn right after a barge-in
    assert p.underruns == 0
    idle = Player(clock=clock)
    idle.read(160)
    idle.push(const(1000, 100))
    assert idle.underruns == 0


# --- threads -----------------------------------------------------------------------------------------


class Reader(threading.Thread):
    """Pulls from the player like a PortAudio callback, as fast as it can."""

    def __init__(self, player: Player, n: int = 160) -> None:
        super().__init__(daemon=True)
        self.player = player
        self.n = n
        self.stop = threading.Event()
        self.chunks: list[bytes] = []
        self.errors: list[BaseException] = []

        self.progress = threading.Condition()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                chunk = self.player.read(self.n)
                with self.progress:
                    self.chunks.append(chunk)
                    self.progress.notify_all()
        except BaseException as exc:
            self.errors.append(exc)

    def wait_reads(self, count: int) -> None:
        """Let the reader do ``count`` more reads (so pushes and reads interleave)."""
        with self.progress:
            target = len(self.chunks) + count
            ok = self.progress.wait_for(lambda: len(self.chunks) >= target, 5 * UNIT)
        assert ok, "reader thread stalled"

    def saw_audio_while_pushing(self) -> bool:
        with self.progress:
            return any(any(c) for c in self.chunks)

    def finish(self) -> NDArray[np.int16]:
        self.stop.set()
        self.join(timeout=5 * UNIT)
        assert not self.is_alive(), "reader thread did not stop"
        assert not self.errors, self.errors
        assert all(len(c) == 2 * self.n for c in self.chunks)
        return samples(b"".join(self.chunks))


def wait_until_drained(p: Player, reader: Reader) -> None:
    deadline = threading.Event()
    timer = threading.Timer(10 * UNIT, deadline.set)
    timer.start()
    try:
        while p.queued_samples and not deadline.is_set() and reader.is_alive():
            deadline.wait(0.001)
        reads = len(reader.chunks)
        while len(reader.chunks) < reads + 2 and not deadline.is_set() and reader.is_alive():
            deadline.wait(0.001)
    finally:
        timer.cancel()
    assert not deadline.is_set(), "player did not drain in time"


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every 10 µs instead of 5 ms, so the two sides really interleave."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def ramp(n: int) -> NDArray[np.int16]:
    """1, 2, ..., 32767, 1, 2, ...: never zero, so silence is easy to tell apart."""
    return (np.arange(n) % 32767 + 1).astype(np.int16)


def steps(played: NDArray[np.int16]) -> NDArray[np.int64]:
    """How far along the ramp each played sample is from the one before (mod its period)."""
    a = played.astype(np.int64)
    out: NDArray[np.int64] = np.mod(a[1:] - a[:-1], np.int64(32767))
    return out


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_push_and_read_keep_every_sample_in_order() -> None:
    p = Player(fade_ms=0)
    x = ramp(200_000)
    rng = np.random.default_rng(5)
    reader = Reader(p)
    reader.start()
    pos = 0
    while pos < len(x):
        size = int(rng.integers(1, 300))
        p.push(x[pos : pos + size])
        pos += size
        if rng.random() < 0.5:
            reader.wait_reads(1)
    assert reader.saw_audio_while_pushing()
    wait_until_drained(p, reader)
    out = reader.finish()
    assert np.array_equal(out[out != 0], x)
    assert p.samples_played == p.samples_pushed == len(x)
    assert p.queued_samples == 0


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_push_flush_and_read_never_corrupt() -> None:
    p = Player(fade_ms=0)
    x = ramp(200_000)
    rng = np.random.default_rng(9)
    reader = Reader(p, n=97)
    reader.start()
    discarded = 0
    pos = 0
    while pos < len(x):
        size = int(rng.integers(1, 300))
        p.push(x[pos : pos + size])
        pos += size
        if rng.random() < 0.05:
            discarded += p.flush()
        if rng.random() < 0.5:
            reader.wait_reads(1)
        p.volume = 1.0  # the loop side may touch settings while the reader runs
        _ = p.level_dbfs(), p.queued_ms, p.playing
    wait_until_drained(p, reader)
    out = reader.finish()
    played = out[out != 0]
    assert np.all(steps(played) > 0)  # in order, never repeated
    assert int(steps(played).sum()) < len(x)  # never beyond what was pushed
    assert len(played) == p.samples_played
    assert p.samples_pushed == len(x) == p.samples_played + discarded + p.queued_samples
    assert p.queued_samples == 0
    assert discarded > 0
