"""Serving a finished model folder (or Hub id) through vLLM's OpenAI-compatible server with
nsmc-gen's decoding.

- :mod:`nsmc_gen.serving.nsmc_gen_vllm`: the vLLM logits processor (imports torch, vLLM and
  ``nsmc_gen/processors.py`` only, so that it runs in vLLM's own environment);
- :mod:`nsmc_gen.serving.launch`: the server's command line (``nsmc-gen serve``, or
  ``python -m nsmc_gen.serving`` inside vLLM's environment).

Importing this package imports nothing heavy.
"""

from pathlib import Path

# The vLLM adapter's file: the server imports it by name from its folder (``nsmc_gen_vllm``), and a
# model folder's ``custom_generate/`` carries a copy beside ``processors.py``.
VLLM_ADAPTER = Path(__file__).resolve().with_name("nsmc_gen_vllm.py")
