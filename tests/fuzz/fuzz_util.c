/* fuzz_util: what the fuzz harnesses share — the private folder their inputs are written to, the input splitter, the uses of what they parse. */
#include "fuzz_util.h"

#include "h5/h5out.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

/* Removes every file of the private folder and the folder (atexit). */
static void remove_dir(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[320];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(dir);
}

const char *fuzz_dir(void) {
    if (dir[0]) return dir;
    struct stat st;
    snprintf(dir, sizeof dir, "%s/lafn_fuzz_XXXXXX", stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
    if (!mkdtemp(dir)) {
        perror("fuzz_util: mkdtemp");
        abort();
    }
    atexit(remove_dir);
    return dir;
}

FILE *fuzz_devnull(void) {
    static FILE *f;
    if (!f && !(f = fopen("/dev/null", "w"))) {
        perror("/dev/null");
        abort();
    }
    return f;
}

const char *fuzz_write_file(int slot, const char *name, const uint8_t *data, size_t size) {
    static char paths[4][4200];
    if (slot < 0 || slot >= 4) abort();
    snprintf(paths[slot], sizeof paths[slot], "%s/%s", fuzz_dir(), name);
    if (!data) {
        unlink(paths[slot]);
        return paths[slot];
    }
    FILE *f = fopen(paths[slot], "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(paths[slot]);
        abort();
    }
    return paths[slot];
}

void fuzz_write_parts(const uint8_t *data, size_t size, const char *const *names, int n) {
    size_t pos = 0, len = 0;
    const uint8_t *part = NULL;
    for (int i = 0; i < n; i++) {
        int have = fuzz_next_part(data, size, &pos, &part, &len);
        fuzz_write_file(i, names[i], have ? part : NULL, len);
    }
}

int fuzz_next_part(const uint8_t *data, size_t size, size_t *pos, const uint8_t **part, size_t *len) {
    if (*pos > size) return 0;
    const uint8_t *start = data + *pos, *nul = memchr(start, 0, size - *pos);
    *part = start;
    *len = nul ? (size_t)(nul - start) : size - *pos;
    *pos += *len + 1;
    return 1;
}

void fuzz_use_tokenizer(const tokenizer *t) {
    static const char text[] = "The Eiffel Tower is in Paris. 埃菲尔铁塔 Эйфелева башня \xff\xfe 123 <s>";
    int32_t ids[256];
    size_t n = 0;
    lafn_err err;
    if (tokenizer_encode(t, text, sizeof text - 1, 1, ids, 256, &n, &err) == 0 && n <= 256)
        free(tokenizer_decode(t, ids, n, &err));
    for (int32_t id = -1; id < 4; id++) tokenizer_piece(t, id);
}

void fuzz_use_facts(const facts_set *set) {
    lafn_err err;
    for (size_t i = 0; i < set->n_facts; i++) {
        facts_edit_view v;
        if (facts_edit_view_build(&set->facts[i], &v, &err) == 0) facts_edit_view_free(&v);
        for (size_t l = 0; l < set->n_langs; l++) facts_record_eval(&set->facts[i], set->langs[l]);
        facts_set_find(set, set->facts[i].id);
    }
    facts_check_paraphrases(set, &err);
}

hid_t fuzz_h5_open(const char *name, const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        quiet = 1;
    }
    const char *path = fuzz_write_file(0, name, data, size);
    lafn_err err;
    if (h5out_check_format(path, &err)) return H5I_INVALID_HID;
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}
