/* sendmail.c - /usr/sbin/sendmail, mailq and newaliases: the commands other programs
 * call (cron, mailx, PHP, Debian's scripts), chosen by the name postern is run as
 * (main.c).  The message goes to the running server over the local submission
 * socket, which tells the server who we are (SO_PEERCRED), spoken to with the one
 * SMTP client (delivery/smtp_client.h); when the server is down it is left in the
 * maildrop directory, which the server picks up when it starts.  Behaviour and
 * options: docs/operations.md "sendmail and the local socket". */
#include "cli/cli.h"
#include "cli/sendmail.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "delivery/smtp_client.h"
#include "net/client.h"
#include "queue/queue.h"
#include "serve/control.h"
#include "util/fileio.h"
#include "wire/enh.h"

#define DEFAULT_CONF "/etc/postern/postern.conf"

enum sm_mode { SM_SEND, SM_SMTP_STDIO, SM_LIST_QUEUE, SM_RUN_QUEUE, SM_ALIASES };

struct sm_opts {
	enum sm_mode mode;
	const char *conf_path;     /* -C FILE */
	bool from_headers;         /* -t */
	bool ignore_dots;          /* -i, -oi */
	const char *from;          /* -f / -r */
	const char *full_name;     /* -F */
	int body;                  /* -B: 0 not given, 7 or 8 */
	char **rcpts;              /* the operands */
	int n_rcpts;
};

static int usage_error(const char *prog, const char *fmt, const char *what)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\n%s: usage: %s [-t] [-i] [-f SENDER] [-F NAME] [-B 8BITMIME|7BIT] [-o em|ee|ep|eq|ew|i|di|db] "
		"[-bs | -bp | -bi] [-q] [-C FILE] [--] [RECIPIENT...] (docs/operations.md, \"sendmail\")\n", prog, prog);
	return EX_USAGE;
}

/* -o VALUE: the sendmail.cf options callers pass.  Errors (-oe*) are never mailed
 * back by this command, as with Postfix's sendmail: a refusal while handing the
 * message in is printed, with an exit status; one after is a bounce to the sender. */
static bool option_o(struct sm_opts *o, const char *v)
{
	if (strcmp(v, "i") == 0) {
		o->ignore_dots = true;
		return true;
	}
	static const char *const accepted[] = { "em", "ee", "ep", "eq", "ew", "di", "db", "dq", "dbackground", "dinteractive", "m" };
	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		if (strcmp(v, accepted[i]) == 0)
			return true;
	return false;
}

static bool option_b(struct sm_opts *o, const char *v)
{
	if (strcmp(v, "s") == 0)
		o->mode = SM_SMTP_STDIO;
	else if (strcmp(v, "p") == 0)
		o->mode = SM_LIST_QUEUE;
	else if (strcmp(v, "i") == 0)
		o->mode = SM_ALIASES;
	else if (strcmp(v, "m") != 0)   /* -bm: deliver, the default */
		return false;
	return true;
}

/* One option letter c whose value (if it takes one) is val. */
static int option_with_value(const char *prog, struct sm_opts *o, char c, const char *val)
{
	char shown[64];
	snprintf(shown, sizeof(shown), "-%c%.40s", c, val);
	switch (c) {
	case 'f': case 'r': o->from = val; return 0;
	case 'F': o->full_name = val; return 0;
	case 'C': o->conf_path = val; return 0;
	case 'B':
		if (strcasecmp(val, "8BITMIME") != 0 && strcasecmp(val, "7BIT") != 0)
			return usage_error(prog, "%s: the body type is 8BITMIME or 7BIT", shown);
		o->body = val[0] == '8' ? 8 : 7;
		return 0;
	case 'o': return option_o(o, val) ? 0 : usage_error(prog, "unknown option %s", shown);
	case 'b': return option_b(o, val) ? 0 : usage_error(prog, "unknown option %s (-bs, -bp, -bi and -bm are known)", shown);
	}
	return usage_error(prog, "unknown option %s", shown);
}

/* sendmail's own syntax: flags may be grouped (-ti), a value follows its letter
 * or is the next argument (-fme, -f me); -q takes its interval only attached. */
