"""Soak benchmark (issue 11): back-to-back conversations for N minutes; does the daemon
leak memory, file descriptors or threads?

The real daemon runs as its own process (``python -m hello_device run``, the ``file``
audio backend: a virtual sound card paced in real time, ``conversation.start = "auto"``)
against the emulator, which runs in this process on loopback. The microphone is speech
(two_turns.wav and utterance.wav) repeated for the whole run; the emulator greets, parrots
every utterance back and ends each conversation with 1000 after ``--conversation-s``
seconds (the daemon usually ends it first: it takes the same maximum from the agent's
configuration), and the daemon starts the next one after ``--restart-delay-s``: about
three conversations a minute, each with a greeting, user turns, agent replies and
barge-ins (the user keeps talking). With ``--faults K`` every K-th connection is also cut,
in turn: close 1011 at the first agent audio, TCP abort at the user's first speech, close
1011 right after the metadata; so the resume path is soaked too.

Every ``--sample-s`` seconds the daemon is read from ``/proc/PID``: RSS (``VmRSS``), open
file descriptors (entries of ``fd/``), threads (``Threads``), CPU time (``stat``); and the
emulator's records give the connections so far. At the end the daemon gets SIGTERM: it
must exit with 0, and its log (standard error) is scanned for tracebacks and for lines
at WARNING and above (counted by message).

How to read the output:

- one row per minute: median RSS, fd and thread range (min..max) of that minute's
  samples, the daemon's CPU in percent of one core, connections so far;
- the first two minutes are warm-up (imports, first allocations, caches, the allocator
  finding its working set) and are not judged. "Growth after minute 2" is the median RSS
  of the last minute minus that of minute 2; the slope (least squares over every sample
  after minute 2, in MB/hour) says whether what grew is a trend or a step. On a short
  run (3 minutes: one minute judged) the slope is noise-dominated; read the growth;
- the RSS *level* is not the device's: the file backend decodes its whole input file up
  front (~2 MB per minute of soak here), once, before minute 1. And the daemon keeps its
  last 10 sessions (``Daemon.sessions``, with their statistics, some 30-40 kB each): RSS
  climbs by that much per conversation until the tenth, around minute 3.5 at the
  default pace, then levels off. Both are retention, not leaks;
- fds and threads are "flat" when, after minute 2, max - min <= 1: the conversation's
  WebSocket is open or not at a given sample, and a REST request (an agent configuration
  refresh) runs in a short-lived thread. A leak of one per conversation shows as the
  number of conversations;
- goals (the issue's closing note, for a 15-minute soak): RSS growth after minute 2
  <= 2 MB, fds and threads flat; and exit code 0 on SIGTERM, no traceback in the log.
  The exit status of the bench is 0 when every check passed, else 1.

Usage: .venv/bin/python bench/soak.py [--minutes 15] [--sample-s 5] [--conversation-s 20]
       [--restart-delay-s 1] [--faults K] [--json OUT] [--keep-log FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hello_device.emulator import Emulator, EmulatorConfig, Fault

SHARED = REPO / "tests" / "data" / "audio"  # copies of shared/audio, kept with the code

WARMUP_S = 120.0
"""Minutes 1 and 2: not judged."""
RSS_GROWTH_GOAL_MB = 2.0
FLAT_TOLERANCE = 1
"""fds and threads: max - min after minute 2 at most this."""
FAULTS = (
    Fault("agent_audio", "close", 1011),
    Fault("user_speech", "abort"),
    Fault("after_metadata", "close", 1011),
)
"""Injected in turn with ``--faults``; ``conversations`` is set high when used."""
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM", "INVOCATION_ID")
"""Not passed to the daemon: it logs to standard error and notifies nobody."""
LOG_LEVEL_RE = re.compile(r"^\S+ \S+ (WARNING|ERROR|CRITICAL)\s+(\S+): (.*)$")


@dataclass
class Sample:
    t: float
    """When it was due, in seconds since the daemon process started (it is taken within
    a few milliseconds of that)."""
    rss_kb: int
    fds: int
    threads: int
    cpu_s: float
    """utime + stime of the daemon so far."""
    connections: int
    """Conversation connections the emulator has seen so far."""


def read_proc(pid: int) -> tuple[int, int, int, float]:
    """(VmRSS in kB, open fds, threads, CPU seconds) of a live process."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return rss, fds, threads, cpu


