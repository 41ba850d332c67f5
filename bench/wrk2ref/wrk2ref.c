/*
 * wrk2ref: a small, independent wrk2-style open-loop HTTP/1.1 client, used by
 * bench/loadgen.sh as the reference for `scalelab load`'s open model, because
 * wrk2 itself is not packaged by Debian.
 *
 * Request i is due at start + i/rate. One thread, non-blocking keep-alive
 * connections, epoll, and a timerfd for nanosecond pacing. A due request
 * goes out on a free connection at once; when none is free it waits, and
 * its latency still counts from its due time (wrk2's coordinated-omission
 * correction). Responses must carry Content-Length (nginx's static 200
 * does); a connection the server closes is reopened, and a request lost
 * with it counts as an error. Latencies go into an array; percentiles are
 * read from it sorted.
 *
 *   wrk2ref RATE SECONDS CONNECTIONS HOST PORT PATH
 *   → requests=… achieved_rps=… p50_ms=… p90_ms=… p99_ms=… p999_ms=… max_ms=…
 *
 * Loopback only: HOST must be 127.x.x.x.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	int fd;
	int busy;
	int64_t due;	 /* due time of the request in flight, ns */
	char buf[16384];
	size_t len;
} conn_t;

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int dial(const char *host, int port) {
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, host, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { /* blocking connect: loopback */
		perror("wrk2ref: connect");
		exit(1);
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* complete returns the length of one complete response at the start of
 * buf, or 0 if more bytes are needed, or -1 if it cannot be parsed. */
static long complete(const char *buf, size_t len) {
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	size_t head = (size_t)(end - buf) + 4;
	const char *cl = memmem(buf, head, "Content-Length:", 15);
	if (!cl)
		cl = memmem(buf, head, "content-length:", 15);
	if (!cl)
		return -1;
	long body = strtol(cl + 15, NULL, 10);
	if (len < head + (size_t)body)
		return 0;
	return (long)(head + body);
}

int main(int argc, char **argv) {
	if (argc != 7) {
		fprintf(stderr, "usage: wrk2ref RATE SECONDS CONNECTIONS HOST PORT PATH\n");
		return 2;
	}
	double rate = atof(argv[1]), secs = atof(argv[2]);
	int nconn = atoi(argv[3]), port = atoi(argv[5]);
	const char *host = argv[4], *path = argv[6];
	if (rate <= 0 || secs <= 0 || nconn <= 0 || strncmp(host, "127.", 4) != 0) {
		fprintf(stderr, "wrk2ref: bad arguments (loopback 127.x hosts only)\n");
		return 2;
	}
	char req[1024];
	int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: wrk2ref\r\n\r\n", path, host, port);
	long total = (long)(rate * secs);
	int64_t interval = (int64_t)(1e9 / rate);
	int64_t *lat = calloc((size_t)total, sizeof *lat);
	conn_t *conns = calloc((size_t)nconn, sizeof *conns);
	int ep = epoll_create1(0);
	for (int i = 0; i < nconn; i++) {
		conns[i].fd = dial(host, port);
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}
	int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

	int64_t start = now_ns() + 20000000; /* 20 ms to settle */
	long next = 0, done = 0, errors = 0;
	int *freeList = malloc(sizeof(int) * (size_t)nconn), nfree = nconn;
	for (int i = 0; i < nconn; i++)
		freeList[i] = i;
	struct epoll_event events[256];
	int64_t deadline = start + (int64_t)(secs * 1e9) + 30000000000LL;

	while (done < total) {
		int64_t t = now_ns();
		if (t > deadline) {
			fprintf(stderr, "wrk2ref: deadline passed with %ld of %ld done\n", done, total);
			break;
		}
		/* send every due request that has a free connection */
		while (next < total && nfree > 0 && start + next * interval <= t) {
			conn_t *c = &conns[freeList[--nfree]];
			c->busy = 1;
			c->due = start + next * interval;
			c->len = 0;
			if (write(c->fd, req, (size_t)reqlen) != reqlen) {
				errors++;
			}
			next++;
		}
		/* sleep until the next due time (if a connection is free) or an event */
		if (next < total && nfree > 0) {
			int64_t wait = start + next * interval - now_ns();
			if (wait < 1000)
				wait = 1000;
			struct itimerspec its = {.it_value = {.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000}};
			timerfd_settime(tfd, 0, &its, NULL);
		}
		int n = epoll_wait(ep, events, 256, 1000);
		for (int k = 0; k < n; k++) {
			uint32_t id = events[k].data.u32;
			if (id == UINT32_MAX) {
				uint64_t exp;
				ssize_t r = read(tfd, &exp, sizeof exp);
				(void)r;
				continue;
			}
			conn_t *c = &conns[id];
			for (;;) {
				ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
				if (r > 0) {
					c->len += (size_t)r;
					continue;
				}
				if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
					/* the server closed it: reconnect; a request in flight is an error */
					epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
					close(c->fd);
					c->fd = dial(host, port);
					struct epoll_event ev = {.events = EPOLLIN, .data.u32 = id};
					epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
					if (c->busy) {
						errors++;
						lat[done++] = now_ns() - c->due;
						c->busy = 0;
						freeList[nfree++] = (int)id;
					}
					c->len = 0;
				}
				break;
			}
			long used = complete(c->buf, c->len);
			if (used < 0) {
				fprintf(stderr, "wrk2ref: cannot parse a response without Content-Length\n");
				return 1;
			}
			if (used > 0 && c->busy) {
				lat[done++] = now_ns() - c->due;
				c->busy = 0;
				memmove(c->buf, c->buf + used, c->len - (size_t)used);
				c->len -= (size_t)used;
				freeList[nfree++] = (int)id;
			}
		}
	}
	double elapsed = (now_ns() - start) / 1e9;
	qsort(lat, (size_t)done, sizeof *lat, cmp64);
#define PCT(q) (done ? lat[(long)((q) * (done - 1))] / 1e6 : 0)
	printf("requests=%ld achieved_rps=%.0f errors=%ld p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n",
	       done, done / elapsed, errors, PCT(0.50), PCT(0.90), PCT(0.99), PCT(0.999), done ? lat[done - 1] / 1e6 : 0);
	return 0;
}
