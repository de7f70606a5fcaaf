"""Shared helpers of the benchmark scripts.

- `Server`: start a real `stats-service serve` (the console script of the project venv)
  on a temporary data dir and a free port of 127.0.0.1, wait for /v1/health, stop it
  cleanly (SIGINT -> uvicorn drains the writer and CHECKPOINTs the DuckDB file).
- payload generators: TSBS-devops-like bulk bodies (one device, N timestamps x M
  fields per request), pre-serialised with orjson so the clients only send bytes.
- `post_loop` / `run_clients`: bounded (count and time) keep-alive HTTP POST loops in
  client processes (`http.client`, one connection per thread).
- small table printer and machine description used by every script.

Every loop here is bounded in count and time; every process started here is stopped by
its own PID.
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
ADMIN_KEY = "bench-admin-key-0123456789abcdef"

# TSBS devops "cpu" measurement: 10 fields per host.
CPU_FIELDS = (
    "usage_user", "usage_system", "usage_idle", "usage_nice", "usage_iowait",
    "usage_irq", "usage_softirq", "usage_steal", "usage_guest", "usage_guest_nice",
)


# -- machine / output ------------------------------------------------------------------


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    import duckdb

    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
        commit += "+dirty src" if dirty else ""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": mem,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
    }


def print_machine() -> None:
    m = machine()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in m.items()))
    busy = other_busy_processes()
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          + (f"; WARNING, other busy processes: {busy}" if busy else ""), flush=True)


def wait_quiet(max_wait_s: float = 60.0, threshold: float = 0.3) -> bool:
    """Wait (bounded) until no other process uses more than `threshold` cores, so that a
    run on this small machine is not shared with someone else's tests. True if quiet."""
    deadline = time.monotonic() + max_wait_s
    while True:
        busy = other_busy_processes(threshold)
        if not busy:
            return True
        if time.monotonic() >= deadline:
            print(f"WARNING: machine still busy after {max_wait_s:.0f}s: {busy}", flush=True)
            return False
        time.sleep(2.0)


def other_busy_processes(threshold: float = 0.2, window_s: float = 1.0) -> str:
    """Processes (not ours) using more than `threshold` cores right now: noise warning."""
    def snap() -> dict[int, tuple[str, float]]:
        out: dict[int, tuple[str, float]] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                head, tail = (d / "stat").read_text().rsplit(")", 1)
                parts = tail.split()
                out[int(d.name)] = (head.split("(", 1)[1],
                                    (int(parts[11]) + int(parts[12])) / tick)
        return out

    a = snap()
    time.sleep(window_s)
    b = snap()
    mine = {os.getpid(), *(c.pid for c in mp.active_children())}
    busy = [
        f"{name}[{pid}] {(cpu - a[pid][1]) / window_s:.1f}"
        for pid, (name, cpu) in b.items()
        if pid in a and pid not in mine and (cpu - a[pid][1]) / window_s > threshold
    ]
    return ", ".join(busy)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A GitHub-flavoured markdown table (pastes straight into docs/benchmarks.md)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))


def fmt_int(n: float) -> str:
    return f"{n:,.0f}"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} GiB"


