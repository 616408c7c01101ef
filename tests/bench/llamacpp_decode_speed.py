"""llamacpp_decode_speed: llama.cpp token generation (greedy, one sequence) after the same prompt ids as bench_decode."""
import sys
import time

import llama_cpp
import numpy as np


def generate(llm, ids, new_tokens):
    """Evaluates the prompt, then greedily generates new_tokens; returns the seconds of the steps after the first token."""
    llm.reset()
    llm.eval(ids)
    n_vocab = llm.n_vocab()
    tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))))
    start = time.perf_counter()
    for _ in range(new_tokens - 1):
        llm.eval([tok])
        tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(n_vocab,))))
    return time.perf_counter() - start


def main():
    model_path, ids_path, threads, new_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    prompts = [[int(t) for t in line.split()] for line in open(ids_path) if line.strip()]
    n_ctx = max(len(p) for p in prompts) + new_tokens + 8
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    for ids in prompts:
        best = min(generate(llm, ids, new_tokens) for _ in range(2))
        steps = new_tokens - 1
        print(f"llamacpp prompt_len={len(ids)} batch=1 new_tokens={new_tokens} decode_s={best:.3f} "
              f"tok_per_s={steps / best:.1f} ms_per_step={1e3 * best / steps:.1f}")


if __name__ == "__main__":
    main()
