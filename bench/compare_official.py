"""Side by side with the official client (issue 12): whole-process CPU and peak RSS.

The daemon and the official Python client (``elevenlabs``' ``Conversation``) hold the
same conversation with the emulator, one after the other, each as a process of its own:

- the input: ``two_turns.wav`` (speech at 1.04-2.82 s and 6.18-9.03 s) padded with
  silence to ``--seconds`` (default 60), copied into a temporary folder;
- A, the daemon: ``python -m hello_device run --config CONF`` with the ``file`` audio
  backend (``exit_at_end``: it stops 2 s after the input), ``conversation.start =
  "auto"``, no inactivity timeout (one conversation), earcons off (the official client
  has none), logging at INFO to a file: 20 ms frames, VAD, barge-in, as on a device;
- B, the official client: ``bench/official_client.py``, the SDK's ``Conversation`` with
  a file-backed audio interface that keeps ``DefaultAudioInterface``'s buffer sizes
  (250 ms microphone chunks, 62.5 ms output blocks, both paced by the wall clock) and
  ends the session 2 s after the input;
- the emulator (a parrot agent) runs in this process: its CPU is not counted.

Runs alternate A B A B ... (``--runs N`` pairs), so that a machine that slows down or
speeds up over the minutes weighs on both sides alike.

How to read it: for each run, the child's exit code, wall seconds, CPU seconds (user +
system: the whole process, threads, imports and exit included), peak RSS (``ru_maxrss``;
MB = 2**20 bytes), the CPU and RSS already spent when the conversation was accepted
(read from ``/proc`` then: imports and boot), the user audio messages the emulator
received and the other client messages (initiation, pongs), the user turns its VAD
found, the seconds of agent audio it sent, and how much of that the client "played"
(non-silent samples in its output file, per cent of those sent). Then the medians, the
ratios daemon / official (CPU, peak RSS, messages) with their range over the pairs, and
the cost of the imports alone (``python -c "import ..."``, median of ``--import-runs``).
Every run must show one conversation, 2 user turns and the agent's audio played back,
else the bench says so and exits 1.

Each child is started by a small launcher (``python -S``) that reaps it with
``os.wait4``: ``ru_maxrss`` survives exec(), so a child forked from this process (the
emulator, numpy: ~50 MB) would report this process's peak instead of its own.

Usage: .venv/bin/python bench/compare_official.py [--runs 3] [--seconds 60]
       [--import-runs 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.emulator import (
    REPLY_PREROLL_S,
    ConversationRecord,
    Emulator,
    EmulatorConfig,
)

SHARED = REPO / "tests" / "data" / "audio"  # copies of shared/audio, kept with the code
RATE = 16_000
TURNS = 2  # user turns in two_turns.wav
OFFICIAL = Path(__file__).resolve().parent / "official_client.py"
IMPORTS = (
    "pass",
    "import hello_device.daemon",
    "import elevenlabs.conversational_ai.conversation",
    "import elevenlabs.client, elevenlabs.conversational_ai.conversation",  # the script's
)
TICK = os.sysconf("SC_CLK_TCK")


def conversation_input(path: Path, seconds: float) -> Path:
    """two_turns.wav followed by digital silence, ``seconds`` long in all."""
    with wave.open(str(SHARED / "two_turns.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        speech = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    total = int(seconds * RATE)
    if total < len(speech):
        raise SystemExit(f"--seconds must be at least {len(speech) / RATE:.1f}")
    data = np.zeros(total, dtype="<i2")
    data[: len(speech)] = speech
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.tobytes())
    return path


def daemon_config(tmp: Path, url: str, input_wav: Path, output_wav: Path) -> Path:
    q = json.dumps  # a TOML basic string
    text = f"""
[device]
id = "bench-device"

[platform]
agent_id = "demo-agent"
api_base_url = {q(url)}

[conversation]
start = "auto"
inactivity_timeout_s = 0

[audio]
backend = "file"
input_file = {q(str(input_wav))}
output_file = {q(str(output_wav))}
exit_at_end = true

[earcons]
enabled = false

[logging]
level = "INFO"
target = "stderr"

[state]
dir = {q(str(tmp / "state"))}
"""
    path = tmp / "daemon.toml"
    path.write_text(text)
    return path


def child_env() -> dict[str, str]:
    """This environment without proxy settings or the daemon's own variables."""
    return {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith("HELLO_DEVICE_")
    }


