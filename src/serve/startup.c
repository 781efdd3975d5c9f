/* startup.c - the start-up steps shared by serve and check-config (see startup.h). */
#include "serve/startup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/node_token.h"
#include "conf/conf.h"
#include "directory/directory.h"
#include "delivery/remote.h"
#include "serve/cluster.h"
#include "serve/control.h"
#include "net/activation.h"
#include "net/tls.h"
#include "util/log.h"
#include "web/web.h"

#define LISTEN_BACKLOG 511

bool startup_identity(const struct conf *c, struct startup_identity *id, char *err, size_t errlen)
{
	char where[CONF_PATH_MAX + 64];
	memset(id, 0, sizeof(*id));
	id->uid = (uid_t)-1;
	id->gid = (gid_t)-1;
	if (c->user[0]) {
		struct passwd *pw = getpwnam(c->user);
		if (!pw) {
			snprintf(err, errlen, "%s: there is no user \"%s\" on this system: create it (useradd --system "
				"--no-create-home --shell /usr/sbin/nologin %s) or name an existing unprivileged user",
				conf_where(c, "server", "user", where, sizeof(where)), c->user, c->user);
			return false;
		}
		if (pw->pw_uid == 0) {
			snprintf(err, errlen, "%s: \"%s\" is root: name an unprivileged user (e.g. postern), or remove "
				"the setting and set run_as_root = yes if the server must keep root",
				conf_where(c, "server", "user", where, sizeof(where)), c->user);
			return false;
		}
		if (geteuid() == 0) {
			id->drop = true;
			id->uid = pw->pw_uid;
			id->gid = pw->pw_gid;
			snprintf(id->name, sizeof(id->name), "%s", pw->pw_name);
		}
		return true;
	}
	if (geteuid() == 0 && !c->run_as_root) {
		/* Invariant 7: after binding as root, run as an unprivileged user. */
		snprintf(err, errlen, "%s: not set, and the server was started as root: it refuses to serve as root "
			"(a flaw in any session would own the machine); set user = <an unprivileged account that owns "
			"data_dir>, e.g. user = postern after useradd --system postern, or set run_as_root = yes in "
			"[server] if it really must keep root", conf_where(c, "server", "user", where, sizeof(where)));
		return false;
	}
	return true;
}

/* Can the user of `id` (or the calling user) write into the directory st describes? */
static bool owner_can_write(const struct stat *st, const struct startup_identity *id, const char *path)
{
	if (id->drop)
		return st->st_uid == id->uid && (st->st_mode & S_IWUSR) && (st->st_mode & S_IXUSR);
	return access(path, W_OK | X_OK) == 0;
}

bool startup_data_dir(const struct conf *c, const struct startup_identity *id, bool create, char *err, size_t errlen)
{
	char where[CONF_PATH_MAX + 64];
	conf_where(c, "server", "data_dir", where, sizeof(where));
	const char *dir = c->data_dir;
	const char *who = id->drop ? id->name : "the user running postern";
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s: cannot look at %s: %s: fix the path or its permissions", where, dir, strerror(errno));
			return false;
		}
		char parent[CONF_PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", dir);
		const char *up = dirname(parent);
		struct stat pst;
		bool up_exists = stat(up, &pst) == 0;
		if (!up_exists || !S_ISDIR(pst.st_mode)) {
			snprintf(err, errlen, "%s: %s does not exist and cannot be created: its parent %s %s: create it "
				"(mkdir -p %s) or choose another path", where, dir, up,
				up_exists ? "is not a directory" : "does not exist", up_exists ? dir : up);
			return false;
		}
		if (access(up, W_OK | X_OK) != 0) {
			snprintf(err, errlen, "%s: %s does not exist and cannot be created: %s is not writable (%s): "
				"create it yourself (mkdir %s%s%s) or choose another path", where, dir, up, strerror(errno), dir,
				id->drop ? " && chown " : "", id->drop ? id->name : "");
			return false;
		}
		if (!create)
			return true;   /* serve makes it */
		if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: cannot create %s: %s", where, dir, strerror(errno));
			return false;
		}
		if (id->drop && chown(dir, id->uid, id->gid) != 0) {
			snprintf(err, errlen, "%s: cannot give %s to %s: %s", where, dir, id->name, strerror(errno));
			return false;
		}
		return true;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s is not a directory: point data_dir at a directory (it is created if missing)", where, dir);
		return false;
	}
	if (id->drop && st.st_uid != id->uid) {
		snprintf(err, errlen, "%s: %s belongs to uid %u, not to %s, the user the server runs as: "
			"run chown -R %s %s", where, dir, (unsigned)st.st_uid, id->name, id->name, dir);
		return false;
	}
	if (!owner_can_write(&st, id, dir)) {
		snprintf(err, errlen, "%s: %s is not writable by %s: run chmod u+rwx %s", where, dir, who, dir);
		return false;
	}
	return true;
}

