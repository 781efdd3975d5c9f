/* activation.c - the listening sockets systemd passed (see activation.h).  The
 * variables are read once, then unset, so that nothing this process starts takes
 * them for its own (sd_listen_fds(3)'s unset_environment). */
#include "net/activation.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/conf.h"
#include "util/parse.h"

#define ACTIVATION_FIRST_FD 3   /* SD_LISTEN_FDS_START */
#define ACTIVATION_MAX 64

static struct passed {
	char name[64];
	int fd;
	bool taken;
} passed[ACTIVATION_MAX];
static size_t n_passed;
static bool read_done;
static char read_error[512];

/* LISTEN_FDS=N (this process's, by LISTEN_PID) and the N names. */
static void read_environment(void)
{
	if (read_done)
		return;
	read_done = true;
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS"), *names = getenv("LISTEN_FDNAMES");
	uint64_t p, n;
	if (!pid || !fds || !parse_u64(pid, strlen(pid), &p) || p != (uint64_t)getpid())
		return;   /* not for us: a parent's, or none */
	if (!parse_u64(fds, strlen(fds), &n) || n > ACTIVATION_MAX) {
		snprintf(read_error, sizeof(read_error), "LISTEN_FDS=%.20s is not a count of sockets from 0 to %d", fds,
			ACTIVATION_MAX);
		return;
	}
	const char *w = names ? names : "";
	for (size_t i = 0; i < n; i++) {
		size_t len = strcspn(w, ":");
		struct passed *s = &passed[n_passed++];
		snprintf(s->name, sizeof(s->name), "%.*s", (int)(len < sizeof(s->name) ? len : sizeof(s->name) - 1), w);
		s->fd = ACTIVATION_FIRST_FD + (int)i;
		w += len + (w[len] == ':');
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

size_t net_activation_count(void)
{
	read_environment();
	return n_passed;
}

/* A listening stream socket (not a datagram socket or a file passed by mistake). */
static bool is_listening_stream(int fd)
{
	int type = 0, listening = 0;
	socklen_t l1 = sizeof(type), l2 = sizeof(listening);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) == 0 && type == SOCK_STREAM &&
		getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) == 0 && listening;
}

static bool names_a_listener(const struct conf *c, const char *name)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		if (strcmp(c->listeners[i].name, name) == 0)
			return true;
	return false;
}

bool net_activation_check(const struct conf *c, char *err, size_t errlen)
{
	read_environment();
	if (read_error[0]) {
		snprintf(err, errlen, "socket activation: %s", read_error);
		return false;
	}
	for (size_t i = 0; i < n_passed; i++) {
		const struct passed *s = &passed[i];
		if (!is_listening_stream(s->fd)) {
			snprintf(err, errlen, "socket activation: descriptor %d (\"%s\") is not a listening stream socket: "
				"the .socket unit needs ListenStream=", s->fd, s->name);
			return false;
		}
		if (!s->name[0] || !names_a_listener(c, s->name)) {
			snprintf(err, errlen, "socket activation: the socket on descriptor %d is named \"%s\", and %s has no "
				"[listener %s]: set FileDescriptorName= in the .socket unit to the name of the listener that "
				"serves it (LISTEN_FDNAMES), or add that listener", s->fd, s->name[0] ? s->name : "(no name)",
				c->path, s->name[0] ? s->name : "NAME");
			return false;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(passed[j].name, s->name) == 0) {
				snprintf(err, errlen, "socket activation: two sockets are named \"%s\" (descriptors %d and %d): "
					"one listener takes one socket; give each its own FileDescriptorName=", s->name, passed[j].fd, s->fd);
				return false;
			}
	}
	return true;
}

int net_activation_fd(const char *listener_name)
{
	read_environment();
	for (size_t i = 0; i < n_passed; i++) {
		struct passed *s = &passed[i];
		if (s->taken || strcmp(s->name, listener_name) != 0)
			continue;
		s->taken = true;
		int fl = fcntl(s->fd, F_GETFL);
		if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(s->fd, F_SETFD, FD_CLOEXEC) != 0)
			return -1;
		return s->fd;
	}
	return -1;
}