@dataclass
class Usage:
    code: int
    cpu_s: float
    maxrss_mb: float
    wall_s: float


# ``ru_maxrss`` is a per-process high-water mark that survives exec(): a child forked
# (or vforked) from this process starts with this process's RSS as its peak. Spawned by
# the launcher (``python -S``, ~8 MB, below any Python program's own peak), a child's
# ``ru_maxrss`` is its own.
LAUNCHER = """
import json, os, sys
fd = int(sys.argv[1])
os.set_inheritable(fd, False)
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
os.write(fd, b"%d\\n" % pid)
_, status, ru = os.wait4(pid, 0)
report = [os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, ru.ru_maxrss]
os.write(fd, json.dumps(report).encode())
"""


class Child:
    """A command run through the launcher; :meth:`wait` gives its :class:`Usage`."""

    def __init__(self, cmd: list[str], stdout: Any = None, stderr: Any = None) -> None:
        read_fd, write_fd = os.pipe()
        self.started = time.monotonic()
        self._launcher = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, str(write_fd), *cmd],
            cwd=REPO,
            env=child_env(),
            stdout=stdout,
            stderr=stderr,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        self._report = os.fdopen(read_fd, "rb")
        self.pid = int(self._report.readline())

    def wait(self) -> Usage:
        """Block until the child has exited (call it in a thread from asyncio)."""
        raw = self._report.read()
        wall = time.monotonic() - self.started
        self._report.close()
        self._launcher.wait()
        if not raw:
            raise RuntimeError(f"the launcher failed (exit code {self._launcher.returncode})")
        code, cpu, maxrss_kb = json.loads(raw)
        return Usage(int(code), float(cpu), maxrss_kb / 1024, wall)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def proc_snapshot(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, current RSS in MB) of a live process, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
        rss = 0.0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        return cpu, rss
    except (OSError, ValueError, IndexError):
        return float("nan"), float("nan")


def nonzero_samples(path: Path) -> int:
    """Samples of the output file that are not digital silence."""
    try:
        with wave.open(str(path), "rb") as w:
            return int(np.count_nonzero(np.frombuffer(w.readframes(w.getnframes()), "<i2")))
    except (OSError, EOFError, wave.Error):
        return 0


def parrot_nonzero(rec: ConversationRecord) -> int:
    """Samples, not digital silence, of the agent audio the emulator sent: the parrot
    plays back the user's audio from each utterance's start minus the pre-roll."""
    user = np.frombuffer(bytes(rec.user_audio), dtype="<i2")
    replies = [r for r in rec.replies if r.kind == "parrot"]
    total = 0
    for (start, end), reply in zip(rec.utterances, replies, strict=False):
        first = max(0, int((start - REPLY_PREROLL_S) * RATE))
        sent = user[first : int(end * RATE)][: round(reply.sent_s * RATE)]
        total += int(np.count_nonzero(sent))
    return total


@dataclass
class Run:
    label: str
    side: str
    usage: Usage
    connect_cpu_s: float = float("nan")
    connect_rss_mb: float = float("nan")
    conversations: int = 0
    messages: int = 0
    other_messages: int = 0
    turns: int = 0
    sent_s: float = 0.0
    sent_nonzero: int = 0
    played_nonzero: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def played_pct(self) -> float:
        """Non-silent samples in the output file, per cent of those the agent sent."""
        return 100 * self.played_nonzero / self.sent_nonzero if self.sent_nonzero else 0.0


async def run_side(side: str, label: str, tmp: Path, input_wav: Path, seconds: float) -> Run:
    """One conversation of one side against a fresh emulator."""
    out_wav = tmp / f"out-{label}.wav"
    async with Emulator(EmulatorConfig()) as emu:
        if side == "daemon":
            conf = daemon_config(tmp, emu.http_url, input_wav, out_wav)
            cmd = [sys.executable, "-m", "hello_device", "run", "--config", str(conf)]
        else:
            cmd = [sys.executable, str(OFFICIAL), emu.http_url, "demo-agent"]
            cmd += [str(input_wav), str(out_wav)]
        with (
            (tmp / f"{label}.stdout").open("wb") as out,
            (tmp / f"{label}.stderr").open("wb") as err,
        ):
            child = Child(cmd, out, err)

        async def at_connect() -> tuple[float, float]:
            rec = await emu.wait_conversation(1, timeout=seconds + 30)
            await rec.initiated.wait()
            return proc_snapshot(child.pid)

        snap = asyncio.create_task(at_connect())
        reap = asyncio.create_task(asyncio.to_thread(child.wait))
        done, _ = await asyncio.wait({reap}, timeout=seconds + 60)
        if not done:
            child.kill()
        usage = await reap
        connect = (float("nan"), float("nan"))
        if snap.done() and not snap.cancelled() and snap.exception() is None:
            connect = snap.result()
        snap.cancel()
        for rec in emu.conversations:
            try:
                await asyncio.wait_for(rec.finished.wait(), 5)
            except TimeoutError:
                pass
        records = list(emu.conversations)
    run = Run(label, side, usage)
    run.connect_cpu_s, run.connect_rss_mb = connect
    fill_from_records(run, records)
    run.played_nonzero = nonzero_samples(out_wav)
    check(run, tmp)
    return run


