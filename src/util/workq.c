/* workq.c - worker threads for blocking jobs (see workq.h). */
#include "util/workq.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct job {
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
	struct job *next;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo_head, *todo_tail;
	struct job *done_head, *done_tail;
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
	void (*notify)(void *);
	void *notify_arg;
};

static void list_push(struct job **head, struct job **tail, struct job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void *worker_main(void *arg)
{
	struct workq *q = arg;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->todo_head && !q->stopping)
			pthread_cond_wait(&q->cond, &q->lock);
		struct job *j = q->todo_head;
		if (!j)
			break;   /* stopping and nothing left */
		q->todo_head = j->next;
		if (!q->todo_head)
			q->todo_tail = NULL;
		pthread_mutex_unlock(&q->lock);
		j->work(j->arg);
		pthread_mutex_lock(&q->lock);
		list_push(&q->done_head, &q->done_tail, j);
		pthread_mutex_unlock(&q->lock);
		q->notify(q->notify_arg);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

struct workq *workq_new(unsigned threads, void (*notify)(void *), void *notify_arg)
{
	struct workq *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->notify = notify;
	q->notify_arg = notify_arg;
	q->threads = calloc(threads, sizeof(pthread_t));
	if (!q->threads) {
		free(q);
		return NULL;
	}
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&q->threads[i], NULL, worker_main, q) != 0)
			break;
		q->nthreads++;
	}
	if (q->nthreads == 0) {
		free(q->threads);
		free(q);
		return NULL;
	}
	return q;
}

void workq_push(struct workq *q, void (*work)(void *), void (*done)(void *), void *arg)
{
	struct job *j = malloc(sizeof(*j));
	if (!j) {
		/* Out of memory: run inline rather than lose the job. */
		work(arg);
		done(arg);
		return;
	}
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&q->lock);
	list_push(&q->todo_head, &q->todo_tail, j);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

void workq_run_done(struct workq *q)
{
	pthread_mutex_lock(&q->lock);
	struct job *j = q->done_head;
	q->done_head = q->done_tail = NULL;
	pthread_mutex_unlock(&q->lock);
	while (j) {
		struct job *next = j->next;
		j->done(j->arg);
		free(j);
		j = next;
	}
}

void workq_free(struct workq **qp)
{
	struct workq *q = *qp;
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	workq_run_done(q);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q->threads);
	free(q);
	*qp = NULL;
}
