/* cli.h - the admin subcommands of the `postern` command. */
#ifndef POSTERN_CLI_CLI_H
#define POSTERN_CLI_CLI_H

/* argv[0] is the subcommand ("serve", "user", ...).  Returns the exit status. */
int cli_main(int argc, char **argv);

#endif
