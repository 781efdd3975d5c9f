/* cmd_search.c - SEARCH and UID SEARCH (RFC 3501 §6.4.4), CHARSET UTF-8 (others:
 * NO [BADCHARSET (US-ASCII UTF-8)]), CONDSTORE's MODSEQ key and "(MODSEQ n)" in the
 * result (RFC 7162 §3.1.5), and ESEARCH's RETURN (MIN MAX ALL COUNT) (RFC 4731 §3).
 * Evaluation is search_eval.c; this file walks the view and writes the answer.  The
 * answer is one line (RFC 3501 §7.2.5, the numbers of a 100,000-message folder are
 * ~700 KB at most), but the walk yields: after IMAP_SEARCH_SLICE_MS of work it returns
 * IMAP_EXEC_MORE with its place and hits so far in x->cursor_state, so a BODY search of
 * a large folder shares the worker threads with the other sessions (their NOOP, IDLE
 * checks and FETCHes run between its slices) instead of holding one to the end.  The
 * view does not change between slices: only this session's own commands sync it. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "imap/exec.h"
#include "imap/msgcmd.h"
#include "imap/reply.h"

struct search_result {
	struct imap_uidlist hits;     /* sequence numbers, or UIDs in UID SEARCH */
	struct imap_uidlist uids;     /* the hits' UIDs, for RETURN (SAVE) */
	uint64_t max_modseq;          /* of the hits, for "(MODSEQ n)" */
	bool used_modseq;
	size_t next;                  /* the message the next slice starts at */
};

static void search_result_free(void *p)
{
	struct search_result *r = p;
	if (!r)
		return;
	imap_uidlist_free(&r->hits);
	imap_uidlist_free(&r->uids);
	free(r);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool charset_ok(const char *cs)
{
	return !cs || strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "US-ASCII") == 0;
}

static bool key_has_modseq(const struct imap_search_key *k)
{
	if (k->op == SK_MODSEQ)
		return true;
	for (size_t c = 0; c < k->n_child; c++)
		if (key_has_modseq(&k->child[c]))
			return true;
	return false;
}

/* One slice of the walk: false on out-of-memory; *more when it stopped for time. */
static bool run_search(struct imap_exec *x, const struct imap_cmd *c, struct search_result *r, bool *more)
{
	struct folder *f = x->sel;
	size_t n = folder_count(f);
	struct imap_search_env env = { .max_seq = (uint32_t)n, .max_uid = n ? folder_msg_peek(f, n - 1)->uid : 0, .x = x };
	long long start = now_ms();
	*more = false;
	for (size_t i = r->next; i < n; i++) {
		if (i > r->next && (i - r->next) % IMAP_SEARCH_CLOCK_EVERY == 0 && now_ms() - start >= IMAP_SEARCH_SLICE_MS) {
			r->next = i;
			*more = true;
			return true;
		}
		struct imap_msgview v;
		imap_msgview_init(&v, f, i);
		env.seq = (uint32_t)(i + 1);
		bool hit = imap_search_match(c->search.key, &v, &env);
		imap_msgview_release(&v);
		if (!hit)
			continue;
		const struct folder_msg *m = folder_msg_peek(f, i);
		if (!imap_uidlist_add(&r->hits, c->uid ? m->uid : (uint32_t)(i + 1)) || !imap_uidlist_add(&r->uids, m->uid))
			return false;
		if (m->modseq > r->max_modseq)
			r->max_modseq = m->modseq;
	}
	r->next = n;
	r->used_modseq = key_has_modseq(c->search.key);
	return true;
}

/* RETURN (SAVE) (RFC 5182 §2.1): the result becomes "$" - all of it, or only the
 * minimum and/or maximum when those are all that was asked with it. */
static void save_result(struct imap_exec *x, unsigned ret, struct search_result *r)
{
	free(x->saved_uids);
	x->saved_uids = NULL;
	x->n_saved = 0;
	x->saved_valid = true;
	if (r->uids.n == 0)
		return;
	bool only_ends = (ret & (IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX)) &&
		!(ret & (IMAP_SEARCH_RET_ALL | IMAP_SEARCH_RET_COUNT));
	if (only_ends) {
		uint32_t lo = r->uids.v[0], hi = r->uids.v[r->uids.n - 1];
		r->uids.n = 0;
		if (ret & IMAP_SEARCH_RET_MIN)
			imap_uidlist_add(&r->uids, lo);
		if ((ret & IMAP_SEARCH_RET_MAX) && !(r->uids.n && hi == lo))
			imap_uidlist_add(&r->uids, hi);
	}
	x->saved_uids = r->uids.v;   /* ownership passes to the session (freed by it) */
	x->n_saved = r->uids.n;
	r->uids.v = NULL;
	r->uids.n = r->uids.cap = 0;
}

