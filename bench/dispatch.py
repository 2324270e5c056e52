"""Delivery speed: the outbox dispatcher against a bare aiosmtplib loop, to the same SMTP sink.

    .venv/bin/python bench/dispatch.py [--messages 20000] [--connections 4] [--rounds 3]
        [--sink fast-sink|sink] [--postgres URL] [--memory 100000] [--skip-sqlite]
        [--relay-ms MS] [--processes 2] [--before DIR]

Every process stands alone, because the machine may have only two cores and a sink or a sender
sharing a process (and its GIL) with what is measured would distort it:

- the SMTP sink (``tests/smtp_servers.py``; ``fast-sink`` by default, a minimal asyncio server
  that costs far less per message than aiosmtpd's ``sink``, so the senders are what is measured;
  it offers PIPELINING and CHUNKING, as Postfix and Microsoft 365 do, which the dispatcher uses
  and the bare loop does not);
- the bare loop: ``--connections`` aiosmtplib connections, each sending pre-built messages of the
  size the dispatcher sends, one after another, with nothing else to do;
- the dispatcher: ``Dispatcher.run(until_idle=True)`` over an outbox of ``--messages`` rows
  (one person each, a link in each context), with the same number of SMTP connections.

Each worker is started, connects to its database, says it is ready and waits for "go", so the
timings leave out interpreter start-up; rates are messages over the time from "go" to the last
worker's end. Rounds alternate bare loop and dispatcher (and, with ``--postgres``, one and
``--processes`` dispatchers); each line gives the median over the rounds, and each ratio is the
median of the ratios of the rounds (each taken within seconds of the other), with the load
average at the end of every round. CPU is each worker's own (``getrusage`` of the process, from
"go" to its end); peak memory is the worker's own high-water mark (``VmHWM`` in
``/proc/<pid>/status``), not ``ru_maxrss``, which a child inherits from its parent.

With ``--postgres``, one dispatcher process and then ``--processes`` share a PostgreSQL outbox of
the same size; after each run every row must be sent, claimed once (``attempts`` is 1) and
counted once by the workers. ``--memory N`` queues N messages in SQLite and reports the
dispatcher's peak memory while it sends them all. ``--before DIR`` runs the dispatcher of
another checkout (``git archive main | tar -x -C DIR``) in every round as well, for a before and
after in one run. The workers are in ``bench/delivery_workers.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.delivery_workers import (  # noqa: E402
    bare_worker,
    dispatcher_worker,
    fill,
    sample_message,
)

# --- the conductor -------------------------------------------------------------------------------


@dataclass
class Result:
    sent: int
    seconds: float
    cpu: float  # the workers' own CPU seconds, all together
    peak_mb: float  # the largest worker's own peak resident memory
    load: float = 0.0  # the one-minute load average at the end of the round

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    @property
    def cpu_per_message_us(self) -> float:
        return self.cpu / self.sent * 1e6


def run_workers(commands: list[list[str]], tree: Path = ROOT) -> Result:
    """Start the workers, wait until all are ready, say "go", collect their reports. ``tree``:
    the checkout whose ``bench/dispatch.py`` (and so whose Evalbot) the workers run."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(tree / "bench" / "dispatch.py"), *command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=tree,
        )
        for command in commands
    ]
    for process in processes:
        assert process.stdout is not None
        line = process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a worker did not start: {line!r}")
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    reports = []
    for process in processes:
        assert process.stdout is not None
        reports.append(json.loads(process.stdout.readline()))
        process.wait(timeout=60)
        if process.returncode != 0:
            raise RuntimeError("a worker failed")
    started = min(r["started"] for r in reports)
    ended = max(r["ended"] for r in reports)
    return Result(
        sum(r["sent"] for r in reports),
        ended - started,
        sum(r["cpu"] for r in reports),
        max(r["peak_mb"] for r in reports),
        os.getloadavg()[0],
    )


def start_sink(kind: str, delay_ms: float = 0.0) -> tuple[subprocess.Popen[str], int]:
    from tests.smtp_servers import start_sink as start

    return start(kind, delay_ms=delay_ms)


