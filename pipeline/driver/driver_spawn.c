/* driver_spawn: locating the stage programs and mpirun, building mpirun's arguments, running a program with its output logged. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"

extern char **environ;

const char *const driver_stage_names[DRIVER_N_STAGES] = {"paraphrase", "probe", "locate", "edit", "eval"};

/* Environment variables every rank needs when set here (docs/DESIGN.md §6 "OpenBLAS kernel": read when OpenBLAS loads). */
static const char *const forwarded_env[] = {"OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OPENBLAS_VERBOSE",
                                            "OMP_NUM_THREADS", "LAFN_MODEL"};

char *driver_bin_dir(lafn_err *err) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0 || (size_t)n >= sizeof exe - 1) {
        lafn_err_set(err, "cannot read /proc/self/exe to find the stage programs: %s", strerror(errno));
        return NULL;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    char *dir = strdup(slash ? exe : ".");
    if (!dir) lafn_err_set(err, "out of memory");
    return dir;
}

char *driver_which(const char *name) {
    const char *path = getenv("PATH");
    if (strchr(name, '/')) return access(name, X_OK) == 0 ? strdup(name) : NULL;
    if (!path) return NULL;
    size_t len = strlen(path), nlen = strlen(name);
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && path[j] != ':') j++;
        size_t dlen = j > i ? j - i : 1;
        char *cand = malloc(dlen + nlen + 2);
        if (!cand) return NULL;
        if (j > i) memcpy(cand, path + i, dlen);
        else cand[0] = '.';
        cand[dlen] = '/';
        memcpy(cand + dlen + 1, name, nlen + 1);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0) return cand;
        free(cand);
        i = j + 1;
    }
    return NULL;
}

void driver_argv_free(char **argv) {
    if (!argv) return;
    for (char **a = argv; *a; a++) free(*a);
    free(argv);
}

int driver_mpirun_argv(int64_t ranks, const char *program, char *const *args, size_t n_args, char ***out,
                       lafn_err *err) {
    size_t n_env = sizeof forwarded_env / sizeof forwarded_env[0];
    size_t cap = 8 + 2 * n_env + 1 + n_args + 1, n = 0;
    char **argv = calloc(cap, sizeof *argv);
    if (!argv) return lafn_err_set(err, "out of memory");
    char np[32];
    snprintf(np, sizeof np, "%lld", (long long)ranks);
    argv[n++] = strdup("mpirun");
    argv[n++] = strdup("-np");
    argv[n++] = strdup(np);
    argv[n++] = strdup("--oversubscribe");
    /* Open MPI binds each rank to one core by default (for 2 ranks or fewer: core 0, core 1), so two runs on
     * one machine share the same cores and a rank's BLAS threads share its one core; the OS places them. */
    argv[n++] = strdup("--bind-to");
    argv[n++] = strdup("none");
    if (geteuid() == 0) argv[n++] = strdup("--allow-run-as-root");
    for (size_t i = 0; i < n_env; i++) {
        if (!getenv(forwarded_env[i])) continue;
        argv[n++] = strdup("-x");
        argv[n++] = strdup(forwarded_env[i]);
    }
    argv[n++] = strdup(program);
    for (size_t i = 0; i < n_args; i++) argv[n++] = strdup(args[i]);
    for (size_t i = 0; i < n; i++) {
        if (argv[i]) continue;
        driver_argv_free(argv);
        return lafn_err_set(err, "out of memory");
    }
    *out = argv;
    return 0;
}

/* Writes a header line naming the command and the time to the log. */
static void log_header(FILE *log, char *const *argv) {
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    fprintf(log, "==== %s:", when);
    for (char *const *a = argv; *a; a++) fprintf(log, " %s", *a);
    fprintf(log, "\n");
    fflush(log);
}

/* Copies everything from fd to echo and log until end of file. */
static void copy_output(int fd, FILE *echo, FILE *log) {
    char buf[8192];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (echo) { fwrite(buf, 1, (size_t)n, echo); fflush(echo); }
        if (log) { fwrite(buf, 1, (size_t)n, log); fflush(log); }
    }
}

int driver_spawn_logged(char *const *argv, const char *log_path, FILE *echo, int *status, lafn_err *err) {
    FILE *log = NULL;
    int fds[2] = {-1, -1}, rc = -1, fa_ok = 0;
    posix_spawn_file_actions_t fa;
    if (log_path && !(log = fopen(log_path, "a"))) {
        lafn_err_set(err, "%s: cannot open the log: %s", log_path, strerror(errno));
        goto fail;
    }
    if (pipe(fds) != 0) { lafn_err_set(err, "pipe: %s", strerror(errno)); goto fail; }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    if (posix_spawn_file_actions_init(&fa) != 0) { lafn_err_set(err, "out of memory"); goto fail; }
    fa_ok = 1;
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    if (log) log_header(log, argv);
    if (echo) fflush(echo);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    if (e != 0) { lafn_err_set(err, "cannot start %s: %s", argv[0], strerror(e)); goto fail; }
    close(fds[1]);
    fds[1] = -1;
    copy_output(fds[0], echo, log);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno == EINTR) continue;
        lafn_err_set(err, "waiting for %s: %s", argv[0], strerror(errno));
        goto fail;
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : 1;
    rc = 0;
fail:
    if (fa_ok) posix_spawn_file_actions_destroy(&fa);
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    if (log) fclose(log);
    return rc;
}

int driver_log_errors(const char *log_path, const char *stage, char *last, size_t cap) {
    char prefix[64], line[1024];
    int failed = 0, this_failed = 0;
    snprintf(prefix, sizeof prefix, "lafn-%s: ", stage);
    last[0] = '\0';
    FILE *f = fopen(log_path, "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "==== ", 5) == 0) { /* lafn run starts another attempt */
            last[0] = '\0';
            this_failed = 0;
        } else if (!this_failed && strncmp(line, prefix, strlen(prefix)) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(last, cap, "%s", line + strlen(prefix));
            this_failed = 1;
            failed++;
        }
    }
    if (f) fclose(f);
    return failed;
}

int driver_mkdir_writable(const char *dir, const char *what, lafn_err *err) {
    size_t len = strlen(dir);
    if (len == 0 || len >= PATH_MAX - 32) return lafn_err_set(err, "%s: '%.80s' is empty or too long", what, dir);
    char path[PATH_MAX];
    memcpy(path, dir, len + 1);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        struct stat st;
        if (stat(path, &st) != 0 && mkdir(path, 0755) != 0 && errno != EEXIST)
            return lafn_err_set(err, "%s: cannot create '%s': %s", what, path, strerror(errno));
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return lafn_err_set(err, "%s: '%s' exists and is not a folder", what, path);
        *p = c;
        if (c == '\0') break;
    }
    snprintf(path, sizeof path, "%s/.lafn-write-test-%ld", dir, (long)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return lafn_err_set(err, "%s: '%s' is not writable: %s", what, dir, strerror(errno));
    close(fd);
    unlink(path);
    return 0;
}
