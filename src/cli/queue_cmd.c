/* queue_cmd.c - `postern queue`: see and steer the queue.
 *   list [--json] [--sender ADDRESS] [--failed | --held]   every queued (failed, held) message
 *   show ID                            envelope, per-recipient state, headers
 *   flush | retry ID | hold ID | release ID | delete ID [--bounce] | requeue ID
 * Reading works on the files directly (a file that cannot be read is listed as
 * damaged, never skipped); what is being delivered right now is asked of the
 * running server.  Changes go through the running server's control socket so the
 * queue runner changes its own state (hold, release, delete and requeue also work on
 * the files when no server runs). */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "diag/json.h"
#include "serve/control.h"
#include "queue/queue.h"

#define INFLIGHT_MAX 16384

struct list_ctx {
	struct queue *q;
	bool json;
	const char *sender;
	bool failed_dir;
	bool held_only;                  /* --held: only the held messages */
	unsigned count;
	time_t now;
	char inflight[INFLIGHT_MAX];   /* "delivering QID WHERE QID WHERE ..." from the server, or "" */
};

/* Where the running server is delivering qid right now, or NULL. */
static const char *inflight_where(const struct list_ctx *lc, const char *qid, char *out, size_t outsz)
{
	const char *p = strstr(lc->inflight, qid);
	while (p && (p == lc->inflight || p[-1] != ' ' || p[QUEUE_ID_LEN] != ' '))
		p = strstr(p + 1, qid);
	if (!p)
		return NULL;
	p += QUEUE_ID_LEN + 1;
	size_t n = strcspn(p, " ");
	snprintf(out, outsz, "%.*s", (int)n, p);
	for (char *c = out; *c; c++)
		if (*c == '+')
			*c = ' ';   /* the server writes spaces as '+' (one token per field) */
	return out;
}

static void ask_inflight(struct list_ctx *lc, const char *data_dir)
{
	if (control_send(data_dir, "inflight", lc->inflight, sizeof(lc->inflight)) != 0)
		lc->inflight[0] = '\0';
}

static void human_age(long long secs, char *out, size_t outsz)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, outsz, "%llds", secs);
	else if (secs < 7200)
		snprintf(out, outsz, "%lldm", secs / 60);
	else if (secs < 172800)
		snprintf(out, outsz, "%lldh", secs / 3600);
	else
		snprintf(out, outsz, "%lldd", secs / 86400);
}

static const char *rcpt_state_name(const struct queue_rcpt_state *r)
{
	if (r->state == RCPT_DELIVERED)
		return "delivered";
	if (r->state == RCPT_FAILED)
		return "failed";
	return r->attempts ? "deferred" : "pending";
}

/* Open a message in active/ with its state (a damaged state is salvaged, not refused). */
static bool load(struct list_ctx *lc, const char *qid, struct queue_message *m, struct queue_state *st,
	char *err, size_t errlen)
{
	if (!queue_message_open(lc->q, qid, m, err, errlen))
		return false;
	if (!queue_state_read(lc->q, qid, m->env.n_rcpts, st)) {
		snprintf(err, errlen, "out of memory");
		queue_message_close(m);
		return false;
	}
	return true;
}

static const char *message_state(const struct list_ctx *lc, const char *qid, const struct queue_state *st)
{
	char where[300];
	if (inflight_where(lc, qid, where, sizeof(where)))
		return "sending";
	if (st->held)
		return "held";
	for (size_t i = 0; i < st->n; i++)
		if (st->r[i].state == RCPT_PENDING && st->r[i].attempts)
			return "deferred";
	return "active";
}