/* RFC 4731 §3.1: "* ESEARCH (TAG "a") UID MIN 2 MAX 9 COUNT 3 ALL 2,4:9". */
static void write_esearch(const struct imap_cmd *c, struct search_result *r, struct buf *out)
{
	unsigned ret = c->search.ret & ~(unsigned)IMAP_SEARCH_RET_SAVE;
	if (ret == 0)
		ret = IMAP_SEARCH_RET_ALL;   /* RFC 4731 §3.1: RETURN () means ALL */
	buf_printf(out, "* ESEARCH (TAG \"%s\")%s", c->tag, c->uid ? " UID" : "");
	if (r->hits.n > 0 && (ret & IMAP_SEARCH_RET_MIN))
		buf_printf(out, " MIN %u", r->hits.v[0]);
	if (r->hits.n > 0 && (ret & IMAP_SEARCH_RET_MAX))
		buf_printf(out, " MAX %u", r->hits.v[r->hits.n - 1]);
	if (ret & IMAP_SEARCH_RET_COUNT)
		buf_printf(out, " COUNT %zu", r->hits.n);
	if (r->hits.n > 0 && (ret & IMAP_SEARCH_RET_ALL)) {
		buf_appends(out, " ALL ");
		imap_uidset_render(r->hits.v, r->hits.n, out);
	}
	if (r->hits.n > 0 && r->used_modseq)
		buf_printf(out, " MODSEQ %llu", (unsigned long long)r->max_modseq);
	buf_appends(out, "\r\n");
}

static void write_search(struct search_result *r, struct buf *out)
{
	buf_appends(out, "* SEARCH");
	for (size_t k = 0; k < r->hits.n; k++)
		buf_printf(out, " %u", r->hits.v[k]);
	if (r->hits.n > 0 && r->used_modseq)
		buf_printf(out, " (MODSEQ %llu)", (unsigned long long)r->max_modseq);
	buf_appends(out, "\r\n");
}

enum imap_exec_status imap_exec_search(struct imap_exec *x, const struct imap_cmd *c, struct buf *out)
{
	if (!x->sel) {
		imap_reply_tagged(out, c->tag, IMAP_BAD, NULL, "No folder is selected: SELECT or EXAMINE one first");
		return IMAP_EXEC_DONE;
	}
	if (!charset_ok(c->search.charset)) {
		imap_reply_tagged(out, c->tag, IMAP_NO, "BADCHARSET (US-ASCII UTF-8)",
			"The charset %s is not supported: search in UTF-8 (RFC 3501 section 6.4.4)", c->search.charset);
		return IMAP_EXEC_DONE;
	}
	struct search_result *rp = x->cursor ? x->cursor_state : NULL;
	if (!rp) {
		rp = calloc(1, sizeof *rp);
		x->cursor = 1;
		x->cursor_state = rp;
		x->cursor_free = search_result_free;
	}
	bool more = false;
	bool ok = rp && c->search.key && run_search(x, c, rp, &more);
	if (ok && more)
		return IMAP_EXEC_MORE;   /* no output yet: the session asks for the next slice at once */
	x->cursor = 0;
	x->cursor_state = NULL;
	x->cursor_free = NULL;
	if (!ok) {
		search_result_free(rp);
		imap_reply_tagged(out, c->tag, IMAP_NO, "SERVERBUG", "The search ran out of memory; try a narrower one");
		return IMAP_EXEC_DONE;
	}
	struct search_result r = *rp;
	free(rp);
	if (r.used_modseq && !x->condstore) {
		x->condstore = true;   /* RFC 7162 §3.1: SEARCH MODSEQ enables CONDSTORE */
		buf_printf(out, "* OK [HIGHESTMODSEQ %llu] CONDSTORE enabled by this command\r\n",
			(unsigned long long)folder_highestmodseq(x->sel));
	}
	unsigned ret = c->search.ret;
	if (c->search.return_given && (ret & IMAP_SEARCH_RET_SAVE))
		save_result(x, ret, &r);
	/* RFC 5182 §2.1: SAVE alone answers no ESEARCH */
	if (c->search.return_given && ret != IMAP_SEARCH_RET_SAVE)
		write_esearch(c, &r, out);
	else if (!c->search.return_given)
		write_search(&r, out);
	imap_uidlist_free(&r.hits);
	imap_uidlist_free(&r.uids);
	imap_exec_sync(x, out, c->uid);   /* RFC 3501 §7.4.1: no EXPUNGE during SEARCH, UID SEARCH may */
	imap_reply_tagged(out, c->tag, IMAP_OK, NULL, "%sSEARCH completed", c->uid ? "UID " : "");
	return IMAP_EXEC_DONE;
}
