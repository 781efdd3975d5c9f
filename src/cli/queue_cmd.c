/* queue_cmd.c - `postern queue`: see and steer the queue.
 *   list [--json] [--sender ADDRESS] [--failed | --held]   every queued (failed, held) message
 *   show ID                            envelope, per-recipient state, headers
 *   flush | retry ID | hold ID | release ID | delete ID [--bounce] | requeue ID
 * Reading works on the files directly, through the admin's view of queue/ (view.c,
 * which the web site's /admin/queue shows too; a file that cannot be read is listed
 * as damaged, never skipped); what is being delivered right now is asked of the
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
#include "directory/directory.h"
#include "diag/json.h"
#include "serve/control.h"
#include "queue/queue.h"

#define INFLIGHT_MAX 16384

struct list_ctx {
	bool json;
	unsigned count;
	time_t now;
	char inflight[INFLIGHT_MAX];   /* "delivering QID WHERE QID WHERE ..." from the server, or "" */
};

/* [cluster]: a queue id names its node as "NODE:ID" in what the commands print
 * (the file keeps the 16 hex digits), and the commands take either form. */
static const char *this_node = "";

static const char *shown(const char *qid)
{
	static _Thread_local char ring[4][DIR_NODE_NAME_MAX + QUEUE_ID_LEN + 2];
	static _Thread_local unsigned at;
	if (!this_node[0])
		return qid;
	char *b = ring[at++ % 4];
	snprintf(b, sizeof(ring[0]), "%s:%s", this_node, qid);
	return b;
}

/* "NODE:ID" or "ID" as typed: the id, or NULL when it names another node (said). */
static const char *typed_qid(const char *arg)
{
	const char *colon = strchr(arg, ':');
	if (!colon)
		return arg;
	size_t n = (size_t)(colon - arg);
	if (this_node[0] && strlen(this_node) == n && strncmp(arg, this_node, n) == 0)
		return colon + 1;
	fprintf(stderr, "postern: %s is a message of node %.*s, and this is %s: run the command on that node (postern "
		"queue list --cluster lists every node's queue)\n", arg, (int)n, arg, this_node[0] ? this_node : "a single server");
	return NULL;
}

static void ask_inflight(struct list_ctx *lc, const char *data_dir)
{
	if (control_send(data_dir, "inflight", lc->inflight, sizeof(lc->inflight)) != 0)
		lc->inflight[0] = '\0';
}

static void print_json(struct list_ctx *lc, const struct queue_view_item *it)
{
	const struct queue_message *m = it->m;
	const struct queue_state *st = it->st;
	printf("%s{\"id\":", lc->count ? ",\n " : "[\n ");
	json_str(stdout, m->env.qid);
	printf(",\"arrival\":%lld,\"age_seconds\":%lld,\"size\":%llu,\"sender\":", (long long)m->env.arrival,
		(long long)(lc->now - m->env.arrival), (unsigned long long)queue_message_size(m));
	json_str(stdout, m->env.sender);
	printf(",\"state\":");
	json_str(stdout, queue_view_state_name(it->state));
	printf(",\"delivering_to\":");
	json_str(stdout, it->where);
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
		json_str(stdout, queue_view_rcpt_state(&st->r[i]));
		printf(",\"attempts\":%u,\"next_try\":%lld,\"last_reply\":", st->r[i].attempts, st->r[i].next_try);
		json_str(stdout, st->r[i].last_reply[0] ? st->r[i].last_reply : NULL);
		printf("}");
	}
	printf("]}");
}

static void print_row(struct list_ctx *lc, const struct queue_view_item *it)
{
	const struct queue_message *m = it->m;
	const struct queue_state *st = it->st;
	char age[32];
	queue_view_age(lc->now - m->env.arrival, age, sizeof(age));
	char nexts[32] = "now";
	if (it->next_try > lc->now)
		queue_view_age(it->next_try - lc->now, nexts, sizeof(nexts));
	printf("%-16s %5s %9llu  %-8s <%s>\n", shown(m->env.qid), age, (unsigned long long)queue_message_size(m),
		queue_view_state_name(it->state), m->env.sender);
	if (st->damaged)
		printf("%35s delivery state damaged (%s): %zu of %zu recipient(s) recovered; the rest are tried again\n", "",
			st->damage, st->recovered, st->n);
	if (st->held)
		printf("%35s held: %.200s; postern queue release %s delivers it\n", "",
			st->hold_reason[0] ? st->hold_reason : "by the administrator", shown(m->env.qid));
	if (it->pending && it->where) {
		printf("%35s being delivered now (%s); %zu recipient(s) pending\n", "", it->where, it->pending);
	} else if (it->pending) {
		const struct queue_rcpt_state *first = &st->r[it->first_pending];
		char more[48] = "";
		if (it->pending > 1)
			snprintf(more, sizeof(more), " and %zu more", it->pending - 1);
		printf("%35s to <%s>%s; next try %s%s\n%35s last: %.160s\n", "", m->env.rcpts[it->first_pending], more,
			it->next_try > lc->now ? "in " : "", nexts, "", first->last_reply[0] ? first->last_reply : "(not tried yet)");
	}
}

