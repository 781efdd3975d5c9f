/* folder_index.c - MODSEQs (RFC 7162) for a view.  First slice: kept in the view
 * (a message's MODSEQ is 1 when first seen, raised when its flags change); the
 * per-folder postern-index file replaces this. */
#include "store/folder_impl.h"

void folder_index_sync(struct folder *f, struct folder_msg *m, uint8_t *lazy, size_t n)
{
	(void)lazy;
	if (f->highestmodseq == 0)
		f->highestmodseq = 1;
	size_t j = 0;
	bool first = f->n == 0;
	for (size_t i = 0; i < n; i++) {
		while (j < f->n && f->msgs[j].uid < m[i].uid)
			j++;
		if (j < f->n && f->msgs[j].uid == m[i].uid && f->msgs[j].flags == m[i].flags &&
		    f->msgs[j].keywords == m[i].keywords)
			m[i].modseq = f->msgs[j].modseq;
		else
			m[i].modseq = first ? 1 : ++f->highestmodseq;
	}
}

void folder_index_note(struct folder *f, size_t i)
{
	(void)f;
	(void)i;
}

void folder_index_close(struct folder *f)
{
	(void)f;
}

void folder_index_store(struct folder *f, size_t i)
{
	(void)f;
	(void)i;
}

bool folder_index_header(struct folder *f, size_t i, char **hdr, size_t *len)
{
	(void)f;
	(void)i;
	(void)hdr;
	(void)len;
	return false;
}

void folder_index_cache_header(struct folder *f, size_t i, const char *hdr, size_t len)
{
	(void)f;
	(void)i;
	(void)hdr;
	(void)len;
}

bool folder_vanished_since(struct folder *f, uint64_t modseq, uint32_t **uids, size_t *n, bool *complete)
{
	(void)f;
	(void)modseq;
	*uids = NULL;
	*n = 0;
	*complete = false;
	return true;
}
