/* config_table: the knob tables of every pipeline-file section, and the checks that relate knobs. */
#include "config/config.h"
#include "config/config_int.h"

#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define BIG 1e9
#define ANY_LEN 0, 1000000

/* A language code as in the data (en, zh, cz, du) or an ISO alias: 2-3 lowercase ASCII letters. */
static int valid_language(const char *s) {
    size_t n = strlen(s);
    if (n < 2 || n > 3) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 'a' || s[i] > 'z') return 0;
    return 1;
}

/* A non-empty string. */
static int valid_nonempty(const char *s) { return s[0] != '\0'; }

#define NONEMPTY valid_nonempty, "a non-empty string"
#define NOVALID NULL, NULL

static const config_knob model_knobs[] = {
    {"path", CONFIG_KNOB_STRING, "\"models/gemma-3-270m-q4_k_m.gguf\"", 0, 0, 0, 0, NULL, NONEMPTY,
     "model file (GGUF) or Hugging Face folder, relative to the working directory"},
    {"format", CONFIG_KNOB_STRING, "\"auto\"", 0, 0, 0, 0, "auto gguf safetensors", NOVALID,
     "model format; auto = by the path (a .gguf file or a folder with config.json)"},
};

static const config_knob data_knobs[] = {
    {"format", CONFIG_KNOB_STRING, "\"jsonl\"", 0, 0, 0, 0, "mzsre jsonl", NOVALID,
     "mzsre = MzsRE / Bi-ZsRE pair files (see data.path); jsonl = one fact per line"},
    {"path", CONFIG_KNOB_STRING, "\"conf/data/demo_facts.jsonl\"", 0, 0, 0, 0, NULL, NONEMPTY,
     "jsonl: the data file; mzsre: a folder of mzsre_dev500_en<XX>.json or mzsre_test_duplicate_en<XX>.json, a path with {xx} for the language, or one pair file"},
    {"paraphrases", CONFIG_KNOB_STRING, "\"\"", 0, 0, 0, 0, NULL, NOVALID,
     "file of extra locating/editing paraphrases of src per fact and language; \"\" = none"},
    {"fact_range", CONFIG_KNOB_INT_LIST, "[]", 0, BIG, 0, 2, NULL, NOVALID,
     "[first, end): facts first <= i < end; [] = all (set this or data.facts)"},
    {"facts", CONFIG_KNOB_INT_LIST, "[]", 0, BIG, ANY_LEN, NULL, NOVALID,
     "explicit fact indices; [] = use data.fact_range"},
    {"on_bad_record", CONFIG_KNOB_STRING, "\"fatal\"", 0, 0, 0, 0, "skip fatal", NOVALID,
     "a malformed record: fatal = stop with its line; skip = count it and go on"},
};

static const config_knob languages_knobs[] = {
    {"codes", CONFIG_KNOB_STRING_LIST, "[\"en\", \"zh\"]", 0, 0, 1, 64, NULL, valid_language,
     "2-3 lowercase letters (en, zh, cz, du; ISO aliases cs, nl)",
     "languages used for locating, editing and testing, as in the data"},
};

static const config_knob run_knobs[] = {
    {"output_dir", CONFIG_KNOB_STRING, "\"runs/demo\"", 0, 0, 0, 0, NULL, NONEMPTY,
     "folder of the stage files (probe.h5, locate.h5, edit.h5, eval.h5) and their shards"},
    {"ranks", CONFIG_KNOB_INT, "2", 1, 100000, 0, 0, NULL, NOVALID, "MPI ranks per stage"},
    {"threads_per_rank", CONFIG_KNOB_INT, "1", 1, 1024, 0, 0, NULL, NOVALID,
     "OpenBLAS threads inside each rank"},
    {"seed", CONFIG_KNOB_INT, "1234", 0, 2147483647, 0, 0, NULL, NOVALID,
     "seed of every random choice of the run"},
    {"resume", CONFIG_KNOB_BOOL, "true", 0, 0, 0, 0, NULL, NOVALID,
     "skip the facts already in complete shards of an earlier, interrupted run"},
    {"shard_facts", CONFIG_KNOB_INT, "8", 1, 100000, 0, 0, NULL, NOVALID,
     "finished facts per shard file (the unit of resume)"},
};