static int parse_options(const char *prog, int argc, char **argv, struct sm_opts *o)
{
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		for (const char *p = argv[i] + 1; *p; p++) {
			char c = *p;
			if (c == 't' || c == 'i' || c == 'v' || c == 'm' || c == 'U') {
				o->from_headers = o->from_headers || c == 't';
				o->ignore_dots = o->ignore_dots || c == 'i';
				continue;
			}
			if (c == 'q') {   /* -q, -q30m: run the queue now */
				o->mode = SM_RUN_QUEUE;
				break;
			}
			if (!strchr("frFCBob", c)) {
				char shown[3] = { '-', c, '\0' };
				return usage_error(prog, "unknown option %s", shown);
			}
			const char *val = p[1] ? p + 1 : i + 1 < argc ? argv[++i] : NULL;
			if (!val) {
				char shown[3] = { '-', c, '\0' };
				return usage_error(prog, "option %s needs a value", shown);
			}
			int rc = option_with_value(prog, o, c, val);
			if (rc)
				return rc;
			break;
		}
	}
	o->rcpts = argv + i;
	o->n_rcpts = argc - i;
	return 0;
}

/* The configuration: -C FILE, else /etc/postern/postern.conf, else the built-in
 * default.  A file there that this user may not read is said so: guessing the
 * socket's place from the default would only mislead. */
static bool load_conf(const char *prog, const char *path, struct conf *c)
{
	char err[1024];
	if (!path && access(DEFAULT_CONF, F_OK) == 0 && access(DEFAULT_CONF, R_OK) != 0) {
		fprintf(stderr, "%s: cannot read %s (%s): sendmail needs its local_socket, maildrop_dir and local_domain; "
			"make the file readable by everyone (chmod 0644: it holds no secrets, [relay] credentials are a file "
			"of their own)\n", prog, DEFAULT_CONF, strerror(errno));
		return false;
	}
	bool ok = path ? conf_load_file(c, path, err, sizeof(err))
		: access(DEFAULT_CONF, R_OK) == 0 ? conf_load_file(c, DEFAULT_CONF, err, sizeof(err))
		: conf_load_string(c, conf_embedded_default, "(embedded default)", err, sizeof(err));
	if (!ok)
		fprintf(stderr, "%s: %s\n", prog, err);
	return ok;
}

static int aliases_words(const char *prog)
{
	printf("%s: Postern keeps aliases in its directory, not in /etc/aliases: there is nothing to rebuild.\n"
		"  postern alias list | add ALIAS USER | del ALIAS   (docs/migrating.md: importing /etc/aliases and Postfix virtual maps)\n",
		prog);
	return 0;
}

static int run_queue(const char *prog, const struct conf *c)
{
	char reply[600];
	int rc = control_send(c->data_dir, "flush", reply, sizeof(reply));
	if (rc < 0) {
		fprintf(stderr, "%s: the server is not running (no answer on the control socket in %s): start it; it retries "
			"the queue at start\n", prog, c->data_dir);
		return EX_UNAVAILABLE;
	}
	fprintf(rc ? stderr : stdout, "%s\n", reply);
	return rc ? EX_SOFTWARE : 0;
}

static int list_queue(const char *prog, const struct conf *c)
{
	if (access(c->data_dir, R_OK | X_OK) != 0) {
		fprintf(stderr, "%s: cannot read the queue in %s (%s): mailq is for root and the server's user\n", prog, c->data_dir,
			strerror(errno));
		return EX_NOPERM;
	}
	char *argv[] = { "list", NULL };
	return cli_queue(1, argv, c, false, NULL, false);
}

/* -bs: an SMTP session on standard input and output, served by the server's own
 * SMTP session code through the local socket; bytes are copied both ways. */
