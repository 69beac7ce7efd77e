"""Time VLoRA's three execution modes on a small configuration (CPU by default).

For each mode: one prefill of the prompt plus 16 decoded tokens (no early stop), batch of one
image, median of --repeats runs after one warm-up. The merged mode's time includes folding
B . A^T into the weights and restoring them afterwards. Prints a table and the factorized /
merged ratio; the three modes' first 16 tokens must be identical.

    python benchmarks/execution_modes.py [--set llm.num_layers=4 ...] [--repeats 5]   # the vlora-small preset
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vlora.demo import shapes_image
from vlora.model import build_model
from vlora.overrides import apply_overrides
from vlora.perceptual_weights import ExecutionMode
from vlora.presets import preset


def time_mode(model, batch, mode: ExecutionMode, new_tokens: int, repeats: int) -> tuple[float, list[int]]:
    def once() -> list[int]:
        with torch.inference_mode():
            return model.decode(batch, new_tokens, stop_at_eos=False, mode=mode)[0]

    tokens = once()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        once()
        times.append(time.perf_counter() - start)
    return statistics.median(times), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], help="dotted overrides of the vlora-small preset")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = apply_overrides(preset("vlora-small"), args.set)
    model = build_model(config, seed=0).eval()
    with torch.no_grad():
        for w in model.connector.w_s.values():
            w.normal_(0, 0.02)
    batch = model.prepare([model.prompt("What is the color of the shape in the middle of the picture?")],
                          [shapes_image("red", "circle")])
    print(f"config: LLM h={config.llm.hidden_size}, {config.llm.num_layers} layers; generator {config.connector.types}, "
          f"r={config.connector.rank}, N={config.connector.blocks}, h_p={config.connector.hidden}; "
          f"prompt {batch.input_ids.shape[1]} tokens + {args.new_tokens} decoded; "
          f"{torch.get_num_threads()} threads, device cpu, median of {args.repeats}")
    modes = (ExecutionMode.FACTORIZED, ExecutionMode.MERGED, ExecutionMode.DELTA)
    results = {mode: time_mode(model, batch, mode, args.new_tokens, args.repeats) for mode in modes}
    print(f"{'mode':<12}{'prefill + decode (ms)':>24}")
    for mode, (seconds, _) in results.items():
        print(f"{mode.value:<12}{seconds * 1e3:>24.1f}")
    ratio = results[ExecutionMode.FACTORIZED][0] / results[ExecutionMode.MERGED][0]
    print(f"factorized / merged time ratio: {ratio:.2f}")
    same = len({tuple(tokens) for _, tokens in results.values()}) == 1
    print(f"identical tokens in all modes: {same}")


if __name__ == "__main__":
    main()