static void print_json(struct list_ctx *lc, const struct queue_message *m, const struct queue_state *st)
{
	printf("%s{\"id\":", lc->count ? ",\n " : "[\n ");
	json_str(stdout, m->env.qid);
	printf(",\"arrival\":%lld,\"age_seconds\":%lld,\"size\":%llu,\"sender\":", (long long)m->env.arrival,
		(long long)(lc->now - m->env.arrival), (unsigned long long)queue_message_size(m));
	json_str(stdout, m->env.sender);
	printf(",\"state\":");
	json_str(stdout, message_state(lc, m->env.qid, st));
	char where[300];
	printf(",\"delivering_to\":");
	json_str(stdout, inflight_where(lc, m->env.qid, where, sizeof(where)));
	if (st->damaged)
		printf(",\"state_damaged\":true,\"recipients_recovered\":%zu", st->recovered);
	if (st->held) {
		printf(",\"hold_reason\":");
		json_str(stdout, st->hold_reason[0] ? st->hold_reason : NULL);
	}
	printf(",\"recipients\":[");
	for (size_t i = 0; i < st->n; i++) {
		printf("%s{\"address\":", i ? "," : "");
		json_str(stdout, m->env.rcpts[i]);
		printf(",\"state\":");
		json_str(stdout, rcpt_state_name(&st->r[i]));
		printf(",\"attempts\":%u,\"next_try\":%lld,\"last_reply\":", st->r[i].attempts, st->r[i].next_try);
		json_str(stdout, st->r[i].last_reply[0] ? st->r[i].last_reply : NULL);
		printf("}");
	}
	printf("]}");
}

static void print_row(struct list_ctx *lc, const struct queue_message *m, const struct queue_state *st)
{
	char age[32];
	human_age(lc->now - m->env.arrival, age, sizeof(age));
	size_t pending = 0;
	const struct queue_rcpt_state *first = NULL;
	size_t first_i = 0;
	long long next = 0;
	for (size_t i = 0; i < st->n; i++)
		if (st->r[i].state == RCPT_PENDING) {
			if (!first) {
				first = &st->r[i];
				first_i = i;
			}
			pending++;
			if (!next || st->r[i].next_try < next)
				next = st->r[i].next_try;
		}
	char nexts[32] = "now";
	if (next > lc->now)
		human_age(next - lc->now, nexts, sizeof(nexts));
	printf("%-16s %5s %9llu  %-8s <%s>\n", m->env.qid, age, (unsigned long long)queue_message_size(m),
		message_state(lc, m->env.qid, st), m->env.sender);
	if (st->damaged)
		printf("%35s delivery state damaged (%s): %zu of %zu recipient(s) recovered; the rest are tried again\n", "",
			st->damage, st->recovered, st->n);
	if (st->held)
		printf("%35s held: %.200s; postern queue release %s delivers it\n", "",
			st->hold_reason[0] ? st->hold_reason : "by the administrator", m->env.qid);
	char where[300];
	if (first && inflight_where(lc, m->env.qid, where, sizeof(where))) {
		printf("%35s being delivered now (%s); %zu recipient(s) pending\n", "", where, pending);
	} else if (first) {
		char more[48] = "";
		if (pending > 1)
			snprintf(more, sizeof(more), " and %zu more", pending - 1);
		printf("%35s to <%s>%s; next try %s%s\n%35s last: %.160s\n", "", m->env.rcpts[first_i], more,
			next > lc->now ? "in " : "", nexts, "", first->last_reply[0] ? first->last_reply : "(not tried yet)");
	}
}

/* A file in active/ that cannot be read as a message: shown, never hidden. */
static void print_damaged(struct list_ctx *lc, const char *qid, const char *why)
{
	if (lc->sender)
		return;
	if (lc->json) {
		printf("%s{\"id\":", lc->count ? ",\n " : "[\n ");
		json_str(stdout, qid);
		printf(",\"state\":\"damaged\",\"error\":");
		json_str(stdout, why);
		printf(",\"recipients\":[]}");
	} else {
		printf("%-16s %5s %9s  %-8s %s\n%35s the server moves it to queue/failed/ (see postern queue list --failed)\n",
			qid, "-", "-", "damaged", why, "");
	}
	lc->count++;
}

static void list_one(void *arg, const char *qid)
{
	struct list_ctx *lc = arg;
	struct queue_message m;
	struct queue_state st;
	char err[256];
	if (!load(lc, qid, &m, &st, err, sizeof(err))) {
		if (errno != ENOENT)   /* not removed meanwhile: unreadable */
			print_damaged(lc, qid, err);
		return;
	}
	if ((!lc->sender || strcasecmp(lc->sender, m.env.sender) == 0) && (!lc->held_only || st.held)) {
		if (lc->json)
			print_json(lc, &m, &st);
		else
			print_row(lc, &m, &st);
		lc->count++;
	}
	queue_state_free(&st);
	queue_message_close(&m);
}

