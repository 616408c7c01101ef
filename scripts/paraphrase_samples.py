#!/usr/bin/env python3
"""paraphrase_samples.py — per-language acceptance of a paraphrase-stage run and samples of kept and rejected candidates.

Usage: lafn paraphrases RUN_DIR --candidates | scripts/paraphrase_samples.py [N]
Reads the candidate lines ({"index", "lang", "verdict", "text"}) on standard input and prints Markdown: a table of
generated, kept (up to paraphrase.count per fact), passing every filter (kept + surplus) and the commonest
rejection per language, then the first N (default 5) kept and N rejected candidates of each language in file order.
"""
import collections
import json
import sys


def main():
    if len(sys.argv) > 2:
        raise SystemExit("usage: lafn paraphrases RUN_DIR --candidates | scripts/paraphrase_samples.py [N]")
    n_show = int(sys.argv[1]) if len(sys.argv) == 2 else 5
    by_lang = collections.defaultdict(list)
    for number, line in enumerate(sys.stdin, 1):
        try:
            c = json.loads(line)
            by_lang[c["lang"]].append((c["index"], c["verdict"], c["text"]))
        except (ValueError, KeyError) as e:
            raise SystemExit(f"paraphrase_samples: line {number}: not a candidate line of lafn paraphrases "
                             f"--candidates ({e})")
    print("| language | generated | kept | pass every filter | commonest rejection |")
    print("|---|---|---|---|---|")
    for lang, cands in by_lang.items():
        verdicts = collections.Counter(v for _, v, _ in cands)
        n, kept = len(cands), verdicts["kept"]
        passing = kept + verdicts["surplus"]
        rejected = [(v, k) for v, k in verdicts.most_common() if v not in ("kept", "surplus")]
        worst = f"{rejected[0][0]} ({rejected[0][1]})" if rejected else "none"
        print(f"| {lang} | {n} | {kept} ({100 * kept / n:.0f} %) | {passing} ({100 * passing / n:.0f} %) | {worst} |")
    for lang, cands in by_lang.items():
        kept = [t for _, v, t in cands if v == "kept"][:n_show]
        rejected = [f"[{v}] {t}" for _, v, t in cands if v not in ("kept", "surplus")][:n_show]
        print(f"\n**{lang}** — kept: " + " · ".join(f"`{t}`" for t in kept))
        print(f"rejected: " + " · ".join(f"`{t}`" for t in rejected))


if __name__ == "__main__":
    main()
