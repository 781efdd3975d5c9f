/* dkim_msg.c - the message as DKIM sees it (RFC 6376 §5.4, §6.1.3): the header block,
 * read once into memory (bounded by DKIM_HEADER_MAX) and split into fields, and the
 * body, streamed from the file in fixed chunks so its size costs no memory. */
#include "mailauth/dkim_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#define CHUNK 65536

/* Where the empty line that ends the header is, searching from `from`: returns the
 * offset of the body, or 0 when not found yet.  A block starting with an empty line
 * has no fields. */
static size_t find_body(const char *h, size_t len, size_t from)
{
	if (from == 0 && len >= 1 && h[0] == '\n')
		return 1;
	if (from == 0 && len >= 2 && h[0] == '\r' && h[1] == '\n')
		return 2;
	for (size_t i = from >= 2 ? from - 2 : 0; i + 1 < len; i++) {
		if (h[i] != '\n')
			continue;
		if (h[i + 1] == '\n')
			return i + 2;
		if (h[i + 1] == '\r' && i + 2 < len && h[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static bool read_head(int fd, struct dkim_msg *m, char *err, size_t errlen)
{
	size_t cap = 0, len = 0, body = 0;
	char *h = NULL;
	for (;;) {
		if (len + CHUNK > cap) {
			if (cap >= DKIM_HEADER_MAX + CHUNK) {
				free(h);
				snprintf(err, errlen, "the message header is larger than %d octets", DKIM_HEADER_MAX);
				return false;
			}
			cap = cap ? cap * 2 : CHUNK * 2;
			char *n = realloc(h, cap + 1);
			if (!n) {
				free(h);
				snprintf(err, errlen, "out of memory reading the message header");
				return false;
			}
			h = n;
		}
		size_t want = CHUNK;
		if ((off_t)want > m->end - m->start - (off_t)len)
			want = (size_t)(m->end - m->start - (off_t)len);
		ssize_t got = want ? pread(fd, h + len, want, m->start + (off_t)len) : 0;
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			free(h);
			snprintf(err, errlen, "cannot read the message: %s", strerror(errno));
			return false;
		}
		size_t from = len;
		len += (size_t)got;
		if ((body = find_body(h, len, from)) != 0 || got == 0)
			break;
	}
	m->head = h;
	m->head_len = body ? body : len;   /* no empty line: all header, empty body */
	m->body_off = m->start + (off_t)m->head_len;
	h[m->head_len] = '\0';
	return true;
}

/* Split the block into fields: a field starts at a line that does not begin with WSP
 * and runs through the lines that do (folding, RFC 5322 §2.2.3). */
static bool split_fields(struct dkim_msg *m, char *err, size_t errlen)
{
	size_t cap = 0;
	const char *p = m->head, *end = m->head + m->head_len;
	while (p < end) {
		const char *line_end = memchr(p, '\n', (size_t)(end - p));
		const char *next = line_end ? line_end + 1 : end;
		bool blank = (next - p == 1) || (next - p == 2 && p[0] == '\r');
		if (blank)
			break;
		if ((*p == ' ' || *p == '\t') && m->nfields > 0) {
			struct dkim_field *f = &m->fields[m->nfields - 1];
			f->len = (size_t)(next - f->p);
		} else if (*p != ' ' && *p != '\t') {
			if (m->nfields == cap) {
				cap = cap ? cap * 2 : 64;
				struct dkim_field *n = realloc(m->fields, cap * sizeof(*n));
				if (!n) {
					snprintf(err, errlen, "out of memory splitting the message header");
					return false;
				}
				m->fields = n;
			}
			struct dkim_field *f = &m->fields[m->nfields++];
			f->p = p;
			f->len = (size_t)(next - p);
			const char *colon = memchr(p, ':', (size_t)(next - p));
			size_t nl = colon ? (size_t)(colon - p) : 0;
			while (nl > 0 && (p[nl - 1] == ' ' || p[nl - 1] == '\t'))
				nl--;
			f->name_len = nl;
			f->used = false;
		}
		p = next;
	}
	for (size_t i = 0; i < m->nfields; i++) {
		struct dkim_field *f = &m->fields[i];
		while (f->len > 0 && (f->p[f->len - 1] == '\n' || f->p[f->len - 1] == '\r'))
			f->len--;
	}
	return true;
}

bool dkim_msg_read(int fd, uint64_t start, uint64_t size, struct dkim_msg *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	if (start > (uint64_t)INT64_MAX / 2 || (size != DKIM_TO_END_OF_FILE && size > (uint64_t)INT64_MAX / 2)) {
		snprintf(err, errlen, "the message bounds are out of range");
		return false;
	}
	m->start = (off_t)start;
	m->end = size == DKIM_TO_END_OF_FILE ? (off_t)INT64_MAX : (off_t)(start + size);
	if (!read_head(fd, m, err, errlen))
		return false;
	if (!split_fields(m, err, errlen)) {
		dkim_msg_free(m);
		return false;
	}
	return true;
}

void dkim_msg_free(struct dkim_msg *m)
{
	free(m->head);
	free(m->fields);
	memset(m, 0, sizeof(*m));
}

bool dkim_field_is(const struct dkim_field *f, const char *name)
{
	size_t n = strlen(name);
	return f->name_len == n && strncasecmp(f->p, name, n) == 0;
}

const char *dkim_field_value(const struct dkim_field *f, size_t *len)
{
	const char *colon = memchr(f->p, ':', f->len);
	if (!colon) {
		*len = 0;
		return f->p + f->len;
	}
	*len = f->len - (size_t)(colon + 1 - f->p);
	return colon + 1;
}

bool dkim_msg_stream_body(int fd, const struct dkim_msg *m, dkim_emit *fn, void *arg, char *err, size_t errlen)
{
	char *chunk = malloc(CHUNK);
	if (!chunk) {
		snprintf(err, errlen, "out of memory reading the message body");
		return false;
	}
	off_t off = m->body_off;
	for (;;) {
		size_t want = m->end - off < CHUNK ? (size_t)(m->end - off) : CHUNK;
		ssize_t got = want ? pread(fd, chunk, want, off) : 0;
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(err, errlen, "cannot read the message body: %s", strerror(errno));
			free(chunk);
			return false;
		}
		if (got == 0)
			break;
		fn(arg, chunk, (size_t)got);
		off += got;
	}
	free(chunk);
	return true;
}

void dkim_msg_unuse(struct dkim_msg *m)
{
	for (size_t i = 0; i < m->nfields; i++)
		m->fields[i].used = false;
}

struct dkim_field *dkim_msg_take(struct dkim_msg *m, const char *name)
{
	for (size_t i = m->nfields; i > 0; i--) {
		struct dkim_field *f = &m->fields[i - 1];
		if (!f->used && dkim_field_is(f, name)) {
			f->used = true;
			return f;
		}
	}
	return NULL;
}

/* The canonical bytes come in small pieces (a word at a time, relaxed): gathered in
 * a buffer so the hash is fed in large blocks. */
#define HASH_BLOCK 16384

struct body_hasher {
	EVP_MD_CTX *md;
	bool has_limit;
	uint64_t limit, hashed;
	char block[HASH_BLOCK];
	size_t used;
};

static void hash_flush(struct body_hasher *h)
{
	if (h->used)
		EVP_DigestUpdate(h->md, h->block, h->used);
	h->used = 0;
}

static void hash_canonical(void *arg, const char *p, size_t n)
{
	struct body_hasher *h = arg;
	if (h->has_limit && h->hashed + n > h->limit)
		n = (size_t)(h->limit - h->hashed);
	h->hashed += n;
	if (h->used + n > HASH_BLOCK)
		hash_flush(h);
	if (n > HASH_BLOCK) {
		EVP_DigestUpdate(h->md, p, n);
		return;
	}
	memcpy(h->block + h->used, p, n);
	h->used += n;
}

static void canon_feed(void *arg, const char *p, size_t n)
{
	dkim_body_canon_feed(arg, p, n);
}

bool dkim_body_hash(int fd, const struct dkim_msg *m, enum dkim_canon c, bool has_limit, uint64_t limit,
	unsigned char hash[32], uint64_t *canon_len, char *err, size_t errlen)
{
	struct body_hasher *h = malloc(sizeof(*h));
	if (!h || !(h->md = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) != 1) {
		if (h)
			EVP_MD_CTX_free(h->md);
		free(h);
		snprintf(err, errlen, "cannot start a SHA-256 hash");
		return false;
	}
	h->has_limit = has_limit;
	h->limit = limit;
	h->hashed = 0;
	h->used = 0;
	struct dkim_body_canon bc;
	dkim_body_canon_init(&bc, c, hash_canonical, h);
	bool ok = dkim_msg_stream_body(fd, m, canon_feed, &bc, err, errlen);
	dkim_body_canon_finish(&bc);
	hash_flush(h);
	unsigned int hl = 0;
	ok = ok && EVP_DigestFinal_ex(h->md, hash, &hl) == 1 && hl == 32;
	EVP_MD_CTX_free(h->md);
	free(h);
	*canon_len = bc.emitted;
	return ok;
}

bool dkim_header_input(struct dkim_msg *m, enum dkim_canon c, const char (*names)[64], size_t n,
	const char *sig_field, size_t sig_len, struct buf *out)
{
	dkim_msg_unuse(m);
	for (size_t i = 0; i < n; i++) {
		struct dkim_field *f = dkim_msg_take(m, names[i]);
		if (f && !dkim_canon_header(c, f->p, f->len, true, out))
			return false;
	}
	return dkim_canon_header(c, sig_field, sig_len, false, out);
}
