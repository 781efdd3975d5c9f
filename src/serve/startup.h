/* startup.h - what `postern serve` checks and does before it serves: the smarthost
 * credentials, the user to run as, the data directory, the listening sockets and the
 * TLS certificates, then the privilege drop.  `postern check-config` runs the very
 * same steps without keeping anything, so a configuration it calls ok, serve starts,
 * and both say the same words.  Every error names FILE:LINE, the setting and the fix. */
#ifndef POSTERN_SERVE_STARTUP_H
#define POSTERN_SERVE_STARTUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct conf;
struct conf_listener;
struct relay_credentials;

/* Who the server runs as after binding: uid/gid (uid_t)-1 when it stays as it is. */
struct startup_identity {
	bool drop;              /* started as root with user = NAME */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/* Root without `user =` is refused unless run_as_root = yes; a named user must exist. */
bool startup_identity(const struct conf *c, struct startup_identity *id, char *err, size_t errlen);
/* The data directory exists or can be created, is a directory, and belongs to (and is
 * writable by) the user the server will run as.  create: make it (serve). */
bool startup_data_dir(const struct conf *c, const struct startup_identity *id, bool create, char *err, size_t errlen);
/* A listening socket for the listener (non-blocking, close-on-exec), or -1. */
int startup_listen(const struct conf *c, const struct conf_listener *l, char *err, size_t errlen);
/* The [relay] credentials file, read (before dropping root). */
bool startup_relay_credentials(const struct conf *c, struct relay_credentials *rc, char *err, size_t errlen);
/* No new privileges, an empty capability bounding set, then the user of `id`. */
bool startup_drop_privileges(const struct startup_identity *id, char *err, size_t errlen);

/* The process's directory backend from [directory] (directory_configure), before the
 * first directory_open: serve and the admin commands alike. */
void startup_directory(const struct conf *c);

/* check-config: every step above (the TLS contexts too), nothing kept; each error is
 * passed to report.  bind_ports false (check-config --no-bind): the listening sockets
 * are not tried (socket activation: systemd holds the ports).  Returns the number of
 * errors. */
unsigned startup_check(const struct conf *c, bool bind_ports, void (*report)(void *arg, const char *msg), void *arg);

#endif