def dir_size(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# -- the server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s ({last})")


@dataclass
class Server:
    """A real `stats-service serve` on 127.0.0.1:<free port> and a data dir of its own.

    Use as a context manager. `env` adds STATS_* settings (e.g. STATS_ARCHIVE_ENABLED).
    The data dir is removed on exit unless `keep` is set or `data_dir` was given.
    """

    env: dict[str, str] = field(default_factory=dict)
    data_dir: Path | None = None
    keep: bool = False
    patches: str = ""  # what-if experiments of serve_patched.py ("" = the real console script)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _tmp: Path | None = None
    _log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": ADMIN_KEY, "Content-Type": "application/json"}

    def start(self, timeout: float = 60.0) -> Server:
        if self.data_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="stats-bench-"))
            self.data_dir = self._tmp / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "STATS_ADMIN_KEY": ADMIN_KEY,
            "STATS_LOG_LEVEL": "warning",
            "STATS_HOST": "127.0.0.1",
            "STATS_PORT": str(self.port),
            "STATS_DATA_DIR": str(self.data_dir),
            **self.env,
        }
        self._log = self.data_dir.parent / "server.log"
        if self.patches:
            env["STATS_BENCH_PATCHES"] = self.patches
            cmd = [sys.executable, str(Path(__file__).with_name("serve_patched.py")), "serve"]
        else:
            cmd = [str(VENV_BIN / "stats-service"), "serve"]
        with open(self._log, "wb") as log:
            # cwd = the tmp dir, so no stray .env of the caller is read.
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=str(self.data_dir.parent),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_http(self.url + "/v1/health", timeout, self.proc)
        except Exception:
            self.stop()
            raise
        return self

    def log_tail(self, n: int = 20) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-n:])

    def stop(self, timeout: float = 120.0) -> int | None:
        """SIGINT (graceful: writer drained, DuckDB CHECKPOINTed and closed), then wait."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()  # only our own child, by its Popen handle
                proc.wait(10)
        return proc.returncode

    def cleanup(self) -> None:
        if self._tmp is not None and not self.keep:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()

    def routes(self) -> set[str]:
        with urllib.request.urlopen(self.url + "/openapi.json", timeout=10) as resp:
            return set(orjson.loads(resp.read())["paths"])


def http_json(method: str, url: str, headers: dict[str, str], body: bytes | None = None,
              timeout: float = 60.0) -> tuple[int, object]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            data = resp.read()
            return resp.status, orjson.loads(data) if data else None
    except urllib.error.HTTPError as exc:
        data = exc.read()
        try:
            return exc.code, orjson.loads(data)
        except orjson.JSONDecodeError:
            return exc.code, data.decode(errors="replace")


# -- payloads --------------------------------------------------------------------------


def ts_value(us: int, fmt: str) -> object:
    if fmt == "epoch_s":
        return us // 1_000_000
    if fmt == "epoch_ms":
        return us // 1000
    if fmt == "epoch_us":
        return us
    if fmt == "rfc3339":
        sec, frac = divmod(us, 1_000_000)
        base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{base}.{frac // 1000:03d}Z" if frac else base + "Z"
    raise ValueError(f"unknown ts format {fmt!r}")


class Walk:
    """TSBS-like random walk of each field, rounded to `decimals` (sensor-like values)."""

    def __init__(self, n: int, seed: int, decimals: int = 2) -> None:
        self.rng = random.Random(seed)
        self.x = [self.rng.uniform(0, 100) for _ in range(n)]
        self.decimals = decimals

    def step(self) -> list[float]:
        out = []
        for i, v in enumerate(self.x):
            v = min(100.0, max(0.0, v + self.rng.uniform(-1, 1)))
            self.x[i] = v
            out.append(round(v, self.decimals))
        return out


@dataclass(frozen=True)
class Shape:
    """hosts x fields series; each request = one host, `per_request` timestamps."""

    hosts: int = 100
    fields: int = 10
    per_request: int = 500
    interval_s: float = 10.0
    ts_format: str = "epoch_ms"
    decimals: int = 2

    @property
    def points_per_request(self) -> int:
        return self.fields * self.per_request

    def field_names(self) -> tuple[str, ...]:
        if self.fields <= len(CPU_FIELDS):
            return CPU_FIELDS[: self.fields]
        return tuple(f"field_{i}" for i in range(self.fields))


def start_us_for(shape: Shape, rounds: int, end_margin_s: float = 3600.0) -> int:
    """A start time such that `rounds` rounds end `end_margin_s` before now (never future)."""
    span_s = rounds * shape.per_request * shape.interval_s
    now = int(time.time())
    start = now - int(span_s) - int(end_margin_s)
    return (start - start % 60) * 1_000_000


def json_bodies(shape: Shape, rounds: int, start_us: int, seed: int = 1,
                host_offset: int = 0) -> Iterator[bytes]:
    """Native JSON batch bodies in time order: round r = every host's next window."""
    names = shape.field_names()
    step_us = int(shape.interval_s * 1_000_000)
    walks = [Walk(shape.fields, seed * 100_003 + h, shape.decimals) for h in range(shape.hosts)]
    for r in range(rounds):
        base = start_us + r * shape.per_request * step_us
        stamps = [ts_value(base + i * step_us, shape.ts_format) for i in range(shape.per_request)]
        for h in range(shape.hosts):
            w = walks[h]
            points = [
                {"ts": t, "values": dict(zip(names, w.step(), strict=True))} for t in stamps
            ]
            yield orjson.dumps({"device": f"host_{h + host_offset}", "points": points})


def line_bodies(shape: Shape, rounds: int, start_us: int, seed: int = 1,
                host_offset: int = 0) -> Iterator[bytes]:
    """The same data as Influx line protocol (ms precision), for peers' /write."""
    names = shape.field_names()
    step_us = int(shape.interval_s * 1_000_000)
    walks = [Walk(shape.fields, seed * 100_003 + h, shape.decimals) for h in range(shape.hosts)]
    for r in range(rounds):
        base = start_us + r * shape.per_request * step_us
        for h in range(shape.hosts):
            w = walks[h]
            lines = []
            for i in range(shape.per_request):
                vals = ",".join(f"{n}={v}" for n, v in zip(names, w.step(), strict=True))
                lines.append(f"cpu,hostname=host_{h + host_offset} {vals} "
                             f"{(base + i * step_us) // 1000}")
            yield ("\n".join(lines) + "\n").encode()


TSBS_REGIONS = ("us-east-1", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1",
                "ap-southeast-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1")


