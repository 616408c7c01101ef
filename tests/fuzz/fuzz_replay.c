/* fuzz_replay: a main for the fuzz harnesses without libFuzzer — feeds every file named (or inside a folder named) to the harness once. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

/* Reads path whole and passes it to the harness. Returns 0, or 1 if it cannot be read. */
static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (n < 0 || !buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", path);
        free(buf);
        fclose(f);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replays every regular file of folder dir in name order; *n counts them. Returns the number that failed to read. */
static int replay_dir(const char *dir, int *n) {
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 1;
    }
    char **names = NULL;
    size_t n_names = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            char **grown = realloc(names, (n_names + 1) * sizeof *names);
            if (!grown || !(grown[n_names] = strdup(e->d_name))) abort();
            names = grown;
            n_names++;
        }
    closedir(d);
    qsort(names, n_names, sizeof *names, by_name);
    int bad = 0;
    char path[4200];
    for (size_t i = 0; i < n_names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        bad += replay_file(path);
        (*n)++;
        free(names[i]);
    }
    free(names);
    return bad;
}

/* Usage: fuzz_NAME_replay FILE_OR_FOLDER...; exits 1 if an input cannot be read or none was given
 * (a crash or sanitizer report ends the program by itself). */
int main(int argc, char **argv) {
    int bad = 0, n = 0;
    struct stat st;
    for (int i = 1; i < argc; i++) {
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            bad += replay_dir(argv[i], &n);
        } else {
            bad += replay_file(argv[i]);
            n++;
        }
    }
    printf("%s: %d inputs replayed, %d unreadable\n", argv[0], n, bad);
    return bad || n == 0;
}