/* --- queue/failed/ ------------------------------------------------------------- */

static void failed_one(void *arg, const char *qid)
{
	struct list_ctx *lc = arg;
	struct queue_message m;
	char err[256], why[400];
	queue_failed_reason(lc->q, qid, why, sizeof(why));
	bool ok = queue_failed_open(lc->q, qid, &m, err, sizeof(err));
	if (!ok && errno == ENOENT)
		return;
	if (ok && lc->sender && strcasecmp(lc->sender, m.env.sender) != 0) {
		queue_message_close(&m);
		return;
	}
	if (lc->json) {
		printf("%s{\"id\":", lc->count ? ",\n " : "[\n ");
		json_str(stdout, qid);
		printf(",\"state\":\"failed\",\"reason\":");
		json_str(stdout, why[0] ? why : NULL);
		printf(",\"readable\":%s", ok ? "true" : "false");
		if (ok) {
			printf(",\"arrival\":%lld,\"size\":%llu,\"sender\":", (long long)m.env.arrival,
				(unsigned long long)queue_message_size(&m));
			json_str(stdout, m.env.sender);
			printf(",\"recipients\":[");
			for (size_t i = 0; i < m.env.n_rcpts; i++) {
				printf("%s", i ? "," : "");
				json_str(stdout, m.env.rcpts[i]);
			}
			printf("]");
		} else {
			printf(",\"error\":");
			json_str(stdout, err);
		}
		printf("}");
	} else if (ok) {
		char age[32];
		human_age(lc->now - m.env.arrival, age, sizeof(age));
		printf("%-16s %5s %9llu  %-8s <%s>\n%35s to <%s>%s\n%35s why: %.200s\n", qid, age,
			(unsigned long long)queue_message_size(&m), "failed", m.env.sender, "", m.env.rcpts[0],
			m.env.n_rcpts > 1 ? " and more" : "", "", why[0] ? why : "(not recorded)");
	} else {
		printf("%-16s %5s %9s  %-8s %s\n%35s why: %.200s\n", qid, "-", "-", "failed", err, "",
			why[0] ? why : "(not recorded)");
	}
	if (ok)
		queue_message_close(&m);
	lc->count++;
}

static int queue_list(struct queue *q, const struct conf *c, bool json, const char *sender, bool failed, bool held)
{
	struct list_ctx *lc = calloc(1, sizeof(*lc));
	if (!lc)
		return 1;
	*lc = (struct list_ctx){ .q = q, .json = json, .sender = sender, .failed_dir = failed, .held_only = held,
		.now = time(NULL) };
	if (!failed)
		ask_inflight(lc, c->data_dir);
	if (!json)
		printf("%-16s %5s %9s  %-8s %s\n", "ID", "AGE", "SIZE", "STATE", "SENDER");
	if (failed)
		queue_list_failed(q, failed_one, lc);
	else
		queue_list_active(q, list_one, lc);
	if (json)
		printf(lc->count ? "\n]\n" : "[]\n");
	else
		printf("%u %smessage(s)%s%s%s\n", lc->count, failed ? "failed " : held ? "held " : "", sender ? " from " : "",
			sender ? sender : "", failed && lc->count ? "; postern queue requeue ID tries one again, "
			"postern queue delete ID removes it" : "");
	free(lc);
	return 0;
}

/* `queue show` of a message in queue/failed/: what is known without a state. */
static int show_failed(struct queue *q, const char *qid)
{
	struct queue_message m;
	char err[256], why[400];
	queue_failed_reason(q, qid, why, sizeof(why));
	bool ok = queue_failed_open(q, qid, &m, err, sizeof(err));
	if (!ok && errno == ENOENT) {
		fprintf(stderr, "postern: no message %s in the queue (nor in queue/failed/)\n", qid);
		return 1;
	}
	printf("id:        %s\nstate:     failed (kept in queue/failed/)\nwhy:       %s\n", qid,
		why[0] ? why : "(not recorded)");
	if (!ok) {
		printf("file:      %s\n", err);
	} else {
		char when[64];
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&m.env.arrival, &tm));
		printf("arrived:   %s from %s (HELO %s, %s)\nsender:    <%s>\nsize:      %llu\n", when, m.env.client_addr,
			m.env.helo, m.env.protocol, m.env.sender, (unsigned long long)queue_message_size(&m));
		for (size_t i = 0; i < m.env.n_rcpts; i++)
			printf("recipient: <%s>\n", m.env.rcpts[i]);
		queue_message_close(&m);
	}
	printf("\nTo try it again: postern queue requeue %s; to remove it: postern queue delete %s\n", qid, qid);
	return 0;
}