def tsbs_cpu_tagsets(hosts: int, seed: int = 1) -> list[str]:
    """The measurement-and-tags text of each host, as TSBS devops writes it."""
    rng = random.Random(seed)
    out = []
    for h in range(hosts):
        region = rng.choice(TSBS_REGIONS)
        out.append(
            f"cpu,hostname=host_{h},region={region},datacenter={region}{rng.choice('abc')},"
            f"rack={rng.randint(0, 99)},os=Ubuntu{rng.choice(['15.10', '16.04LTS', '16.10'])},"
            f"arch={rng.choice(['x64', 'x86'])},team={rng.choice(['SF', 'NYC', 'LON', 'CHI'])},"
            f"service={rng.randint(0, 19)},service_version={rng.randint(0, 1)},"
            f"service_environment={rng.choice(['production', 'staging', 'test'])}"
        )
    return out


def tsbs_cpu_bodies(hosts: int, lines_per_body: int, bodies: int, start_ns: int,
                    interval_s: float = 10.0, seed: int = 1) -> list[bytes]:
    """TSBS devops cpu-only data as Influx line protocol (10 integer fields per line,
    nanosecond timestamps): every `interval_s` one line per host, in time order, cut into
    bodies of `lines_per_body` lines."""
    tagsets = tsbs_cpu_tagsets(hosts, seed)
    walks = [Walk(len(CPU_FIELDS), seed * 100_003 + h, decimals=0) for h in range(hosts)]
    step = int(interval_s * 1e9)
    out: list[bytes] = []
    lines: list[str] = []
    i = 0
    while len(out) < bodies:
        h = i % hosts
        ts = start_ns + (i // hosts) * step
        values = ",".join(f"{n}={int(v)}i" for n, v in zip(CPU_FIELDS, walks[h].step(),
                                                            strict=True))
        lines.append(f"{tagsets[h]} {values} {ts}")
        i += 1
        if len(lines) == lines_per_body:
            out.append(("\n".join(lines) + "\n").encode())
            lines = []
    return out


# -- bounded client loops ----------------------------------------------------------------


@dataclass
class ClientResult:
    requests: int = 0
    errors: int = 0
    status: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    first_error: str = ""
    started: float = 0.0
    finished: float = 0.0


def _post_thread(host: str, port: int, path: str, headers: dict[str, str],
                 bodies: list[bytes], deadline: float, out: ClientResult,
                 lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    lat: list[float] = []
    status: dict[int, int] = {}
    errors, first = 0, ""
    for body in bodies:
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            errors += 1
            first = first or repr(exc)
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=120)
            continue
        lat.append(time.perf_counter() - t0)
        status[resp.status] = status.get(resp.status, 0) + 1
        if resp.status >= 300:
            errors += 1
            first = first or f"{resp.status} {data[:300]!r}"
    conn.close()
    with lock:
        out.requests += len(lat)
        out.errors += errors
        out.latencies.extend(lat)
        for k, v in status.items():
            out.status[k] = out.status.get(k, 0) + v
        out.first_error = out.first_error or first


def post_loop(url: str, path: str, headers: dict[str, str], bodies: list[bytes],
              connections: int, duration_s: float, barrier_at: float) -> ClientResult:
    """POST every body once (round-robin over `connections` keep-alive connections),
    stopping early after `duration_s`. Starts at wall time `barrier_at`."""
    host, port = url.removeprefix("http://").split(":")
    out = ClientResult()
    lock = threading.Lock()
    shards = [bodies[i::connections] for i in range(connections)]
    delay = barrier_at - time.time()
    if delay > 0:
        time.sleep(delay)
    out.started = time.time()
    deadline = time.monotonic() + duration_s
    threads = [
        threading.Thread(target=_post_thread,
                         args=(host, int(port), path, headers, s, deadline, out, lock))
        for s in shards if s
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 180)
    out.finished = time.time()
    return out


_SHARED: list[list[bytes]] = []  # bodies handed to forked clients without pickling


def _client_proc(index: int, url: str, path: str, headers: dict[str, str], connections: int,
                 duration_s: float, start_at: float, queue: mp.Queue) -> None:  # type: ignore[type-arg]
    result = post_loop(url, path, headers, _SHARED[index], connections, duration_s, start_at)
    queue.put(result)


def run_clients(url: str, path: str, headers: dict[str, str], per_client: list[list[bytes]],
                connections: int, duration_s: float) -> tuple[list[ClientResult], float]:
    """One forked OS process per entry of `per_client` (bodies pre-serialised in the
    parent, inherited by fork, so nothing is copied or encoded while the clock runs).
    Returns the results and the wall time from the common start to the last client's end."""
    ctx = mp.get_context("fork")
    _SHARED[:] = per_client
    queue = ctx.Queue()
    start_at = time.time() + 1.0
    procs = [
        ctx.Process(target=_client_proc,
                    args=(i, url, path, headers, connections, duration_s, start_at, queue))
        for i in range(len(per_client))
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=duration_s + 300) for _ in procs]
    for p in procs:
        p.join(30)
        if p.is_alive():  # our own child, by its handle
            p.kill()
            p.join(5)
    _SHARED.clear()
    wall = max(r.finished for r in results) - min(r.started for r in results)
    return results, wall


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