def fill_from_records(run: Run, records: list[ConversationRecord]) -> None:
    run.conversations = len(records)
    run.messages = sum(r.audio_chunks for r in records)
    run.other_messages = sum(len(r.client_messages) for r in records)
    run.turns = sum(len(r.utterances) for r in records)
    run.sent_s = sum(r.agent_audio_sent_s for r in records)
    run.sent_nonzero = sum(parrot_nonzero(r) for r in records)


def check(run: Run, tmp: Path) -> None:
    if run.usage.code != 0:
        run.problems.append(f"exit code {run.usage.code} (see {tmp}/{run.label}.stderr)")
    if run.conversations != 1:
        run.problems.append(f"{run.conversations} conversations, not 1")
    if run.turns != TURNS:
        run.problems.append(f"{run.turns} user turns heard, not {TURNS}")
    if run.sent_s <= 0 or not 0.95 <= run.played_pct / 100 <= 1.05:
        run.problems.append(f"agent audio: {run.sent_s:.2f} s sent, {run.played_pct:.0f} % played")


def measure_import(statement: str) -> Usage:
    return Child([sys.executable, "-c", statement]).wait()


def import_costs(runs: int) -> dict[str, tuple[float, float]]:
    """Median (CPU s, peak RSS MB) of each statement of ``IMPORTS``, in turn."""
    usages: dict[str, list[Usage]] = {statement: [] for statement in IMPORTS}
    for _ in range(runs):
        for statement in IMPORTS:
            usages[statement].append(measure_import(statement))
    costs = {}
    for statement, us in usages.items():
        if any(u.code != 0 for u in us):
            raise SystemExit(f"python -c {statement!r} failed")
        costs[statement] = (median(u.cpu_s for u in us), median(u.maxrss_mb for u in us))
    return costs


HEADER = (
    f"{'run':<4} {'side':<9} {'exit':>4} {'wall s':>7} {'CPU s':>6} {'peak MB':>8} "
    f"{'conn CPU s':>10} {'conn MB':>8} {'audio msgs':>10} {'other':>5} {'turns':>5} "
    f"{'agent s':>7} {'played':>6}"
)


def row(run: Run) -> str:
    u = run.usage
    line = (
        f"{run.label:<4} {run.side:<9} {u.code:>4} {u.wall_s:>7.1f} {u.cpu_s:>6.2f} "
        f"{u.maxrss_mb:>8.1f} {run.connect_cpu_s:>10.2f} {run.connect_rss_mb:>8.1f} "
        f"{run.messages:>10} {run.other_messages:>5} {run.turns:>5} "
        f"{run.sent_s:>7.2f} {run.played_pct:>5.0f}%"
    )
    if run.problems:
        line += "  PROBLEM: " + "; ".join(run.problems)
    return line


FIGURES: list[tuple[str, Callable[[Run], float], str]] = [
    ("CPU s (user+sys, whole process)", lambda r: r.usage.cpu_s, "{:.2f}"),
    ("  by the connection (imports, boot)", lambda r: r.connect_cpu_s, "{:.2f}"),
    ("  after it (conversation, exit)", lambda r: r.usage.cpu_s - r.connect_cpu_s, "{:.2f}"),
    ("peak RSS MB", lambda r: r.usage.maxrss_mb, "{:.1f}"),
    ("  RSS MB at the connection", lambda r: r.connect_rss_mb, "{:.1f}"),
    ("user audio messages sent", lambda r: r.messages, "{:.0f}"),
    ("wall s", lambda r: r.usage.wall_s, "{:.1f}"),
]