def bare_round(
    database_url: str, port: int, messages: int, connections: int, workdir: Path
) -> Result:
    message_file = workdir / "message.eml"
    if not message_file.exists():
        message_file.write_bytes(sample_message(database_url, port))
    return run_workers([["bare", str(port), str(messages), str(connections), str(message_file)]])


def dispatch_round(
    database_url: str,
    port: int,
    messages: int,
    connections: int,
    processes: int = 1,
    tree: Path = ROOT,
) -> Result:
    """``processes`` dispatchers (of the checkout ``tree``) over a fresh outbox of
    ``messages``; checks that every row was sent once."""
    fill(database_url, messages)
    command = ["dispatch", database_url, str(port), str(connections)]
    result = run_workers([command] * processes, tree)
    if result.sent != messages:
        raise RuntimeError(f"{processes} dispatchers sent {result.sent} of {messages}")
    once = sent_once(database_url)
    if once != messages:
        raise RuntimeError(f"only {once} of {messages} rows were sent and claimed exactly once")
    return result


def sent_once(database_url: str) -> int:
    """Rows sent and claimed exactly once: a row two workers took would have two attempts."""
    from sqlalchemy import text

    from surveys import db

    engine = db.make_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM outbox WHERE state = 'sent' AND attempts = 1")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def compare(
    database_url: str,
    port: int,
    messages: int,
    connections: int,
    rounds: int,
    workdir: Path,
    before: Path | None = None,
) -> tuple[list[Result], list[Result], list[Result]]:
    """Rounds of the bare loop, the dispatcher and (with ``before``) the dispatcher of another
    checkout, one after the other."""
    bare: list[Result] = []
    dispatched: list[Result] = []
    earlier: list[Result] = []
    for _ in range(rounds):
        bare.append(bare_round(database_url, port, messages, connections, workdir))
        dispatched.append(dispatch_round(database_url, port, messages, connections))
        line = f"  round: bare {bare[-1].rate:.0f}/s, dispatcher {dispatched[-1].rate:.0f}/s"
        if before is not None:
            earlier.append(dispatch_round(database_url, port, messages, connections, tree=before))
            line += f", before {earlier[-1].rate:.0f}/s"
        print(f"{line}, load {dispatched[-1].load:.1f}", flush=True)
    return bare, dispatched, earlier


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(these: list[Result], those: list[Result]) -> float:
    """The median of the rounds' ratios of rate."""
    return median([a.rate / b.rate for a, b in zip(these, those, strict=True)])


