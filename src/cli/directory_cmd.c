/* directory_cmd.c - `postern directory`: the directory's backend and its schema.
 *
 *   postern directory migrate   create the PostgreSQL schema or bring it up to date
 *   postern directory status    which backend, and (PostgreSQL) whether it answers
 *
 * The SQLite directory brings its own schema up to date whenever it opens, so migrate
 * has nothing to do there and says so. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "directory/directory.h"

static int directory_migrate_cmd(const struct conf *c, struct directory *d)
{
	char err[512];
	int from, to;
	if (c->directory_backend != CONF_DIRECTORY_POSTGRESQL) {
		printf("the directory is SQLite (%s/directory.db): its schema is brought up to date whenever it opens; "
			"nothing to do\n", c->data_dir);
		return 0;
	}
	if (!directory_migrate(d, &from, &to, err, sizeof(err))) {
		fprintf(stderr, "postern: directory migrate: %s\n", err);
		return 1;
	}
	if (from == to)
		printf("the PostgreSQL directory's schema is at version %d, the current one: nothing to do\n", to);
	else
		printf("the PostgreSQL directory's schema went from version %d to %d\n", from, to);
	return 0;
}

/* A lookup that must reach the backend: the domain list. */
static void count_domain(void *arg, const char *domain)
{
	(void)domain;
	(*(unsigned *)arg)++;
}

static int directory_status_cmd(const struct conf *c, struct directory *d)
{
	unsigned domains = 0;
	if (directory_domain_list(d, count_domain, &domains) != DIR_OK) {
		fprintf(stderr, "postern: the %s directory does not answer: %s\n", directory_backend_name(),
			directory_error(d));
		return 1;
	}
	printf("backend %s%s%s: answers, %u domain%s\n", directory_backend_name(),
		c->directory_backend == CONF_DIRECTORY_POSTGRESQL ? "" : " in ",
		c->directory_backend == CONF_DIRECTORY_POSTGRESQL ? "" : c->data_dir, domains, domains == 1 ? "" : "s");
	return 0;
}

int cli_directory(int argc, char **argv, const struct conf *c, struct directory *d)
{
	if (argc == 1 && strcmp(argv[0], "migrate") == 0)
		return directory_migrate_cmd(c, d);
	if (argc == 1 && strcmp(argv[0], "status") == 0)
		return directory_status_cmd(c, d);
	fprintf(stderr, "usage: postern directory migrate|status [-c FILE]\n");
	return 2;
}
