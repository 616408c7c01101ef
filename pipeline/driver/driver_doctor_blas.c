/* driver_doctor_blas: `lafn doctor`'s BLAS line — the kernel in use, and whether the CPU's faster kernel computes correctly and how much faster it is. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/lafn_clock.h"
#include "driver.h"

/* OpenBLAS extensions (declared in its cblas.h on Debian, repeated here to stay header-agnostic). */
char *openblas_get_corename(void);
char *openblas_get_config(void);
int openblas_get_num_threads(void);

/* The check's product: a batch of 64 prompt tokens through a 640 -> 2048 projection (Gemma 3 270M's FFN). */
enum { GEMM_M = 64, GEMM_K = 640, GEMM_N = 2048 };
#define GEMM_MAX_ERROR 1e-4 /* error / sum_k |a_ik b_kj|: fp32 rounding over K = 640 stays far below */

/* 1 if /proc/cpuinfo lists the CPU flag. */
static int cpu_has_flag(const char *flag) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char line[8192];
    int found = 0;
    size_t n = strlen(flag);
    while (!found && fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0) continue;
        for (char *p = strstr(line, flag); p && !found; p = strstr(p + 1, flag))
            found = (p[-1] == ' ' || p[-1] == '\t') && (p[n] == ' ' || p[n] == '\n');
        break;
    }
    fclose(f);
    return found;
}

/* The fastest OpenBLAS kernel the CPU's flags allow, or NULL. */
static const char *cpu_best_kernel(void) {
    return cpu_has_flag("avx512_bf16") ? "Cooperlake"
           : cpu_has_flag("avx512f")   ? "SkylakeX"
           : cpu_has_flag("avx2")      ? "Haswell"
                                       : NULL;
}

int driver_doctor_gemm_check(driver_gemm_check *out) {
    size_t na = (size_t)GEMM_M * GEMM_K, nb = (size_t)GEMM_K * GEMM_N, nc = (size_t)GEMM_M * GEMM_N;
    float *a = malloc(na * sizeof *a), *b = malloc(nb * sizeof *b), *c = malloc(nc * sizeof *c);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return -1;
    }
    unsigned s = 12345u;
    for (size_t i = 0; i < na + nb; i++) {
        s = s * 1664525u + 1013904223u;
        float x = (float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
        if (i < na) a[i] = x;
        else b[i - na] = x;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, GEMM_M, GEMM_N, GEMM_K, 1.0f, a, GEMM_K, b, GEMM_N, 0.0f, c,
                GEMM_N);
    double worst = 0.0;
    for (int i = 0; i < GEMM_M; i++)
        for (int j = 0; j < GEMM_N; j++) {
            double ref = 0.0, mag = 0.0;
            for (int k = 0; k < GEMM_K; k++) {
                double p = (double)a[(size_t)i * GEMM_K + k] * (double)b[(size_t)k * GEMM_N + j];
                ref += p;
                mag += fabs(p);
            }
            double e = fabs((double)c[(size_t)i * GEMM_N + j] - ref) / (mag > 0.0 ? mag : 1.0);
            if (!(e <= worst)) worst = e; /* NaN counts as the worst */
        }
    int reps = 0;
    double t0 = lafn_now_seconds(), t = 0.0;
    while (t < 0.5) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, GEMM_M, GEMM_N, GEMM_K, 1.0f, a, GEMM_K, b, GEMM_N, 0.0f,
                    c, GEMM_N);
        reps++;
        t = lafn_now_seconds() - t0;
    }
    *out = (driver_gemm_check){.max_error = worst, .gflops = 2.0 * GEMM_M * GEMM_N * GEMM_K * reps / t / 1e9};
    snprintf(out->kernel, sizeof out->kernel, "%s", openblas_get_corename());
    free(a);
    free(b);
    free(c);
    return 0;
}

int driver_doctor_blas_child(void) {
    driver_gemm_check g;
    if (driver_doctor_gemm_check(&g) != 0) return 1;
    printf("lafn-doctor-blas %s %.3e %.3f\n", g.kernel, g.max_error, g.gflops);
    return 0;
}

