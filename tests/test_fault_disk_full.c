/* test_fault_disk_full: `lafn run` into a small tmpfs that fills up — a clear error, committed shards kept, resume once space is freed. */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "h5/h5out.h"
#include "lafn_runner.h"
#include "testutil_lafn.h"
#include "output_compare.h"
#include "testutil.h"

#define N_FACTS 6
#define SKIP 77 /* ctest's SKIP_RETURN_CODE for this test */

static const char *const stages[] = {"probe", "locate", "edit", "eval"};

static char tmp[PATH_MAX / 2], mnt[PATH_MAX / 2 + 16], run_dir[PATH_MAX / 2 + 32], ref_dir[PATH_MAX / 2 + 16],
    cfg[PATH_MAX / 2 + 16], filler[PATH_MAX / 2 + 32];

/* lafn run --resume [--stages STAGES] into run_dir; returns the exit status, *out the output. */
static int run(const char *stages_opt, char **out) {
    char out_path[PATH_MAX], o_dir[PATH_MAX];
    snprintf(out_path, sizeof out_path, "%s/out.txt", tmp);
    snprintf(o_dir, sizeof o_dir, "run.output_dir=%s", run_dir);
    char *argv[] = {NULL, "run", cfg, o_dir, "--resume", stages_opt ? "--stages" : NULL, (char *)stages_opt, NULL};
    return testutil_lafn_run(argv, out_path, out);
}

/* Fills the tmpfs with a file so that `room` bytes stay free there. */
static void fill_leaving(double room) {
    struct statvfs st;
    double avail = statvfs(mnt, &st) == 0 ? (double)st.f_bavail * (double)st.f_frsize : 0;
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int ok = fd >= 0 && avail > room && posix_fallocate(fd, 0, (off_t)(avail - room)) == 0;
    if (fd >= 0) close(fd);
    CHECK(ok, "cannot fill %s to leave %.0f of %.0f bytes free", mnt, room, avail);
}

/* The committed shards of stage with their bytes, to see them kept as they were. */
typedef struct {
    char *path[64], *bytes[64];
    size_t len[64], n;
} shard_copy;

