"""measure_model_choice: how well candidate models answer MzsRE's unrelated `loc` questions, per language, before any edit.

Teacher-forced token accuracy of `loc_ans` after `loc` (the MzsRE locality pair), scored with
llama.cpp (llama-cpp-python) as an independent engine: prompt ids (with BOS if the model adds one),
then the target joined by one space (none for zh and th), the share of target tokens that are the
argmax of the model's next-token distribution. Usage:
    python3 measure_model_choice.py MODEL.gguf MZSRE_DIR N_FACTS
"""
import json
import pathlib
import sys

import llama_cpp
import numpy as np

NO_SPACE_LANGUAGES = {"zh", "th", "ja"}


def load_sides(data_dir, n_facts):
    """Yields (language, record side) for the first n_facts records of every language (en once)."""
    files = sorted(pathlib.Path(data_dir).glob("mzsre_dev500_en*.json"))
    for f in files:
        records = json.load(open(f))[:n_facts]
        languages = [f.stem[-2:]] + (["en"] if f == files[0] else [])
        for lang in languages:
            for r in records:
                yield lang, r[lang]


def token_accuracy(llm, prompt, target, lang):
    sep = "" if lang in NO_SPACE_LANGUAGES else " "
    prompt_ids = llm.tokenize(prompt.encode(), add_bos=True, special=False)
    full_ids = llm.tokenize((prompt + sep + target).encode(), add_bos=True, special=False)
    target_ids = full_ids[len(prompt_ids):]
    if not target_ids or full_ids[:len(prompt_ids)] != prompt_ids:
        target_ids = llm.tokenize((sep + target).encode(), add_bos=False, special=False)
        full_ids = prompt_ids + target_ids
    llm.reset()
    llm.eval(full_ids)
    logits = np.asarray(llm.scores[: len(full_ids)])
    predicted = logits[len(prompt_ids) - 1 : len(full_ids) - 1].argmax(axis=1)
    return float(np.mean(predicted == np.asarray(target_ids)))


def main():
    model_path, data_dir, n_facts = sys.argv[1], sys.argv[2], int(sys.argv[3])
    llm = llama_cpp.Llama(model_path=model_path, n_ctx=512, logits_all=True, n_threads=2, verbose=False)
    scores = {}
    for lang, side in load_sides(data_dir, n_facts):
        scores.setdefault(lang, []).append(token_accuracy(llm, side["loc"], side["loc_ans"], lang))
    print(f"model {model_path}, first {n_facts} MzsRE dev facts, loc_ans token accuracy (llama.cpp):")
    for lang in sorted(scores):
        print(f"  {lang}: {np.mean(scores[lang]):.3f} (n={len(scores[lang])})")
    print(f"  mean over languages: {np.mean([np.mean(v) for v in scores.values()]):.3f}")


if __name__ == "__main__":
    main()
