/* test_safetensors_bad: corrupted .safetensors files and broken HF folders must fail with messages naming the fault. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model.h"
#include "formats/safetensors.h"
#include "testutil.h"

static char tmp[] = "/tmp/lafn_st_bad_XXXXXX";

/* Writes u64 header length + header + data_len bytes of data into tmp/name; returns the path. */
static const char *write_st(const char *name, const char *header, uint64_t claimed_len, size_t data_len) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    if (!f) return path;
    uint64_t n = claimed_len ? claimed_len : strlen(header);
    fwrite(&n, 8, 1, f);
    fwrite(header, 1, strlen(header), f);
    for (size_t i = 0; i < data_len; i++) fputc((int)(i * 7), f);
    fclose(f);
    return path;
}

static void expect_st(const char *what, const char *path, const char *want1, const char *want2) {
    lafn_err err = {{0}};
    safetensors_file *f = NULL;
    int rc = safetensors_open(&f, path, &err);
    safetensors_close(f);
    int ok = rc == -1 && strstr(err.msg, want1) && strstr(err.msg, want2);
    CHECK(ok, "%s: rc %d, message '%s' lacks '%s' / '%s'", what, rc, err.msg, want1, want2);
    printf("%-28s -> %s\n", what, err.msg);
}

static void check_safetensors(void) {
    lafn_err err = {{0}};
    safetensors_file *f = NULL;
    const char *good = "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    const char *p = write_st("good.safetensors", good, 0, 28);
    int rc = safetensors_open(&f, p, &err);
    CHECK(rc == 0, "valid file rejected: %s", err.msg);
    if (rc == 0) {
        const safetensors_tensor *a = safetensors_find(f, "a"), *b = safetensors_find(f, "b");
        float x[3];
        int ok = safetensors_n_tensors(f) == 2 && a && b && a->n_dims == 2 && a->shape[1] == 3 && b->n_elements == 2 &&
                 safetensors_to_f32(a, 3, 3, x) == 0 && safetensors_to_f32(a, 4, 3, x) == -1;
        uint8_t raw[4];
        memcpy(raw, a->data + 12, 4);
        float want;
        memcpy(&want, raw, 4);
        CHECK(ok && x[0] == want, "valid file read back wrong");
        safetensors_close(f);
    }
    expect_st("header length past end", write_st("h.safetensors", good, 1u << 20, 28), "header length", "past file size");
    expect_st("header not JSON", write_st("j.safetensors", "{\"a\": [1, 2", 0, 8), "j.safetensors", "not a JSON object");
    expect_st("unsupported dtype",
              write_st("d.safetensors", "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8),
              "tensor 'a'", "dtype 'I64' not supported");
    expect_st("offsets do not match shape",
              write_st("s.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 0, 16),
              "tensor 'a'", "need 16");
    expect_st("offsets past end",
              write_st("e.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, 8),
              "tensor 'a'", "outside the 8 data bytes");
    expect_st("negative shape",
              write_st("n.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 0, 4),
              "tensor 'a'", "shape[0]");
    expect_st("duplicate name",
              write_st("u.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                        "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 0, 8),
              "duplicate tensor name", "'a'");
}

/* Makes tmp/<dir> from fixture folder src: config.json with one substitution, links to the other files. */
static const char *make_folder(const char *dir, const char *src, const char *from, const char *to, int skip_shard2) {
    static char path[256];
    char buf[8192], fpath[512];
    snprintf(path, sizeof path, "%s/%s", tmp, dir);
    if (mkdir(path, 0700) != 0) return path;
    snprintf(fpath, sizeof fpath, "%s/config.json", testutil_repo_path(src));
    FILE *f = fopen(fpath, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    char *at = from ? strstr(buf, from) : NULL;
    snprintf(fpath, sizeof fpath, "%s/config.json", path);
    f = fopen(fpath, "w");
    if (f && at) fprintf(f, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    else if (f) fputs(buf, f);
    if (f) fclose(f);
    static const char *files[] = {"tokenizer.json", "model.safetensors", "model-00001-of-00002.safetensors",
                                  "model-00002-of-00002.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char target[512], link[512];
        if (skip_shard2 && strstr(files[i], "00002-of")) continue;
        snprintf(target, sizeof target, "%s/%s", testutil_repo_path(src), files[i]);
        snprintf(link, sizeof link, "%s/%s", path, files[i]);
        if (access(target, R_OK) == 0 && symlink(target, link) != 0) return path;
    }
    return path;
}

static void expect_load(const char *what, const char *path, const char *want1, const char *want2) {
    lafn_err err = {{0}};
    model *m = NULL;
    int rc = model_load(&m, path, MPI_COMM_NULL, &err);
    model_free(m);
    int ok = rc == -1 && m == NULL && strstr(err.msg, want1) && strstr(err.msg, want2);
    CHECK(ok, "%s: rc %d, message '%s' lacks '%s' / '%s'", what, rc, err.msg, want1, want2);
    printf("%-28s -> %s\n", what, err.msg);
}

static void check_folders(void) {
    const char *q = "tests/fixtures/hf/tiny-qwen2", *l = "tests/fixtures/hf/tiny-llama3";
    expect_load("unsupported rope type", make_folder("rope", l, "\"llama3\"", "\"yarn\"", 0),
                "rope_parameters.rope_type", "'yarn'");
    expect_load("unknown model_type", make_folder("type", q, "\"qwen2\"", "\"gpt2\"", 0), "model_type", "'gpt2'");
    expect_load("missing config key", make_folder("key", q, "\"hidden_size\"", "\"hidden_sizes\"", 0),
                "key 'hidden_size'", "is missing");
    expect_load("wrong shape", make_folder("shape", q, "\"intermediate_size\": 32", "\"intermediate_size\": 48", 0),
                "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [32, 16]", "expected [48, 16]");
    expect_load("missing tensor (shard absent)", make_folder("shard", l, NULL, NULL, 1), "is missing",
                "'lm_head.weight' (output.weight)");
    expect_load("sliding window on every layer",
                make_folder("swa", q, "\"use_sliding_window\": false", "\"use_sliding_window\": true", 0),
                "use_sliding_window", "not supported");
    char empty[256], cfg[300];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    snprintf(cfg, sizeof cfg, "%s/config.json", empty);
    mkdir(empty, 0700);
    FILE *f = fopen(cfg, "w");
    if (f) fputs("{\"model_type\": \"llama\", \"num_hidden_layers\": 1, \"hidden_size\": 8, \"intermediate_size\": 8,"
                 " \"num_attention_heads\": 1, \"vocab_size\": 8}", f), fclose(f);
    expect_load("no safetensors files", empty, "no *.safetensors files", "empty");
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp failed");
    check_safetensors();
    check_folders();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0, "cannot remove %s", tmp);
    int status = testutil_finish("test_safetensors_bad");
    MPI_Finalize();
    return status;
}