FLOOR_CHILD = """
import asyncio, os, sys, time
async def main(port, seconds):
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    payload = os.urandom(900)  # one 20 ms user_audio_chunk message with its framing
    count = int(seconds / 0.02)
    start = loop.time()
    state = [0]
    def tick():
        writer.transport.write(payload)
        state[0] += 1
        if state[0] >= count:
            done.set_result(None)
        else:
            loop.call_at(start + (state[0] + 1) * 0.02, tick)
    loop.call_at(start + 0.02, tick)
    await done
    writer.close()
asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
print(time.process_time())
"""


async def floor_cpu_s(seconds: float) -> float:
    """Whole-process CPU seconds of the floor: a bare Python process whose asyncio loop
    wakes every 20 ms for ``seconds`` and writes one 900-byte frame to loopback TCP
    (what any client sending 20 ms frames pays before doing anything with them)."""

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOR_CHILD, str(port), str(seconds), stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    server.close()
    return float(out.decode().strip())


def summary(
    runs: list[Run], seconds: float, costs: dict[str, tuple[float, float]], floor_s: float
) -> None:
    a = [r for r in runs if r.side == "daemon"]
    b = [r for r in runs if r.side == "official"]
    print()
    print(f"medians over {len(a)} pair(s), {seconds:.0f} s conversation:")
    print(f"{'':<36} {'daemon':>8} {'official':>9} {'ratio':>7}   ratio per pair")
    for title, get, fmt in FIGURES:
        x, y = median(get(r) for r in a), median(get(r) for r in b)
        ratios = [get(ra) / get(rb) for ra, rb in zip(a, b, strict=True)]
        print(
            f"{title:<36} {fmt.format(x):>8} {fmt.format(y):>9} {x / y:>6.2f}x   "
            f"{min(ratios):.2f}..{max(ratios):.2f}"
        )
    cpu_ratio = median(r.usage.cpu_s for r in a) / median(r.usage.cpu_s for r in b)
    rss = median(r.usage.maxrss_mb for r in a)
    print(
        f"goal (issue 12, 60 s): CPU ratio <= 0.80 (now {cpu_ratio:.2f}), "
        f"daemon peak RSS <= 45 MB (now {rss:.1f})"
    )
    official = median(r.usage.cpu_s for r in b)
    print(
        f"floor: a bare process waking every 20 ms for {seconds:.0f} s to write one frame: "
        f"{floor_s:.2f} CPU s = {floor_s / official:.2f}x the official client's whole run"
    )
    print()
    print(f"{'imports alone (python -c, median)':<70} {'CPU s':>6} {'peak MB':>8}")
    for statement, (cpu, mb) in costs.items():
        print(f"  {statement:<68} {cpu:>6.2f} {mb:>8.1f}")


async def run_all(args: argparse.Namespace, tmp: Path) -> int:
    input_wav = conversation_input(tmp / "input.wav", args.seconds)
    # First, so that both sides' bytecode caches are warm before the first run.
    costs = import_costs(args.import_runs)
    print(
        f"{args.runs} pair(s) of {args.seconds:.0f} s conversations, A = daemon (20 ms frames), "
        f"B = official client (250 ms chunks); temporary files in {tmp}",
        flush=True,
    )
    print(HEADER, flush=True)
    runs: list[Run] = []
    for i in range(args.runs):
        for side, letter in (("daemon", "A"), ("official", "B")):
            run = await run_side(side, f"{i + 1}{letter}", tmp, input_wav, args.seconds)
            runs.append(run)
            print(row(run), flush=True)
    summary(runs, args.seconds, costs, await floor_cpu_s(args.seconds))
    failed = [r for r in runs if r.problems]
    if failed:
        print(f"\n{len(failed)} run(s) had problems: see PROBLEM above")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="A B pairs (default 3)")
    parser.add_argument("--seconds", type=float, default=60.0, help="conversation length")
    parser.add_argument("--import-runs", type=int, default=5, help="runs of each import")
    parser.add_argument("--keep", metavar="DIR", help="keep the files (logs, WAVs) in DIR")
    args = parser.parse_args()
    if args.keep:
        keep = Path(args.keep).resolve()
        keep.mkdir(parents=True, exist_ok=True)
        sys.exit(asyncio.run(run_all(args, keep)))
    with tempfile.TemporaryDirectory(prefix="compare-official-") as tmp:
        sys.exit(asyncio.run(run_all(args, Path(tmp))))


if __name__ == "__main__":
    main()