def cpu_ratio(these: list[Result], those: list[Result]) -> float:
    """The median of the rounds' ratios of CPU per message."""
    return median(
        [a.cpu_per_message_us / b.cpu_per_message_us for a, b in zip(these, those, strict=True)]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sink", choices=["fast-sink", "sink"], default="fast-sink")
    parser.add_argument("--postgres", help="a PostgreSQL URL (a scratch database is made)")
    parser.add_argument("--memory", type=int, default=0, help="queue this many for the RSS test")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout of Evalbot (e.g. an export of main): its dispatcher runs in each "
        "round too, for a before-and-after in one run",
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="with --postgres: dispatchers beside one"
    )
    parser.add_argument(
        "--relay-ms",
        type=float,
        default=0.0,
        help="the fast sink waits this long before accepting each message, as a relay across a "
        "network does: the senders then wait on the relay rather than on the CPU",
    )
    args = parser.parse_args()

    sink, port = start_sink(args.sink, args.relay_ms)
    workdir = Path(tempfile.mkdtemp(prefix="evalbot-bench-"))
    try:
        print(
            f"{args.messages} messages of {len(sample_message(f'sqlite:///{workdir}/m.db', port))} "
            f"bytes, {args.connections} SMTP connections, sink: {args.sink}"
            f"{f' accepting in {args.relay_ms:g} ms' if args.relay_ms else ''}, "
            f"median of {args.rounds} interleaved rounds"
        )
        if not args.skip_sqlite:
            url = f"sqlite:///{workdir / 'outbox.db'}"
            bare, dispatched, earlier = compare(
                url, port, args.messages, args.connections, args.rounds, workdir, args.before
            )
            report("bare aiosmtplib loop", bare)
            report("dispatcher (SQLite, 1 proc)", dispatched)
            print(f"{'ratio':<32} {ratio(dispatched, bare):8.0%}")
            print(f"{'CPU a message, bare / dispatcher':<32} {cpu_ratio(bare, dispatched):8.0%}")
            if earlier:
                report("dispatcher before (SQLite)", earlier)
                print(f"{'ratio, before':<32} {ratio(earlier, bare):8.0%}")
                print(f"{'CPU a message, now / before':<32} {cpu_ratio(dispatched, earlier):8.2f}x")
        if args.postgres:
            postgres(args, port, workdir)
        if args.memory:
            url = f"sqlite:///{workdir / 'memory.db'}"
            fill(url, args.memory)
            result = run_workers([["dispatch", url, str(port), str(args.connections)]])
            print(
                f"{args.memory} queued (SQLite): sent {result.sent} at {result.rate:.0f}/s, "
                f"the dispatcher's own peak memory (VmHWM) {result.peak_mb:.0f} MiB"
            )
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        sink.terminate()
        sink.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def report(label: str, results: list[Result]) -> None:
    loads = [r.load for r in results]
    print(
        f"{label:<32} {median([r.rate for r in results]):8.0f} messages/s"
        f"   (CPU {median([r.cpu_per_message_us for r in results]):5.0f} us a message,"
        f" peak {max(r.peak_mb for r in results):.0f} MiB a worker,"
        f" load {min(loads):.1f}-{max(loads):.1f})"
    )


def postgres(args: argparse.Namespace, port: int, workdir: Path) -> None:
    from sqlalchemy import text

    from surveys import db

    name = f"evalbot_bench_{uuid.uuid4().hex[:8]}"
    admin = db.make_engine(args.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = args.postgres.rsplit("/", 1)[0] + "/" + name
    try:
        n = args.processes
        bare: list[Result] = []
        one: list[Result] = []
        many: list[Result] = []
        earlier: list[Result] = []
        for _ in range(args.rounds):
            bare.append(bare_round(url, port, args.messages, args.connections, workdir))
            one.append(dispatch_round(url, port, args.messages, args.connections))
            many.append(dispatch_round(url, port, args.messages, args.connections, n))
            line = (
                f"  round: bare {bare[-1].rate:.0f}/s, one {one[-1].rate:.0f}/s, "
                f"{n} {many[-1].rate:.0f}/s"
            )
            if args.before is not None:
                earlier.append(
                    dispatch_round(url, port, args.messages, args.connections, tree=args.before)
                )
                line += f", one before {earlier[-1].rate:.0f}/s"
            print(f"{line}, load {many[-1].load:.1f}", flush=True)
        report("bare aiosmtplib loop", bare)
        report("dispatcher (PostgreSQL, 1 proc)", one)
        report(f"dispatcher (PostgreSQL, {n} proc)", many)
        print(f"{'ratio, 1 proc / bare':<32} {ratio(one, bare):8.0%}")
        print(f"{'CPU a message, bare / 1 proc':<32} {cpu_ratio(bare, one):8.0%}")
        if earlier:
            report("dispatcher before (PostgreSQL, 1)", earlier)
            print(f"{'ratio, before':<32} {ratio(earlier, bare):8.0%}")
            print(f"{'CPU a message, now / before':<32} {cpu_ratio(one, earlier):8.2f}x")
        print(f"{f'{n} processes / one':<32} {ratio(many, one):8.2f}x")
        print(f"{f'CPU a message, {n} / one':<32} {cpu_ratio(many, one):8.2f}x")
        print(f"{'rows taken twice':<32} {0:8d} (every row sent, claimed once, in every round)")
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bare":
        bare_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "dispatch":
        dispatcher_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