def speech_input(path: Path, seconds: float) -> Path:
    """A microphone that keeps talking: two_turns.wav and utterance.wav, repeated."""
    parts = []
    for name in ("two_turns.wav", "utterance.wav"):
        with wave.open(str(SHARED / name), "rb") as w:
            assert w.getframerate() == 16000 and w.getnchannels() == 1, name
            parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    one = np.concatenate(parts)
    n = int(seconds * 16000)
    data = np.tile(one, int(np.ceil(n / len(one))))[:n]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(data.tobytes())
    return path


def write_config(tmp: Path, url: str, input_wav: Path, restart_delay_s: float) -> Path:
    config = tmp / "config.toml"
    config.write_text(
        f"""
[device]
id = "soak"
name = "Soak bench"
[platform]
agent_id = "demo-agent"
api_base_url = "{url}"
[conversation]
start = "auto"
restart_delay_s = {restart_delay_s}
[audio]
backend = "file"
input_file = "{input_wav}"
output_file = "{tmp / "out.wav"}"
[logging]
level = "INFO"
target = "stderr"
[state]
dir = "{tmp / "state"}"
"""
    )
    return config


async def schedule_faults(emu: Emulator, every: int) -> None:
    """Arm a fault for every ``every``-th connection, in turn from :data:`FAULTS`.

    The emulator copies its configuration as a connection arrives, before any waiter on
    it runs: arming the next connection's fault once connection n is seen is in time."""
    n, armed = 1, 0
    while True:
        if n % every == 0:
            fault = FAULTS[armed % len(FAULTS)]
            emu.config.fault = Fault(fault.stage, fault.action, fault.code, conversations=10**9)
            armed += 1
        else:
            emu.config.fault = None
        await emu.wait_conversation(n, timeout=1e9)
        n += 1


class Counting(logging.Handler):
    """Counts the emulator's own warnings (e.g. a client message it could not parse)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages[re.sub(r"conv_[0-9a-f]+", "conv_…", record.getMessage())[:160]] += 1


def die_with_parent() -> None:
    """In the daemon, before exec: SIGTERM when the bench dies (even by SIGKILL), so that
    no daemon is left behind (Linux ``PR_SET_PDEATHSIG``)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


async def stop_daemon(proc: asyncio.subprocess.Process) -> tuple[int | None, float]:
    """SIGTERM; (exit code, or None if it had to be killed after 10 s; seconds to exit)."""
    t0 = time.monotonic()
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        code = None
    return code, time.monotonic() - t0


@dataclass
class Minute:
    minute: int
    rss_mb: float
    """Median over the minute's samples."""
    fds: tuple[int, int]
    threads: tuple[int, int]
    cpu_pct: float
    """The daemon's CPU over the minute, % of one core."""
    connections: int
    """Connections so far, at the minute's last sample."""

    @classmethod
    def of(cls, minute: int, rows: list[Sample], prev: Sample | None) -> Minute:
        first, last = prev or rows[0], rows[-1]
        return cls(
            minute,
            median(s.rss_kb for s in rows) / 1024,
            (min(s.fds for s in rows), max(s.fds for s in rows)),
            (min(s.threads for s in rows), max(s.threads for s in rows)),
            100 * (last.cpu_s - first.cpu_s) / max(last.t - first.t, 1e-9),
            last.connections,
        )

    def row(self) -> str:
        return (
            f"| {self.minute} | {self.rss_mb:.1f} | {self.fds[0]}..{self.fds[1]} | "
            f"{self.threads[0]}..{self.threads[1]} | {self.cpu_pct:.1f} | {self.connections} |"
        )