static const config_knob paraphrase_knobs[] = {
    {"method", CONFIG_KNOB_STRING, "\"none\"", 0, 0, 0, 0, "none file sample beam", NOVALID,
     "paraphrases of src for locating and editing: none = only a data.paraphrases file if one is set; file = "
     "that file, which must be set; sample, beam = also the paraphrase stage's, generated before probe"},
    {"model", CONFIG_KNOB_STRING, "\"\"", 0, 0, 0, 0, NULL, NOVALID,
     "generator: a GGUF file or Hugging Face folder the engine loads; \"\" = model.path"},
    {"count", CONFIG_KNOB_INT, "3", 1, 100, 0, 0, NULL, NOVALID,
     "paraphrases kept per fact and language at most (the first candidates that pass the filters)"},
    {"candidates", CONFIG_KNOB_INT, "8", 1, 256, 0, 0, NULL, NOVALID,
     "continuations generated per fact and language (beam: at most n_beams)"},
    {"temperature", CONFIG_KNOB_FLOAT, "0.8", 0.01, 100, 0, 0, NULL, NOVALID, "sample: softmax temperature"},
    {"top_p", CONFIG_KNOB_FLOAT, "0.95", 0.01, 1, 0, 0, NULL, NOVALID,
     "sample: draw from the fewest most likely tokens whose probability reaches top_p"},
    {"max_new_tokens", CONFIG_KNOB_INT, "48", 1, 1024, 0, 0, NULL, NOVALID,
     "tokens per candidate at most; a candidate ends at a newline or EOS"},
    {"n_beams", CONFIG_KNOB_INT, "8", 1, 256, 0, 0, NULL, NOVALID,
     "beam: beams per fact and language; the paraphrase.candidates best finished hypotheses are the candidates"},
    {"languages", CONFIG_KNOB_STRING_LIST, "[]", 0, 0, 0, 64, NULL, valid_language,
     "2-3 lowercase letters (en, zh, cz, du; ISO aliases cs, nl)",
     "languages the generator paraphrases, [] = every language of the run; the others keep only what a "
     "data.paraphrases file gives them, or none (for a language no generator here paraphrases usably)"},
    {"template_dir", CONFIG_KNOB_STRING, "\"conf/paraphrase\"", 0, 0, 0, 0, NULL, NONEMPTY,
     "folder of the few-shot prompts LANG.txt, one per language of the run, {src} where the question goes"},
    {"seed", CONFIG_KNOB_INT, "1234", 0, 2147483647, 0, 0, NULL, NOVALID,
     "sample: candidate k of a fact and language draws from its own stream of (seed, fact index, language, k)"},
    {"max_similarity", CONFIG_KNOB_FLOAT, "0.85", 0, 1, 0, 0, NULL, NOVALID,
     "near-duplicate: character similarity (1 - edit distance / longer length, of the normalised texts) to src or a "
     "kept paraphrase at least this"},
    {"script_share", CONFIG_KNOB_FLOAT, "0.5", 0, 1, 0, 0, NULL, NOVALID,
     "share of a candidate's letters in its language's script (Han for zh, Thai, Cyrillic for ru, Latin otherwise) "
     "at least this times src's share"},
    {"min_length_ratio", CONFIG_KNOB_FLOAT, "0.5", 0, 100, 0, 0, NULL, NOVALID,
     "a candidate has at least this times src's letters and digits"},
    {"max_length_ratio", CONFIG_KNOB_FLOAT, "2.0", 0, 100, 0, 0, NULL, NOVALID,
     "a candidate has at most this times src's letters and digits"},
};

static const config_knob probe_knobs[] = {
    {"position", CONFIG_KNOB_STRING, "\"last\"", 0, 0, 0, 0, "last subject mean", NOVALID,
     "token position scored: last prompt token, last subject token (falls back to last), mean"},
    {"score", CONFIG_KNOB_STRING, "\"abs_activation\"", 0, 0, 0, 0,
     "activation abs_activation grad_x_act integrated_gradients", NOVALID,
     "neuron score: a (a > 0), |a|, a * dlogp(y|x)/da, integrated gradients"},
    {"steps", CONFIG_KNOB_INT, "20", 1, 1000, 0, 0, NULL, NOVALID,
     "integrated_gradients: steps of the path integral"},
    {"min_fraction", CONFIG_KNOB_FLOAT, "0.1", 0, 1, 0, 0, NULL, NOVALID,
     "keep neurons with score >= min_fraction * layer max (locate.threshold must be >= this)"},
    {"keep_max", CONFIG_KNOB_INT, "256", 1, 1000000, 0, 0, NULL, NOVALID,
     "cap on neurons kept per prompt and layer"},
    {"layers", CONFIG_KNOB_INT_LIST, "[]", 0, 1023, ANY_LEN, NULL, NOVALID,
     "layers scanned; [] = all"},
};

