/* driver: the `lafn` command's subcommands, each a function over argc/argv returning an exit status. */
#ifndef LAFN_DRIVER_H
#define LAFN_DRIVER_H

/* `lafn ask`: answers prompts with the model, printing answers and log-probabilities. */
int driver_ask(int argc, char **argv);

/* `lafn doctor`: checks MPI, parallel HDF5, the BLAS kernel and the model. */
int driver_doctor(int argc, char **argv);

/* Default model path, relative to the working directory (the repository). */
#define DRIVER_DEFAULT_MODEL "models/gemma-3-270m-q4_k_m.gguf"

#endif
