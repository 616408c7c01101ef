"""llamacpp_prompt_speed: llama.cpp prompt-processing tokens/s on the same token ids as bench_forward — prompt by prompt, and all prompts as one batch of sequences."""
import sys
import time

import llama_cpp


def each(model_path, prompts, threads):
    """Seconds (best of 3) to evaluate the prompts one at a time through the high-level API."""
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
    return best


def batch(model_path, prompts, threads):
    """Seconds (best of 3) to evaluate every prompt in one llama_decode: one sequence id per prompt in a
    unified KV cache, logits at each prompt's last token only (what bench_forward scores)."""
    n_tokens = sum(len(p) for p in prompts)
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    model = llama_cpp.llama_model_load_from_file(model_path.encode(), mparams)
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_tokens + 8
    cparams.n_seq_max = len(prompts)
    cparams.kv_unified = True
    cparams.n_threads = cparams.n_threads_batch = threads
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise SystemExit(f"llama.cpp refused a context of {n_tokens} tokens in {len(prompts)} sequences")
    b = llama_cpp.llama_batch_init(n_tokens, 0, 1)
    i = 0
    for s, ids in enumerate(prompts):
        for t, tok in enumerate(ids):
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, t, 1
            b.seq_id[i][0] = s
            b.logits[i] = t == len(ids) - 1
            i += 1
    b.n_tokens = n_tokens
    best = float("inf")
    for _ in range(3):
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        start = time.perf_counter()
        if llama_cpp.llama_decode(ctx, b) != 0:
            raise SystemExit("llama_decode failed on the batch of all prompts")
        llama_cpp.llama_synchronize(ctx)
        best = min(best, time.perf_counter() - start)
    llama_cpp.llama_batch_free(b)
    llama_cpp.llama_free(ctx)
    llama_cpp.llama_model_free(model)
    return best


def main():
    model_path, ids_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    modes = sys.argv[4].split(",") if len(sys.argv) > 4 else ["each", "batch"]
    prompts = [[int(t) for t in line.split()] for line in open(ids_path) if line.strip()]
    n_tokens = sum(len(p) for p in prompts)
    for mode in modes:
        seconds = {"each": each, "batch": batch}[mode](model_path, prompts, threads)
        print(f"llamacpp mode={mode} prompts={len(prompts)} tokens={n_tokens} seconds={seconds:.3f} "
              f"tok_per_s={n_tokens / seconds:.1f}")


if __name__ == "__main__":
    main()
