/* notify.c - systemd's notification protocol (see notify.h; sd_notify(3) describes the
 * datagrams, systemd's NEWS and docs/operations.md what each one does). */
#include "serve/notify.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "net/server.h"
#include "serve/service.h"
#include "util/log.h"
#include "util/metrics.h"

static int notify_fd = -1;
static struct event *status_timer;

bool notify_open(char *err, size_t errlen)
{
	const char *name = getenv("NOTIFY_SOCKET");
	if (!name || !*name)
		return true;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	if ((name[0] != '/' && name[0] != '@') || len >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "NOTIFY_SOCKET=%.100s is not an absolute path or an @abstract name that fits "
			"a unix socket address (at most %zu octets)", name, sizeof(sa.sun_path) - 1);
		return false;
	}
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';   /* the abstract namespace: no file, the name's length counts */
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (name[0] == '/'));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, salen) != 0) {
		snprintf(err, errlen, "cannot connect to NOTIFY_SOCKET=%s: %s", name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	notify_fd = fd;
	unsetenv("NOTIFY_SOCKET");
	return true;
}

bool notify_enabled(void)
{
	return notify_fd >= 0;
}

void notify_send(const char *state)
{
	if (notify_fd < 0)
		return;
	if (send(notify_fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_event(LOG_WARN, "notify_failed", "state=\"%.40s\" error=\"%s\"", state, strerror(errno));
}

/* "STATUS=..." with what an administrator looks at first. */
static void status_line(struct service *srv, char *out, size_t outsz)
{
	static const char *const routes[] = { "local", "remote", "queue" };
	uint64_t deferred = 0;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		deferred += metrics_counter_value(METRIC_DEFERRED, routes[i]);
	int64_t queued = metrics_gauge_value(METRIC_QUEUE_MESSAGES, NULL);
	snprintf(out, outsz, "STATUS=queue %lld message%s, %llu deferral%s since start, %u connection%s",
		(long long)queued, queued == 1 ? "" : "s", (unsigned long long)deferred, deferred == 1 ? "" : "s",
		net_open_connections(srv->net), net_open_connections(srv->net) == 1 ? "" : "s");
}

static void status_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	char line[256];
	status_line(arg, line, sizeof(line));
	notify_send(line);
}

void notify_ready(struct service *srv, struct event_base *base)
{
	if (notify_fd < 0)
		return;
	char line[300];
	size_t n = (size_t)snprintf(line, sizeof(line), "READY=1\n");
	status_line(srv, line + n, sizeof(line) - n);
	notify_send(line);
	status_timer = event_new(base, -1, EV_PERSIST, status_cb, srv);
	struct timeval every = { NOTIFY_STATUS_INTERVAL_S, 0 };
	if (status_timer)
		event_add(status_timer, &every);
}

void notify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	char line[96];
	snprintf(line, sizeof(line), "RELOADING=1\nMONOTONIC_USEC=%llu",
		(unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000ull);
	notify_send(line);
}

void notify_reloaded(struct service *srv)
{
	if (notify_fd < 0)
		return;
	char line[300];
	size_t n = (size_t)snprintf(line, sizeof(line), "READY=1\n");
	status_line(srv, line + n, sizeof(line) - n);
	notify_send(line);
}

void notify_stopping(void)
{
	notify_send("STOPPING=1\nSTATUS=stopping");
}

void notify_close(void)
{
	if (status_timer)
		event_free(status_timer);
	status_timer = NULL;
	if (notify_fd >= 0)
		close(notify_fd);
	notify_fd = -1;
}
