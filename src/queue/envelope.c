/* envelope.c - the envelope records at the head of a queue file (format in queue.h):
 * encoding them for the writer, parsing them back for delivery, and the DSN fields
 * (RFC 3461 NOTIFY, ORCPT) kept per recipient.
 *
 * Envelope records are "key value" lines; values are percent-encoded (bytes outside
 * 0x21..0x7e and '%' become %XX) so a record is always one line whatever the
 * client sent.  Keys: qid, arrival, client-addr, client-name, helo, protocol,
 * smtputf8, eightbit, sender, rcpt (one per recipient, in order). */
#include "queue/queue.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue/internal.h"
#include "util/buf.h"
#include "util/id.h"
#include "util/parse.h"

void queue_record_put(struct buf *b, const char *key, const char *val)
{
	buf_appends(b, key);
	buf_appendc(b, ' ');
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (*p < 0x21 || *p > 0x7e || *p == '%')
			buf_printf(b, "%%%02X", *p);
		else
			buf_appendc(b, (char)*p);
	}
	buf_appendc(b, '\n');
}

/* Decode a percent-encoded value into out (NUL-terminated); false if malformed or long. */
bool queue_value_decode(const char *p, size_t n, char *out, size_t outsz)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int h = parse_hex_digit(p[i + 1]), l = parse_hex_digit(p[i + 2]);
			if (h < 0 || l < 0)
				return false;
			c = (char)(h * 16 + l);
			if (c == '\0')
				return false;
			i += 2;
		} else if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e) {
			return false;
		}
		if (o + 1 >= outsz)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

bool queue_envelope_encode(struct buf *b, const struct queue_envelope *env)
{
	char num[32];
	buf_appends(b, QUEUE_MAGIC);
	queue_record_put(b, "qid", env->qid);
	snprintf(num, sizeof(num), "%lld", (long long)env->arrival);
	queue_record_put(b, "arrival", num);
	queue_record_put(b, "client-addr", env->client_addr);
	queue_record_put(b, "client-name", env->client_name);
	queue_record_put(b, "helo", env->helo);
	queue_record_put(b, "protocol", env->protocol);
	queue_record_put(b, "smtputf8", env->smtputf8 ? "1" : "0");
	queue_record_put(b, "eightbit", env->eightbit ? "1" : "0");
	queue_record_put(b, "sender", env->sender);
	if (env->envid[0])
		queue_record_put(b, "envid", env->envid);
	if (env->ret)
		queue_record_put(b, "ret", env->ret == QUEUE_RET_FULL ? "FULL" : "HDRS");
	for (size_t i = 0; i < env->n_rcpts; i++) {
		queue_record_put(b, "rcpt", env->rcpts[i]);
		if (env->notify && env->notify[i]) {
			snprintf(num, sizeof(num), "%u", env->notify[i]);
			queue_record_put(b, "notify", num);
		}
		if (env->orcpt && env->orcpt[i][0])
			queue_record_put(b, "orcpt", env->orcpt[i]);
	}
	buf_appendc(b, '\n');
	return !b->truncated;
}

void queue_envelope_free(struct queue_envelope *env)
{
	free(env->rcpts);
	free(env->notify);
	free(env->orcpt);
	env->rcpts = NULL;
	env->notify = NULL;
	env->orcpt = NULL;
	env->n_rcpts = 0;
}

bool queue_envelope_copy(struct queue_envelope *dst, const struct queue_envelope *src)
{
	*dst = *src;
	size_t n = src->n_rcpts ? src->n_rcpts : 1;
	dst->rcpts = calloc(n, sizeof(*dst->rcpts));
	dst->notify = src->notify ? calloc(n, 1) : NULL;
	dst->orcpt = src->orcpt ? calloc(n, sizeof(*dst->orcpt)) : NULL;
	if (!dst->rcpts || (src->notify && !dst->notify) || (src->orcpt && !dst->orcpt)) {
		queue_envelope_free(dst);
		return false;
	}
	if (src->n_rcpts) {
		memcpy(dst->rcpts, src->rcpts, src->n_rcpts * sizeof(*dst->rcpts));
		if (src->notify)
			memcpy(dst->notify, src->notify, src->n_rcpts);
		if (src->orcpt)
			memcpy(dst->orcpt, src->orcpt, src->n_rcpts * sizeof(*dst->orcpt));
	}
	return true;
}

/* Arrays sized for `cap` recipients (the rcpts array's capacity). */
static bool dsn_arrays(struct queue_envelope *env, size_t cap, bool want_orcpt)
{
	if (!env->notify) {
		env->notify = calloc(cap ? cap : 1, 1);
		if (!env->notify)
			return false;
	}
	if (want_orcpt && !env->orcpt) {
		env->orcpt = calloc(cap ? cap : 1, QUEUE_ADDR_MAX);
		if (!env->orcpt)
			return false;
	}
	return true;
}

bool queue_envelope_set_dsn(struct queue_envelope *env, size_t i, unsigned char notify, const char *orcpt)
{
	if (i >= env->n_rcpts || !dsn_arrays(env, env->n_rcpts, orcpt && orcpt[0]))
		return false;
	env->notify[i] = notify;
	if (orcpt && orcpt[0])
		snprintf(env->orcpt[i], QUEUE_ADDR_MAX, "%s", orcpt);
	return true;
}

/* Room for one more recipient: the rcpts array and the DSN arrays, if any, grow
 * together (doubling from 4). */
