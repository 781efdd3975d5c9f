/* msgview.c - one message as the message commands see it, loaded only as far as a
 * command needs: flags, sizes and dates come from the store's view; the header block
 * from the store's index (folder_msg_header) without opening the file; the whole file
 * is mapped read-only (folder_msg_open) only for bodies and sections.  Also the small
 * renderings the commands share: sequence-set membership, flag lists, UID sets. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imap/msgcmd.h"

void imap_msgview_init(struct imap_msgview *v, struct folder *f, size_t i)
{
	memset(v, 0, sizeof *v);
	v->f = f;
	v->i = i;
	/* flags, UID, MODSEQ: free; the date and size (a stat, maybe a read) only when a
	 * key or item asks for them (imap_msgview_dated) */
	v->m = f ? folder_msg_peek(f, i) : NULL;
}

const struct folder_msg *imap_msgview_dated(struct imap_msgview *v)
{
	if (v->f && !v->dated) {
		v->m = folder_msg(v->f, v->i);
		v->dated = true;
	}
	return v->m;
}

/* The length of the header block of raw, its empty line included (RFC 5322 §2.1);
 * the whole when there is no body. */
static size_t header_block_len(const char *raw, size_t len)
{
	if (len > 0 && raw[0] == '\n')
		return 1;
	if (len > 1 && raw[0] == '\r' && raw[1] == '\n')
		return 2;
	for (size_t k = 0; k + 1 < len; k++) {
		if (raw[k] != '\n')
			continue;
		if (raw[k + 1] == '\n')
			return k + 2;
		if (k + 2 < len && raw[k + 1] == '\r' && raw[k + 2] == '\n')
			return k + 3;
	}
	return len;
}

bool imap_msgview_raw(struct imap_msgview *v, const char **raw, size_t *len)
{
	if (!v->raw_tried && v->f) {
		v->raw_tried = true;
		int fd = folder_msg_open(v->f, v->i);
		struct stat st;
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size >= 0 && (size_t)st.st_size <= IMAP_MSG_MAP_MAX) {
			if (st.st_size == 0) {
				v->raw = "";
				v->raw_len = 0;
			} else {
				void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
				if (p != MAP_FAILED) {
					v->map = p;
					v->map_len = (size_t)st.st_size;
					v->raw = p;
					v->raw_len = v->map_len;
				}
			}
		}
		if (fd >= 0)
			close(fd);
	}
	if (!v->raw)
		return false;
	*raw = v->raw;
	*len = v->raw_len;
	return true;
}

bool imap_msgview_header(struct imap_msgview *v, const char **hdr, size_t *len)
{
	if (!v->hdr_tried) {
		v->hdr_tried = true;
		char *h = NULL;
		size_t n = 0;
		if (v->f && folder_msg_header(v->f, v->i, &h, &n) && h) {
			v->hdr = h;
			v->hdr_len = n;
			v->hdr_owned = true;
		} else {
			free(h);
			const char *raw;
			size_t rl;
			if (imap_msgview_raw(v, &raw, &rl)) {
				v->hdr = (char *)raw;
				v->hdr_len = header_block_len(raw, rl);
			}
		}
	}
	if (!v->hdr)
		return false;
	*hdr = v->hdr;
	*len = v->hdr_len;
	return true;
}

const struct mime_tree *imap_msgview_header_tree(struct imap_msgview *v)
{
	if (v->tree)
		return v->tree;
	if (!v->hdr_tree) {
		const char *h;
		size_t n;
		if (!imap_msgview_header(v, &h, &n))
			return NULL;
		v->hdr_tree = mime_parse(h, n);
	}
	return v->hdr_tree;
}

const struct mime_tree *imap_msgview_tree(struct imap_msgview *v)
{
	if (!v->tree) {
		const char *raw;
		size_t n;
		if (!imap_msgview_raw(v, &raw, &n))
			return NULL;
		v->tree = mime_parse(raw, n);
	}
	return v->tree;
}

