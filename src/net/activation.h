/* activation.h - socket activation (sd_listen_fds(3), written here): the listening
 * sockets systemd (a .socket unit, or systemd-socket-activate) opened for this
 * process, passed as descriptors 3, 4, ... with LISTEN_PID (this process), LISTEN_FDS
 * (how many) and LISTEN_FDNAMES (their names, ':'-separated: FileDescriptorName= of
 * the .socket unit).  A socket's name is the name of the [listener NAME] that uses it
 * instead of binding its own. */
#ifndef POSTERN_NET_ACTIVATION_H
#define POSTERN_NET_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>

struct conf;

/* The inherited socket named listener_name (made non-blocking; the caller owns it
 * from now on), or -1 when there is none: bind as usual. */
int net_activation_fd(const char *listener_name);
/* Before binding: is what systemd passed usable, and does every socket it passed
 * name a listener of c?  False, with what is wrong and what to change, otherwise
 * (a socket nobody serves would leave its port silently dead).  True when nothing
 * was passed (LISTEN_PID unset or another process's). */
bool net_activation_check(const struct conf *c, char *err, size_t errlen);
/* How many sockets were passed (0: none); the variables are unset once read. */
size_t net_activation_count(void);

#endif