static int smtp_on_stdio(const char *prog, const struct conf *c)
{
	char path[CONF_PATH_MAX];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = conf_local_socket(c, path, sizeof(path)) && strlen(path) < sizeof(sun.sun_path)
		? socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
	if (fd >= 0)
		memcpy(sun.sun_path, path, strlen(path) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		printf("421 %s %s the mail server is not running (no local socket %s): try again later\r\n", ENH_TEMP_NOT_ACCEPTING,
			c->hostname, path);
		fflush(stdout);
		if (fd >= 0)
			close(fd);
		return EX_TEMPFAIL;
	}
	struct pollfd p[2] = { { .fd = STDIN_FILENO, .events = POLLIN }, { .fd = fd, .events = POLLIN } };
	char buf[16384];
	bool in_open = true;
	for (;;) {
		/* After our input ended, the server's last replies (a pipelined group still
		 * being answered) are awaited a while, without half-closing: a server that
		 * sees the end of input drops what it has not answered yet. */
		int n = poll(p, 2, in_open ? (int)(c->idle_timeout + 30) * 1000 : 10000);
		if (n <= 0)
			break;   /* the server's idle limit passed with nobody speaking */
		if (in_open && (p[0].revents & (POLLIN | POLLHUP))) {
			ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
			if (r <= 0 || send(fd, buf, (size_t)r, MSG_NOSIGNAL) != r) {
				in_open = false;
				p[0].fd = -1;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(fd, buf, sizeof(buf), 0);
			if (r <= 0 || write(STDOUT_FILENO, buf, (size_t)r) != r)
				break;
		}
	}
	close(fd);
	(void)prog;
	return 0;
}

/* Who runs us: the address the server will hold us to (user@local_domain) and the
 * account's full name (the GECOS field's first part) for a From: we add. */
static void caller_identity(const struct conf *c, const struct sm_opts *o, struct sm_envelope *e)
{
	struct passwd *pw = getpwuid(getuid());
	char name[64];
	snprintf(name, sizeof(name), "%s", pw && pw->pw_name[0] ? pw->pw_name : "nobody");
	if (!pw)
		snprintf(name, sizeof(name), "uid%u", (unsigned)getuid());
	snprintf(e->own, sizeof(e->own), "%s@%s", name, conf_local_domain(c));
	e->domain = conf_local_domain(c);
	if (o->full_name)
		snprintf(e->full_name, sizeof(e->full_name), "%s", o->full_name);
	else if (pw && pw->pw_gecos)
		snprintf(e->full_name, sizeof(e->full_name), "%.*s", (int)strcspn(pw->pw_gecos, ","), pw->pw_gecos);
	const char *f = o->from;
	if (!f) {
		snprintf(e->sender, sizeof(e->sender), "%s", e->own);
		return;
	}
	size_t len = strlen(f);
	if (len >= 2 && f[0] == '<' && f[len - 1] == '>') {
		f++;
		len -= 2;
	}
	e->null_sender = len == 0;
	bool bare = len && !memchr(f, '@', len);
	snprintf(e->sender, sizeof(e->sender), "%.*s%s%s", (int)len, f, bare ? "@" : "", bare ? e->domain : "");
}

/* What the server said to each recipient; the exit status sendmail callers expect
 * (sysexits.h).  *all_deferred: nothing was taken and everything may be tried again. */
static int report_results(const char *prog, const struct sm_rcpts *r, const struct rcpt_result *res, bool *all_deferred)
{
	size_t done = 0, deferred = 0, denied = 0;
	for (size_t i = 0; i < r->n; i++) {
		done += res[i].outcome == OUT_DELIVERED;
		deferred += res[i].outcome == OUT_DEFER;
		denied += res[i].outcome == OUT_FAIL && strncmp(res[i].enh, "5.7.", 4) == 0;
	}
	*all_deferred = done == 0 && deferred == r->n;
	if (*all_deferred)
		return EX_TEMPFAIL;
	for (size_t i = 0; i < r->n; i++) {
		if (res[i].outcome == OUT_DELIVERED)
			continue;
		char why[RCPT_REASON_MAX + 32];
		rcpt_result_reason(&res[i], why, sizeof(why));
		fprintf(stderr, "%s: %s: %s%s\n", prog, r->addr[i], res[i].outcome == OUT_DEFER ? "not taken now, try again: " : "",
			why);
	}
	return done == r->n ? 0 : denied ? EX_NOPERM : deferred ? EX_TEMPFAIL : EX_NOUSER;
}

/* The message to the running server.  -1: it is not running (or said 421): use the
 * maildrop; otherwise the exit status. */
static int hand_to_server(const char *prog, const struct conf *c, const struct sm_envelope *e, const struct sm_rcpts *r,
	int fd, uint64_t size, bool eightbit)
{
	char path[CONF_PATH_MAX], err[700];
	if (!conf_local_socket(c, path, sizeof(path)))
		return -1;
	struct net_client_opts no = { .connect_timeout = 5, .io_timeout = 120 };
	enum net_status st;
	struct net_client *nc = net_client_open_unix(path, &no, &st, err, sizeof(err));
	struct smtp_client_opts so = { .helo = c->hostname, .peer_name = "local", .tls = SMTP_TLS_NEVER };
	bool permanent;
	struct smtp_client *sc = nc ? smtp_client_open(nc, &so, err, sizeof(err), &permanent) : NULL;
	if (!sc) {
		net_client_close(&nc);
		return -1;
	}
	struct queue_envelope qe = { .eightbit = eightbit, .n_rcpts = r->n };
	snprintf(qe.sender, sizeof(qe.sender), "%s", e->null_sender ? "" : e->sender);
	qe.rcpts = calloc(r->n, sizeof(*qe.rcpts));
	size_t *idx = calloc(r->n, sizeof(*idx));
	struct rcpt_result *res = calloc(r->n, sizeof(*res));
	int rc = EX_OSERR;
	if (qe.rcpts && idx && res) {
		for (size_t i = 0; i < r->n; i++) {
			snprintf(qe.rcpts[i], QUEUE_ADDR_MAX, "%s", r->addr[i]);
			idx[i] = i;
		}
		struct smtp_client_msg m = { .env = &qe, .rcpts = idx, .n = r->n, .fd = fd, .off = 0, .size = size };
		smtp_client_send(sc, &m, res);
		bool all_deferred;
		rc = report_results(prog, r, res, &all_deferred);
		if (all_deferred)
			rc = -1;
	}
	free(qe.rcpts);
	free(idx);
	free(res);
	smtp_client_close(&sc);
	return rc;
}

/* The envelope lines the pickup reads (queue_maildrop_parse, queue.h), then the message. */
static bool write_drop(int out, const struct sm_envelope *e, const struct sm_rcpts *r, bool eightbit, int msg, uint64_t size)
{
	char line[SM_ADDR_MAX + 32];
	snprintf(line, sizeof(line), "%ssender %s\n", QUEUE_MAILDROP_MAGIC, e->null_sender ? "" : e->sender);
	bool ok = fileio_write_all(out, line, strlen(line));
	for (size_t i = 0; ok && i < r->n; i++) {
		snprintf(line, sizeof(line), "rcpt %s\n", r->addr[i]);
		ok = fileio_write_all(out, line, strlen(line));
	}
	snprintf(line, sizeof(line), "body %s\n\n", eightbit ? "8BITMIME" : "7BIT");
	ok = ok && fileio_write_all(out, line, strlen(line));
	char buf[65536];
	for (uint64_t off = 0; ok && off < size;) {
		ssize_t n = pread(msg, buf, sizeof(buf), (off_t)off);
		ok = n > 0 && fileio_write_all(out, buf, (size_t)n);
		off += n > 0 ? (uint64_t)n : 0;
	}
	return ok && fileio_fsync(out) == 0;
}

/* The server is down: a file in the maildrop (mode 1733: we may create, not list),
 * written under a dot name with O_EXCL, synced, then renamed into place.  Its owner,
 * us, is what the pickup takes as the sender's proof. */
static int to_maildrop(const char *prog, const struct conf *c, const struct sm_envelope *e, const struct sm_rcpts *r,
	bool eightbit, int msg, uint64_t size)
{
	char dir[CONF_PATH_MAX], tmp[112], name[96];
	conf_maildrop_dir(c, dir, sizeof(dir));
	unsigned long long rnd = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 20);
	snprintf(name, sizeof(name), "%lld.%d.%016llx", (long long)time(NULL), (int)getpid(), rnd);
	snprintf(tmp, sizeof(tmp), ".new.%s", name);
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	int out = dfd >= 0 ? openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644) : -1;
	int saved = errno;
	bool ok = out >= 0 && fchmod(out, 0644) == 0 && write_drop(out, e, r, eightbit, msg, size);
	if (out >= 0 && (!ok || renameat(dfd, tmp, dfd, name) != 0)) {
		saved = errno;
		unlinkat(dfd, tmp, 0);
		ok = false;
	}
	if (out >= 0)
		close(out);
	if (dfd >= 0)
		close(dfd);
	if (!ok) {
		fprintf(stderr, "%s: the server is not running, and the message cannot be left in %s: %s: start the server "
			"(postern serve), or check the directory (mode 1733, made by the server at start)\n", prog, dir,
			strerror(saved));
		return EX_TEMPFAIL;
	}
	fileio_fsync_dir(dir);   /* the rename durable: root and the server's user may (others cannot open the directory) */
	fprintf(stderr, "%s: queued in maildrop; the server will send it when it starts\n", prog);
	return 0;
}