static int queue_show(struct queue *q, const struct conf *c, const char *qid)
{
	struct list_ctx *lc = calloc(1, sizeof(*lc));
	if (!lc)
		return 1;
	lc->q = q;
	lc->now = time(NULL);
	struct queue_message m;
	struct queue_state st;
	char err[256];
	if (!id_is_queue_id(qid)) {
		fprintf(stderr, "postern: \"%s\" is not a queue id (16 hex digits, see postern queue list)\n", qid);
		free(lc);
		return 2;
	}
	if (!load(lc, qid, &m, &st, err, sizeof(err))) {
		int rc = 1;
		if (errno == ENOENT)
			rc = show_failed(q, qid);
		else
			fprintf(stderr, "postern: %s in queue/active/ cannot be read: %s; the server moves it to queue/failed/\n",
				qid, err);
		free(lc);
		return rc;
	}
	ask_inflight(lc, c->data_dir);
	char when[64];
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&m.env.arrival, &tm));
	printf("id:        %s\narrived:   %s from %s (HELO %s, %s)\nsender:    <%s>\nsize:      %llu\nstate:     %s\n",
		m.env.qid, when, m.env.client_addr, m.env.helo, m.env.protocol, m.env.sender, (unsigned long long)queue_message_size(&m),
		message_state(lc, qid, &st));
	char where[300];
	if (inflight_where(lc, qid, where, sizeof(where)))
		printf("now:       being delivered (%s)\n", where);
	if (st.damaged)
		printf("damaged:   the delivery state file was damaged (%s); %zu of %zu recipient(s) recovered, "
			"the others are tried again\n", st.damage, st.recovered, st.n);
	if (st.held)
		printf("held:      %s\n           postern queue release %s delivers it\n",
			st.hold_reason[0] ? st.hold_reason : "by the administrator", qid);
	for (size_t i = 0; i < st.n; i++) {
		printf("recipient: <%s> %s, %u attempt(s)", m.env.rcpts[i], rcpt_state_name(&st.r[i]), st.r[i].attempts);
		if (st.r[i].state == RCPT_PENDING && st.r[i].next_try > lc->now) {
			char in[32];
			human_age(st.r[i].next_try - lc->now, in, sizeof(in));
			printf(", next try in %s", in);
		}
		printf("\n%11s%s\n", "", st.r[i].last_reply[0] ? st.r[i].last_reply : "(not tried yet)");
	}
	/* The header block, for "which message is this?" */
	char buf[8192];
	ssize_t r = queue_message_pread(&m, buf, sizeof(buf) - 1, 0);   /* added fields first (queue.h) */
	if (r > 0) {
		buf[r] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end)
			end[2] = '\0';
		printf("\n%s", buf);
	}
	queue_state_free(&st);
	queue_message_close(&m);
	free(lc);
	return 0;
}

/* Without a server: hold, release and delete act on the files. */
static int offline(struct queue *q, const char *verb, const char *qid)
{
	if (strcmp(verb, "requeue") == 0) {
		if (!queue_requeue(q, qid)) {
			fprintf(stderr, "postern: cannot requeue %s: %s\n", qid, errno == ENOENT ? "no such message in queue/failed/"
				: "it is not a readable queue file (remove it with postern queue delete)");
			return 1;
		}
		printf("%s back in the queue; it is tried when the server starts\n", qid);
		return 0;
	}
	if (strcmp(verb, "delete") == 0) {
		if (!queue_remove(q, qid)) {
			fprintf(stderr, "postern: cannot delete %s\n", qid);
			return 1;
		}
		printf("%s deleted\n", qid);
		return 0;
	}
	if (strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0) {
		struct list_ctx *lc = calloc(1, sizeof(*lc));
		struct queue_message m;
		struct queue_state st;
		char err[256];
		if (!lc)
			return 1;
		lc->q = q;
		bool loaded = load(lc, qid, &m, &st, err, sizeof(err));
		free(lc);
		if (!loaded) {
			fprintf(stderr, "postern: no message %s in the queue\n", qid);
			return 1;
		}
		st.held = verb[0] == 'h';
		if (!st.held)
			st.hold_reason[0] = '\0';
		bool ok = queue_state_write(q, qid, &st);
		queue_state_free(&st);
		queue_message_close(&m);
		printf(ok ? "%s %s\n" : "cannot change %s\n", qid, verb[0] == 'h' ? "held" : "released");
		return ok ? 0 : 1;
	}
	fprintf(stderr, "postern: the server is not running; queued messages are tried when it starts%s\n",
		strcmp(verb, "bounce") == 0 ? " (returning a message to its sender needs the running server)" : "");
	return 1;
}

