"""The ``custom_generate/`` shipped in model folders (see :mod:`nsmc_gen.custom_generate.generate`)."""
