/* local.c - sendmail's two ways in (docs/operations.md "sendmail and the local
 * socket"): the local submission socket, a unix socket whose connections the kernel
 * names (SO_PEERCRED, net/), served by the SMTP adapter as trusted local
 * submissions; and the maildrop, the directory where sendmail leaves a message
 * while the server is down.  A pickup thread (never the loop) reads each file there
 * at start and every few seconds and hands it through the very same path: a
 * socketpair whose server end the loop adopts as a local connection with the file
 * owner's uid (the owner is the sender's proof), spoken to by the one SMTP client
 * (delivery/smtp_client.h).  The file goes only after the queue committed it. */
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "delivery/smtp_client.h"
#include "net/client.h"
#include "net/server.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "serve/service.h"
#include "serve/startup.h"
#include "util/fileio.h"
#include "util/log.h"

#define MAILDROP_SCAN_S 3              /* how often the maildrop is looked at */
#define MAILDROP_BATCH 256             /* files handled per look */

struct local_submit {
	struct service *srv;
	struct conf_listener listener;   /* "local": role local, address = the socket's path */
	char path[CONF_PATH_MAX];
	bool bound;
	unsigned server_uid;             /* root and this uid may send as anyone */
	char maildrop[CONF_PATH_MAX];
	bool maildrop_ok;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct net_cancel *cancel;       /* wakes the pickup's reads at shutdown */
};

void local_user_name(unsigned uid, char *out, size_t outsz)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name[0])
		snprintf(out, outsz, "%s", res->pw_name);
	else
		snprintf(out, outsz, "uid%u", uid);
}

bool local_sender_allowed(const struct service *srv, unsigned uid, const char *name, const struct policy_facts *f,
	char *own, size_t ownsz)
{
	const char *domain = conf_local_domain(srv->conf);
	snprintf(own, ownsz, "%s@%s", name, domain);
	if (uid == 0 || (srv->local && uid == srv->local->server_uid))
		return true;
	/* The null sender cannot be anyone's: auto-replies and vacation programs use it. */
	if (f->null_sender)
		return true;
	return strcmp(f->local, name) == 0 && strcasecmp(f->domain, domain) == 0;
}

/* A directory owned by the server's user, made if missing, with this mode. */
static bool own_dir(const char *path, mode_t mode, const struct startup_identity *id, char *err, size_t errlen)
{
	if (mkdir(path, mode) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s: create it (mkdir -p %s) or change the setting", path,
			strerror(errno), path);
		return false;
	}
	struct stat st;
	if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory: remove it or change the setting", path);
		return false;
	}
	if (id->drop && st.st_uid != id->uid && chown(path, id->uid, id->gid) != 0) {
		snprintf(err, errlen, "cannot give %s to %s: %s", path, id->name, strerror(errno));
		return false;
	}
	if ((st.st_mode & 07777) != mode && chmod(path, mode) != 0) {
		snprintf(err, errlen, "cannot set mode %04o on %s: %s", (unsigned)mode, path, strerror(errno));
		return false;
	}
	return true;
}

/* Is a server listening on path already (then leave it be)? */
static bool socket_answers(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool yes = fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	if (fd >= 0)
		close(fd);
	return yes;
}

/* The socket: mode 0666, since any local user may hand in mail; who they are is the
 * kernel's word (SO_PEERCRED), and what they may send as is local_sender_allowed. */
