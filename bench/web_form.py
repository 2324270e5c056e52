"""The survey form's speed: requests a second and the 99th percentile (target: 300/s, p99 < 100 ms).

    .venv/bin/python bench/web_form.py [--bookings 5000] [--rate 300] [--seconds 20]
        [--only get|post] [--profile FILE]

Builds a SQLite database of 5,000 bookings (15,000 invitations with their links, a third of them
part-answered), starts `evalbot web` (uvicorn, one worker process) on a loopback port, and drives
it from separate processes:

1. at a fixed rate (default 300 a second, open loop: each request is timed from when it was due,
   so a slow server cannot hide its queue) for GET of a form page, then for answer POSTs (each a
   real answer saved and committed, then its 303): the rate reached and the latency percentiles;
2. with `wrk` (Debian's package, if installed) at full speed with 8 connections: the most the
   server manages, and its latency at that load.

Every request uses a different invitation's personal link, so caches of one page do not flatter it.

Each load also reports the server process's own CPU milliseconds per request (from /proc), the
figure to read when other work on the machine distorts the wall-clock ones. ``--profile FILE``
runs the server under py-spy (on PATH; ``pip install py-spy``), sampling only the thread holding
the GIL, and writes its folded stacks to FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session

from bot.settings import load_settings
from bot.web.security import form_token
from surveys import db
from surveys.definitions import snapshot
from surveys.models import (
    Agency,
    Answer,
    Booking,
    Course,
    CourseSession,
    InvitationStatus,
    Link,
    LinkPurpose,
    Person,
    Sector,
    Stage,
    SurveyInvitation,
)
from surveys.tokens import make_token, token_hash

SECRET = "bench-secret-key-not-for-production"
FORM = "application/x-www-form-urlencoded"
ROOT = Path(__file__).resolve().parent.parent


def populate(url: str, bookings: int) -> list[tuple[int, str, str]]:
    """The database; returns (invitation id, stage, token) for every invitation."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    now = datetime.now(UTC)
    rng = random.Random(3)
    outcomes = [
        "recognise the signs of neglect",
        "share information under the multi-agency procedures",
        "make a referral to children's social care",
    ]
    with Session(engine) as session:
        definitions = {
            stage: snapshot(session, stage).id for stage in (Stage.PRE, Stage.END, Stage.IMPACT)
        }
        session.add_all(Agency(name=f"Agency {n}", sector=Sector.HEALTH) for n in range(50))
        session.add_all(Course(title=f"Course {n}", learning_outcomes=outcomes) for n in range(40))
        session.flush()
        sessions = []
        for n in range(bookings // 25):
            starts = now - timedelta(days=1, hours=n % 24)
            sessions.append(
                {
                    "ref": f"S-{n}",
                    "course_id": n % 40 + 1,
                    "starts_at": starts,
                    "ends_at": starts + timedelta(hours=7),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(CourseSession), sessions)
        session.execute(
            insert(Person),
            [
                {
                    "name": f"Delegate {n} O'Brien",
                    "email": f"d{n}@agency{n % 50}.example",
                    "agency_id": n % 50 + 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(bookings)
            ],
        )
        session.execute(
            insert(Booking),
            [
                {
                    "ref": f"BK-{n}",
                    "session_id": n // 25 + 1,
                    "delegate_id": n + 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(bookings)
            ],
        )
        invitations, links, answers, found = [], [], [], []
        stages = (Stage.PRE, Stage.END, Stage.IMPACT)
        for n in range(bookings):
            for offset, stage in enumerate(stages):
                iid = n * 3 + offset + 1
                invitations.append(
                    {
                        "id": iid,
                        "booking_id": n + 1,
                        "person_id": n + 1,
                        "stage": stage.value,
                        "definition_id": definitions[stage],
                        "opens_at": now - timedelta(days=1),
                        "closes_at": now + timedelta(days=30),
                        "status": InvitationStatus.OPEN.value,
                        "created_at": now,
                    }
                )
                token = make_token(SECRET.encode(), LinkPurpose.SURVEY, f"invitation:{iid}")
                links.append(
                    {
                        "purpose": LinkPurpose.SURVEY.value,
                        "token_hash": token_hash(token),
                        "invitation_id": iid,
                        "person_id": n + 1,
                        "expires_at": now + timedelta(days=30),
                        "created_at": now,
                    }
                )
                if stage is not Stage.IMPACT and rng.random() < 1 / 3:
                    for k in range(rng.randrange(1, 4)):
                        answers.append(
                            {
                                "invitation_id": iid,
                                "question_key": f"knowledge.{k}",
                                "item": "knowledge",
                                "measure": "knowledge",
                                "outcome_index": k,
                                "value_num": float(rng.randrange(1, 6)),
                                "channel": "web",
                                "answered_at": now,
                            }
                        )
                found.append((iid, stage.value, token))
        session.execute(insert(SurveyInvitation), invitations)
        session.execute(insert(Link), links)
        session.execute(insert(Answer), answers)
        session.commit()
    engine.dispose()
    return found


def cpu_seconds(pid: int) -> float | None:
    """The server's CPU time so far (user + system), where /proc tells it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def with_cpu(pid: int, run, requests_of=lambda figures: figures.get("requests")):  # type: ignore[no-untyped-def]
    """Run a load and add the server's CPU milliseconds per request to its figures."""
    before = cpu_seconds(pid)
    figures = run()
    after = cpu_seconds(pid)
    count = requests_of(figures) if figures else None
    if figures is not None and before is not None and after is not None and count:
        figures["server_cpu_ms_per_request"] = round((after - before) * 1000 / count, 2)
    return figures


def server_pid(server: subprocess.Popen[bytes]) -> int:
    """The web server's own process: under py-spy, py-spy's child (so CPU is the server's)."""
    if not Path(server.args[0]).name.startswith("py-spy"):  # type: ignore[index]
        return server.pid
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise SystemExit("py-spy started no server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    url: str, port: int, folder: Path, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "EVALBOT_DATABASE_URL": url,
        "EVALBOT_SECRET_KEY": SECRET,
        "EVALBOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    evalbot = Path(sys.executable).with_name("evalbot")
    command = [str(evalbot), "web", "--host", "127.0.0.1", "--port", str(port)]
    if profile is not None:
        # Sampled by py-spy: the server's stacks, folded, for a flame graph or a sort by frame.
        spy = shutil.which("py-spy")
        if spy is None:
            raise SystemExit("--profile needs py-spy on PATH (pip install py-spy)")
        command = [
            spy,
            "record",
            "--gil",
            "--format",
            "raw",
            "-r",
            "250",
            "-o",
            str(profile),
            "--",
            *command,
        ]
    server = subprocess.Popen(
        command,
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            if server.poll() is not None:
                problem = server.stderr.read().decode() if server.stderr else ""
                raise SystemExit(f"evalbot web stopped: {problem}") from None
            time.sleep(0.1)
    raise SystemExit("evalbot web did not start within 30 s")


def requests_for(
    kind: str, invitations: list[tuple[int, str, str]]
) -> list[tuple[str, str, bytes]]:
    """(method, path, body) per request: a different invitation each time."""
    found = []
    for iid, stage, token in invitations:
        if kind == "get":
            found.append(("GET", f"/s/{token}", b""))
        else:
            csrf = form_token(SECRET.encode(), f"survey:{iid}")
            key = "applied" if stage == "impact" else "knowledge.0"
            value = "yes" if stage == "impact" else str(iid % 5 + 1)
            found.append(("POST", f"/s/{token}", f"csrf={csrf}&q={key}&a={value}".encode()))
    return found


# --- the paced client (a process of its own) --------------------------------------------------


async def _paced(
    port: int, plan: list[tuple[str, str, bytes]], rate: float, connections: int
) -> dict[str, object]:
    """Send ``plan`` at ``rate`` a second over keep-alive connections; time each from when due."""
    queue: asyncio.Queue[tuple[float, tuple[str, str, bytes]]] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            due, (method, path, body) = await queue.get()
            if method == "STOP":
                writer.close()
                return
            head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            if body:
                head += f"Content-Type: {FORM}\r\nContent-Length: {len(body)}\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - due)
            code = int(status_line.split()[1])
            statuses[code] = statuses.get(code, 0) + 1

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter() + 0.2
    for n, request in enumerate(plan):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((due, request))
    for _ in workers:
        queue.put_nowait((0.0, ("STOP", "", b"")))
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "rate": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(50), 1),
        "p90_ms": round(pct(90), 1),
        "p99_ms": round(pct(99), 1),
        "max_ms": round(latencies[-1] * 1000, 1),
        "statuses": statuses,
    }


def _paced_process(
    port: int,
    plan: list[tuple[str, str, bytes]],
    rate: float,
    out: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    out.put(asyncio.run(_paced(port, plan, rate, connections=64)))


def paced(port: int, plan: list[tuple[str, str, bytes]], rate: float) -> dict[str, object]:
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    process = multiprocessing.Process(target=_paced_process, args=(port, plan, rate, out))
    process.start()
    result = out.get()
    process.join()
    return dict(result)


# --- wrk, at full speed -------------------------------------------------------------------------


def wrk(
    port: int, plan: list[tuple[str, str, bytes]], folder: Path, seconds: int
) -> dict[str, object] | None:
    if shutil.which("wrk") is None:
        return None
    script = folder / f"plan-{plan[0][0].lower()}.lua"
    entries = ",\n".join(
        f'{{"{method}", "{path}", "{body.decode()}"}}' for method, path, body in plan
    )
    script.write_text(
        "local plan = {\n" + entries + "\n}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n % #plan + 1\n"
        "  local r = plan[n]\n"
        "  local headers = {}\n"
        f'  if r[1] == "POST" then headers["Content-Type"] = "{FORM}" end\n'
        "  return wrk.format(r[1], r[2], headers, r[3] ~= '' and r[3] or nil)\n"
        "end\n"
    )
    result = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c8",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    text = result.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)

    def ms(found: re.Match[str] | None) -> float | None:
        if found is None:
            return None
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return round(float(found.group(1)) * scale, 1)

    total = re.search(r"(\d+) requests in", text)
    return {
        "requests": int(total.group(1)) if total else None,
        "rate": float(rate.group(1)) if rate else None,
        "p50_ms": ms(p50),
        "p99_ms": ms(p99),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bookings", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--only", choices=("get", "post"), help="load with one kind of request")
    parser.add_argument(
        "--profile", type=Path, help="sample the server with py-spy into this file (folded stacks)"
    )
    args = parser.parse_args()
    load_settings()  # fail early on a bad environment
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = f"sqlite:///{folder / 'bench.db'}"
        started = time.perf_counter()
        invitations = populate(url, args.bookings)
        print(
            f"database: {args.bookings} bookings, {len(invitations)} invitations "
            f"({time.perf_counter() - started:.1f} s to build)"
        )
        port = free_port()
        server = start_server(url, port, folder, args.profile)
        try:
            rng = random.Random(11)
            count = int(args.rate * args.seconds)
            results: dict[str, object] = {}
            pid = server_pid(server)
            for kind in (args.only,) if args.only else ("get", "post"):
                chosen = [invitations[rng.randrange(len(invitations))] for _ in range(count)]
                plan = requests_for(kind, chosen)
                paced(port, plan[: int(args.rate * 2)], args.rate)  # warm up
                results[f"{kind} at {args.rate:g}/s"] = with_cpu(
                    pid, lambda plan=plan: paced(port, plan, args.rate)
                )
                full_plan = requests_for(kind, invitations[:5000])
                full = with_cpu(
                    pid,
                    lambda full_plan=full_plan: wrk(port, full_plan, folder, args.seconds),
                )
                if full is not None:
                    results[f"{kind} full speed (wrk, 8 connections)"] = full
            for name, figures in results.items():
                print(f"{name}: {json.dumps(figures)}")
        finally:
            # py-spy writes its profile on SIGINT; uvicorn stops cleanly on it too.
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