static const config_knob locate_knobs[] = {
    {"threshold", CONFIG_KNOB_FLOAT, "0.2", 0, 1, 0, 0, NULL, NOVALID,
     "active: score >= threshold * max score (of the layer, or global)"},
    {"threshold_scope", CONFIG_KNOB_STRING, "\"per_layer\"", 0, 0, 0, 0, "per_layer global", NOVALID,
     "max taken per layer or over all layers"},
    {"top_k", CONFIG_KNOB_INT, "0", 0, 1000000, 0, 0, NULL, NOVALID,
     "if > 0: active = the top_k neurons per layer instead of the threshold"},
    {"prompt_fraction", CONFIG_KNOB_FLOAT, "1.0", 0, 1, 0, 0, NULL, NOVALID,
     "D_l: active in >= this fraction of the language's prompts (1.0 = all)"},
    {"language_fraction", CONFIG_KNOB_FLOAT, "0.75", 0, 1, 0, 0, NULL, NOVALID,
     "LAFN: in D_l of >= this fraction of the languages (1.0 = all)"},
    {"min_language_fraction", CONFIG_KNOB_FLOAT, "0.5", 0, 1, 0, 0, NULL, NOVALID,
     "relax language_fraction down to this while fewer than min_neurons are found"},
    {"language_fraction_step", CONFIG_KNOB_FLOAT, "0.1", 0.001, 1, 0, 0, NULL, NOVALID,
     "step of that relaxation"},
    {"max_neurons", CONFIG_KNOB_INT, "32", 1, 1000000, 0, 0, NULL, NOVALID,
     "cap on LAFNs per fact, ranked by mean score"},
    {"min_neurons", CONFIG_KNOB_INT, "1", 0, 1000000, 0, 0, NULL, NOVALID,
     "fewer than this after relaxing: the fact is recorded as 'no LAFN found'"},
    {"edit_layers", CONFIG_KNOB_INT_LIST, "[]", 0, 1023, ANY_LEN, NULL, NOVALID,
     "layers LAFNs may come from; [] = the probed layers from edit_from_depth on"},
    {"edit_from_depth", CONFIG_KNOB_FLOAT, "0.5", 0, 0.99, 0, 0, NULL, NOVALID,
     "edit_layers = []: LAFNs come from layers >= floor(edit_from_depth x layers); 0.5 = upper half"},
    {"rank_by", CONFIG_KNOB_STRING, "\"mean_score\"", 0, 0, 0, 0, "mean_score contrast", NOVALID,
     "LAFN ranking: mean score over the fact's prompts, or that minus the neuron's mean score over the other "
     "facts' prompts of the run (only neurons above 0 qualify: what every question shares drops out)"},
    {"neuron_set", CONFIG_KNOB_STRING, "\"random\"", 0, 0, 0, 0, "lafn language_specific random", NOVALID,
     "neurons handed to edit: the LAFNs, the language-specific sets (ablation), or the random control (per fact "
     "as many distinct random neurons in each layer as it has LAFNs there, drawn from run.seed and the fact index)"},
};