def scan_log(path: Path) -> tuple[int, Counter[str]]:
    """(tracebacks, Counter of 'LEVEL logger: message' for WARNING and above)."""
    text = path.read_text(errors="replace")
    problems: Counter[str] = Counter()
    for line in text.splitlines():
        match = LOG_LEVEL_RE.match(line)
        if match:
            message = re.sub(r"conv_[0-9a-f]+", "conv_…", match.group(3))
            message = re.sub(r"\d+\.\d+ s\b", "N s", message)
            problems[f"{match.group(1)} {match.group(2)}: {message[:140]}"] += 1
    return text.count("Traceback"), problems


@dataclass
class Run:
    """What :func:`soak` saw."""

    samples: list[Sample]
    table: list[Minute]
    records: list[Any]
    """The emulator's :class:`~hello_device.emulator.ConversationRecord` of every connection."""
    injected: list[Any]
    died: int | None
    """The daemon's exit code if it ended before the soak did."""
    code: int | None
    """Its exit code after SIGTERM (None: killed)."""
    stop_s: float


async def soak(args: argparse.Namespace, tmp: Path, input_wav: Path, log_path: Path) -> Run:
    """Run the daemon against the emulator for ``args.minutes``, sampling it."""
    duration = args.minutes * 60.0
    emu_cfg = EmulatorConfig(
        first_message="Hello! How can I help?", max_duration_s=args.conversation_s
    )
    async with Emulator(emu_cfg) as emu:
        config = write_config(tmp, emu.http_url, input_wav, args.restart_delay_s)
        cmd = [sys.executable, "-m", "hello_device", "run", "--config", str(config)]
        print(f"daemon: {shlex.join(cmd)}  (cwd {REPO})")
        print(
            f"{args.minutes} min; a sample every {args.sample_s:g} s; the emulator ends each "
            f"conversation after {args.conversation_s:g} s, the daemon starts the next after "
            f"{args.restart_delay_s:g} s; "
            + (f"a fault every {args.faults} connections" if args.faults else "no faults")
        )
        print()
        print("| minute | RSS MB (median) | fds | threads | CPU % | connections so far |")
        print("|---|---|---|---|---|---|")
        env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
        samples: list[Sample] = []
        table: list[Minute] = []
        died: int | None = None
        faults = None
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
            started = time.monotonic()
            if args.faults:
                faults = asyncio.create_task(schedule_faults(emu, args.faults))
            try:
                k, minute, prev = 0, 1, None
                while True:
                    k += 1
                    at = min(k * args.sample_s, duration)
                    await asyncio.sleep(max(0.0, started + at - time.monotonic()))
                    if proc.returncode is not None:
                        died = proc.returncode
                        break
                    try:
                        rss, fds, threads, cpu = read_proc(proc.pid)
                    except OSError:
                        continue  # it just ended; the next round says how
                    samples.append(Sample(at, rss, fds, threads, cpu, len(emu.conversations)))
                    while at >= minute * 60:
                        rows = [s for s in samples if (minute - 1) * 60 < s.t <= minute * 60]
                        if rows:
                            table.append(Minute.of(minute, rows, prev))
                            print(table[-1].row(), flush=True)
                            prev = rows[-1]
                        minute += 1
                    if at >= duration:
                        break
            finally:
                if faults is not None:
                    faults.cancel()
                code, stop_s = await stop_daemon(proc)
        return Run(
            samples, table, list(emu.conversations), list(emu.faults_injected), died, code, stop_s
        )


