"""Serving a finished model folder (or Hub id) through vLLM's OpenAI-compatible server with
nsmc-gen's decoding.

- :mod:`nsmc_gen.serving.nsmc_gen_vllm`: the vLLM logits processor (imports torch, vLLM and
  ``nsmc_gen/processors.py`` only, so that it runs in vLLM's own environment);
- :mod:`nsmc_gen.serving.launch`: the server's command line (``nsmc-gen serve``, or
  ``python -m nsmc_gen.serving`` inside vLLM's environment).

Importing this package imports nothing heavy.
"""
