"""The load generator: `wrk` (Debian/Ubuntu: `apt-get install wrk`), driven by a Lua script that
sends an API key, picks request bodies from a file and prints its summary as one JSON line.

wrk is an event-loop client in C: it is not the limit here. `trivial_server` gives the number that
shows it: the same wrk against an endpoint that answers a constant from a raw asyncio protocol.
Worker CPU per request comes from /proc (utime + stime of gunicorn's workers): on a shared machine
it is steadier than requests per second, and it says what each request costs the server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LUA = r"""
local bodies, key, method, delay_ms = {}, os.getenv("WRK_KEY"), os.getenv("WRK_METHOD") or "GET", 0
init = function(args)
  local path = os.getenv("WRK_BODIES")
  if path and path ~= "" then
    for line in io.lines(path) do bodies[#bodies + 1] = line end
  end
  delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "0")
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
request = function()
  local headers = {}
  if key and key ~= "" then headers["Authorization"] = "Bearer " .. key end
  if #bodies > 0 then
    headers["Content-Type"] = "application/json"
    return wrk.format(method, nil, headers, bodies[math.random(#bodies)])
  end
  return wrk.format(method, nil, headers)
end
if (tonumber(os.getenv("WRK_DELAY_MS") or "0") or 0) > 0 then
  delay = function() return delay_ms end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %d, "duration_us": %d, "socket_errors": %d, "non2xx": %d, '
    .. '"p50_us": %d, "p99_us": %d}\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (it is the load generator)")
    return path


@dataclass
class Load:
    """One wrk run: requests per second, latency percentiles (ms), errors, worker CPU per request."""

    rps: float
    p50: float
    p99: float
    requests: int
    errors: int
    cpu_us: float | None = None


def cpu_ticks(pids: Sequence[int]) -> int:
    """utime + stime of the processes, in clock ticks (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 16,
    threads: int = 2,
    key: str | None = None,
    method: str = "GET",
    bodies: Path | None = None,
    delay_ms: float = 0.0,
    pids: Sequence[int] = (),
) -> Load:
    """wrk -t{threads} -c{connections} -d{seconds} against url; CPU of `pids` per request."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    env = {
        **os.environ,
        "WRK_KEY": key or "",
        "WRK_METHOD": method,
        "WRK_BODIES": str(bodies or ""),
        "WRK_DELAY_MS": f"{delay_ms:.3f}",
    }
    argv = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        script.name,
        url,
    ]
    before = cpu_ticks(pids)
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60).stdout
    finally:
        os.unlink(script.name)
    after = cpu_ticks(pids)
    line = next((s for s in out.splitlines() if s.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    data = json.loads(line[len("WRKJSON ") :])
    ok = data["requests"] - data["non2xx"]
    cpu = (after - before) * 1e6 / os.sysconf("SC_CLK_TCK") / ok if pids and ok else None
    return Load(
        rps=ok / (data["duration_us"] / 1e6),
        p50=data["p50_us"] / 1000,
        p99=data["p99_us"] / 1000,
        requests=data["requests"],
        errors=data["non2xx"] + data["socket_errors"],
        cpu_us=cpu,
    )


_TRIVIAL = r"""
import asyncio, sys
BODY = b'{"status":"ok"}\n'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
RESPONSE = HEAD % len(BODY) + BODY
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


@contextmanager
def trivial_server() -> Iterator[str]:
    """A constant answer from a raw asyncio protocol on 127.0.0.1 (one process, no framework)."""
    from airec.benchmarks.server import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", _TRIVIAL, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()
        time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)