static void shards_take(shard_copy *c, const char *stage) {
    h5out_shard *s = NULL;
    size_t n = 0;
    lafn_err err = {{0}};
    c->n = 0;
    CHECK(h5out_shard_list(run_dir, stage, &s, &n, &err) == 0, "%s", err.msg);
    for (size_t i = 0; i < n && c->n < 64; i++, c->n++) {
        c->path[c->n] = strdup(s[i].path);
        c->bytes[c->n] = testutil_read_file(s[i].path, &c->len[c->n]);
        hid_t f = H5I_INVALID_HID;
        H5E_BEGIN_TRY { f = H5Fopen(s[i].path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
        CHECK(f >= 0, "committed shard %s is not whole", s[i].path);
        if (f >= 0) H5Fclose(f);
    }
    h5out_shards_free(s, n);
}

/* Each shard taken is still there with the same bytes; frees c. */
static void shards_kept(shard_copy *c) {
    for (size_t i = 0; i < c->n; i++) {
        size_t n = 0;
        char *now = testutil_read_file(c->path[i], &n);
        CHECK(now && c->bytes[i] && n == c->len[i] && memcmp(now, c->bytes[i], n) == 0,
              "committed shard %s was not kept as it was", c->path[i]);
        free(now);
        free(c->path[i]);
        free(c->bytes[i]);
    }
    c->n = 0;
}

/* Prints the driver's final error line of out, so the log shows what a user sees. */
static void show_error(const char *out) {
    const char *at = strstr(out, "lafn run: ");
    if (at) printf("  %.*s\n", (int)strcspn(at, "\n"), at);
}

/* The disk fills while probe writes its shards: the error names a shard and a full disk; what was committed is
 * kept and resumed once the filler is gone. */
static void test_shards_fill_disk(void) {
    char *out = NULL, said[PATH_MAX + 64];
    fill_leaving(170e3); /* two or three of probe's ~50 kB shards */
    int st = run(NULL, &out);
    snprintf(said, sizeof said, "No space left on device — the disk holding %s is full", run_dir);
    show_error(out);
    CHECK(st != 0 && strstr(out, said) && strstr(out, "probe.shard-") && strstr(out, "the committed shards are kept"),
          "a full disk while writing shards: status %d, expected a message naming a shard and '%s':\n%s", st, said, out);
    char probe_h5[PATH_MAX + 48];
    snprintf(probe_h5, sizeof probe_h5, "%s/probe.h5", run_dir);
    CHECK(access(probe_h5, F_OK) != 0, "probe.h5 must not exist after the failure");
    free(out);
    shard_copy kept;
    shards_take(&kept, "probe");
    size_t n_kept = kept.n;
    CHECK(n_kept >= 1 && n_kept < N_FACTS, "%zu of %d probe shards committed before the disk was full", n_kept, N_FACTS);
    CHECK(unlink(filler) == 0, "cannot remove the filler %s", filler);
    st = run(NULL, &out);
    CHECK(st == 0 && lafn_runner_resumed(out, "probe") == (long)n_kept,
          "after freeing space: status %d, probe must resume its %zu committed facts:\n%s", st, n_kept, out);
    free(out);
    shards_kept(&kept);
}

/* The disk is too full for eval's merge: eval.h5 is not made, the error says so, its shards stay; then it merges. */
static void test_merge_fills_disk(void) {
    char *out = NULL, path[PATH_MAX + 64];
    const char *gone[] = {"eval.h5", "summary.json", "summary.csv"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", run_dir, gone[i]);
        CHECK(unlink(path) == 0, "cannot remove %s", path);
    }
    shard_copy kept;
    shards_take(&kept, "eval");
    fill_leaving(60e3); /* less than eval's shards take */
    int st = run("eval", &out);
    snprintf(path, sizeof path, "%s/eval.h5: not enough space to merge", run_dir);
    show_error(out);
    CHECK(st != 0 && strstr(out, path) && strstr(out, "is full"), "eval's merge on a full disk: status %d:\n%s", st, out);
    snprintf(path, sizeof path, "%s/eval.h5", run_dir);
    CHECK(access(path, F_OK) != 0, "eval.h5 must not exist after the failed merge");
    free(out);
    CHECK(unlink(filler) == 0, "cannot remove the filler %s", filler);
    st = run("eval", &out);
    CHECK(st == 0 && lafn_runner_resumed(out, "eval") == N_FACTS, "eval after freeing space: status %d:\n%s", st, out);
    free(out);
    shards_kept(&kept);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/lafn-test-full-XXXXXX");
    if (!mkdtemp(tmp) || !testutil_lafn_binary()) {
        fprintf(stderr, "test_fault_disk_full: no temporary folder or no lafn binary beside tests/\n");
        return 1;
    }
    snprintf(mnt, sizeof mnt, "%s/mnt", tmp);
    snprintf(run_dir, sizeof run_dir, "%s/run", mnt);
    snprintf(ref_dir, sizeof ref_dir, "%s/ref", tmp);
    snprintf(cfg, sizeof cfg, "%s/full.cfg", tmp);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    if (mkdir(mnt, 0755) != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
        printf("test_fault_disk_full: SKIPPED: cannot mount a 4 MiB tmpfs at %s (%s); it needs root and "
               "CAP_SYS_ADMIN (a container without them cannot run it)\n", mnt, strerror(errno));
        rmdir(mnt);
        rmdir(tmp);
        return SKIP;
    }
    lafn_runner_tiny_cfg(cfg, N_FACTS, "");
    char *out = NULL, cmd[3 * PATH_MAX];
    int st = run(NULL, &out); /* the uninterrupted run, in the same folder (part of every file's provenance) */
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s' && rm -rf '%s'", run_dir, ref_dir, run_dir);
    CHECK(st == 0 && system(cmd) == 0, "uninterrupted run: status %d:\n%s", st, out);
    free(out);
    test_shards_fill_disk();
    test_merge_fills_disk();
    output_compare_run(ref_dir, run_dir, stages, sizeof stages / sizeof stages[0], "after the disk was full");
    CHECK(umount(mnt) == 0, "cannot unmount %s: %s", mnt, strerror(errno));
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (testutil_failures == 0 && system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    return testutil_finish("test_fault_disk_full");
}
