/* main.c - the `postern` command: hand the subcommand to cli/.  Run by the name
 * sendmail, mailq or newaliases (the links a mail server installs), it is those
 * commands instead (cli/sendmail.c). */
#include <string.h>

#include "cli/cli.h"

int main(int argc, char **argv)
{
	const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
	const char *name = argc > 0 ? (slash ? slash + 1 : argv[0]) : "postern";
	if (strcmp(name, "sendmail") == 0 || strcmp(name, "mailq") == 0 || strcmp(name, "newaliases") == 0)
		return cli_sendmail(name, argc, argv);
	return cli_main(argc - 1, argv + 1);
}
