/* fuzz_limits_state.c - the outbound limits' state file (policy/limits.c): whatever
 * the disk hands back (a damaged or truncated data_dir/limits.state), the load stays
 * within its bounds, the counts read back are usable, and a save of what was read
 * loads again to the same counts. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "policy/policy.h"

#define NOW 1764590400LL

static void write_file(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return;
	while (size > 0) {
		ssize_t w = write(fd, data, size);
		if (w <= 0)
			break;
		data += w;
		size -= (size_t)w;
	}
	close(fd);
}

static void usage_of(struct policy_limits *l, struct limit_usage *a, struct limit_usage *d)
{
	policy_limits_usage(l, LIMIT_ACCOUNT, "a@b.test", NOW, 5, 5, 2, 10.0, a);
	policy_limits_usage(l, LIMIT_DOMAIN, "b.test", NOW, 5, 5, 2, 10.0, d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char in[64], out[64];
	if (!in[0]) {
		snprintf(in, sizeof(in), "/tmp/fuzz_limits_state.%d", (int)getpid());
		snprintf(out, sizeof(out), "/tmp/fuzz_limits_state.%d.saved", (int)getpid());
	}
	write_file(in, data, size);
	struct policy_limits *l = policy_limits_new(64);
	size_t skipped;
	char err[256];
	if (!l)
		return 0;
	if (policy_limits_load(l, in, NOW, &skipped, err, sizeof(err))) {
		struct limit_usage a1, d1, a2, d2;
		policy_limits_count(l, "a@b.test", "b.test", 3, NOW);
		usage_of(l, &a1, &d1);
		if (policy_limits_save(l, out, NOW, err, sizeof(err))) {
			struct policy_limits *l2 = policy_limits_new(64);
			if (l2 && policy_limits_load(l2, out, NOW, &skipped, err, sizeof(err))) {
				usage_of(l2, &a2, &d2);
				/* What was saved reads back to the same counts. */
				if (a1.messages_hour != a2.messages_hour || a1.recipients_day != a2.recipients_day
					|| d1.messages_hour != d2.messages_hour || d1.recipients_day != d2.recipients_day)
					__builtin_trap();
			}
			policy_limits_free(&l2);
		}
	}
	policy_limits_free(&l);
	return 0;
}