static const config_knob edit_knobs[] = {
    {"param", CONFIG_KNOB_STRING, "\"value_vector\"", 0, 0, 0, 0, "value_vector activation_offset",
     NOVALID, "what is optimised: a delta on each neuron's value vector, or a scalar on a"},
    {"lr", CONFIG_KNOB_FLOAT, "0.05", 1e-8, 100, 0, 0, NULL, NOVALID, "Adam learning rate"},
    {"steps", CONFIG_KNOB_INT, "40", 1, 100000, 0, 0, NULL, NOVALID, "Adam steps (at most)"},
    {"stop_nll", CONFIG_KNOB_FLOAT, "0.05", 0, 100, 0, 0, NULL, NOVALID,
     "early stop when every language's NLL of the new answer is below this"},
    {"kl_weight", CONFIG_KNOB_FLOAT, "0.1", 0, 1000, 0, 0, NULL, NOVALID,
     "weight of the KL to the unedited model on neutral prompts"},
    {"keep_best", CONFIG_KNOB_BOOL, "false", 0, 0, 0, 0, NULL, NOVALID,
     "keep the lowest-loss delta seen while optimising instead of the last one"},
    {"kl_other_facts", CONFIG_KNOB_BOOL, "false", 0, 0, 0, 0, NULL, NOVALID,
     "KL neutral prompts: another fact's src in each language besides the subject; false = subject only"},
    {"l2", CONFIG_KNOB_FLOAT, "0.0", 0, 1000, 0, 0, NULL, NOVALID, "weight of |delta|^2"},
    {"norm_clamp", CONFIG_KNOB_FLOAT, "0.0", 0, 1000, 0, 0, NULL, NOVALID,
     "if > 0: |delta_j| <= norm_clamp * |v_j| (original value vector)"},
    {"gate", CONFIG_KNOB_FLOAT, "1.0", 0, 1, 0, 0, NULL, NOVALID,
     "cached edit fires when >= this fraction of its LAFNs pass their threshold; 0 = always"},
    {"trigger", CONFIG_KNOB_STRING, "\"nearest_key\"", 0, 0, 0, 0, "neurons key nearest_key", NOVALID,
     "what decides that a cached edit fires on an input: its gate neurons (edit.gate); the key of the "
     "input's state against the keys of the fact's prompts and the fact's threshold (edit.key_*); or "
     "nearest_key: the fact's keys nearer than every other edited fact's and at least edit.key_nearest_floor; "
     "like edit.gate, read where edits are applied (eval, lafn ask; sequential edits), all triggers are stored"},
    {"key_depth", CONFIG_KNOB_FLOAT, "0.85", 0, 1, 0, 0, NULL, NOVALID,
     "trigger = key: keys are the residual stream entering layer floor(key_depth * n_layer) at the last prompt token"},
    {"key_floor", CONFIG_KNOB_FLOAT, "0.5", -1, 1, 0, 0, NULL, NOVALID,
     "trigger = key: a fact's cosine threshold is never below this"},
    {"key_nearest_floor", CONFIG_KNOB_FLOAT, "0.5", -1, 1, 0, 0, NULL, NOVALID,
     "trigger = nearest_key: an input fires no edit whose nearest key has a lower cosine; read where edits are applied"},
    {"key_margin", CONFIG_KNOB_FLOAT, "0.02", 0, 1, 0, 0, NULL, NOVALID,
     "trigger = key: a fact's threshold is the nearest other fact's question plus this"},
    {"mode", CONFIG_KNOB_STRING, "\"single\"", 0, 0, 0, 0, "single batch sequential", NOVALID,
     "single: edit, evaluate, restore; batch: one delta set per batch; sequential: accumulate"},
    {"batch_size", CONFIG_KNOB_INT, "1", 1, 1000000, 0, 0, NULL, NOVALID,
     "facts per batch (mode = batch)"},
    {"method", CONFIG_KNOB_STRING, "\"lafn\"", 0, 0, 0, 0, "lafn ft_l ft_m", NOVALID,
     "lafn: the located neurons' deltas behind the trigger; ft_l, ft_m: the baselines of docs/baselines.md, "
     "fine-tuning one FFN down projection (knobs in the section of that name), applied to every input"},
};

/* The knobs of the fine-tuning baselines, EasyEdit's names (docs/baselines.md);
 * ft_l and ft_m differ only in the default of norm_constraint. */
