/* control.c - the admin control socket (see control.h). */
#include "serve/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/login.h"
#include "delivery/delivery.h"
#include "util/fileio.h"
#include "util/log.h"
#include "util/workq.h"

#define CONTROL_LINE_MAX 256
#define CONTROL_TIMEOUT 10

struct control {
	struct evconnlistener *listener;
	struct workq *q;
	struct delivery *d;
	struct login_service *logins;
	struct control_node node;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct control_job {
	struct bufferevent *bev;   /* the Unix socket's client, or NULL: ... */
	void (*answered)(void *arg, int status, const char *reply);   /* ... control_ask's */
	void *answered_arg;
	const struct control *ctl;
	char command[CONTROL_LINE_MAX + 1];
	char reply[CONTROL_REPLY_MAX];   /* "inflight" names every busy message */
	int status;
};

bool control_read_only(const char *command)
{
	return strcmp(command, "status") == 0 || strcmp(command, "queue") == 0 || strcmp(command, "inflight") == 0;
}

/* "status" and "queue": what the delivery threads hold now marks the busy messages. */
static int node_answer(struct control_job *j)
{
	char *inflight = malloc(CONTROL_REPLY_MAX);
	if (!inflight) {
		snprintf(j->reply, sizeof(j->reply), "out of memory");
		return 1;
	}
	if (delivery_control(j->ctl->d, "inflight", inflight, CONTROL_REPLY_MAX) != 0)
		inflight[0] = '\0';
	int st = strcmp(j->command, "status") == 0
		? control_status_answer(&j->ctl->node, inflight, j->reply, sizeof(j->reply))
		: control_queue_answer(&j->ctl->node, inflight, j->reply, sizeof(j->reply));
	free(inflight);
	return st;
}

static bool socket_path(const char *data_dir, char *out, size_t outsz)
{
	return snprintf(out, outsz, "%s/run/control.sock", data_dir) < (int)outsz;
}

/* "unblock KEY": lift the login throttle's blocks of an address or an account. */
static int unblock(struct login_service *ls, const char *key, char *reply, size_t replysz)
{
	char q[400];
	log_quote(q, sizeof(q), key, strlen(key), 200);
	if (!key[0] || strchr(key, ' ')) {
		snprintf(reply, replysz, "unblock needs one address or account (postern user unblock ADDRESS|IP)");
		return 1;
	}
	size_t n = login_service_unblock(ls, key);
	bool shared = login_service_shared(ls);
	log_event(LOG_WARN, "admin_action", "by=control-socket action=unblock key=%s lifted=%zu shared=%s", q, n,
		shared ? "yes" : "no");
	if (n)
		snprintf(reply, replysz, "%s unblocked: %zu block(s) of the login throttle lifted and their failures forgotten; "
			"it may log in again now%s", key, n, shared ? " (on this node now, on the other nodes within a second)" : "");
	else if (shared)
		snprintf(reply, replysz, "%s is not blocked by the login throttle on this node; the other nodes are told to "
			"lift any block of it (within a second)", key);
	else
		snprintf(reply, replysz, "%s is not blocked by the login throttle (nothing to lift)", key);
	return n || shared ? 0 : 1;
}

/* "blocked": the login throttle's blocks running on this node, in one line (names
 * typed by clients are quoted as in the log). */
static int blocked(struct login_service *ls, char *reply, size_t replysz)
{
	struct throttle_block_info *b = calloc(THROTTLE_BLOCKS_MAX, sizeof(*b));
	if (!b) {
		snprintf(reply, replysz, "out of memory");
		return 1;
	}
	size_t n = login_service_blocks(ls, b, THROTTLE_BLOCKS_MAX), len = 0;
	len += (size_t)snprintf(reply, replysz, "%zu block(s) of the login throttle on this node%s", n, n ? ":" : "");
	for (size_t i = 0; i < n && len + 600 < replysz; i++) {
		char until[32], q[400];
		login_block_end(b[i].until, until, sizeof(until));
		if (b[i].kind == THROTTLE_ADDRESS)
			len += (size_t)snprintf(reply + len, replysz - len, " address %s until %s (%u failures);", b[i].ip, until,
				b[i].failures);
		else
			len += (size_t)snprintf(reply + len, replysz - len, " account %s from %s until %s (%u failures);",
				log_quote(q, sizeof(q), b[i].account, strlen(b[i].account), 200), b[i].ip, until, b[i].failures);
	}
	free(b);
	return 0;
}

static void job_work(void *arg)
{
	struct control_job *j = arg;
	if (strcmp(j->command, "blocked") == 0) {
		j->status = blocked(j->ctl->logins, j->reply, sizeof(j->reply));
		return;
	}
	if (strncmp(j->command, "unblock ", 8) == 0) {
		j->status = unblock(j->ctl->logins, j->command + 8, j->reply, sizeof(j->reply));
		return;
	}
	if (strcmp(j->command, "status") == 0 || strcmp(j->command, "queue") == 0) {
		j->status = node_answer(j);
		return;
	}
	j->status = delivery_control(j->ctl->d, j->command, j->reply, sizeof(j->reply));
	if (strcmp(j->command, "inflight") == 0)
		return;   /* read-only, asked by every `postern queue list` */
	log_event(LOG_INFO, "admin", "command=\"%.60s\" status=%d reply=\"%.200s\"", j->command, j->status, j->reply);
}

static void close_after_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void job_done(void *arg)
{
	struct control_job *j = arg;
	if (!j->bev) {
		j->answered(j->answered_arg, j->status, j->reply);
		free(j);
		return;
	}
	bufferevent_setcb(j->bev, NULL, close_after_write, NULL, NULL);
	evbuffer_add_printf(bufferevent_get_output(j->bev), "%d %s\n", j->status, j->reply);
	free(j);
}

static void ctl_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void ctl_read(struct bufferevent *bev, void *arg)
{
	struct control *ctl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
	if (!line) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			bufferevent_free(bev);   /* no line end within the bound */
		return;
	}
	struct control_job *j = calloc(1, sizeof(*j));
	if (!j || n > CONTROL_LINE_MAX) {
		free(line);
		free(j);
		bufferevent_free(bev);
		return;
	}
	memcpy(j->command, line, n + 1);
	free(line);
	j->bev = bev;
	j->ctl = ctl;
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, NULL, ctl_event, NULL);
	workq_push(ctl->q, job_work, job_done, j);
}