int startup_listen(const struct conf *c, const struct conf_listener *l, char *err, size_t errlen)
{
	int passed = net_activation_fd(l->name);   /* socket activation: systemd bound it */
	if (passed >= 0) {
		log_event(LOG_INFO, "socket_activated", "listener=%s fd=%d", l->name, passed);
		return passed;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, l->address, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)l->port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, l->address, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)l->port);
		sl = sizeof(*s6);
	} else {
		snprintf(err, errlen, "%s:%u: [listener %s] address: \"%s\" is not an IP address", c->path, l->line, l->name, l->address);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		int e = errno;
		const char *fix = e == EADDRINUSE ? "another program listens there (see ss -ltnp): stop it or choose another port"
			: e == EACCES ? "ports below 1024 need root: start postern as root (it drops to user = after binding) or use a port above 1023"
			: e == EADDRNOTAVAIL ? "no interface of this machine has that address: use one it has (ip -br addr), or 0.0.0.0 / ::"
			: "check the address and port";
		snprintf(err, errlen, "%s:%u: [listener %s]: cannot listen on %s port %u: %s: %s", c->path, l->line, l->name,
			l->address, l->port, strerror(e), fix);
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

bool startup_relay_credentials(const struct conf *c, struct relay_credentials *rc, char *err, size_t errlen)
{
	char e[700], where[CONF_PATH_MAX + 64];
	if (relay_credentials_load(c->relay_credentials, rc, e, sizeof(e)))
		return true;
	/* "[relay] credentials: ..." from the loader: put the file and line in front. */
	const char *rest = strncmp(e, "[relay] credentials: ", 21) == 0 ? e + 21 : e;
	snprintf(err, errlen, "%s: %s", conf_where(c, "relay", "credentials", where, sizeof(where)), rest);
	return false;
}

/* Highest capability number this kernel knows (capabilities(7)). */
static int last_capability(void)
{
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
	int last = 40;   /* CAP_CHECKPOINT_RESTORE in Linux 5.9; used when /proc is absent */
	if (f) {
		if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
			last = 40;
		fclose(f);
	}
	return last;
}

/* Started unprivileged with a capability to bind low ports (systemd's
 * AmbientCapabilities=CAP_NET_BIND_SERVICE for User=postern): the ports are bound now,
 * so keep none (capset(2) may always lower the sets; no libcap for two calls). */
static bool drop_capabilities(char *err, size_t errlen)
{
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
		snprintf(err, errlen, "cannot clear the ambient capabilities: %s", strerror(errno));
		return false;
	}
	struct __user_cap_header_struct head = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3];
	memset(none, 0, sizeof(none));
	if (syscall(SYS_capset, &head, none) != 0) {
		snprintf(err, errlen, "cannot drop the capabilities it was started with: %s", strerror(errno));
		return false;
	}
	return true;
}

