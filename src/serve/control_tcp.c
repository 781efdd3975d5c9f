/* control_tcp.c - the control protocol over the network (see control.h): the
 * listener of role control, and its client for the cluster's tools.
 *
 * A connection (implicit TLS: net/ has finished the handshake before op_start) sends
 * two lines: `AUTH <token>` and one command.  The token is a node token (auth/
 * node_token.h) for the purpose "control", signed with [cluster] secret_file: it
 * proves the asker holds the cluster's secret, and it is stale after 120 s.  Checking
 * it is one HMAC, done on the loop; the command then runs on the control's worker
 * thread like one from the Unix socket (control_ask), and its one-line answer ends
 * the connection.  A wrong or missing token, a command that is not read-only, a line
 * longer than the bound: one line saying so ("1 ..."), logged, and the connection
 * closes.  Nothing is answered before the token has been checked. */
#include "serve/control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/node_token.h"
#include "conf/conf.h"
#include "net/client.h"
#include "net/server.h"
#include "serve/service.h"
#include "util/buf.h"
#include "util/log.h"

#define CTL_LINE_MAX 256          /* AUTH and its token, or a command */
#define CTL_OUT_MAX (CONTROL_REPLY_MAX + 64)

enum ctl_state { CTL_AUTH, CTL_COMMAND, CTL_RUNNING, CTL_DONE };

struct ctl_conn {
	struct service *srv;
	struct conn *conn;
	struct buf out;
	enum ctl_state state;
	char line[CTL_LINE_MAX + 1];
	size_t len;
	bool overlong;             /* the line went past the bound, or held a NUL */
	char peer_node[DIR_NODE_NAME_MAX];   /* who signed the token */
};

/* One line and the end of the connection. */
static void finish(struct ctl_conn *cc, int status, const char *text)
{
	buf_printf(&cc->out, "%d %s\r\n", status, text);
	cc->state = CTL_DONE;
}

static void refuse(struct ctl_conn *cc, const char *event_reason, const char *text)
{
	char q[120];
	log_quote(q, sizeof(q), cc->peer_node, strlen(cc->peer_node), 40);
	log_event(LOG_WARN, "control_refused", "conn=%llu client=%s node=%s reason=\"%s\"",
		(unsigned long long)conn_id(cc->conn), conn_addr(cc->conn), cc->peer_node[0] ? q : "-", event_reason);
	finish(cc, 1, text);
}

static void answered(void *arg, int status, const char *reply)
{
	struct ctl_conn *cc = arg;
	if (!conn_unbusy(cc->conn))
		return;   /* the client went away: freed with its session */
	finish(cc, status, reply);
	conn_flush(cc->conn);
}

static void auth_line(struct ctl_conn *cc, const char *line)
{
	const struct service *srv = cc->srv;
	if (strncmp(line, "AUTH ", 5) != 0) {
		refuse(cc, "no AUTH line", "refused: the first line must be AUTH <node token> (postern cluster status "
			"makes one from [cluster] secret_file)");
		return;
	}
	if (!srv->node_secret_len) {
		refuse(cc, "not a node", "refused: this server has no [cluster] secret_file, so no token can be checked");
		return;
	}
	if (!node_token_check(srv->node_secret, srv->node_secret_len, CONTROL_TOKEN_PURPOSE, line + 5, time(NULL),
			cc->peer_node)) {
		refuse(cc, "token not valid", "refused: the control token is not valid (another cluster's secret, a token "
			"for another purpose, or a clock more than 120 s off: compare [cluster] secret_file and the clocks)");
		return;
	}
	cc->state = CTL_COMMAND;
}

static void command_line(struct ctl_conn *cc, const char *line)
{
	if (!control_read_only(line)) {
		char why[CTL_LINE_MAX + 160];
		snprintf(why, sizeof(why), "refused: \"%.60s\" is not served over the network (only status, queue and "
			"inflight); run postern on that node itself", line);
		refuse(cc, "not a read-only command", why);
		return;
	}
	if (!cc->srv->control) {
		finish(cc, 1, "the control socket of this node did not start (see its log)");
		return;
	}
	cc->state = CTL_RUNNING;
	conn_busy(cc->conn);
	if (!control_ask(cc->srv->control, line, answered, cc)) {
		conn_unbusy(cc->conn);
		finish(cc, 1, "out of memory");
	}
}

static size_t op_feed(void *s, const void *p, size_t n)
{
	struct ctl_conn *cc = s;
	const char *in = p;
	size_t used = 0;
	while (used < n && (cc->state == CTL_AUTH || cc->state == CTL_COMMAND)) {
		char ch = in[used++];
		if (ch != '\n') {
			if (cc->len < CTL_LINE_MAX && ch != '\0')
				cc->line[cc->len++] = ch;
			else
				cc->overlong = true;   /* too long, or a NUL: not a line of this protocol */
			continue;
		}
		if (cc->len && cc->line[cc->len - 1] == '\r')
			cc->len--;
		cc->line[cc->len] = '\0';
		cc->len = 0;
		if (cc->overlong)
			refuse(cc, "line too long", "refused: a line longer than 256 octets (or with a NUL)");
		else if (cc->state == CTL_AUTH)
			auth_line(cc, cc->line);
		else
			command_line(cc, cc->line);
	}
	if (cc->state == CTL_DONE || cc->state == CTL_RUNNING)
		return n;   /* nothing after the command is read */
	return used;
}

