/* directory_cmd.c - `postern directory`: the directory's backend and its schema.
 *
 *   postern directory migrate   create the PostgreSQL schema or bring it up to date
 *   postern directory status    which backend, and (PostgreSQL) whether it answers
 *   postern directory export FILE   the whole directory as text (0600: it holds hashes)
 *   postern directory import FILE   add an export's records to this directory
 *
 * The SQLite directory brings its own schema up to date whenever it opens, so migrate
 * has nothing to do there and says so. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

static void print_counts(const char *what, const struct dir_transfer_counts *n)
{
	printf("%s %u domains, %u users, %u aliases, %u sender grants, %u app passwords", what, n->domains, n->users,
		n->aliases, n->grants, n->app_passwords);
	if (n->existing)
		printf(" (%u already there, left as they were)", n->existing);
	printf("\n");
}

/* A new file, 0600 (it holds password hashes), never over an existing one. */
static int directory_export_cmd(struct directory *d, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "postern: cannot create %s: %s%s\n", path, strerror(errno),
			errno == EEXIST ? " (remove it first: an export is never written over a file)" : "");
		return 1;
	}
	FILE *out = fdopen(fd, "w");
	char err[512];
	struct dir_transfer_counts n;
	bool ok = out && directory_export(d, out, &n, err, sizeof(err));
	if (out && fclose(out) != 0 && ok) {
		snprintf(err, sizeof(err), "writing %s: %s", path, strerror(errno));
		ok = false;
	}
	if (!ok) {
		fprintf(stderr, "postern: directory export: %s\n", out ? err : "out of memory");
		unlink(path);
		return 1;
	}
	print_counts("exported", &n);
	return 0;
}

static int directory_import_cmd(struct directory *d, const char *path)
{
	FILE *in = fopen(path, "re");
	if (!in) {
		fprintf(stderr, "postern: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	char err[512];
	struct dir_transfer_counts n;
	bool ok = directory_import(d, in, &n, err, sizeof(err));
	fclose(in);
	if (!ok) {
		fprintf(stderr, "postern: directory import: %s: %s\n", path, err);
		print_counts("imported before that:", &n);
		return 1;
	}
	print_counts("imported", &n);
	return 0;
}

int cli_directory(int argc, char **argv, const struct conf *c, struct directory *d)
{
	if (argc == 2 && strcmp(argv[0], "export") == 0)
		return directory_export_cmd(d, argv[1]);
	if (argc == 2 && strcmp(argv[0], "import") == 0)
		return directory_import_cmd(d, argv[1]);
	if (argc == 1 && strcmp(argv[0], "migrate") == 0)
		return directory_migrate_cmd(c, d);
	if (argc == 1 && strcmp(argv[0], "status") == 0)
		return directory_status_cmd(c, d);
	fprintf(stderr, "usage: postern directory migrate | status | export FILE | import FILE [-c FILE]\n");
	return 2;
}
