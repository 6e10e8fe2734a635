"""nsmc-gen: fine-tune a Korean GPT on NSMC to write movie reviews of a chosen sentiment."""

__version__ = "0.1.0"
