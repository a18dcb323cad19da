"""The cost of an idle daemon, as a process of its own: CPU share of one core over a
window after READY (from /proc), and RSS at its end. Shared by the benches that compare
an option on and off (the wake word, the local API).

The daemon runs the file backend in real time on ``mic`` (speech without a wake word
and silence), ``start = "button"`` unless the variant says otherwise, and a platform
that cannot be reached: the audio loop runs as on a device, no conversation opens.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_rss(pid: int) -> tuple[float, float]:
    """(CPU seconds so far, current RSS in MB) of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    rss = next(
        int(line.split()[1]) / 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return (int(fields[11]) + int(fields[12])) / TICK, rss


def idle_run(
    tmp: Path,
    mic: Path,
    name: str,
    extra_toml: str,
    window_s: float,
    platform_url: str = "http://127.0.0.1:9",
) -> tuple[float, float]:
    """(CPU share of one core over the window, RSS MB at its end). ``platform_url``: a
    reachable emulator makes it a device in a conversation (with ``start = "auto"``)."""
    q = json.dumps
    conf = tmp / f"{name}.toml"
    conf.write_text(
        f"""[device]\nid = "bench"\n[platform]\nagent_id = "demo-agent"\n"""
        f"""api_base_url = {q(platform_url)}\n[audio]\nbackend = "file"\n"""
        f"""input_file = {q(str(mic))}\noutput_file = {q(str(tmp / "o.wav"))}\n"""
        f"""exit_at_end = true\n[state]\ndir = {q(str(tmp / "state"))}\n"""
        f"""[logging]\nlevel = "INFO"\ntarget = "stderr"\n{extra_toml}\n"""
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    child = subprocess.Popen(
        [sys.executable, "-m", "hello_device", "run", "--config", str(conf)],
        cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert child.stderr is not None
    for line in child.stderr:
        if " ready (device" in line:
            break
    time.sleep(3.0)  # let the boot's last allocations settle
    cpu0, _ = proc_cpu_rss(child.pid)
    t0 = time.monotonic()
    time.sleep(window_s)
    cpu1, rss = proc_cpu_rss(child.pid)
    wall = time.monotonic() - t0
    child.terminate()
    child.communicate(timeout=10)
    return (cpu1 - cpu0) / wall, rss


def compare(
    tmp: Path,
    mic: Path,
    variants: dict[str, str],
    runs: int,
    window_s: float,
    label: str,
    platform_url: str = "http://127.0.0.1:9",
) -> None:
    """Run the variants alternately and print each one's medians, then the last one
    against the first (the first is the baseline)."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, extra in variants.items():
            results[name].append(idle_run(tmp, mic, name, extra, window_s, platform_url))
    doing = "Idle daemon" if platform_url.endswith(":9") else "Daemon in a conversation"
    print(f"\n{doing}, {runs} runs each, {window_s:g} s windows:")
    for name, rows in results.items():
        cpu = [c for c, _ in rows]
        rss = [r for _, r in rows]
        print(f"  {name:<24} CPU {statistics.median(cpu) * 100:.2f} % of one core "
              f"(min {min(cpu) * 100:.2f}, max {max(cpu) * 100:.2f}); RSS {statistics.median(rss):.1f} MB")  # fmt: skip
    names = list(results)
    base, other = names[0], names[-1]
    cpu_base = statistics.median(c for c, _ in results[base])
    cpu_other = statistics.median(c for c, _ in results[other])
    rss_added = statistics.median(r for _, r in results[other]) - statistics.median(
        r for _, r in results[base]
    )
    print(f"  {label} costs {100 * (cpu_other - cpu_base):.2f} % of one core "
          f"({cpu_other / cpu_base:.2f}x the daemon without it); RSS added {rss_added:.1f} MB")  # fmt: skip
