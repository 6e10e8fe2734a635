"""``python -m nsmc_gen.serving MODEL [vLLM server args...]``: see :mod:`nsmc_gen.serving.launch`."""

import sys

from nsmc_gen.serving.launch import main

sys.exit(main())
