"""Load generators for bench/api.py: wrk (a Lua script builds each request, with a unique
Idempotency-Key when asked) or, without wrk, a light multi-process Python generator
(http.client, keep-alive). Both return req/s, p50 and p99 (ms), request and error counts."""

from __future__ import annotations

import json
import math
import multiprocessing
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

HOST = "127.0.0.1"


class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = max(0, math.ceil(q / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


# wrk: one request per call of request(), a unique Idempotency-Key each; done() prints JSON.
WRK_LUA = r'''
local counter = 0
local thread_no = 0
local threads = {}

function setup(thread)
  thread_no = thread_no + 1
  thread:set("tid", thread_no)
  table.insert(threads, thread)
end

function init(args)
  method = args[1]
  path = args[2]
  nonce = tonumber(args[3])
  use_idem = args[4] == "1"
  body = nil
  if method == "POST" then
    local f = assert(io.open(args[5], "rb"))
    body = f:read("*a")
    f:close()
  end
  hdrs = {}
  local i = 6
  while args[i] do
    local k, v = args[i]:match("^([^:]+):%s*(.*)$")
    hdrs[k] = v
    i = i + 1
  end
  if not use_idem then
    fixed = wrk.format(method, path, hdrs, body)
  end
end

function request()
  if not use_idem then
    return fixed
  end
  counter = counter + 1
  hdrs["Idempotency-Key"] = string.format("%08x-%04x-4000-8000-%012x", nonce, tid, counter)
  return wrk.format(method, path, hdrs, body)
end

-- The first non-2xx answer per thread, so a failing run says why.
first_error = ""
function response(status, headers, body)
  if status >= 300 and first_error == "" then
    first_error = status .. " " .. string.sub(body or "", 1, 300)
  end
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local err = t:get("first_error")
    if err and err ~= "" then
      io.write("BENCHERR " .. string.gsub(err, "\n", " ") .. "\n")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
'''


class Target:
    def __init__(self, name: str, method: str, path: str, headers: dict[str, str],
                 body: bytes | None, idempotency: bool):
        self.name, self.method, self.path = name, method, path
        self.headers, self.body, self.idempotency = headers, body, idempotency


class Wrk:
    """wrk, one thread (light: it needs a fraction of one core at these rates)."""

    name = "wrk"

    def __init__(self, workdir: Path, port: int, concurrency: int):
        self.workdir, self.port, self.concurrency = workdir, port, concurrency
        self.script = workdir / "bench.lua"
        self.script.write_text(WRK_LUA)
        self.proc: subprocess.Popen | None = None

    def run(self, target: Target, seconds: float) -> dict:
        body_file = self.workdir / f"body-{target.name}.json"
        body_file.write_bytes(target.body or b"")
        nonce = secrets.randbits(31)
        cmd = ["wrk", "-t1", f"-c{self.concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", str(self.script), f"http://{HOST}:{self.port}{target.path}", "--",
               target.method, target.path, str(nonce), "1" if target.idempotency else "0", str(body_file),
               *(f"{k}: {v}" for k, v in target.headers.items())]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = self.proc.communicate()
        code, self.proc = self.proc.returncode, None
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
        if code != 0 or line is None:
            raise BenchError(f"wrk failed ({code}):\n{out}\n{err}")
        data = json.loads(line[len("BENCHJSON "):])
        for err in (ln for ln in out.splitlines() if ln.startswith("BENCHERR ")):
            log(f"{target.name}: first non-2xx answer: {err[len('BENCHERR '):]}")
        errors = data["connect"] + data["read"] + data["write"] + data["timeout"]
        return {"rps": data["requests"] / (data["duration_us"] / 1e6), "p50": data["p50_us"] / 1e3,
                "p99": data["p99_us"] / 1e3, "requests": data["requests"], "non2xx": data["status"],
                "socket_errors": errors}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _py_worker(port, target_spec, connections, seconds, start_at, queue):
    """One generator process: `connections` keep-alive connections, one thread each."""
    import http.client
    import uuid as _uuid

    method, path, headers, body, idem = target_spec
    latencies: list[float] = []
    counts = {"non2xx": 0, "errors": 0}
    lock = threading.Lock()

    def loop():
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        local, non2xx, errors = [], 0, 0
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while True:
            t0 = time.perf_counter()
            if time.time() >= end:
                break
            h = dict(headers)
            if idem:
                h["Idempotency-Key"] = str(_uuid.uuid4())
            try:
                conn.request(method, path, body=body, headers=h)
                response = conn.getresponse()
                response.read()
                if not 200 <= response.status < 400:
                    non2xx += 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                continue
            local.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(local)
            counts["non2xx"] += non2xx
            counts["errors"] += errors

    threads = [threading.Thread(target=loop) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put((latencies, counts))


class PyGen:
    """Fallback: ≤2 processes × threads, http.client keep-alive (heavier than wrk)."""

    name = "python (http.client, keep-alive)"

    def __init__(self, workdir: Path, port: int, concurrency: int):
        self.port, self.concurrency = port, concurrency
        self.procs: list[multiprocessing.Process] = []

    def run(self, target: Target, seconds: float) -> dict:
        nprocs = min(2, self.concurrency)
        shares = [self.concurrency // nprocs + (1 if i < self.concurrency % nprocs else 0) for i in range(nprocs)]
        queue: multiprocessing.Queue = multiprocessing.Queue()
        spec = (target.method, target.path, target.headers, target.body, target.idempotency)
        start_at = time.time() + 0.5
        self.procs = [multiprocessing.Process(target=_py_worker, args=(self.port, spec, n, seconds, start_at, queue))
                      for n in shares]
        for p in self.procs:
            p.start()
        results = [queue.get() for _ in self.procs]
        for p in self.procs:
            p.join()
        self.procs = []
        latencies = sorted(x for lat, _ in results for x in lat)
        return {"rps": len(latencies) / seconds, "p50": percentile(latencies, 50) * 1e3,
                "p99": percentile(latencies, 99) * 1e3, "requests": len(latencies),
                "non2xx": sum(c["non2xx"] for _, c in results),
                "socket_errors": sum(c["errors"] for _, c in results)}

    def stop(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.kill()
                p.join()