static bool op_start(struct conn *c, const char *tls_desc)
{
	(void)tls_desc;
	struct ctl_conn *cc = calloc(1, sizeof(*cc));
	if (!cc) {
		conn_close(c);
		return false;
	}
	cc->srv = conn_ctx(c);
	cc->conn = c;
	buf_init(&cc->out, CTL_OUT_MAX);
	conn_set_session(c, cc);
	conn_set_idle_timeout(c, 10);
	return true;
}

static void op_refuse_busy(struct buf *out, const struct conf *cf, enum conn_refusal why)
{
	(void)cf;
	buf_printf(out, "1 refused: too many connections (%s)\r\n", why == CONN_REFUSE_ADDRESS ? "from this address"
		: "in all");
}

static void op_refuse_plaintext(struct buf *out, const struct conf *cf)
{
	(void)cf;
	buf_appends(out, "1 refused: this port expects TLS from the first byte\r\n");
}

static struct buf *op_output(void *s) { return &((struct ctl_conn *)s)->out; }
static bool op_wants_close(const void *s) { return ((const struct ctl_conn *)s)->state == CTL_DONE; }
static bool op_waiting(const void *s) { return ((const struct ctl_conn *)s)->state == CTL_RUNNING; }
static bool op_wants_tls(const void *s) { (void)s; return false; }
static void op_tls_started(void *s, const char *d) { (void)s; (void)d; }
static void op_timeout(void *s) { finish(s, 1, "no command within 10 s"); }
static void op_shutdown(void *s)
{
	struct ctl_conn *cc = s;
	if (cc->state != CTL_RUNNING && cc->state != CTL_DONE)
		finish(cc, 1, "the node is shutting down");
}
static void op_disconnected(void *s) { (void)s; }
static bool op_line_pending(const void *s) { return ((const struct ctl_conn *)s)->len > 0; }
static const char *op_login(const void *s)
{
	const struct ctl_conn *cc = s;
	return cc->state != CTL_AUTH ? cc->peer_node : NULL;
}

static void op_deadline(void *s, enum deadline_kind which, unsigned long long limit)
{
	(void)which;
	char why[80];
	snprintf(why, sizeof(why), "too slow: no complete line within %llu s", limit);
	finish(s, 1, why);
}

static void op_destroy(void *s)
{
	struct ctl_conn *cc = s;
	buf_free(&cc->out);
	free(cc);
}

const struct proto_ops control_proto_ops = {
	.name = "control", .start = op_start, .refuse_busy = op_refuse_busy, .refuse_plaintext = op_refuse_plaintext,
	.feed = op_feed, .output = op_output, .wants_close = op_wants_close, .waiting = op_waiting,
	.wants_tls = op_wants_tls, .tls_started = op_tls_started, .timeout = op_timeout, .shutdown = op_shutdown,
	.disconnected = op_disconnected, .destroy = op_destroy, .line_pending = op_line_pending, .login = op_login,
	.deadline = op_deadline,
};

/* --- the client ---------------------------------------------------------------- */

static long long clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "host:port" or "[v6]:port" into its parts. */
static bool split_hostport(const char *hp, char *host, size_t hostsz, unsigned *port)
{
	const char *colon = strrchr(hp, ':');
	if (!colon || !colon[1])
		return false;
	const char *h = hp;
	size_t hl = (size_t)(colon - hp);
	if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	char *end;
	unsigned long p = strtoul(colon + 1, &end, 10);
	if (!hl || hl >= hostsz || *end || p == 0 || p > 65535)
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)p;
	return true;
}

static unsigned left_ms(long long deadline)
{
	long long left = deadline - clock_ms();
	return left > 1 ? (unsigned)left : 1;
}

int control_send_tcp(const char *hostport, const char *token, const char *command, unsigned deadline_ms, char *reply,
	size_t replysz)
{
	char host[DIR_NODE_ADDR_MAX], err[256] = "";
	unsigned port;
	if (!split_hostport(hostport, host, sizeof(host), &port)) {
		snprintf(reply, replysz, "the control address \"%.100s\" is not host:port", hostport);
		return -1;
	}
	long long deadline = clock_ms() + deadline_ms;
	struct net_client_opts o = { .connect_ms = deadline_ms, .io_ms = deadline_ms };
	enum net_status st = NET_OK;
	struct net_client *c = net_client_open(host, port, &o, &st, err, sizeof(err));
	if (!c) {
		snprintf(reply, replysz, "%s", st == NET_REFUSED ? "connection refused (nothing listens)" : err);
		return -1;
	}
	net_client_set_io_ms(c, left_ms(deadline));
	char auth[NODE_TOKEN_MAX + 8];
	snprintf(auth, sizeof(auth), "AUTH %s", token);
	long n = -1;
	if (net_client_tls(c, host, false, err, sizeof(err))) {
		net_client_set_io_ms(c, left_ms(deadline));
		if (net_client_write_line(c, auth, "AUTH <token>", err, sizeof(err))
			&& net_client_write_line(c, command, NULL, err, sizeof(err))) {
			net_client_set_io_ms(c, left_ms(deadline));
			n = net_client_read_line(c, reply, replysz, err, sizeof(err));
		}
	}
	bool late = net_client_status(c) == NET_TIMEOUT || clock_ms() >= deadline;
	net_client_close(&c);
	if (n < 2 || (reply[0] != '0' && reply[0] != '1') || reply[1] != ' ') {
		snprintf(reply, replysz, "%s", late ? "no answer in time" : err[0] ? err : "no answer");
		return -1;
	}
	int status = reply[0] == '0' ? 0 : 1;
	memmove(reply, reply + 2, strlen(reply + 2) + 1);
	return status;
}
