/* sendmail_msg.c - the message sendmail was given (see sendmail.c): read from standard
 * input (bounded by [limits] message_size; without -i a line holding only "." ends
 * it, as sendmail(8) has always done), its recipients taken from To:, Cc: and Bcc:
 * with -t, Bcc: removed (RFC 5322 §3.6.3: a blind copy's addresses are not shown),
 * and the fields a submission server adds when they are missing (RFC 6409 §8):
 * From:, Date:, Message-ID:.  The result lives in a memory file (memfd) so that the
 * one SMTP client (delivery/smtp_client.h) can send it, or it can be copied into the
 * maildrop. */
#include "cli/sendmail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "msg/header.h"
#include "util/fileio.h"

/* Append n octets to the growing buffer m (bounded by the caller). */
static bool grow(struct sm_message *m, const char *p, size_t n)
{
	if (m->len + n + 1 > m->cap) {
		size_t want = m->cap ? m->cap : 65536;
		while (want < m->len + n + 1)
			want *= 2;
		char *d = realloc(m->data, want);
		if (!d)
			return false;
		m->data = d;
		m->cap = want;
	}
	memcpy(m->data + m->len, p, n);
	m->len += n;
	m->data[m->len] = '\0';
	return true;
}

bool sm_read_input(FILE *in, bool dot_ends, uint64_t limit, struct sm_message *m, char *err, size_t errlen)
{
	char line[8192];
	bool at_line_start = true;
	while (fgets(line, sizeof(line), in)) {
		size_t n = strlen(line);
		if (dot_ends && at_line_start && (strcmp(line, ".\n") == 0 || strcmp(line, ".\r\n") == 0))
			break;
		if (m->len + n > limit) {
			snprintf(err, errlen, "the message is larger than the server accepts ([limits] message_size = %llu octets)",
				(unsigned long long)limit);
			return false;
		}
		if (!grow(m, line, n)) {
			snprintf(err, errlen, "out of memory");
			return false;
		}
		at_line_start = n > 0 && line[n - 1] == '\n';
	}
	if (ferror(in)) {
		snprintf(err, errlen, "cannot read the message from standard input: %s", strerror(errno));
		return false;
	}
	return true;
}

/* Where the header ends: the offset of the empty line (LF or CRLF), or len when the
 * whole input is header.  A first line that is no field at all means no header. */
static size_t header_end(const char *d, size_t len, size_t *body)
{
	size_t name = strcspn(d, ":\n \t");
	if (len == 0 || d[name] != ':' || name == 0) {
		*body = 0;
		return 0;
	}
	for (size_t i = 0; i < len; i++) {
		if (d[i] != '\n')
			continue;
		if (i + 1 < len && d[i + 1] == '\n') {
			*body = i + 2;
			return i + 1;
		}
		if (i + 2 < len && d[i + 1] == '\r' && d[i + 2] == '\n') {
			*body = i + 3;
			return i + 1;
		}
	}
	*body = len;
	return len;
}

/* The addresses of every field named name in the header (-t). */
static bool collect(const char *h, size_t hlen, const char *name, struct sm_rcpts *r, char *err, size_t errlen)
{
	const char *v;
	size_t vlen;
	for (size_t i = 0; msg_header_find_nth(h, hlen, name, i, &v, &vlen); i++) {
		struct msg_address_list *l = malloc(sizeof(*l));
		if (!l)
			return false;
		enum msg_status st = msg_parse_address_list(v, vlen, l);
		bool ok = (st == MSG_OK || st == MSG_EMPTY) && !l->truncated;
		if (!ok)
			snprintf(err, errlen, "-t: the %s: field %s: fix it, or name the recipients on the command line", name,
				l->truncated ? "has more than 32 addresses" : "cannot be read as a list of addresses");
		for (size_t k = 0; ok && k < l->n; k++)
			ok = sm_rcpts_add(r, l->mailboxes[k].addr, err, errlen);
		free(l);
		if (!ok)
			return false;
	}
	return true;
}

/* The header without its Bcc: fields (a field runs to the next line not starting
 * with white space). */