/* A file in active/ that cannot be read as a message: shown, never hidden. */
static void print_damaged(struct list_ctx *lc, const struct queue_view_item *it)
{
	if (lc->json) {
		printf("%s{\"id\":", lc->count ? ",\n " : "[\n ");
		json_str(stdout, it->qid);
		printf(",\"state\":\"damaged\",\"error\":");
		json_str(stdout, it->error);
		printf(",\"recipients\":[]}");
	} else {
		printf("%-16s %5s %9s  %-8s %s\n%35s the server moves it to queue/failed/ (see postern queue list --failed)\n",
			it->qid, "-", "-", "damaged", it->error, "");
	}
}

/* A message in queue/failed/. */
static void print_failed(struct list_ctx *lc, const struct queue_view_item *it)
{
	const struct queue_message *m = it->m;
	const char *why = it->failed_reason;
	if (lc->json) {
		printf("%s{\"id\":", lc->count ? ",\n " : "[\n ");
		json_str(stdout, it->qid);
		printf(",\"state\":\"failed\",\"reason\":");
		json_str(stdout, why[0] ? why : NULL);
		printf(",\"readable\":%s", m ? "true" : "false");
		if (m) {
			printf(",\"arrival\":%lld,\"size\":%llu,\"sender\":", (long long)m->env.arrival,
				(unsigned long long)queue_message_size(m));
			json_str(stdout, m->env.sender);
			printf(",\"recipients\":[");
			for (size_t i = 0; i < m->env.n_rcpts; i++) {
				printf("%s", i ? "," : "");
				json_str(stdout, m->env.rcpts[i]);
			}
			printf("]");
		} else {
			printf(",\"error\":");
			json_str(stdout, it->error);
		}
		printf("}");
	} else if (m) {
		char age[32];
		queue_view_age(lc->now - m->env.arrival, age, sizeof(age));
		printf("%-16s %5s %9llu  %-8s <%s>\n%35s to <%s>%s\n%35s why: %.200s\n", shown(it->qid), age,
			(unsigned long long)queue_message_size(m), "failed", m->env.sender, "", m->env.rcpts[0],
			m->env.n_rcpts > 1 ? " and more" : "", "", why[0] ? why : "(not recorded)");
	} else {
		printf("%-16s %5s %9s  %-8s %s\n%35s why: %.200s\n", shown(it->qid), "-", "-", "failed", it->error, "",
			why[0] ? why : "(not recorded)");
	}
}

static void list_item(void *arg, const struct queue_view_item *it)
{
	struct list_ctx *lc = arg;
	if (it->state == QUEUE_VIEW_DAMAGED)
		print_damaged(lc, it);
	else if (it->state == QUEUE_VIEW_FAILED)
		print_failed(lc, it);
	else if (lc->json)
		print_json(lc, it);
	else
		print_row(lc, it);
	lc->count++;
}

static int queue_list(struct queue *q, const struct conf *c, bool json, const char *sender, bool failed, bool held)
{
	struct list_ctx *lc = calloc(1, sizeof(*lc));
	if (!lc)
		return 1;
	lc->json = json;
	lc->now = time(NULL);
	if (!failed)
		ask_inflight(lc, c->data_dir);
	if (!json)
		printf("%-16s %5s %9s  %-8s %s\n", "ID", "AGE", "SIZE", "STATE", "SENDER");
	/* --held shows damaged files too: they are never hidden (the server moves them) */
	struct queue_view_filter f = { .sender = sender,
		.states = failed ? QUEUE_VIEW_FAILED : held ? QUEUE_VIEW_HELD | QUEUE_VIEW_DAMAGED : 0 };
	queue_view_list(q, &f, lc->inflight, list_item, lc);
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
static void show_failed(const struct queue_view_item *it)
{
	const struct queue_message *m = it->m;
	const char *why = it->failed_reason;
	printf("id:        %s\nstate:     failed (kept in queue/failed/)\nwhy:       %s\n", shown(it->qid),
		why[0] ? why : "(not recorded)");
	if (!m) {
		printf("file:      %s\n", it->error);
	} else {
		char when[64];
		struct tm tm;
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&m->env.arrival, &tm));
		printf("arrived:   %s from %s (HELO %s, %s)\nsender:    <%s>\nsize:      %llu\n", when, m->env.client_addr,
			m->env.helo, m->env.protocol, m->env.sender, (unsigned long long)queue_message_size(m));
		for (size_t i = 0; i < m->env.n_rcpts; i++)
			printf("recipient: <%s>\n", m->env.rcpts[i]);
	}
	printf("\nTo try it again: postern queue requeue %s; to remove it: postern queue delete %s\n", shown(it->qid), shown(it->qid));
}