static void ctl_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)sa;
	(void)salen;
	struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		evutil_closesocket(fd);
		return;
	}
	struct timeval tv = { CONTROL_TIMEOUT, 0 };
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setwatermark(bev, EV_READ, 0, CONTROL_LINE_MAX * 2);
	bufferevent_setcb(bev, ctl_read, NULL, ctl_event, arg);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

bool control_ask(struct control *ctl, const char *command, void (*answered)(void *arg, int status, const char *reply),
	void *arg)
{
	struct control_job *j = calloc(1, sizeof(*j));
	if (!j)
		return false;
	snprintf(j->command, sizeof(j->command), "%s", command);
	j->ctl = ctl;
	j->answered = answered;
	j->answered_arg = arg;
	workq_push(ctl->q, job_work, job_done, j);
	return true;
}

struct control *control_start(struct event_base *base, const char *data_dir, struct workq *q, struct delivery *d,
	struct login_service *logins, const struct control_node *node, char *err, size_t errlen)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl || !socket_path(data_dir, ctl->path, sizeof(ctl->path))) {
		snprintf(err, errlen, "control socket path too long under %s", data_dir);
		free(ctl);
		return NULL;
	}
	ctl->q = q;
	ctl->d = d;
	ctl->logins = logins;
	ctl->node = *node;
	char dir[sizeof(ctl->path)];
	snprintf(dir, sizeof(dir), "%s/run", data_dir);
	if (!fileio_mkdir_p(dir, 0700)) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		free(ctl);
		return NULL;
	}
	unlink(ctl->path);   /* left by a server that did not stop cleanly */
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ctl->path);
	mode_t old = umask(077);
	ctl->listener = evconnlistener_new_bind(base, ctl_accept, ctl, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
		(struct sockaddr *)&sun, (int)sizeof(sun));
	umask(old);
	if (!ctl->listener) {
		snprintf(err, errlen, "cannot listen on %s: %s", ctl->path, strerror(errno));
		free(ctl);
		return NULL;
	}
	return ctl;
}

void control_stop(struct control **cp)
{
	struct control *c = *cp;
	if (!c)
		return;
	evconnlistener_free(c->listener);
	unlink(c->path);
	free(c);
	*cp = NULL;
}

int control_send(const char *data_dir, const char *command, char *reply, size_t replysz)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (!socket_path(data_dir, sun.sun_path, sizeof(sun.sun_path))) {
		snprintf(reply, replysz, "control socket path too long");
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(reply, replysz, "the server is not running (no %s)", sun.sun_path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char line[CONTROL_LINE_MAX + 2];
	int n = snprintf(line, sizeof(line), "%s\n", command);
	bool ok = n > 0 && (size_t)n < sizeof(line) && fileio_write_all(fd, line, (size_t)n);
	size_t got = 0;
	while (ok && got + 1 < replysz) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 60000) <= 0)
			break;
		ssize_t r = read(fd, reply + got, replysz - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (memchr(reply, '\n', got))
			break;
	}
	close(fd);
	reply[got] = '\0';
	reply[strcspn(reply, "\n")] = '\0';
	if (!ok || got < 2) {
		snprintf(reply, replysz, "no answer from the server");
		return 1;
	}
	int status = reply[0] == '0' ? 0 : 1;
	memmove(reply, reply + 2, strlen(reply + 2) + 1);
	return status;
}
