/* main.c - the `postern` command: hand the subcommand to cli/. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc - 1, argv + 1);
}
