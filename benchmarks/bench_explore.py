"""Latency and load of `latentspectra explore` on loopback, against a server in its own process.

    python benchmarks/bench_explore.py [--requests 500] [--load 30 --clients 20] [--json]

Starts `latentspectra explore --port 0` (the shipped networks unless --networks; the basis and fitted directions
in --cache, by default the command's own cache, so a second run starts in seconds), then:

1. Latency: --requests slider moves one after another, as a drag sends them: POST /api/view with the LSD slider
   offsets changed each time (decode, classify, spectrum, truncation, two PNGs). Prints p50 / p95 / p99 / max in
   ms and whether p95 <= 50 ms (the issue's target on 2 CPU cores).
2. Load (with --load SECONDS): --clients threads, each with its own connection, sending slider moves without
   pause for that long, after 5 s of the same as a warm-up; counts answers and errors (any status but 200, any
   failed connection), and the server's resident memory (VmRSS) after the warm-up and at the end. The issue's
   target: 20 clients for 30 s, no error, no growth in memory.

The server runs on whatever cores this machine has: pin both processes with `taskset -c 0,1` to measure on two.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

START_SECONDS = 600  # the first start on a new cache builds the basis: about a minute on 2 cores
WARM_UP = 5.0  # seconds of load before the server's memory is first read


def connection(url: str) -> httpx.Client:
    """A keep-alive client with Nagle's algorithm off, as browsers have it: otherwise the request's body waits for
    the server's delayed ACK of its headers, 40 ms on Linux, and that is what would be measured."""
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(base_url=url, timeout=30, trust_env=False, transport=transport)


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    """The explore server in a child process, and its URL once it says it is serving."""
    command = [sys.executable, "-m", "latentspectra", "explore", "--port", "0", "--quiet"]
    for option in ("networks", "cache", "per_set"):
        if getattr(args, option) is not None:
            command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + START_SECONDS
    for line in server.stdout:
        if "serving http" in line:
            return server, line.split("serving ", 1)[1].split()[0]
        if time.monotonic() > deadline:
            break
    server.kill()
    raise SystemExit(f"the server did not start (exit code {server.wait()})")


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def slider_move(client: httpx.Client, latent: list[float], step: int) -> httpx.Response:
    """One slider move: the LSD offsets of a drag, a little further each step."""
    offsets = [0.0] * 10
    offsets[step % 10] = ((step * 37) % 200) / 20 - 5
    return client.post("/api/view", json={"latent": latent, "method": "lsd", "offsets": offsets, "top_n": 3})


def latency(url: str, latent: list[float], requests: int) -> dict[str, float]:
    """Milliseconds per slider move over ``requests`` moves, after 20 warm-up moves."""
    times = []
    with connection(url) as client:
        for step in range(requests + 20):
            began = time.perf_counter()
            slider_move(client, latent, step).raise_for_status()
            times.append((time.perf_counter() - began) * 1e3)
    measured = np.array(times[20:])
    return {
        "requests": requests,
        **{f"p{q}_ms": float(np.percentile(measured, q)) for q in (50, 95, 99)},
        "max_ms": float(measured.max()),
        "target_p95_ms": 50.0,
        "p95_within_target": bool(np.percentile(measured, 95) <= 50.0),
    }


def hammer(url: str, latent: list[float], clients: int, seconds: float) -> dict[str, float]:
    """``clients`` threads, each with its own connection, sending slider moves for ``seconds``: answers, errors and
    requests/s."""
    counts = {"answers": 0, "errors": 0}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client_loop(offset: int) -> None:
        with connection(url) as client:
            step = offset
            while time.monotonic() < stop:
                try:
                    ok = slider_move(client, latent, step).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    counts["answers" if ok else "errors"] += 1
                step += 1

    threads = [threading.Thread(target=client_loop, args=(index * 1000,)) for index in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    return {"clients": clients, "seconds": elapsed, **counts, "requests_per_second": counts["answers"] / elapsed}


def load(url: str, latent: list[float], clients: int, seconds: float, pid: int) -> dict[str, float]:
    """`hammer` for ``seconds`` after a warm-up of `WARM_UP` seconds under the same load (the server's thread pool
    and allocator arenas fill there), with the server's RSS after the warm-up and at the end."""
    warm_up = hammer(url, latent, clients, WARM_UP)
    before = rss_mib(pid)
    result = hammer(url, latent, clients, seconds)
    after = rss_mib(pid)
    return {
        **result,
        "errors": result["errors"] + warm_up["errors"],
        "warm_up_seconds": WARM_UP,
        "rss_before_mib": before,
        "rss_after_mib": after,
        "rss_growth_mib": after - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="slider moves timed one after another")
    parser.add_argument("--load", type=float, default=0.0, metavar="SECONDS", help="also run the load test this long")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients of the load test")
    parser.add_argument("--networks", default=None, help="--networks of the server (default: the shipped ones)")
    parser.add_argument("--cache", default=None, help="--cache of the server (default: the command's)")
    parser.add_argument("--per-set", dest="per_set", type=int, default=None, help="--per-set of the server")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    server, url = start_server(args)
    try:
        with connection(url) as client:
            latent = client.post("/api/sample", json={"seed": 0}).json()["latent"]
        result = {"url": url, "cpus": os.cpu_count(), "latency": latency(url, latent, args.requests)}
        if args.load > 0:
            result["load"] = load(url, latent, args.clients, args.load, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for part in ("latency", "load"):
        for key, value in result.get(part, {}).items():
            print(f"{part} {key}: {value:.2f}" if isinstance(value, float) else f"{part} {key}: {value}")


if __name__ == "__main__":
    main()
