/* fuzz_edits.c - the end-of-data changes (policy/edits.c) on a spooled message that
 * came from a client, with changes that came from a content filter: both hostile.  The
 * input is the message, a NUL, then a script of changes: one byte saying which (header
 * add, insert, change, delete, body piece, sender, add or delete a recipient), one
 * byte of index, then the name and the value (or address and arguments), each ended by
 * \x01.  The real materialiser (serve/edit.c) and queue writer (queue/writer.c) apply
 * them in a queue under /tmp.  Whatever happens: a failure leaves the spool file as it
 * was; a success leaves a file whose size is the envelope plus the message the facts
 * describe, and when the message had only CR LF line ends, so does the result. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.h"
#include "queue/queue.h"
#include "serve/edit.h"
#include "util/id.h"
#include "util/log.h"

static struct queue *q;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static char dir[] = "/tmp/postern-fuzz-edits-XXXXXX";
	char err[256];
	log_set_level((enum log_level)(LOG_ERR + 1));   /* quiet: every refused edit logs */
	if (!mkdtemp(dir) || !queue_open(&q, dir, err, sizeof(err)))
		abort();
	return 0;
}

/* The next \x01-ended piece of the script, NUL-terminated in out. */
static const uint8_t *piece(const uint8_t *p, const uint8_t *end, char *out, size_t outsz)
{
	size_t o = 0;
	while (p < end && *p != 1) {
		if (o + 1 < outsz && *p)
			out[o++] = (char)*p;
		p++;
	}
	out[o] = '\0';
	return p < end ? p + 1 : p;
}

static void run_script(struct policy_facts *f, const uint8_t *p, const uint8_t *end)
{
	static char a[4096], b[4096];
	for (int n = 0; p + 2 <= end && n < 64; n++) {
		unsigned kind = p[0] % 8, idx = p[1] % 16;
		p = piece(p + 2, end, a, sizeof(a));
		p = piece(p, end, b, sizeof(b));
		switch (kind) {
		case 0: policy_edit_header_add(f, a, b); break;
		case 1: policy_edit_header_insert(f, idx, a, b); break;
		case 2: policy_edit_header_change(f, a, idx, b); break;
		case 3: policy_edit_header_change(f, a, idx, ""); break;
		case 4: policy_edit_body_append(f, a, strlen(a)); break;
		case 5: policy_edit_sender(f, a, b); break;
		case 6: policy_edit_rcpt_add(f, a, b); break;
		default: policy_edit_rcpt_del(f, a); break;
		}
	}
}

static bool crlf_only(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((p[i] == '\r') != (i + 1 < n && p[i + 1] == '\n') || (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')))
			return false;
	return true;
}

static char *file_bytes(const char *path, size_t *n)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		abort();
	static char buf[1 << 20];
	*n = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	char *c = malloc(*n + 1);
	memcpy(c, buf, *n);
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t mlen = nul ? (size_t)(nul - data) : size;
	if (mlen > 65536)
		return 0;
	char rcpt[2][QUEUE_ADDR_MAX] = { "b@example.test", "c@other.test" };
	struct queue_envelope env = { .arrival = 1, .rcpts = rcpt, .n_rcpts = 2 };
	id_new_queue_id(env.qid);
	snprintf(env.sender, sizeof(env.sender), "a@example.test");
	char err[256];
	struct queue_writer *w = queue_writer_open(q, &env, err, sizeof(err));
	if (!w || !queue_writer_write(w, data, mlen) || !queue_writer_flush(w))
		abort();
	struct policy_facts *f = policy_facts_new(POLICY_AT_END_OF_DATA);
	snprintf(f->message_path, sizeof(f->message_path), "%s", queue_writer_path(w));
	f->message_offset = queue_writer_message_offset(w);
	f->message_size = queue_writer_size(w);
	policy_facts_set_rcpts(f, 2);
	snprintf(f->rcpts[0].address, sizeof(f->rcpts[0].address), "%s", rcpt[0]);
	snprintf(f->rcpts[1].address, sizeof(f->rcpts[1].address), "%s", rcpt[1]);
	if (mlen > 2 && data[0] & 1)
		policy_facts_add_header(f, "Authentication-Results: mx.example.test; spf=pass");
	struct spool_share *share = spool_share_new(w, 1, 16384, f);
	size_t before_n;
	char *before = file_bytes(f->message_path, &before_n);
	if (nul)
		run_script(f, nul + 1, data + size);
	struct verdict v;
	verdict_set(&v, VERDICT_OK, 250, "2.0.0", CAUSE_NONE, "", "");
	bool ok = policy_edits_apply(f, &v);
	size_t after_n;
	char *after = file_bytes(f->message_path, &after_n);
	if (!ok && (v.kind == VERDICT_OK || before_n != after_n || memcmp(before, after, before_n) != 0))
		__builtin_trap();   /* a failure leaves the file as it was */
	if (ok && f->disposition != POLICY_DISCARD) {
		if (after_n != f->message_offset + f->message_size)
			__builtin_trap();
		if (crlf_only((const char *)data, mlen) && !crlf_only(after + f->message_offset, f->message_size))
			__builtin_trap();   /* CR LF everywhere */
	}
	free(before);
	free(after);
	policy_facts_free(&f);
	spool_share_release(&share, true);
	return 0;
}
