/* queue_cmd.c - `postern queue`: see and steer the queue.
 *   list [--json] [--sender ADDRESS]   every queued message, one line each
 *   show ID                            envelope, per-recipient state, headers
 *   flush | retry ID | hold ID | release ID | delete ID [--bounce]
 * Reading works on the files directly; changes go through the running server's
 * control socket so the queue runner changes its own state (hold, release and
 * delete also work on the files when no server runs). */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "diag/json.h"
#include "net/control.h"
#include "queue/queue.h"

struct list_ctx {
	struct queue *q;
	bool json;
	const char *sender;
	bool failed_dir;
	unsigned count;
	time_t now;
};

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

/* Open a message in active/ (or, for the failed list, read only its envelope). */
static bool load(struct list_ctx *lc, const char *qid, struct queue_message *m, struct queue_state *st)
{
	char err[256];
	if (!queue_message_open(lc->q, qid, m, err, sizeof(err)))
		return false;
	if (!queue_state_read(lc->q, qid, m->env.n_rcpts, st)) {
		queue_message_close(m);
		return false;
	}
	return true;
}

static const char *message_state(const struct queue_state *st)
{
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
		(long long)(lc->now - m->env.arrival), (unsigned long long)m->body_size);
	json_str(stdout, m->env.sender);
	printf(",\"state\":");
	json_str(stdout, message_state(st));
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
	printf("%-16s %5s %9llu  %-8s <%s>\n", m->env.qid, age, (unsigned long long)m->body_size, message_state(st),
		m->env.sender);
	if (first) {
		char more[48] = "";
		if (pending > 1)
			snprintf(more, sizeof(more), " and %zu more", pending - 1);
		printf("%35s to <%s>%s; next try %s%s\n%35s last: %.160s\n", "", m->env.rcpts[first_i], more,
			next > lc->now ? "in " : "", nexts, "", first->last_reply[0] ? first->last_reply : "(not tried yet)");
	}
}

static void list_one(void *arg, const char *qid)
{
	struct list_ctx *lc = arg;
	struct queue_message m;
	struct queue_state st;
	if (!load(lc, qid, &m, &st))
		return;
	if (!lc->sender || strcasecmp(lc->sender, m.env.sender) == 0) {
		if (lc->json)
			print_json(lc, &m, &st);
		else
			print_row(lc, &m, &st);
		lc->count++;
	}
	queue_state_free(&st);
	queue_message_close(&m);
}

static int queue_list(struct queue *q, bool json, const char *sender)
{
	struct list_ctx lc = { .q = q, .json = json, .sender = sender, .now = time(NULL) };
	if (!json)
		printf("%-16s %5s %9s  %-8s %s\n", "ID", "AGE", "SIZE", "STATE", "SENDER");
	queue_list_active(q, list_one, &lc);
	if (json)
		printf(lc.count ? "\n]\n" : "[]\n");
	else
		printf("%u message(s)%s%s\n", lc.count, sender ? " from " : "", sender ? sender : "");
	return 0;
}

static int queue_show(struct queue *q, const char *qid)
{
	struct list_ctx lc = { .q = q, .now = time(NULL) };
	struct queue_message m;
	struct queue_state st;
	if (!load(&lc, qid, &m, &st)) {
		fprintf(stderr, "postern: no message %s in the queue\n", qid);
		return 1;
	}
	char when[64];
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&m.env.arrival, &tm));
	printf("id:        %s\narrived:   %s from %s (HELO %s, %s)\nsender:    <%s>\nsize:      %llu\nstate:     %s\n",
		m.env.qid, when, m.env.client_addr, m.env.helo, m.env.protocol, m.env.sender, (unsigned long long)m.body_size,
		message_state(&st));
	for (size_t i = 0; i < st.n; i++) {
		printf("recipient: <%s> %s, %u attempt(s)", m.env.rcpts[i], rcpt_state_name(&st.r[i]), st.r[i].attempts);
		if (st.r[i].state == RCPT_PENDING && st.r[i].next_try > lc.now) {
			char in[32];
			human_age(st.r[i].next_try - lc.now, in, sizeof(in));
			printf(", next try in %s", in);
		}
		printf("\n%11s%s\n", "", st.r[i].last_reply[0] ? st.r[i].last_reply : "(not tried yet)");
	}
	/* The header block, for "which message is this?" */
	char buf[8192];
	ssize_t r = pread(m.fd, buf, sizeof(buf) - 1, m.body_offset);
	if (r > 0) {
		buf[r] = '\0';
		char *end = strstr(buf, "\r\n\r\n");
		if (end)
			end[2] = '\0';
		printf("\n%s", buf);
	}
	queue_state_free(&st);
	queue_message_close(&m);
	return 0;
}

/* Without a server: hold, release and delete act on the files. */
static int offline(struct queue *q, const char *verb, const char *qid)
{
	if (strcmp(verb, "delete") == 0) {
		if (!queue_remove(q, qid)) {
			fprintf(stderr, "postern: cannot delete %s\n", qid);
			return 1;
		}
		printf("%s deleted\n", qid);
		return 0;
	}
	if (strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0) {
		struct list_ctx lc = { .q = q };
		struct queue_message m;
		struct queue_state st;
		if (!load(&lc, qid, &m, &st)) {
			fprintf(stderr, "postern: no message %s in the queue\n", qid);
			return 1;
		}
		st.held = verb[0] == 'h';
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

int cli_queue(int argc, char **argv, const struct conf *c, bool json, const char *sender, bool bounce)
{
	if (argc < 1) {
		fprintf(stderr, "usage: postern queue list [--json] [--sender ADDRESS] | show ID | flush | "
			"retry ID | hold ID | release ID | delete ID [--bounce]\n");
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
		rc = queue_list(q, json, sender);
	} else if (strcmp(verb, "show") == 0 && argc == 2) {
		rc = queue_show(q, argv[1]);
	} else if (strcmp(verb, "flush") == 0 || ((strcmp(verb, "retry") == 0 || strcmp(verb, "hold") == 0 ||
		strcmp(verb, "release") == 0 || strcmp(verb, "delete") == 0) && argc == 2)) {
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