static bool rcpts_grow(struct queue_envelope *env, size_t *cap)
{
	size_t nc = *cap ? *cap * 2 : 4;
	void *p = realloc(env->rcpts, nc * sizeof(*env->rcpts));
	if (!p)
		return false;
	env->rcpts = p;
	if (env->notify) {
		unsigned char *np = realloc(env->notify, nc);
		if (!np)
			return false;
		memset(np + *cap, 0, nc - *cap);
		env->notify = np;
	}
	if (env->orcpt) {
		char (*op)[QUEUE_ADDR_MAX] = realloc(env->orcpt, nc * sizeof(*env->orcpt));
		if (!op)
			return false;
		memset(op + *cap, 0, (nc - *cap) * sizeof(*op));
		env->orcpt = op;
	}
	*cap = nc;
	return true;
}

/* What envelope_parse has seen so far. */
struct envelope_seen {
	size_t cap;             /* capacity of the recipient arrays */
	bool qid, sender;
};

#define KEY(k) (kl == sizeof(k) - 1 && memcmp(key, k, kl) == 0)

/* A recipient record or one of its DSN records; false if malformed. */
static bool rcpt_record(struct queue_envelope *env, const char *key, size_t kl, const char *v, size_t vl,
	struct envelope_seen *seen)
{
	if (KEY("rcpt")) {
		if (env->n_rcpts >= QUEUE_MAX_RCPTS)
			return false;
		if (env->n_rcpts == seen->cap && !rcpts_grow(env, &seen->cap))
			return false;
		if (!queue_value_decode(v, vl, env->rcpts[env->n_rcpts], QUEUE_ADDR_MAX) || !env->rcpts[env->n_rcpts][0])
			return false;
		env->n_rcpts++;
	} else if (KEY("notify")) {
		uint64_t f;
		if (env->n_rcpts == 0 || !parse_u64(v, vl, &f) || f == 0 || f > 15 || !dsn_arrays(env, seen->cap, false))
			return false;
		env->notify[env->n_rcpts - 1] = (unsigned char)f;
	} else if (KEY("orcpt")) {
		if (env->n_rcpts == 0 || !dsn_arrays(env, seen->cap, true) ||
			!queue_value_decode(v, vl, env->orcpt[env->n_rcpts - 1], QUEUE_ADDR_MAX))
			return false;
	}
	return true;
}

/* One "key value" record; false if malformed.  Unknown keys are skipped: newer
 * versions may add records. */
static bool envelope_record(struct queue_envelope *env, const char *key, size_t kl, const char *v, size_t vl,
	struct envelope_seen *seen)
{
	char tmp[32];
	if (KEY("qid")) {
		if (!queue_value_decode(v, vl, env->qid, sizeof(env->qid)) || !id_is_queue_id(env->qid))
			return false;
		seen->qid = true;
	} else if (KEY("arrival")) {
		uint64_t t;
		if (!parse_u64(v, vl, &t) || t > INT64_MAX)
			return false;
		env->arrival = (time_t)t;
	} else if (KEY("client-addr")) {
		return queue_value_decode(v, vl, env->client_addr, sizeof(env->client_addr));
	} else if (KEY("client-name")) {
		return queue_value_decode(v, vl, env->client_name, sizeof(env->client_name));
	} else if (KEY("helo")) {
		return queue_value_decode(v, vl, env->helo, sizeof(env->helo));
	} else if (KEY("protocol")) {
		return queue_value_decode(v, vl, env->protocol, sizeof(env->protocol));
	} else if (KEY("smtputf8") || KEY("eightbit")) {
		if (!queue_value_decode(v, vl, tmp, sizeof(tmp)) || (strcmp(tmp, "0") && strcmp(tmp, "1")))
			return false;
		if (KEY("smtputf8"))
			env->smtputf8 = tmp[0] == '1';
		else
			env->eightbit = tmp[0] == '1';
	} else if (KEY("sender")) {
		if (!queue_value_decode(v, vl, env->sender, sizeof(env->sender)))
			return false;
		seen->sender = true;
	} else if (KEY("envid")) {
		return queue_value_decode(v, vl, env->envid, sizeof(env->envid));
	} else if (KEY("ret")) {
		if (!queue_value_decode(v, vl, tmp, sizeof(tmp)))
			return false;
		env->ret = strcmp(tmp, "FULL") == 0 ? QUEUE_RET_FULL : strcmp(tmp, "HDRS") == 0 ? QUEUE_RET_HDRS : -1;
		if (env->ret < 0)
			return false;
	} else {
		return rcpt_record(env, key, kl, v, vl, seen);
	}
	return true;
}

#undef KEY

long queue_envelope_parse(const char *data, size_t len, struct queue_envelope *env)
{
	memset(env, 0, sizeof(*env));
	size_t ml = strlen(QUEUE_MAGIC);
	if (len < ml || memcmp(data, QUEUE_MAGIC, ml) != 0)
		return -1;
	size_t pos = ml;
	struct envelope_seen seen = { 0 };
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		if (!nl)
			goto bad;
		size_t n = (size_t)(nl - (data + pos));
		const char *line = data + pos;
		pos += n + 1;
		if (n == 0) {
			if (!seen.qid || !seen.sender || env->n_rcpts == 0)
				goto bad;
			return (long)pos;
		}
		const char *sp = memchr(line, ' ', n);
		if (!sp)
			goto bad;
		size_t kl = (size_t)(sp - line);
		if (!envelope_record(env, line, kl, sp + 1, n - kl - 1, &seen))
			goto bad;
	}
bad:
	queue_envelope_free(env);
	return -1;
}
