"""llamacpp_prompt_speed: llama.cpp prompt-processing tokens/s on the same token ids as bench_forward."""
import sys
import time

import llama_cpp


def main():
    model_path, ids_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    prompts = [[int(t) for t in line.split()] for line in open(ids_path) if line.strip()]
    n_ctx = max(len(p) for p in prompts) + 8
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for ids in prompts:
            llm.reset()
            llm.eval(ids)
        best = min(best, time.perf_counter() - start)
    n_tokens = sum(len(p) for p in prompts)
    print(f"llamacpp prompts={len(prompts)} tokens={n_tokens} seconds={best:.3f} tok_per_s={n_tokens / best:.1f}")


if __name__ == "__main__":
    main()
