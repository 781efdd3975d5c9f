/* limits_window.c - the sliding windows of the outbound limits (see policy.h): a ring
 * of buckets, each tagged with the bucket number it counts for, so that the window
 * "the last hour" or "the last day" is the sum of the buckets whose number is recent
 * enough.  Pure arithmetic, no lock: the caller (limits.c) holds the counters' mutex. */
#include "policy/policy.h"

static long long bucket_of(long long t, unsigned width)
{
	return t < 0 ? 0 : t / (long long)width;
}

/* Is bucket b, for bucket number cur, inside the window of n buckets? */
static bool live(const struct limit_bucket *b, unsigned n, long long cur)
{
	return b->count && (long long)b->index <= cur && cur - (long long)b->index < (long long)n;
}

void limit_window_add(struct limit_bucket *b, unsigned n, unsigned width, long long now, uint32_t k)
{
	long long cur = bucket_of(now, width);
	struct limit_bucket *slot = &b[cur % n];
	if ((long long)slot->index > cur && slot->count)
		return;   /* a count from another node older than the ring (serve/state_feed.c): its bucket is gone */
	if ((long long)slot->index != cur) {
		slot->index = (uint32_t)cur;
		slot->count = 0;
	}
	slot->count = slot->count > UINT32_MAX - k ? UINT32_MAX : slot->count + k;
}

unsigned long long limit_window_sum(const struct limit_bucket *b, unsigned n, unsigned width, long long now)
{
	long long cur = bucket_of(now, width);
	unsigned long long sum = 0;
	for (unsigned i = 0; i < n; i++)
		if (live(&b[i], n, cur))
			sum += b[i].count;
	return sum;
}

/* Bucket number i leaves the window when the current bucket becomes i + n, at time
 * (i + n) * width: walk the live buckets oldest first, taking each one's count away,
 * until what is left leaves room for `extra`. */
long long limit_window_resume(const struct limit_bucket *b, unsigned n, unsigned width, long long now,
	unsigned long long limit, unsigned long long extra)
{
	if (extra > limit)
		return -1;
	long long cur = bucket_of(now, width);
	unsigned long long sum = limit_window_sum(b, n, width, now);
	if (sum + extra <= limit)
		return now;
	for (long long i = cur - (long long)n + 1; i <= cur; i++) {
		if (i < 0)
			continue;
		const struct limit_bucket *slot = &b[i % n];
		if (!live(slot, n, cur) || (long long)slot->index != i)
			continue;
		sum -= slot->count;
		if (sum + extra <= limit)
			return (i + (long long)n) * (long long)width;
	}
	return (cur + 1) * (long long)width;   /* not reached: every bucket gone leaves 0 */
}

double limit_window_hourly_baseline(const struct limit_bucket *days, unsigned n, long long now, long long first_seen,
	double floor)
{
	long long today = bucket_of(now, 86400);
	long long day_start = today * 86400;
	/* The days before today that count: at most n - 1, and none before first seen. */
	long long since = day_start - (long long)(n - 1) * 86400;
	if (first_seen > since)
		since = first_seen;
	unsigned long long messages = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!live(&days[i], n, today) || (long long)days[i].index >= today)
			continue;
		if ((long long)days[i].index * 86400 + 86400 <= since)
			continue;
		messages += days[i].count;
	}
	double hours = since < day_start ? (double)(day_start - since) / 3600.0 : 0.0;
	/* Less than a day of history says too little about the usual: the floor decides. */
	if (hours < 24.0)
		return floor;
	double avg = (double)messages / hours;
	return avg > floor ? avg : floor;
}