/* Runs `lafn doctor --blas-child` with OPENBLAS_CORETYPE=kernel; 0 and *out filled if it reported. */
static int gemm_check_with(const char *kernel, driver_gemm_check *out) {
    lafn_err err = {{0}};
    char *bin = driver_bin_dir(&err), self[4200], line[512];
    const char *old = getenv("OPENBLAS_CORETYPE");
    char *saved = old ? strdup(old) : NULL;
    FILE *log = tmpfile();
    int status = -1, found = 0;
    if (bin && log) {
        snprintf(self, sizeof self, "%s/lafn", bin);
        char *argv[] = {self, "doctor", "--blas-child", NULL};
        setenv("OPENBLAS_CORETYPE", kernel, 1);
        if (driver_spawn_logged(argv, NULL, log, &status, &err) == 0 && status == 0) {
            rewind(log);
            while (!found && fgets(line, sizeof line, log))
                found = sscanf(line, "lafn-doctor-blas %63s %lf %lf", out->kernel, &out->max_error, &out->gflops) == 3;
        }
        if (saved) setenv("OPENBLAS_CORETYPE", saved, 1);
        else unsetenv("OPENBLAS_CORETYPE");
    }
    free(saved);
    free(bin);
    if (log) fclose(log);
    return found ? 0 : -1;
}

int driver_doctor_blas_probe(driver_blas_probe *p) {
    memset(p, 0, sizeof *p);
    const char *core = openblas_get_corename(), *best = cpu_best_kernel();
    int same_kernels = best && strcasecmp(core, "Zen") == 0 && strcasecmp(best, "Haswell") == 0; /* Zen uses Haswell's */
    if (!best || strcasecmp(core, best) == 0 || same_kernels) return 0;
    snprintf(p->best, sizeof p->best, "%s", best);
    if (driver_doctor_gemm_check(&p->current) != 0) return 0;
    p->tried = 1;
    p->best_ran = gemm_check_with(best, &p->faster) == 0;
    return 0;
}

int driver_doctor_blas(const driver_blas_probe *p) {
    const char *core = openblas_get_corename(), *forced = getenv("OPENBLAS_CORETYPE");
    printf("OpenBLAS  kernel %s, %d thread(s), config: %s%s%s\n", core, openblas_get_num_threads(), openblas_get_config(),
           forced ? "; OPENBLAS_CORETYPE=" : "", forced ? forced : "");
    if (!p->tried) return 0;
    printf("          the CPU supports the %s kernel; ", p->best);
    if (!p->best_ran) {
        printf("it could not be started here (lafn doctor --blas-child failed): keep the current one\n");
        return 0;
    }
    if (strcasecmp(p->faster.kernel, p->best) != 0) {
        printf("this OpenBLAS build ran %s when asked for it: keep the current one\n", p->faster.kernel);
        return 0;
    }
    if (!(p->faster.max_error <= GEMM_MAX_ERROR)) {
        printf("checked here, it MISCOMPUTES (GEMM error %.1e against a double-precision reference,\n"
               "          limit %.0e): keep the current kernel%s\n", p->faster.max_error, GEMM_MAX_ERROR,
               forced ? " and the OPENBLAS_CORETYPE pin" : "");
        return 0;
    }
    printf("checked here: GEMM error %.1e against a double-precision\n"
           "          reference (%s: %.1e), %.2fx the GEMM speed of %s (%.1f vs %.1f GFLOP/s, 64x640x2048)\n",
           p->faster.max_error, core, p->current.max_error, p->faster.gflops / p->current.gflops, core, p->faster.gflops,
           p->current.gflops);
    printf("          to use it: export OPENBLAS_CORETYPE=%s%s%s%s before starting lafn and pass it to\n"
           "          every rank (mpirun -x OPENBLAS_CORETYPE); tests and CI keep the machine's setting\n", p->best,
           forced ? " (instead of the pinned " : "", forced ? forced : "", forced ? ")" : "");
    return 0;
}