#define FT_KNOBS(norm_constraint_default)                                                                         \
    {"layers", CONFIG_KNOB_INT_LIST, "[]", 0, 1023, ANY_LEN, NULL, NOVALID,                                      \
     "layers whose ffn_down matrix is fine-tuned; [] = the one at EasyEdit's Llama depth, floor(21/32 x layers)"}, \
    {"num_steps", CONFIG_KNOB_INT, "25", 1, 100000, 0, 0, NULL, NOVALID,                                         \
     "Adam steps at most (the loop stops once every language's loss is below 0.01)"},                             \
    {"lr", CONFIG_KNOB_FLOAT, "5e-4", 1e-8, 100, 0, 0, NULL, NOVALID, "Adam learning rate"},                      \
    {"weight_decay", CONFIG_KNOB_FLOAT, "0.0", 0, 1000, 0, 0, NULL, NOVALID,                                      \
     "Adam's L2 weight decay on the whole edited matrix (torch.optim.Adam's weight_decay)"},                      \
    {"norm_constraint", CONFIG_KNOB_FLOAT, norm_constraint_default, 0, 1000, 0, 0, NULL, NOVALID,                 \
     "if > 0: after every step each element of the matrix stays within this of its original value (L-infinity); "  \
     "0 = unconstrained (EasyEdit's false)"}

static const config_knob ft_l_knobs[] = {FT_KNOBS("5e-4")};
static const config_knob ft_m_knobs[] = {FT_KNOBS("0.0")};

static const config_knob eval_knobs[] = {
    {"edit_sets", CONFIG_KNOB_STRING, "\"all\"", 0, 0, 0, 0, "all each", NOVALID,
     "all = edit in every language at once; each = edit in one, test in all (12x cost)"},
    {"metrics", CONFIG_KNOB_STRING_LIST, "[\"token_em\", \"f1\", \"em\", \"f1_harmonic\"]", 0, 0, 1,
     4, "token_em f1 em f1_harmonic", NOVALID,
     "scores: token accuracy, benchmark F1 (P x R), exact match, harmonic F1"},
    {"criteria", CONFIG_KNOB_STRING_LIST,
     "[\"reliability\", \"generality\", \"locality\", \"portability\"]", 0, 0, 1, 4,
     "reliability generality locality portability", NOVALID, "what is tested"},
    {"each_max_facts", CONFIG_KNOB_INT, "100", 1, 1000000, 0, 0, NULL, NOVALID,
     "edit_sets = each: number of facts used"},
    {"bootstrap_samples", CONFIG_KNOB_INT, "1000", 0, 10000000, 0, 0, NULL, NOVALID,
     "bootstrap resamples per confidence interval; 0 = no intervals"},
    {"confidence", CONFIG_KNOB_FLOAT, "0.95", 0.5, 0.9999, 0, 0, NULL, NOVALID,
     "confidence level of the intervals"},
    {"seed", CONFIG_KNOB_INT, "4321", 0, 2147483647, 0, 0, NULL, NOVALID, "bootstrap seed"},
};

static const config_section sections[] = {
    {"model", model_knobs, N(model_knobs), "the model"},
    {"data", data_knobs, N(data_knobs), "facts to edit and their test questions"},
    {"languages", languages_knobs, N(languages_knobs), "languages of the run"},
    {"run", run_knobs, N(run_knobs), "where and how the stages run"},
    {"paraphrase", paraphrase_knobs, N(paraphrase_knobs), "paraphrases of src generated before probe"},
    {"probe", probe_knobs, N(probe_knobs), "per-prompt neuron scores"},
    {"locate", locate_knobs, N(locate_knobs), "from scores to LAFNs"},
    {"edit", edit_knobs, N(edit_knobs), "optimising the update values"},
    {"ft_l", ft_l_knobs, N(ft_l_knobs), "edit.method = ft_l: fine-tuning with an L-infinity bound, last-prompt-token loss"},
    {"ft_m", ft_m_knobs, N(ft_m_knobs), "edit.method = ft_m: fine-tuning with the masked loss on the answer tokens"},
    {"eval", eval_knobs, N(eval_knobs), "scoring every language pair"},
};

const config_section *config_sections(size_t *n) {
    *n = N(sections);
    return sections;
}

/* The value of a knob known to exist (the relations below name only table keys). */
static const config_value *val(const lafn_config *cfg, const char *path) {
    return &cfg->vals[config_knob_index(path)];
}

/* err for a relation between two knobs, naming both with where they were set. */
static int relation_err(const lafn_config *cfg, lafn_err *err, const char *a, const char *b,
                        const char *what) {
    return lafn_err_set(err, "%s: %s (set at %s) and %s (set at %s): %s", cfg->source, a,
                        val(cfg, a)->where, b, val(cfg, b)->where, what);
}