/* A message in queue/failed/ is the admin's alone (the queue runner never looks
 * there): delete acts on the file directly. */
static int delete_failed(struct queue *q, const char *qid)
{
	if (!queue_remove_failed(q, qid)) {
		fprintf(stderr, "postern: cannot delete %s from queue/failed/: %s\n", qid, strerror(errno));
		return 1;
	}
	printf("%s deleted from queue/failed/\n", qid);
	return 0;
}

static bool in_failed(struct queue *q, const char *qid)
{
	char why[64];
	struct queue_message m;
	if (queue_failed_open(q, qid, &m, why, sizeof(why))) {
		queue_message_close(&m);
		return true;
	}
	return errno != ENOENT;
}

int cli_queue(int argc, char **argv, const struct conf *c, bool json, const char *sender, bool bounce)
{
	/* --failed and --held are the queue's own options (the general parser passes them through). */
	bool failed = false, held = false;
	int kept = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--failed") == 0)
			failed = true;
		else if (strcmp(argv[i], "--held") == 0)
			held = true;
		else
			argv[kept++] = argv[i];
	}
	argc = kept;
	if (argc < 1) {
		fprintf(stderr, "usage: postern queue list [--json] [--sender ADDRESS] [--failed | --held] | show ID | flush | "
			"retry ID | hold ID | release ID | delete ID [--bounce] | requeue ID\n");
		return 2;
	}
	struct queue *q = NULL;
	char err[512];
	if (!queue_attach(&q, c->data_dir, err, sizeof(err))) {
		fprintf(stderr, "postern: %s\n", err);
		return 1;
	}
	const char *verb = argv[0];
	int rc;
	if (strcmp(verb, "list") == 0) {
		rc = queue_list(q, c, json, sender, failed, held);
	} else if (strcmp(verb, "show") == 0 && argc == 2) {
		rc = queue_show(q, c, argv[1]);
	} else if (strcmp(verb, "delete") == 0 && argc == 2 && !bounce && id_is_queue_id(argv[1]) &&
		in_failed(q, argv[1])) {
		rc = delete_failed(q, argv[1]);
	} else if (strcmp(verb, "flush") == 0 || ((strcmp(verb, "retry") == 0 || strcmp(verb, "hold") == 0 ||
		strcmp(verb, "release") == 0 || strcmp(verb, "delete") == 0 || strcmp(verb, "requeue") == 0) && argc == 2)) {
		if (argc == 2 && !id_is_queue_id(argv[1])) {
			fprintf(stderr, "postern: \"%s\" is not a queue id (16 hex digits, see postern queue list)\n", argv[1]);
			queue_close(&q);
			return 2;
		}
		const char *v = strcmp(verb, "delete") == 0 && bounce ? "bounce" : verb;
		char cmd[128], reply[600];
		snprintf(cmd, sizeof(cmd), "%s%s%s", v, argc == 2 ? " " : "", argc == 2 ? argv[1] : "");
		rc = control_send(c->data_dir, cmd, reply, sizeof(reply));
		if (rc < 0)
			rc = offline(q, v, argc == 2 ? argv[1] : "");
		else
			fprintf(rc ? stderr : stdout, "%s%s\n", rc ? "postern: " : "", reply);
	} else {
		fprintf(stderr, "postern: unknown queue command; see postern queue\n");
		rc = 2;
	}
	queue_close(&q);
	return rc;
}