void imap_msgview_release(struct imap_msgview *v)
{
	if (v->hdr_owned)
		free(v->hdr);
	mime_free(&v->hdr_tree);
	mime_free(&v->tree);
	if (v->map)
		munmap(v->map, v->map_len);
	struct folder *f = v->f;
	size_t i = v->i;
	imap_msgview_init(v, NULL, 0);
	v->f = f;
	v->i = i;
}

uint32_t imap_seqset_max_literal(const struct imap_seqset *s)
{
	uint32_t m = 0;
	for (size_t k = 0; k < s->n; k++) {
		if (s->r[k].lo != UINT32_MAX && s->r[k].lo > m)
			m = s->r[k].lo;
		if (s->r[k].hi != UINT32_MAX && s->r[k].hi > m)
			m = s->r[k].hi;
	}
	return m;
}

bool imap_saved_contains(const struct imap_exec *x, uint32_t uid)
{
	if (!x || !x->saved_valid)
		return false;
	for (size_t k = 0; k < x->n_saved; k++)
		if (x->saved_uids[k] == uid)
			return true;
	return false;
}

bool imap_set_selects(const struct imap_exec *x, const struct imap_seqset *s, bool uid, size_t i)
{
	struct folder *f = x->sel;
	size_t n = folder_count(f);
	if (i >= n)
		return false;
	if (s->saved)
		return imap_saved_contains(x, folder_msg_peek(f, i)->uid);
	if (!uid)
		return imap_seq_contains(s, (uint32_t)(i + 1), (uint32_t)n);
	/* RFC 3501 §6.4.8: '*' is the largest UID in use */
	uint32_t max = folder_msg_peek(f, n - 1)->uid;
	return imap_seq_contains(s, folder_msg_peek(f, i)->uid, max);
}

static const struct { uint32_t bit; const char *name; } system_flags[] = {
	{ FOLDER_ANSWERED, "\\Answered" }, { FOLDER_FLAGGED, "\\Flagged" }, { FOLDER_DELETED, "\\Deleted" },
	{ FOLDER_SEEN, "\\Seen" }, { FOLDER_DRAFT, "\\Draft" }, { FOLDER_RECENT, "\\Recent" },
};

void imap_flags_render(struct folder *f, uint32_t flags, uint64_t keywords, struct buf *out)
{
	bool first = true;
	buf_appendc(out, '(');
	for (size_t k = 0; k < sizeof system_flags / sizeof system_flags[0]; k++) {
		if (!(flags & system_flags[k].bit))
			continue;
		if (!first)
			buf_appendc(out, ' ');
		buf_appends(out, system_flags[k].name);
		first = false;
	}
	for (int k = 0; k < 64 && f; k++) {
		if (!(keywords & ((uint64_t)1 << k)))
			continue;
		const char *name = folder_keyword_name(f, k);
		if (!name)
			continue;
		if (!first)
			buf_appendc(out, ' ');
		buf_appends(out, name);
		first = false;
	}
	buf_appendc(out, ')');
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

void imap_uidset_render(uint32_t *uids, size_t n, struct buf *out)
{
	qsort(uids, n, sizeof *uids, cmp_u32);
	for (size_t k = 0; k < n;) {
		size_t e = k;
		while (e + 1 < n && uids[e + 1] <= uids[e] + 1)
			e++;
		if (k > 0)
			buf_appendc(out, ',');
		if (uids[e] == uids[k])
			buf_printf(out, "%u", uids[k]);
		else
			buf_printf(out, "%u:%u", uids[k], uids[e]);
		k = e + 1;
	}
}

bool imap_uidlist_add(struct imap_uidlist *l, uint32_t uid)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		uint32_t *v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return false;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = uid;
	return true;
}

void imap_uidlist_free(struct imap_uidlist *l)
{
	free(l->v);
	memset(l, 0, sizeof *l);
}
