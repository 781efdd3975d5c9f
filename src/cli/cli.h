/* cli.h - the admin subcommands of the `postern` command. */
#ifndef POSTERN_CLI_CLI_H
#define POSTERN_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* argv[0] is the subcommand ("serve", "user", ...).  Returns the exit status. */
int cli_main(int argc, char **argv);
/* Run as sendmail, mailq or newaliases (name: the basename of argv[0]); argv[0] is
 * that name (sendmail.c). */
int cli_sendmail(const char *name, int argc, char **argv);

struct conf;
/* `postern check-config` (config_cmd.c): load_error is what the file's reading said
 * (every error, one a line), or NULL when it read well and the start-up steps are
 * checked (the listening sockets too unless bind_ports is false: --no-bind).  `postern config show|man` (config_cmd.c); c may be NULL for man.  The
 * subcommand table's rows (cli.c), for postern(8). */
int cli_check_config(const struct conf *c, const char *load_error, bool bind_ports);
int cli_config(int argc, char **argv, const struct conf *c, bool all);
size_t cli_subcommand_count(void);
const char *cli_subcommand_usage(size_t i);

/* `postern cluster status` and `postern queue list --cluster` (cluster_cmd.c): every
 * node of the registry asked over its control listener. */
int cli_cluster(int argc, char **argv, const struct conf *c);
int cli_queue_cluster(const struct conf *c);
/* `postern queue ...` (queue_cmd.c); argv[0] is the queue verb. */
int cli_queue(int argc, char **argv, const struct conf *c, bool json, const char *sender, bool bounce);

/* `postern events list --account ADDRESS ...` (events_cmd.c); argv[0] is "list". */
int cli_events(int argc, char **argv, const struct conf *c, const char *sender, bool json);

/* `postern spf check IP SENDER [HELO]` (spf_cmd.c); argv[0] is the verb. */
int cli_spf(int argc, char **argv, const struct conf *c);
struct directory;
/* `postern dkim ...` (dkim_cmd.c); argv[0] is the dkim verb. */
int cli_dkim(int argc, char **argv, const struct conf *c, struct directory *d);
/* Every DKIM key (domain NULL) or a domain's, as dkim_keys_list: the files, or with the
 * PostgreSQL directory its rows (path "postgresql"). */
struct dkim_key_info;
bool cli_dkim_keys_each(const struct conf *c, const char *domain, void (*cb)(void *arg, const struct dkim_key_info *k),
	void *arg, char *err, size_t errlen);
/* postern directory migrate|status (directory_cmd.c). */
int cli_directory(int argc, char **argv, const struct conf *c, struct directory *d);

struct directory;
/* `postern import dovecot-passwd FILE | postfix-virtual FILE` (import.c); argv[0] is the format. */
int cli_import(int argc, char **argv, const struct conf *c, struct directory *d);
/* `postern dns DOMAIN | check DOMAIN` (dns_cmd.c). */
int cli_dns(int argc, char **argv, const struct conf *c, struct directory *d, bool json);

struct dir_user;
/* `postern user limit ADDRESS [--messages-per-hour N] [--recipients-per-day N] [--clear]`
 * and `postern user show ADDRESS` (user_limit.c); argv[0] is "limit". */
int cli_user_limit(int argc, char **argv, const struct conf *c, struct directory *d);
int cli_user_show(const struct conf *c, struct directory *d, const char *address);
/* `postern user admin ADDRESS yes|no` (user_limit.c). */
int cli_user_admin(struct directory *d, const char *address, const char *yes_no);
/* `postern user add ... [--home NODE]`'s second step: the new user's home node (NODE,
 * else [cluster] node, else none); `postern user home ADDRESS NODE|none` (user_limit.c). */
int cli_user_add_home(const struct conf *c, struct directory *d, const char *address, const char *home);
int cli_user_home(struct directory *d, const char *address, const char *node);
/* `postern user unblock ADDRESS|IP` over the control socket (user_limit.c). */
int cli_user_unblock(const struct conf *c, const char *key);
int cli_user_blocked(const struct conf *c);
/* "messages/hour 300 (default), recipients/day 50 (own)" for u. */
void cli_user_limits_words(const struct conf *c, const struct dir_user *u, char *out, size_t outsz);

#endif