static bool copy_without_bcc(struct sm_message *out, const char *h, size_t hlen)
{
	size_t i = 0;
	bool skipping = false;
	while (i < hlen) {
		const char *nl = memchr(h + i, '\n', hlen - i);
		size_t end = nl ? (size_t)(nl - h) + 1 : hlen;
		bool cont = h[i] == ' ' || h[i] == '\t';
		if (!cont)
			skipping = hlen - i >= 4 && strncasecmp(h + i, "bcc:", 4) == 0;
		if (!skipping && !grow(out, h + i, end - i))
			return false;
		i = end;
	}
	return true;
}

static bool has_field(const char *h, size_t hlen, const char *name)
{
	const char *v;
	size_t vlen;
	return msg_header_find(h, hlen, name, &v, &vlen);
}

/* From:, Date: and Message-ID: when the message has none (RFC 5322 §3.6: From and Date
 * are required; RFC 6409 §8.3, §8.1). */
static bool add_missing(struct sm_message *out, const char *h, size_t hlen, const struct sm_envelope *e)
{
	char f[1200];
	if (!has_field(h, hlen, "From")) {
		if (e->full_name[0])
			snprintf(f, sizeof(f), "From: %s <%s>\n", e->full_name, e->sender[0] ? e->sender : e->own);
		else
			snprintf(f, sizeof(f), "From: %s\n", e->sender[0] ? e->sender : e->own);
		if (!grow(out, f, strlen(f)))
			return false;
	}
	if (!has_field(h, hlen, "Date")) {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(f, sizeof(f), "Date: %a, %d %b %Y %H:%M:%S %z\n", &tm);
		if (!grow(out, f, strlen(f)))
			return false;
	}
	if (!has_field(h, hlen, "Message-ID")) {
		unsigned long long r = 0;
		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
			r = (unsigned long long)getpid() * 2654435761u;
		snprintf(f, sizeof(f), "Message-ID: <%lld.%llx@%s>\n", (long long)time(NULL), r, e->domain);
		if (!grow(out, f, strlen(f)))
			return false;
	}
	return true;
}

bool sm_prepare(const struct sm_message *in, const struct sm_envelope *e, bool take_rcpts, struct sm_rcpts *r,
	struct sm_message *out, char *err, size_t errlen)
{
	size_t body;
	size_t hlen = header_end(in->data ? in->data : "", in->len, &body);
	const char *h = in->data ? in->data : "";
	if (take_rcpts && (!collect(h, hlen, "To", r, err, errlen) || !collect(h, hlen, "Cc", r, err, errlen) ||
		!collect(h, hlen, "Bcc", r, err, errlen)))
		return false;
	bool ok = add_missing(out, h, hlen, e) && copy_without_bcc(out, h, hlen);
	if (ok && hlen == 0 && body == 0)
		ok = grow(out, "\n", 1);   /* no header given: the empty line before the body */
	if (ok && in->len > hlen)
		ok = grow(out, h + hlen, in->len - hlen);
	if (!ok && !err[0])
		snprintf(err, errlen, "out of memory");
	return ok;
}

int sm_memfd(const struct sm_message *m, char *err, size_t errlen)
{
	int fd = memfd_create("sendmail", MFD_CLOEXEC);
	if (fd >= 0 && !fileio_write_all(fd, m->data, m->len)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		snprintf(err, errlen, "cannot keep the message in memory: %s", strerror(errno));
	return fd;
}

bool sm_rcpts_add(struct sm_rcpts *r, const char *addr, char *err, size_t errlen)
{
	if (r->n == SM_MAX_RCPTS) {
		snprintf(err, errlen, "more than %d recipients: send the message in several parts", SM_MAX_RCPTS);
		return false;
	}
	bool bare = !strchr(addr, '@');   /* "root": a user of this machine */
	int n = snprintf(r->addr[r->n], sizeof(r->addr[0]), "%s%s%s", addr, bare ? "@" : "", bare ? r->domain : "");
	if (n < 0 || (size_t)n >= sizeof(r->addr[0])) {
		snprintf(err, errlen, "the address %.80s... is too long", addr);
		return false;
	}
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->addr[i], r->addr[r->n]) == 0)
			return true;   /* once each */
	r->n++;
	return true;
}

void sm_message_free(struct sm_message *m)
{
	free(m->data);
	m->data = NULL;
	m->len = m->cap = 0;
}