def report(
    args: argparse.Namespace,
    bench_cmd: str,
    run: Run,
    tracebacks: int,
    problems: Counter[str],
    emulator_warnings: Counter[str],
) -> bool:
    """Print the summary and the verdict; write ``--json``; True if every check passed."""
    samples, table, records, injected = run.samples, run.table, run.records, run.injected
    died, code, stop_s = run.died, run.code, run.stop_s
    mb = 1 / 1024
    minute2 = [s for s in samples if WARMUP_S - 60 < s.t <= WARMUP_S]
    after = [s for s in samples if s.t > WARMUP_S]
    last = [s for s in samples if s.t > max(WARMUP_S, samples[-1].t - 60)] if samples else []
    closes = Counter(
        f"{r.close_code} {r.close_reason!r}" if r.close_code is not None else "open"
        for r in records
    )
    answered = sum(
        any(rep.kind == "parrot" and rep.sent_s > 0 for rep in r.replies) for r in records
    )
    utterances = sum(len(r.utterances) for r in records)
    print()
    print(
        f"connections: {len(records)} in {samples[-1].t / 60 if samples else 0:.1f} min "
        f"({len(records) / max(args.minutes, 1e-9):.1f} a minute); {answered} with the "
        f"agent parroting the user back; {utterances} user utterances heard"
    )
    print("  ended: " + ", ".join(f"{n} x {c}" for c, n in closes.most_common()))
    if args.faults:
        kinds = Counter(
            f"{f'close {f.code}' if f.action == 'close' else f.action} at {f.stage}"
            for _, f, _at in injected
        )
        print(
            f"  faults injected: {len(injected)} ("
            + ", ".join(f"{n} x {k}" for k, n in kinds.items())
            + ")"
        )
    checks: list[tuple[str, bool]] = []
    summary: dict[str, Any] = {}
    if died is not None:
        print(
            f"\nthe daemon ended on its own after {samples[-1].t if samples else 0:.0f} s "
            f"with exit code {died}"
        )
        checks.append(("the daemon ran the whole soak", False))
    if minute2 and after and last:
        rss2 = median(s.rss_kb for s in minute2) * mb
        rss_end = median(s.rss_kb for s in last) * mb
        growth = rss_end - rss2
        hours = np.array([s.t for s in after]) / 3600
        rss = np.array([s.rss_kb for s in after]) * mb
        slope = float(np.polyfit(hours, rss, 1)[0]) if len(after) >= 2 else float("nan")
        span_h = (after[-1].t - WARMUP_S) / 3600
        peak = max(s.rss_kb for s in after) * mb - rss2
        boot = samples[0].rss_kb * mb
        fd_lo, fd_hi = min(s.fds for s in after), max(s.fds for s in after)
        th_lo, th_hi = min(s.threads for s in after), max(s.threads for s in after)
        cpu = 100 * (after[-1].cpu_s - minute2[-1].cpu_s) / (after[-1].t - minute2[-1].t)
        print()
        print(
            f"RSS: {boot:.1f} MB at {samples[0].t:.0f} s; minute 2 {rss2:.1f} MB; last minute "
            f"{rss_end:.1f} MB (medians)"
        )
        print(
            f"  growth after minute 2: {growth:+.2f} MB ({100 * growth / rss2:+.2f} %; goal "
            f"<= {RSS_GROWTH_GOAL_MB:g} MB); peak {peak:+.2f} MB above minute 2"
        )
        print(
            f"  slope after minute 2 (least squares, {len(after)} samples): "
            f"{slope:+.2f} MB/hour, i.e. {slope * span_h:+.2f} MB over these "
            f"{span_h * 60:.0f} min"
        )
        print(
            f"fds after minute 2: {fd_lo}..{fd_hi}; threads: {th_lo}..{th_hi} "
            f"(flat: max - min <= {FLAT_TOLERANCE})"
        )
        judged = [m.cpu_pct for m in table if m.minute > 2]
        print(
            f"CPU after minute 2: {cpu:.2f} % of one core (median of the minutes: "
            f"{median(judged) if judged else float('nan'):.2f} %)"
        )
        checks += [
            (
                f"RSS growth after minute 2 <= {RSS_GROWTH_GOAL_MB:g} MB",
                growth <= RSS_GROWTH_GOAL_MB,
            ),
            ("fds flat", fd_hi - fd_lo <= FLAT_TOLERANCE),
            ("threads flat", th_hi - th_lo <= FLAT_TOLERANCE),
        ]
        summary.update(
            rss_minute2_mb=rss2,
            rss_end_mb=rss_end,
            rss_growth_mb=growth,
            rss_peak_above_minute2_mb=peak,
            rss_slope_mb_per_hour=slope,
            fds_after_minute2=[fd_lo, fd_hi],
            threads_after_minute2=[th_lo, th_hi],
            cpu_after_minute2_pct=cpu,
        )
    elif died is None:
        print("\nnot enough samples after minute 2 to judge growth (run at least 3 minutes)")
        checks.append(("samples after minute 2", False))
    if died is None:
        stopped = "none (killed after 10 s)" if code is None else str(code)
        print(f"SIGTERM: exit code {stopped} in {stop_s * 1000:.0f} ms", end="; ")
    print(f"{tracebacks} traceback(s) in the daemon's log")
    checks += [("exit code 0 on SIGTERM", code == 0), ("no traceback", tracebacks == 0)]
    if problems:
        print(f"daemon log, WARNING and above ({sum(problems.values())} lines):")
        for line, n in problems.most_common(12):
            print(f"  {n:4d} x {line}")
    else:
        print("daemon log: nothing at WARNING or above")
    if emulator_warnings:
        print(f"emulator warnings ({sum(emulator_warnings.values())}):")
        for line, n in emulator_warnings.most_common(6):
            print(f"  {n:4d} x {line}")
    print()
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    passed = all(ok for _, ok in checks)
    print(f"{'PASS' if passed else 'FAIL'} ({args.minutes:g} min soak; the goal is stated for 15)")
    if args.json:
        summary.update(
            command=bench_cmd,
            minutes=args.minutes,
            connections=len(records),
            answered=answered,
            closes=dict(closes),
            faults_injected=len(injected),
            exit_code=code,
            stop_ms=stop_s * 1000,
            tracebacks=tracebacks,
            log_problems=dict(problems),
            checks={name: ok for name, ok in checks},
            passed=passed,
        )
        out = {
            "summary": summary,
            "minutes": [asdict(m) for m in table],
            "samples": [asdict(s) for s in samples],
        }
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"samples written to {args.json}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=15, help="length of the soak (>= 3)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--conversation-s", type=float, default=20.0, help="the emulator ends each after this"
    )
    parser.add_argument(
        "--restart-delay-s", type=float, default=1.0, help="daemon: pause between conversations"
    )
    parser.add_argument(
        "--faults", type=int, default=0, metavar="K", help="cut every K-th connection (0: none)"
    )
    parser.add_argument("--json", metavar="OUT", help="write the samples and summary here")
    parser.add_argument("--keep-log", metavar="FILE", help="copy the daemon's log here")
    args = parser.parse_args()
    if args.minutes < 3:
        parser.error("--minutes must be at least 3 (minutes 1 and 2 are warm-up)")
    if not 0 < args.sample_s <= 60:
        parser.error("--sample-s must be in (0, 60]")
    if args.faults < 0:
        parser.error("--faults must be >= 0")
    bench_cmd = shlex.join([sys.executable, *sys.argv])
    print(f"bench: {bench_cmd}")
    counting = Counting()
    logging.getLogger("hello_device.emulator").addHandler(counting)
    with tempfile.TemporaryDirectory(prefix="soak-") as t:
        tmp = Path(t)
        input_wav = speech_input(tmp / "mic.wav", args.minutes * 60 + 60)
        log_path = tmp / "daemon.log"
        try:
            run = asyncio.run(soak(args, tmp, input_wav, log_path))
        finally:
            if args.keep_log and log_path.exists():
                shutil.copyfile(log_path, args.keep_log)
        tracebacks, problems = scan_log(log_path)
    passed = report(args, bench_cmd, run, tracebacks, problems, counting.messages)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
