/* file_map: opens, checks and memory-maps a model file read-only. */
#include "file_map.h"

#include <errno.h>
#include <fcntl.h>
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