static void show_active(const struct queue_view_item *it, time_t now)
{
	const struct queue_message *m = it->m;
	const struct queue_state *st = it->st;
	char when[64];
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime_r(&m->env.arrival, &tm));
	printf("id:        %s\narrived:   %s from %s (HELO %s, %s)\nsender:    <%s>\nsize:      %llu\nstate:     %s\n",
		shown(m->env.qid), when, m->env.client_addr, m->env.helo, m->env.protocol, m->env.sender,
		(unsigned long long)queue_message_size(m), queue_view_state_name(it->state));
	if (it->where)
		printf("now:       being delivered (%s)\n", it->where);
	if (st->damaged)
		printf("damaged:   the delivery state file was damaged (%s); %zu of %zu recipient(s) recovered, "
			"the others are tried again\n", st->damage, st->recovered, st->n);
	if (st->held)
		printf("held:      %s\n           postern queue release %s delivers it\n",
			st->hold_reason[0] ? st->hold_reason : "by the administrator", it->qid);
	for (size_t i = 0; i < st->n; i++) {
		printf("recipient: <%s> %s, %u attempt(s)", m->env.rcpts[i], queue_view_rcpt_state(&st->r[i]),
			st->r[i].attempts);
		if (st->r[i].state == RCPT_PENDING && st->r[i].next_try > now) {
			char in[32];
			queue_view_age(st->r[i].next_try - now, in, sizeof(in));
			printf(", next try in %s", in);
		}
		printf("\n%11s%s\n", "", st->r[i].last_reply[0] ? st->r[i].last_reply : "(not tried yet)");
	}
	/* The header block, for "which message is this?" */
	char buf[8192];
	if (queue_view_header(m, buf, sizeof(buf)))
		printf("\n%s", buf);
}

struct show_ctx {
	time_t now;
	int rc;
};

static void show_item(void *arg, const struct queue_view_item *it)
{
	struct show_ctx *sc = arg;
	sc->rc = 0;
	if (it->state == QUEUE_VIEW_DAMAGED) {
		fprintf(stderr, "postern: %s in queue/active/ cannot be read: %s; the server moves it to queue/failed/\n",
			it->qid, it->error);
		sc->rc = 1;
	} else if (it->state == QUEUE_VIEW_FAILED) {
		show_failed(it);
	} else {
		show_active(it, sc->now);
	}
}

static int queue_show(struct queue *q, const struct conf *c, const char *qid)
{
	if (!id_is_queue_id(qid)) {
		fprintf(stderr, "postern: \"%s\" is not a queue id (16 hex digits, see postern queue list)\n", qid);
		return 2;
	}
	struct list_ctx *lc = calloc(1, sizeof(*lc));
	if (!lc)
		return 1;
	ask_inflight(lc, c->data_dir);
	struct show_ctx sc = { .now = time(NULL), .rc = 1 };
	if (!queue_view_one(q, qid, lc->inflight, show_item, &sc))
		fprintf(stderr, "postern: no message %s in the queue (nor in queue/failed/)\n", qid);
	free(lc);
	return sc.rc;
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
		struct queue_message m;
		struct queue_state st;
		char err[256];
		if (!queue_message_open(q, qid, &m, err, sizeof(err))) {
			fprintf(stderr, "postern: no message %s in the queue\n", qid);
			return 1;
		}
		if (!queue_state_read(q, qid, m.env.n_rcpts, &st)) {
			queue_message_close(&m);
			fprintf(stderr, "postern: out of memory\n");
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
	this_node = c->cluster_node;
	if (argc == 2 && strcmp(verb, "list") != 0 && !(argv[1] = (char *)typed_qid(argv[1]))) {
		queue_close(&q);
		return 2;
	}
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
