"""Serving one finished folder to many single-review clients: our demo's API, the vLLM server, and
``generate_reviews`` in batches (the in-process reference), on one machine in one run; one table.

    python benchmarks/serving.py runs/embedded                      # vLLM from .venv-vllm
    python benchmarks/serving.py FOLDER --python ~/.venvs/vllm/bin/python --clients 32 128

Every client asks for one review of the positive sentiment with the folder's own decoding (top-p,
repetition penalty, EOS keeping its probability, the length prior, ``max_new_tokens``) and sentiment
guidance OFF everywhere (vLLM cannot run it), each with its own seed; all clients start at once and
each one's latency runs from its request to its whole review. The demo (``nsmc-gen demo``: gradio,
one generation at a time) is called through ``gradio_client``, as tests/test_demo.py does; the vLLM
server (``nsmc-gen serve``) through its OpenAI-compatible ``/v1/completions``; ``generate_reviews``
makes all the clients' reviews as one batch, so each one waits for the whole batch. The servers run
one after the other, each computing with ``--threads`` torch threads (default 1: vLLM's CPU backend
binds its model to the cores it does not reserve for its frontend, one on a 2-core machine; and two
torch threads on a busy 2-core machine can be ~10x slower than one, see FIELD-NOTES). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
NSMC_GEN = (sys.executable, "-c", "import sys; from nsmc_gen.cli import main; sys.exit(main())")


def summary(name: str, clients: int, wall: float, latencies: list[float], texts: list[str]) -> dict:
    latencies = sorted(latencies)
    return {
        "server": name,
        "clients": clients,
        "reviews/s": len(texts) / wall,
        "p50 s": statistics.median(latencies),
        "p95 s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))],
        "mean chars": statistics.fmean(len(t.strip()) for t in texts),
    }


def start(command: list[str], ready: Callable[[], bool], log: Path, timeout: float = 600) -> subprocess.Popen:
    """A server process (its PID is the server's), once ``ready()``."""
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ})
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            sys.exit(f"{command[3:5]} did not start; its log:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def in_process(folder: Path, counts: list[int]) -> list[dict]:
    from nsmc_gen.generation import generate_reviews
    from nsmc_gen.modeling import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(str(folder))
    generate_reviews(model, tokenizer, "positive", num_return_sequences=2, seed=0, guidance_scale=1.0)
    rows = []
    for n in counts:
        begin = time.perf_counter()
        texts = generate_reviews(
            model, tokenizer, "positive", num_return_sequences=n, seed=1, guidance_scale=1.0
        )
        wall = time.perf_counter() - begin
        rows.append(summary("generate_reviews, one batch", n, wall, [wall] * n, texts))
    return rows


def demo(folder: Path, counts: list[int], port: int, logs: Path) -> list[dict]:
    from gradio_client import Client

    url = f"http://127.0.0.1:{port}/"
    proc = start(
        [*NSMC_GEN, "demo", str(folder), "--port", str(port)], lambda: answers(url), logs / "demo.log"
    )
    try:
        client = Client(url, verbose=False)
        request = {"prompt": "", "sentiment": "positive", "stream": False, "guidance_scale": 1.0}
        client.predict(**request, seed=0, api_name="/generate")

        def one(seed: int) -> tuple[float, str]:
            begin = time.perf_counter()
            text = client.predict(**request, seed=seed, api_name="/generate")
            return time.perf_counter() - begin, text

        rows = []
        for n in counts:
            begin = time.perf_counter()
            with ThreadPoolExecutor(n) as pool:
                results = list(pool.map(one, range(1, n + 1)))
            wall = time.perf_counter() - begin
            rows.append(summary("demo API (gradio)", n, wall, *map(list, zip(*results, strict=True))))
        return rows
    finally:
        stop(proc)


def vllm(folder: Path, counts: list[int], port: int, python: str, max_tokens: int, logs: Path) -> list[dict]:
    url = f"http://127.0.0.1:{port}"
    command = [*NSMC_GEN, "serve", "--python", python, str(folder), "--port", str(port)]
    command += ["--max-num-seqs", str(max(counts)), "--served-model-name", "model"]
    proc = start(command, lambda: answers(f"{url}/health"), logs / "vllm.log")
    try:
        prompt = json.loads((folder / "generation_config.json").read_text())["sentiment_guidance"]
        body = {"model": "model", "prompt": prompt["prompt_ids"]["positive"], "max_tokens": max_tokens}

        async def clients(n: int) -> list[tuple[float, str]]:
            async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=n)) as client:

                async def one(seed: int) -> tuple[float, str]:
                    begin = time.perf_counter()
                    response = await client.post(f"{url}/v1/completions", json={**body, "seed": seed})
                    response.raise_for_status()
                    return time.perf_counter() - begin, response.json()["choices"][0]["text"]

                return await asyncio.gather(*(one(seed) for seed in range(1, n + 1)))

        asyncio.run(clients(2))
        rows = []
        for n in counts:
            begin = time.perf_counter()
            results = asyncio.run(clients(n))
            wall = time.perf_counter() - begin
            rows.append(
                summary("vLLM server (nsmc-gen serve)", n, wall, *map(list, zip(*results, strict=True)))
            )
        return rows
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a finished model folder")
    parser.add_argument("--python", default=str(REPO / ".venv-vllm" / "bin" / "python"), help="vLLM's python")
    parser.add_argument("--clients", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--port", type=int, default=8771, help="the demo's port; vLLM's is the next one")
    parser.add_argument("--logs", type=Path, default=Path("/tmp"), help="where the servers' logs go")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the demo and in-process")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the demo's process (vLLM binds its own cores)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    max_tokens = json.loads((args.folder / "generation_config.json").read_text()).get("max_new_tokens", 64)
    rows = [
        *demo(args.folder, args.clients, args.port, args.logs),
        *vllm(args.folder, args.clients, args.port + 1, args.python, max_tokens, args.logs),
        *in_process(args.folder, args.clients),
    ]
    print(
        f"\n{args.folder}: one positive review per client, guidance off, max_new_tokens {max_tokens}, "
        f"{args.threads} torch thread(s)\n"
    )
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * (len(columns) - 1))
    for row in sorted(rows, key=lambda r: (r["clients"], r["server"])):
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
