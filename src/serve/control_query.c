/* control_query.c - the read-only answers of the control protocol that describe this
 * node (see control.h): `status` (the node, when it started, its queue: messages,
 * deferred, held, the oldest arrival) and `queue` (the messages in its queue, one
 * record each), for `postern cluster status` and `postern queue list --cluster` on any
 * node of a cluster, and for the Unix socket alike.  They run on the control's worker
 * thread (they read queue/ through the admin's view: disk work, never on the loop).
 *
 * Both answers are one line (the control protocol's rule), so a record is one
 * tab-separated field list and the addresses are %-escaped (control.h says how). */
#include "serve/control.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "queue/queue.h"

struct counts {
	long long messages, deferred, held, oldest;
};

static void count_item(void *arg, const struct queue_view_item *it)
{
	struct counts *c = arg;
	c->messages++;
	if (it->state == QUEUE_VIEW_DEFERRED)
		c->deferred++;
	if (it->state == QUEUE_VIEW_HELD)
		c->held++;
	if (it->m && (c->oldest == 0 || (long long)it->m->env.arrival < c->oldest))
		c->oldest = (long long)it->m->env.arrival;
}

int control_status_answer(const struct control_node *n, const char *inflight, char *reply, size_t replysz)
{
	struct counts c = { 0 };
	struct queue_view_filter f = { .states = 0 };
	if (!queue_view_list(n->queue, &f, inflight, count_item, &c)) {
		snprintf(reply, replysz, "the queue cannot be read (see the node's log)");
		return 1;
	}
	snprintf(reply, replysz, "node=%s started=%lld now=%lld queue=%lld deferred=%lld held=%lld oldest=%lld",
		n->name[0] ? n->name : "-", (long long)n->started, (long long)time(NULL), c.messages, c.deferred, c.held,
		c.oldest);
	return 0;
}

/* %-escape what would break a record: white space, '%', control bytes, DEL. */
static size_t put_escaped(char *out, size_t room, const char *s)
{
	size_t n = 0;
	for (; *s && n + 4 < room; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch == '%' || ch == 0x7f)
			n += (size_t)snprintf(out + n, room - n, "%%%02X", ch);
		else
			out[n++] = (char)ch;
	}
	out[n] = '\0';
	return n;
}

struct listing {
	char *reply;
	size_t size, len;
	long long total, shown;
	time_t now;
};

static void list_item(void *arg, const struct queue_view_item *it)
{
	struct listing *l = arg;
	l->total++;
	char sender[600], rcpt[600] = "-", rec[1500];
	const struct queue_message *m = it->m;
	if (!m) {
		snprintf(rec, sizeof(rec), "\t%s %s - - - - 0 0", it->qid, queue_view_state_name(it->state));
	} else {
		put_escaped(sender, sizeof(sender), m->env.sender[0] ? m->env.sender : "<>");
		if (it->pending)
			put_escaped(rcpt, sizeof(rcpt), m->env.rcpts[it->first_pending]);
		snprintf(rec, sizeof(rec), "\t%s %s %lld %llu %s %s %zu %lld", m->env.qid, queue_view_state_name(it->state),
			(long long)m->env.arrival, (unsigned long long)queue_message_size(m), sender, rcpt, it->pending,
			(long long)it->next_try);
	}
	size_t rl = strlen(rec);
	/* room for the record and for the count that ends the answer */
	if (l->len + rl + 64 >= l->size)
		return;
	memcpy(l->reply + l->len, rec, rl + 1);
	l->len += rl;
	l->shown++;
}

int control_queue_answer(const struct control_node *n, const char *inflight, char *reply, size_t replysz)
{
	struct listing l = { .reply = reply, .size = replysz, .now = time(NULL) };
	int head = snprintf(reply, replysz, "node=%s now=%lld", n->name[0] ? n->name : "-", (long long)l.now);
	if (head < 0 || (size_t)head >= replysz)
		return 1;
	l.len = (size_t)head;
	struct queue_view_filter f = { .states = 0 };
	if (!queue_view_list(n->queue, &f, inflight, list_item, &l)) {
		snprintf(reply, replysz, "the queue cannot be read (see the node's log)");
		return 1;
	}
	snprintf(reply + l.len, replysz - l.len, "\ttotal=%lld shown=%lld", l.total, l.shown);
	return 0;
}
