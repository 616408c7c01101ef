/* file_map: opens and checks a whole file, then maps it read-only or reads it into memory. */
#include "base/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int file_map_readonly(const char *path, uint64_t min_bytes, const char *what, const uint8_t **map,
                      uint64_t *size, lafn_err *err) {
    *map = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return lafn_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0) lafn_err_set(err, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode)) lafn_err_set(err, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size < min_bytes)
        lafn_err_set(err, "%s: file is %llu bytes, too short for %s", path, (unsigned long long)st.st_size, what);
    else {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) lafn_err_set(err, "%s: mmap failed: %s", path, strerror(errno));
        else {
            *map = m;
            *size = (uint64_t)st.st_size;
            rc = 0;
        }
    }
    close(fd);
    return rc;
}

int file_read_all(const char *path, size_t max_bytes, char **buf, size_t *len, lafn_err *err) {
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lafn_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    char *b = NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        lafn_err_set(err, "%s: not a regular file", path);
        goto fail;
    }
    size_t n = (size_t)st.st_size;
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        lafn_err_set(err, "%s: %zu bytes, larger than the %zu bytes allowed", path, n, max_bytes);
        goto fail;
    }
    if (!(b = malloc(n + 1))) {
        lafn_err_set(err, "%s: out of memory for %zu bytes", path, n);
        goto fail;
    }
    if (fread(b, 1, n, f) != n) {
        lafn_err_set(err, "%s: read error after %zu bytes: %s", path, n, strerror(errno));
        goto fail;
    }
    fclose(f);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
fail:
    free(b);
    fclose(f);
    return -1;
}