static int bind_socket(struct local_submit *ls, const struct startup_identity *id, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(ls->path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "[server] local_socket: %s is longer than a unix socket path may be (%zu): choose a shorter one",
			ls->path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	char parent[CONF_PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", ls->path);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (!own_dir(parent, 0755, id, err, errlen))
			return -1;
	}
	if (socket_answers(ls->path)) {
		snprintf(err, errlen, "[server] local_socket: another server listens on %s: stop it, or give this one another "
			"local_socket", ls->path);
		return -1;
	}
	unlink(ls->path);   /* a socket left by a server that stopped */
	memcpy(sun.sun_path, ls->path, strlen(ls->path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || chmod(ls->path, 0666) != 0 ||
		listen(fd, 128) != 0) {
		snprintf(err, errlen, "[server] local_socket: cannot listen on %s: %s", ls->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

bool local_start_privileged(struct service *srv, const struct startup_identity *id, char *err, size_t errlen)
{
	struct local_submit *ls = calloc(1, sizeof(*ls));
	if (!ls) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	srv->local = ls;
	ls->srv = srv;
	ls->server_uid = id->drop ? (unsigned)id->uid : (unsigned)geteuid();
	pthread_mutex_init(&ls->mu, NULL);
	pthread_cond_init(&ls->cv, NULL);
	conf_maildrop_dir(srv->conf, ls->maildrop, sizeof(ls->maildrop));
	/* 1733: anyone may create a file, nobody but the server may list or take one. */
	char failed[CONF_PATH_MAX + 16];
	snprintf(failed, sizeof(failed), "%s/failed", ls->maildrop);
	ls->maildrop_ok = own_dir(ls->maildrop, 01733, id, err, errlen) && own_dir(failed, 0700, id, err, errlen);
	if (!ls->maildrop_ok)
		log_event(LOG_ERR, "maildrop_error", "dir=%s error=\"%s\" hint=\"sendmail cannot leave mail while the server is down\"",
			ls->maildrop, err);
	if (!conf_local_socket(srv->conf, ls->path, sizeof(ls->path)))
		return true;   /* local_socket = none */
	int fd = bind_socket(ls, id, err, errlen);
	if (fd < 0 && !srv->conf->local_socket[0]) {
		/* The default place (data_dir/run/submit.sock) is not worth refusing to serve
		 * for: say so, serve without it (sendmail then uses the maildrop). */
		log_event(LOG_WARN, "local_socket_error", "error=\"%s\" hint=\"set [server] local_socket to a usable path, or "
			"to none\"", err);
		return true;
	}
	if (fd < 0)
		return false;
	snprintf(ls->listener.name, sizeof(ls->listener.name), "local");
	snprintf(ls->listener.address, sizeof(ls->listener.address), "%.63s", ls->path);
	ls->listener.role = ROLE_LOCAL;
	ls->listener.tls = TLS_NONE;
	ls->bound = net_listen(srv->net, &ls->listener, &smtp_proto_ops, srv, fd);
	if (!ls->bound)
		snprintf(err, errlen, "[server] local_socket: cannot watch %s", ls->path);
	return ls->bound;
}

/* --- the maildrop pickup (its own thread) ------------------------------------- */

enum pickup_outcome { PICKED, KEEP, BROKEN };

struct adopt_job {
	struct local_submit *ls;
	int fd;
	struct conn_peer peer;
};

/* Loop thread: serve the socketpair's server end as a local connection. */
static void adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct adopt_job *j = arg;
	net_adopt(j->ls->srv->net, &j->ls->listener, j->fd, &j->peer);
	free(j);
}

static bool read_envelope(int fd, off_t size, struct queue_envelope *env, off_t *off, char *why, size_t whysz)
{
	size_t want = size < (off_t)QUEUE_MAILDROP_HEADER_MAX ? (size_t)size : QUEUE_MAILDROP_HEADER_MAX;
	char *h = malloc(want + 1);
	ssize_t got = h ? pread(fd, h, want, 0) : -1;
	bool ok = got >= 0 && queue_maildrop_parse(h, (size_t)got, env, off, why, whysz);
	if (got < 0)
		snprintf(why, whysz, "cannot read the file: %s", h ? strerror(errno) : "out of memory");
	free(h);
	return ok;
}

/* What one hand-in achieved: every recipient has it now (PICKED, the file can go),
 * some were refused for now (KEEP: the file stays, and done[] says who has it, so
 * that the next pickup sends it to the others only), or none could ever take it
 * (BROKEN).  Refused for good: logged, never tried again. */
static enum pickup_outcome tally(const struct queue_envelope *env, const size_t *idx, size_t n,
	const struct rcpt_result *res, bool *done, char *why, size_t whysz)
{
	size_t deferred = 0, failed = 0, had = 0;
	for (size_t i = 0; i < env->n_rcpts; i++)
		had += done[i];
	for (size_t k = 0; k < n; k++) {
		char r[RCPT_REASON_MAX + 32];
		rcpt_result_reason(&res[k], r, sizeof(r));
		if (res[k].outcome == OUT_DELIVERED)
			done[idx[k]] = true;
		deferred += res[k].outcome == OUT_DEFER;
		failed += res[k].outcome == OUT_FAIL;
		if (res[k].outcome == OUT_FAIL)
			log_event(LOG_WARN, "maildrop_rcpt_refused", "rcpt=%s reason=\"%.300s\"", env->rcpts[idx[k]], r);
		if (res[k].outcome != OUT_DELIVERED)
			snprintf(why, whysz, "%s", r);
	}
	if (deferred)
		return KEEP;
	return failed == n && had == 0 ? BROKEN : PICKED;
}

/* The record of who has a partly handed-in file: maildrop/.done.NAME, one recipient
 * index a line (a name starting with '.' is never picked up), written by rename and
 * made durable.  It is written after the queue committed those recipients, so a
 * crash in between sends it to them again at the next pickup: twice, never lost.
 * It goes after the file itself. */
static void done_name(const char *name, char *out, size_t outsz)
{
	snprintf(out, outsz, ".done.%s", name);
}

static void done_read(int dfd, const char *name, bool *done, size_t n)
{
	char dn[NAME_MAX + 8];
	done_name(name, dn, sizeof(dn));
	int fd = openat(dfd, dn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return;
	}
	unsigned long i;
	while (fscanf(f, "%lu", &i) == 1)
		if (i < n)
			done[i] = true;
	fclose(f);
}

static bool done_write(int dfd, const char *name, const bool *done, size_t n)
{
	char dn[NAME_MAX + 8], tmp[NAME_MAX + 16];
	done_name(name, dn, sizeof(dn));
	snprintf(tmp, sizeof(tmp), "%s.tmp", dn);
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (done[i])
			fprintf(f, "%zu\n", i);
	bool ok = fflush(f) == 0 && fileio_fsync(fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	return ok && renameat(dfd, tmp, dfd, dn) == 0 && fileio_fsync(dfd) == 0;
}

/* Speak SMTP to our own local listener over a socketpair, as the file's owner. */
static enum pickup_outcome hand_in(struct local_submit *ls, const struct queue_envelope *env, int fd, off_t off,
	off_t size, const struct stat *st, bool *done, char *why, size_t whysz)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
		snprintf(why, whysz, "socketpair: %s", strerror(errno));
		return KEEP;
	}
	struct adopt_job *j = malloc(sizeof(*j));
	struct timeval now = { 0, 0 };
	if (!j || (*j = (struct adopt_job){ ls, sv[0], { (unsigned)st->st_uid, (unsigned)st->st_gid, 0 } },
		event_base_once(net_base(ls->srv->net), -1, EV_TIMEOUT, adopt_cb, j, &now) != 0)) {
		free(j);
		close(sv[0]);
		close(sv[1]);
		snprintf(why, whysz, "cannot reach the event loop");
		return KEEP;
	}
	struct net_client_opts no = { .connect_timeout = 10, .io_timeout = 60, .cancel = ls->cancel };
	struct net_client *nc = net_client_adopt(sv[1], &no, "local", why, whysz);
	struct smtp_client_opts so = { .helo = ls->srv->conf->hostname, .peer_name = "local", .tls = SMTP_TLS_NEVER };
	bool permanent;
	struct smtp_client *sc = nc ? smtp_client_open(nc, &so, why, whysz, &permanent) : NULL;
	if (!sc) {
		net_client_close(&nc);
		return KEEP;
	}
	size_t *idx = calloc(env->n_rcpts, sizeof(*idx));
	struct rcpt_result *res = calloc(env->n_rcpts, sizeof(*res));
	enum pickup_outcome o = KEEP;
	if (idx && res) {
		size_t n = 0;
		for (size_t i = 0; i < env->n_rcpts; i++)
			if (!done[i])
				idx[n++] = i;   /* those an earlier pickup handed in are not sent again */
		struct smtp_client_msg m = { .env = env, .rcpts = idx, .n = n, .fd = fd, .off = off,
			.size = (uint64_t)(size - off) };
		smtp_client_send(sc, &m, res);
		o = tally(env, idx, n, res, done, why, whysz);
	}	free(idx);
	free(res);
	smtp_client_close(&sc);
	return o;
}

static void move_to_failed(struct local_submit *ls, int dfd, const char *name, const char *why)
{
	char to[NAME_MAX + 16];
	snprintf(to, sizeof(to), "failed/%s", name);
	bool moved = renameat(dfd, name, dfd, to) == 0;
	log_event(LOG_ERR, "maildrop_failed", "file=%s/%s reason=\"%.400s\" action=\"%s\"", ls->maildrop, name, why,
		moved ? "moved to failed/" : "left in place");
}

static void pickup_file(struct local_submit *ls, int dfd, const char *name)
{
	char why[700] = "";
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			move_to_failed(ls, dfd, name, errno == ELOOP ? "a symbolic link" : strerror(errno));
		return;
	}
	struct stat st;
	struct queue_envelope env;
	memset(&env, 0, sizeof(env));
	off_t off = 0;
	enum pickup_outcome o = BROKEN;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
		snprintf(why, sizeof(why), "not a plain file with one name");
	else if ((uint64_t)st.st_size > ls->srv->conf->message_size + QUEUE_MAILDROP_HEADER_MAX)
		snprintf(why, sizeof(why), "larger than [limits] message_size");
	else if (read_envelope(fd, st.st_size, &env, &off, why, sizeof(why))) {
		bool *done = calloc(env.n_rcpts ? env.n_rcpts : 1, sizeof(*done));
		if (done) {
			done_read(dfd, name, done, env.n_rcpts);
			o = hand_in(ls, &env, fd, off, st.st_size, &st, done, why, sizeof(why));
			size_t has = 0;
			for (size_t i = 0; i < env.n_rcpts; i++)
				has += done[i];
			if (o == KEEP && has && !done_write(dfd, name, done, env.n_rcpts))
				log_event(LOG_ERR, "maildrop_error", "file=%s error=\"cannot record who has it: %s\" "
					"effect=\"those recipients may get it twice\"", name, strerror(errno));
			free(done);
		} else {
			o = KEEP;
			snprintf(why, sizeof(why), "out of memory");
		}
	}
	close(fd);
	free(env.rcpts);
	if (o == PICKED) {
		unlinkat(dfd, name, 0);   /* only now: the queue has committed it */
		log_event(LOG_INFO, "maildrop_picked", "file=%s uid=%u sender=<%s> rcpts=%zu", name, (unsigned)st.st_uid,
			env.sender, env.n_rcpts);
	} else if (o == BROKEN)
		move_to_failed(ls, dfd, name, why);
	if (o != KEEP) {
		char dn[NAME_MAX + 8];
		done_name(name, dn, sizeof(dn));
		unlinkat(dfd, dn, 0);   /* after the file: a crash between leaves only a stale record */
	} else
		log_event(LOG_WARN, "maildrop_deferred", "file=%s reason=\"%.400s\" action=\"tried again in %d s\"", name, why,
			MAILDROP_SCAN_S);
}

static bool stopping(struct local_submit *ls)
{
	pthread_mutex_lock(&ls->mu);
	bool s = ls->stop;
	pthread_mutex_unlock(&ls->mu);
	return s;
}

/* One look: the files there now (names starting with '.' are being written). */
static void pickup_scan(struct local_submit *ls)
{
	DIR *d = opendir(ls->maildrop);
	if (!d)
		return;
	char (*names)[NAME_MAX + 1] = malloc(MAILDROP_BATCH * sizeof(*names));
	size_t n = 0;
	struct dirent *e;
	while (names && n < MAILDROP_BATCH && (e = readdir(d)))
		if (e->d_name[0] != '.' && strcmp(e->d_name, "failed") != 0)
			snprintf(names[n++], NAME_MAX + 1, "%s", e->d_name);
	for (size_t i = 0; i < n && !stopping(ls); i++)
		pickup_file(ls, dirfd(d), names[i]);
	free(names);
	closedir(d);
}

static void *pickup_main(void *arg)
{
	struct local_submit *ls = arg;
	while (!stopping(ls)) {
		pickup_scan(ls);
		pthread_mutex_lock(&ls->mu);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += MAILDROP_SCAN_S;
		if (!ls->stop)
			pthread_cond_timedwait(&ls->cv, &ls->mu, &ts);
		pthread_mutex_unlock(&ls->mu);
	}
	return NULL;
}

void local_pickup_start(struct service *srv)
{
	struct local_submit *ls = srv->local;
	if (!ls || !ls->maildrop_ok)
		return;
	if (!ls->bound) {
		log_event(LOG_WARN, "maildrop_off", "dir=%s reason=\"local_socket = none: the pickup hands mail in through it\"",
			ls->maildrop);
		return;
	}
	ls->cancel = net_cancel_new();
	ls->thread_started = ls->cancel && pthread_create(&ls->thread, NULL, pickup_main, ls) == 0;
	if (!ls->thread_started)
		log_event(LOG_ERR, "maildrop_error", "dir=%s error=\"cannot start the pickup thread\"", ls->maildrop);
}

void local_stop(struct service *srv)
{
	struct local_submit *ls = srv->local;
	if (!ls)
		return;
	if (ls->thread_started) {
		pthread_mutex_lock(&ls->mu);
		ls->stop = true;
		pthread_cond_signal(&ls->cv);
		pthread_mutex_unlock(&ls->mu);
		net_cancel_fire(ls->cancel);
		pthread_join(ls->thread, NULL);
	}
	ls->thread_started = false;
	if (ls->bound)
		unlink(ls->path);
	ls->bound = false;
}

void local_free(struct service *srv)
{
	struct local_submit *ls = srv->local;
	if (!ls)
		return;
	local_stop(srv);
	net_cancel_free(&ls->cancel);
	pthread_mutex_destroy(&ls->mu);
	pthread_cond_destroy(&ls->cv);
	free(ls);
	srv->local = NULL;
}
