/* driver_doctor: `lafn doctor` — checks mpirun (2 ranks), the stage programs, MPI, parallel HDF5, the BLAS kernel (driver_doctor_blas.c) and the model. */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "driver.h"
#include "model/model.h"

static int doctor_mpi(void) {
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0, size = 0;
    MPI_Get_library_version(version, &len);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    version[strcspn(version, "\n")] = '\0';
    printf("MPI       %s; %d rank(s) in this process group\n", version, size);
    return 0;
}

/* Creates, writes collectively and reopens a small file through the MPI-IO driver. */
static int doctor_hdf5(void) {
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
#ifdef H5_HAVE_PARALLEL
    char path[] = "/tmp/lafn-doctor-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { printf("HDF5      %u.%u.%u parallel; FAILED: cannot create a temporary file\n", maj, min, rel); return 1; }
    close(fd);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, MPI_INFO_NULL);
    hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    int ok = file >= 0 && H5Fclose(file) >= 0;
    H5Pclose(fapl);
    unlink(path);
    printf("HDF5      %u.%u.%u, parallel (MPI-IO) file create: %s\n", maj, min, rel, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
#else
    printf("HDF5      %u.%u.%u is a serial build; lafn needs the openmpi flavour (libhdf5-openmpi-dev)\n", maj, min, rel);
    return 1;
#endif
}

static int doctor_model(const char *path) {
    lafn_err err = {{0}};
    model *m = NULL;
    if (model_load(&m, path, MPI_COMM_NULL, &err) != 0) {
        printf("model     FAILED: %s\n", err.msg);
        return 1;
    }
    const model_config *c = &m->cfg;
    printf("model     %s: %s, %.1f MB, sha256 %s\n          L=%d D=%d F=%d H=%d K=%d E=%d V=%d, %.1f M fp32 weights in memory\n",
           m->path, m->name, m->file_bytes / 1e6, m->sha256, c->n_layer, c->d_model, c->d_ffn, c->n_head,
           c->n_head_kv, c->head_dim, c->vocab, m->block_floats / 1e6);
    model_free(m);
    return 0;
}

/* The hidden child mode of the mpirun check: every rank counts itself; rank 0 prints the total. */
static int doctor_mpi_child(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int size = 0, rank = 0, one = 1, sum = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("lafn-doctor-ranks %d %d\n", size, sum);
    MPI_Finalize();
    return 0;
}

/* Starts `mpirun -np 2 lafn doctor --mpi-child` (before this process is an MPI process itself). */
static int doctor_mpirun(void) {
    lafn_err err = {{0}};
    char *mpirun = driver_which("mpirun"), *bin = driver_bin_dir(&err), **argv = NULL, self[4200];
    int status = -1, size = 0, sum = 0;
    char *args[] = {"doctor", "--mpi-child"};
    FILE *out = tmpfile();
    if (!mpirun) snprintf(err.msg, sizeof err.msg, "mpirun is not on PATH (install openmpi-bin)");
    else if (bin && out) {
        snprintf(self, sizeof self, "%s/lafn", bin);
        if (driver_mpirun_argv(2, self, args, 2, &argv, &err) == 0 &&
            driver_spawn_logged(argv, NULL, out, &status, &err) == 0) {
            char line[512];
            rewind(out);
            while (fgets(line, sizeof line, out))
                if (sscanf(line, "lafn-doctor-ranks %d %d", &size, &sum) == 2) break;
        }
    }
    int ok = status == 0 && size == 2 && sum == 2;
    printf("mpirun    %s -np 2: %s", mpirun ? mpirun : "(missing)", ok ? "2 ranks started and talked" : "FAILED");
    if (!ok && err.msg[0]) printf(" (%s)", err.msg);
    else if (!ok) printf(" (exit status %d, %d rank(s) reported); try: mpirun -np 2 --oversubscribe %s doctor --mpi-child",
                         status, size, bin ? self : "lafn");
    printf("\n");
    driver_argv_free(argv);
    if (out) fclose(out);
    free(mpirun);
    free(bin);
    return ok ? 0 : 1;
}

/* The stage programs lafn run starts must sit next to the lafn binary. */
static int doctor_stages(void) {
    lafn_err err = {{0}};
    char *bin = driver_bin_dir(&err);
    int missing = 0;
    printf("stages   ");
    for (int i = 0; i < DRIVER_N_STAGES; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/lafn-%s", bin ? bin : ".", driver_stage_names[i]);
        int ok = bin && access(path, X_OK) == 0;
        missing += !ok;
        printf(" lafn-%s %s%s", driver_stage_names[i], ok ? "ok" : "MISSING", i + 1 < DRIVER_N_STAGES ? "," : "");
    }
    printf(" (in %s)\n", bin ? bin : err.msg);
    free(bin);
    return missing ? 1 : 0;
}

int driver_doctor(int argc, char **argv) {
    const char *model_path = DRIVER_DEFAULT_MODEL;
    if (argc == 2 && !strcmp(argv[1], "--mpi-child")) return doctor_mpi_child(argc, argv);
    if (argc == 2 && !strcmp(argv[1], "--blas-child")) return driver_doctor_blas_child();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else { fprintf(stderr, "usage: lafn doctor [--model PATH]\n"); return 2; }
    }
    fflush(stdout);
    driver_blas_probe blas;
    int failures = doctor_mpirun() + doctor_stages() + driver_doctor_blas_probe(&blas);
    MPI_Init(&argc, &argv);
    failures += doctor_mpi() + doctor_hdf5() + driver_doctor_blas(&blas) + doctor_model(model_path);
    MPI_Finalize();
    printf("%s\n", failures ? "doctor: problems found (see above)" : "doctor: all checks passed");
    return failures ? 1 : 0;
}