/* Map cs -> cz and nl -> du, the data's codes. */
static const char *language_canonical(const char *c) {
    if (!strcmp(c, "cs")) return "cz";
    if (!strcmp(c, "nl")) return "du";
    return c;
}

static int check_languages(const lafn_config *cfg, lafn_err *err) {
    const config_value *v = val(cfg, "languages.codes");
    for (size_t i = 0; i < v->n; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(language_canonical(v->sl[i]), language_canonical(v->sl[j])))
                return lafn_err_set(err, "%s: languages.codes (set at %s): '%s' and '%s' are the "
                                    "same language; list it once", cfg->source, v->where,
                                    v->sl[j], v->sl[i]);
    return 0;
}

int config_check_relations(const lafn_config *cfg, lafn_err *err) {
    const config_value *range = val(cfg, "data.fact_range");
    if (range->n == 1 || (range->n == 2 && range->il[0] >= range->il[1]))
        return lafn_err_set(err, "%s: data.fact_range (set at %s): expected [] or [first, end) "
                            "with first < end", cfg->source, range->where);
    if (range->n && val(cfg, "data.facts")->n)
        return relation_err(cfg, err, "data.fact_range", "data.facts", "set only one of them");
    if (val(cfg, "paraphrase.min_length_ratio")->f > val(cfg, "paraphrase.max_length_ratio")->f)
        return relation_err(cfg, err, "paraphrase.min_length_ratio", "paraphrase.max_length_ratio",
                            "min_length_ratio <= max_length_ratio");
    const char *method = val(cfg, "paraphrase.method")->s;
    if (!strcmp(method, "beam") && val(cfg, "paraphrase.candidates")->i > val(cfg, "paraphrase.n_beams")->i)
        return relation_err(cfg, err, "paraphrase.candidates", "paraphrase.n_beams",
                            "beam search returns at most n_beams candidates");
    const config_value *gen = val(cfg, "paraphrase.languages"), *codes = val(cfg, "languages.codes");
    for (size_t i = 0; i < gen->n; i++) {
        size_t j = 0;
        while (j < codes->n && strcmp(language_canonical(gen->sl[i]), language_canonical(codes->sl[j])) != 0) j++;
        if (j == codes->n)
            return relation_err(cfg, err, "paraphrase.languages", "languages.codes",
                                "every language to paraphrase must be a language of the run");
    }
    if (!strcmp(method, "file") && !val(cfg, "data.paraphrases")->s[0])
        return relation_err(cfg, err, "paraphrase.method", "data.paraphrases",
                            "method = file needs a paraphrase file");
    if (val(cfg, "probe.min_fraction")->f > val(cfg, "locate.threshold")->f)
        return relation_err(cfg, err, "probe.min_fraction", "locate.threshold",
                            "locate can only apply a threshold >= probe.min_fraction");
    if (val(cfg, "locate.min_language_fraction")->f > val(cfg, "locate.language_fraction")->f)
        return relation_err(cfg, err, "locate.min_language_fraction", "locate.language_fraction",
                            "the relaxation goes down: min_language_fraction <= language_fraction");
    if (val(cfg, "locate.min_neurons")->i > val(cfg, "locate.max_neurons")->i)
        return relation_err(cfg, err, "locate.min_neurons", "locate.max_neurons",
                            "min_neurons <= max_neurons");
    const config_value *pl = val(cfg, "probe.layers"), *el = val(cfg, "locate.edit_layers");
    for (size_t i = 0; pl->n && i < el->n; i++) {
        size_t j = 0;
        while (j < pl->n && pl->il[j] != el->il[i]) j++;
        if (j == pl->n) {
            char what[128];
            snprintf(what, sizeof what, "edit layer %lld is not probed", (long long)el->il[i]);
            return relation_err(cfg, err, "locate.edit_layers", "probe.layers", what);
        }
    }
    if (strcmp(val(cfg, "edit.method")->s, "lafn") != 0 && strcmp(val(cfg, "edit.param")->s, "value_vector") != 0)
        return relation_err(cfg, err, "edit.method", "edit.param",
                            "the baselines change a whole weight matrix, stored as value vectors: set edit.param = "
                            "value_vector");
    return check_languages(cfg, err);
}
