"""The first load of a GGUF model (de-quantised and converted once into the cache): how long it takes
with the GGUF's metadata parsed once (``assets.one_gguf_parse``, what the loader does) and with a
reader per use (the header check, transformers' config, tokenizer and weights: four parses), in one
run on one machine, each into a fresh cache.

    python bench/first_load.py [--model qwen2.5-coder-0.5b-instruct]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time


def first_load(model: str, shared: bool) -> float:
    from thinksafe.models import assets, loader
    from thinksafe.models.registry import MODELS

    with tempfile.TemporaryDirectory() as cache:
        os.environ["THINKSAFE_CACHE"] = cache
        assets.ensure_gguf(MODELS.get(model))  # the parts joined first: not part of the timing
        real = assets.one_gguf_parse
        if not shared:
            assets.one_gguf_parse = contextlib.nullcontext  # a reader per use, as before
        try:
            t0 = time.perf_counter()
            loader.load_model(model)
            return time.perf_counter() - t0
        finally:
            assets.one_gguf_parse = real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    args = ap.parse_args()
    once = first_load(args.model, shared=True)
    each = first_load(args.model, shared=False)
    print(f"{args.model}: first load {once:.1f} s with one parse, {each:.1f} s with a parse per reader "
          f"({each / once:.2f}x)")


if __name__ == "__main__":
    main()
