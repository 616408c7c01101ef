#!/usr/bin/env python3
"""check_layers: fails when a file of pipeline/lib/ includes a header of a folder at or above its own layer."""
import os
import re
import sys

# The library's folders, bottom to top; folders on one line are one layer and
# do not include each other. A file may include its own folder and any folder
# of a lower layer, never one above (the compiler's
# -Werror=implicit-function-declaration makes a call without its include fail).
LAYERS = [
    ["base"],                              # errors, file mapping, hashing, UTF-8, RNG, MPI status
    ["formats", "config", "facts", "h5"],  # GGUF/safetensors/dequant, pipeline files, fact sets, HDF5 outputs
    ["tokenizer"],
    ["model"],
    ["engine"],                            # forward, backward, edits in the forward, generation
    ["stage"],                             # context, assignment, progress, prompts, the fact loop
    ["paraphrase"],                        # generated paraphrases: templates, filters, paraphrase.h5, the join
    ["probe"],
    ["locate"],
    ["edit"],
    ["eval"],
]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main(root):
    lib = os.path.join(root, "pipeline", "lib")
    layer_of = {d: i for i, row in enumerate(LAYERS) for d in row}
    problems = []
    for entry in sorted(os.listdir(lib)):
        path = os.path.join(lib, entry)
        if not os.path.isdir(path):
            problems.append(f"pipeline/lib/{entry}: every file belongs in a layer folder")
        elif entry not in layer_of:
            problems.append(f"pipeline/lib/{entry}/: folder not listed in tests/layers/check_layers.py LAYERS")
    edges = 0
    for folder in sorted(d for d in os.listdir(lib) if d in layer_of):
        for name in sorted(os.listdir(os.path.join(lib, folder))):
            rel = f"pipeline/lib/{folder}/{name}"
            with open(os.path.join(root, rel), encoding="utf-8") as f:
                text = f.read()
            for target in INCLUDE.findall(text):
                edges += 1
                parts = target.split("/")
                if len(parts) != 2 or not os.path.isfile(os.path.join(lib, target)):
                    problems.append(f'{rel}: #include "{target}" does not name FOLDER/FILE under pipeline/lib')
                    continue
                other = parts[0]
                if other == folder:
                    continue
                if layer_of[other] >= layer_of[folder]:
                    where = "above" if layer_of[other] > layer_of[folder] else "beside"
                    problems.append(f'{rel}: #include "{target}" points {where} its layer ({folder} -> {other})')
    for p in problems:
        print(p)
    print(f"check_layers: {edges} includes, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")))
