/* diag.h - the diagnostics subcommands: `postern explain` and `postern doctor`.
 * argv[0] is the subcommand name, options follow.  Each returns the exit status. */
#ifndef POSTERN_DIAG_DIAG_H
#define POSTERN_DIAG_DIAG_H

int diag_explain_main(int argc, char **argv);
int diag_doctor_main(int argc, char **argv);

#endif