static int send_message(const char *prog, const struct conf *c, const struct sm_opts *o)
{
	struct sm_envelope e = { 0 };
	caller_identity(c, o, &e);
	struct sm_rcpts r = { .addr = calloc(SM_MAX_RCPTS, sizeof(*r.addr)) };
	snprintf(r.domain, sizeof(r.domain), "%s", conf_local_domain(c));
	struct sm_message in = { 0 }, msg = { 0 };
	char err[700] = "";
	int rc = EX_DATAERR, fd = -1;
	bool ok = r.addr != NULL;
	for (int i = 0; ok && i < o->n_rcpts; i++)
		ok = sm_rcpts_add(&r, o->rcpts[i], err, sizeof(err));
	ok = ok && sm_read_input(stdin, !o->ignore_dots, c->message_size, &in, err, sizeof(err)) &&
		sm_prepare(&in, &e, o->from_headers, &r, &msg, err, sizeof(err));
	if (ok && r.n == 0)
		snprintf(err, sizeof(err), "no recipients: name them on the command line, or use -t to take them from To:, Cc: and Bcc:");
	if (ok && r.n > 0 && (fd = sm_memfd(&msg, err, sizeof(err))) >= 0) {
		bool eightbit = o->body == 8;
		for (size_t i = 0; o->body == 0 && i < msg.len; i++)
			eightbit = eightbit || (unsigned char)msg.data[i] >= 0x80;
		rc = hand_to_server(prog, c, &e, &r, fd, msg.len, eightbit);
		if (rc < 0)
			rc = to_maildrop(prog, c, &e, &r, eightbit, fd, msg.len);
		close(fd);
	} else
		fprintf(stderr, "%s: %s\n", prog, err[0] ? err : "out of memory");
	sm_message_free(&in);
	sm_message_free(&msg);
	free(r.addr);
	return rc;
}

int cli_sendmail(const char *name, int argc, char **argv)
{
	struct sm_opts o = { .mode = strcmp(name, "mailq") == 0 ? SM_LIST_QUEUE : SM_SEND };
	if (strcmp(name, "newaliases") == 0)
		return aliases_words(name);
	int rc = parse_options(name, argc, argv, &o);
	if (rc)
		return rc;
	if (o.mode == SM_ALIASES)
		return aliases_words(name);
	struct conf *c = malloc(sizeof(*c));
	if (!c || !load_conf(name, o.conf_path, c)) {
		free(c);
		return EX_CONFIG;
	}
	switch (o.mode) {
	case SM_SMTP_STDIO: rc = smtp_on_stdio(name, c); break;
	case SM_LIST_QUEUE: rc = list_queue(name, c); break;
	case SM_RUN_QUEUE: rc = run_queue(name, c); break;
	default: rc = send_message(name, c, &o); break;
	}
	free(c);
	return rc;
}