# -- profiling -------------------------------------------------------------------------


class PySpy:
    """`py-spy record` of a PID for the duration of a `with` block (optional tool)."""

    def __init__(self, pid: int, out: Path, fmt: str = "raw", rate: int = 100,
                 duration_s: float = 60.0, gil: bool = True) -> None:
        self.pid, self.out, self.fmt, self.rate, self.duration = pid, out, fmt, rate, duration_s
        self.gil = gil
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return (VENV_BIN / "py-spy").exists() or shutil.which("py-spy") is not None

    def __enter__(self) -> PySpy:
        exe = VENV_BIN / "py-spy"
        cmd = [str(exe) if exe.exists() else "py-spy", "record", "--pid", str(self.pid),
               "--rate", str(self.rate), "--format", self.fmt, "--threads",
               "--duration", str(int(self.duration)), "-o", str(self.out)]
        if self.gil:
            cmd.append("--gil")  # only the thread holding the GIL: Python time, no waits
        else:
            cmd.append("--idle")  # every thread, every sample; profile_summary drops waits
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# -- server-side measurements ------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """utime + stime of every thread of a process, by OS thread id, seconds."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            parts = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[int(task.name)] = (int(parts[11]) + int(parts[12])) / tick
    return out


def python_thread_names(pid: int) -> dict[int, str]:
    """OS thread id -> Python thread name, from `py-spy dump` (empty without py-spy)."""
    if not PySpy.available():
        return {}
    exe = VENV_BIN / "py-spy"
    try:
        text = subprocess.run([str(exe) if exe.exists() else "py-spy", "dump", "--pid", str(pid)],
                              capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    names: dict[int, str] = {}
    for line in text.splitlines():
        if line.startswith("Thread "):
            head = line.split()
            with contextlib.suppress(ValueError, IndexError):
                tid = int(head[1], 0)
                names[tid] = line.split('"')[1] if '"' in line else head[-1]
    return names


def thread_table(before: dict[int, float], after: dict[int, float], names: dict[int, str],
                 wall: float) -> list[tuple[str, float]]:
    """CPU cores used per thread group over `wall` seconds."""
    groups: dict[str, float] = {}
    for tid, cpu in after.items():
        used = cpu - before.get(tid, 0.0)
        name = names.get(tid, "native threads (DuckDB, jemalloc, ...)")
        if name.startswith("AnyIO worker"):
            name = "AnyIO worker threads (parse, archive frame)"
        elif name == "MainThread":
            name = "MainThread (event loop: HTTP, FastAPI, small parses)"
        elif name == "stats-writer":
            name = "stats-writer (group commit incl. DuckDB calls)"
        groups[name] = groups.get(name, 0.0) + used
    return sorted(((k, v / wall) for k, v in groups.items()), key=lambda kv: -kv[1])


def metrics_text(url: str) -> str:
    """The server's /metrics (with the admin key, in case STATS_METRICS_PUBLIC=false)."""
    req = urllib.request.Request(url + "/metrics", headers={"X-API-Key": ADMIN_KEY})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def scrape_metrics(url: str) -> dict[str, float]:
    """The un-labelled samples (and label-summed counters) of the server's /metrics."""
    text = metrics_text(url)
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        with contextlib.suppress(ValueError):
            out[base] = out.get(base, 0.0) + float(value)
    return out


def route_seconds(url: str, route: str) -> tuple[float, float]:
    """(count, seconds) of the server's request-duration histogram for one route (all
    methods and statuses): the time measured inside the server by its middleware."""
    text = metrics_text(url)
    count = total = 0.0
    needle = f'route="{route}"'
    for line in text.splitlines():
        if needle not in line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("stats_http_request_duration_seconds_count"):
            count += float(value)
        elif name.startswith("stats_http_request_duration_seconds_sum"):
            total += float(value)
    return count, total


def writer_stats(before: dict[str, float], after: dict[str, float],
                 wall: float) -> dict[str, float]:
    def d(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    commits = d("stats_writer_commit_duration_seconds_count")
    seconds = d("stats_writer_commit_duration_seconds_sum")
    points = d("stats_writer_committed_points_total")
    return {
        "commits": commits,
        "commit_ms": seconds / commits * 1000 if commits else float("nan"),
        "points_per_commit": points / commits if commits else float("nan"),
        "writer_busy": seconds / wall if wall else float("nan"),
    }
