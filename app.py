"""The web demo as a Hugging Face Space: ``python app.py`` (what a Gradio Space runs).

The model comes from the ``NSMC_GEN_MODEL`` environment variable (a Hub id, a local folder, or
``embedded``); set it as a Space variable to serve another model.
"""

import os

from nsmc_gen.demo import build_demo
from nsmc_gen.modeling import load_model_and_tokenizer

DEFAULT_MODEL = "nsmc-gen/kogpt2-nsmc"

demo = build_demo(*load_model_and_tokenizer(os.environ.get("NSMC_GEN_MODEL", DEFAULT_MODEL)))

if __name__ == "__main__":
    demo.launch()
