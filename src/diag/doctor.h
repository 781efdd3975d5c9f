/* doctor.h - `postern doctor`: test a mail client's settings against a server step by
 * step and name the cause of the first failure (ids shared with explain). */
#ifndef POSTERN_DIAG_DOCTOR_H
#define POSTERN_DIAG_DOCTOR_H

enum doctor_step {
	STEP_NONE = 0, STEP_RESOLVE, STEP_PORTS, STEP_TLS, STEP_EHLO, STEP_LOGIN, STEP_SENDER,
	STEP_RELAY, STEP_SEND, STEP_POP3, STEP_COUNT
};

/* Exit status for a failed step: 10 + step (11 name ... 18 test message, 19 POP3); 0 all passed. */
#define DOCTOR_EXIT_BASE 10

#endif