bool startup_drop_privileges(const struct startup_identity *id, char *err, size_t errlen)
{
	/* No execve can ever grant privileges again (setuid binaries, file capabilities). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
		return false;
	}
	/* Empty the bounding set while we still hold CAP_SETPCAP (root). */
	if (geteuid() == 0) {
		for (int cap = 0, last = last_capability(); cap <= last; cap++)
			if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) {
				snprintf(err, errlen, "cannot drop capability %d from the bounding set: %s", cap, strerror(errno));
				return false;
			}
	}
	if (geteuid() != 0 && !drop_capabilities(err, errlen))
		return false;
	if (!id->drop)
		return true;
	/* Leaving uid 0 clears the permitted and effective capabilities (no keep-caps). */
	if (initgroups(id->name, id->gid) != 0 || setgid(id->gid) != 0 || setuid(id->uid) != 0) {
		snprintf(err, errlen, "cannot switch to user %s: %s", id->name, strerror(errno));
		return false;
	}
	if (setuid(0) == 0) {
		snprintf(err, errlen, "could regain root after switching to %s", id->name);
		return false;
	}
	return true;
}

struct check_run {
	void (*report)(void *, const char *);
	void *arg;
	unsigned errors;
};

static void check_failed(struct check_run *r, const char *msg)
{
	r->errors++;
	r->report(r->arg, msg);
}

/* A port taken by the running Postern of this very data directory is no fault of the
 * configuration (check-config before a restart): its control socket answers. */
static bool own_server_running(const struct conf *c)
{
	char reply[128];
	return control_send(c->data_dir, "ping", reply, sizeof(reply)) != -1;
}

unsigned startup_check(const struct conf *c, bool bind_ports, void (*report)(void *arg, const char *msg), void *arg)
{
	struct check_run r = { report, arg, 0 };
	char err[2048];
	struct relay_credentials rc;
	if (!startup_relay_credentials(c, &rc, err, sizeof(err)))
		check_failed(&r, err);
	explicit_bzero(&rc, sizeof(rc));
	unsigned char secret[NODE_SECRET_MAX];
	size_t secret_len;
	if (!cluster_secret_load(c, secret, &secret_len, err, sizeof(err)))
		check_failed(&r, err);
	explicit_bzero(secret, sizeof(secret));
	struct startup_identity id;
	bool id_ok = startup_identity(c, &id, err, sizeof(err));
	if (!id_ok)
		check_failed(&r, err);
	if (id_ok && !startup_data_dir(c, &id, false, err, sizeof(err)))
		check_failed(&r, err);
	bool running = false, asked = false;
	for (size_t i = 0; bind_ports && i < c->n_listeners; i++) {
		int fd = startup_listen(c, &c->listeners[i], err, sizeof(err));
		if (fd >= 0) {
			close(fd);
			continue;
		}
		if (errno == EADDRINUSE) {
			if (!asked)
				running = own_server_running(c);
			asked = true;
			if (running)
				continue;
		}
		check_failed(&r, err);
	}
	if (conf_wants_tls(c)) {
		struct tls *t = NULL;
		if (!tls_init(&t, c, id.uid, id.gid, true, err, sizeof(err)))
			check_failed(&r, err);
		tls_free(&t);
	}
	/* The account pages' templates: a broken one is named with its file and line. */
	struct web_site *site = web_site_new(c);
	if (site && !web_site_load_app(site, err, sizeof(err)))
		check_failed(&r, err);
	web_site_free(&site);
	return r.errors;
}

void startup_directory(const struct conf *c)
{
	struct directory_config dc = {
		.backend = c->directory_backend == CONF_DIRECTORY_POSTGRESQL ? DIRECTORY_POSTGRESQL : DIRECTORY_SQLITE,
		.pool = (unsigned)c->directory_pool,
		.timeout_ms = (unsigned)(c->directory_timeout * 1000),
	};
	snprintf(dc.connection, sizeof(dc.connection), "%s", c->directory_connection);
	directory_configure(&dc);
}
