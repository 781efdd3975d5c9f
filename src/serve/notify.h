/* notify.h - systemd's service notification protocol, written here (sd_notify(3)):
 * one datagram per state change to the AF_UNIX socket named by $NOTIFY_SOCKET (a path,
 * or "@name" for a name in the abstract namespace).  Type=notify units wait for
 * READY=1; STATUS= is what `systemctl status` shows; RELOADING=1 with MONOTONIC_USEC
 * and READY=1 frame a reload; STOPPING=1 starts the stop.  Without $NOTIFY_SOCKET every
 * call does nothing.  Datagrams are sent without waiting (MSG_DONTWAIT): the event loop
 * never waits, and a message systemd cannot take now is dropped and logged. */
#ifndef POSTERN_SERVE_NOTIFY_H
#define POSTERN_SERVE_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct service;

/* Open and connect the socket of $NOTIFY_SOCKET (before the privilege drop: the
 * socket may be root's only) and unset the variable, so that nothing this process
 * runs inherits it.  False, with the reason in err, when it is set but unusable. */
bool notify_open(char *err, size_t errlen);
bool notify_enabled(void);
/* One datagram of "KEY=VALUE\n..." lines. */
void notify_send(const char *state);
/* READY=1 with the first STATUS=, then a STATUS= line every NOTIFY_STATUS_INTERVAL_S
 * seconds (queue size, deferrals, connections) on srv's loop. */
#define NOTIFY_STATUS_INTERVAL_S 10
void notify_ready(struct service *srv, struct event_base *base);
/* RELOADING=1 and MONOTONIC_USEC= (systemd 253's Type=notify-reload reads it; older
 * ones ignore it); then READY=1 again when the reload is done. */
void notify_reloading(void);
void notify_reloaded(struct service *srv);
void notify_stopping(void);
/* The timer stopped and the socket closed (at the end of serve). */
void notify_close(void);

#endif
