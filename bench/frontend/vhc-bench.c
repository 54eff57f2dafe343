// vhc-bench: the benchmark front-end and host-side clients of issue 13, in C, written from the
// vhost-user spec (QEMU docs/interop/vhost-user.rst) and the virtio 1.x spec (split virtqueue,
// console device). It shares nothing with native/ (as test/frontend does not).
//
// One binary, several roles (each its own process; bench/run.mjs starts them):
//   guest SOCK MODE BUF TOTAL [--port N] [--max-ports M] [--qsize Q] [--inflight BYTES]
//         [--no-event-idx] [--iters N]
//       plays QEMU + Linux's virtio_console on one vhost-user connection: memfd guest memory,
//       SET_MEM_TABLE, split rings, kick/call eventfds, the control queue (DEVICE_READY,
//       PORT_READY, PORT_OPEN). MODE g2h: pushes TOTAL bytes on port N's transmitq in BUF
//       buffers as fast as the device takes them (prints t_start); h2g: posts BUF receive
//       buffers and takes TOTAL bytes (prints t_end, checks the pattern); rtt: 1-byte write,
//       waits for the 1-byte echo, --iters times (prints p50/p99 in ns).
//   trickle RATE SECONDS SOCK...   one process, many connections: each VM's console (port 0)
//       prints RATE bytes a second as ten lines of RATE/10 bytes, the VMs spread over each
//       100 ms, for SECONDS (scale bench).
//   sink TOTAL PATH...     host clients: connect to every PATH, read TOTAL bytes from each
//                          (pattern checked on the first), print t_end.
//   source TOTAL BUF PATH  host client: connect, wait for a line on stdin, write TOTAL bytes.
//   echo PATH              host client: echo everything back.
//   rttc ITERS PATH        host client (relay reference): 1-byte write, 1-byte read, timed.
//   memcpy BUF TOTAL       memcpy bandwidth on BUF-sized blocks.
// The data is the byte pattern (stream offset % 256); every BUF is a multiple of 256.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DIE(...) (fprintf(stderr, "vhc-bench: " __VA_ARGS__), fputc('\n', stderr), exit(1))

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint8_t pattern[2 * 1024 * 1024 + 256];
static void init_pattern(void) {
  for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = (uint8_t)i;
}

// ---- vhost-user messages (vhost-user.rst) ---------------------------------------------------
enum {
  GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, SET_MEM_TABLE = 5, SET_VRING_NUM = 8,
  SET_VRING_ADDR = 9, SET_VRING_BASE = 10, SET_VRING_KICK = 12, SET_VRING_CALL = 13,
  GET_PROTOCOL_FEATURES = 15, SET_PROTOCOL_FEATURES = 16, SET_VRING_ENABLE = 18,
};
#define F_PROTOCOL_FEATURES (1ull << 30)
#define F_VERSION_1 (1ull << 32)
#define F_EVENT_IDX (1ull << 29)
#define CONSOLE_F_SIZE (1ull << 0)
#define CONSOLE_F_MULTIPORT (1ull << 1)

struct msg_hdr { uint32_t request, flags, size; };

static void vu_send(int sock, uint32_t req, const void *payload, uint32_t size, int fd) {
  struct msg_hdr h = {req, 0x1, size};
  struct iovec iov[2] = {{&h, sizeof h}, {(void *)payload, size}};
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
  if (fd >= 0) {
    memset(cbuf, 0, sizeof cbuf);
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (sendmsg(sock, &m, 0) != (ssize_t)(sizeof h + size)) DIE("sendmsg request %u: %s", req, strerror(errno));
}

static void read_full(int fd, void *p, size_t n) {
  while (n) {
    ssize_t r = read(fd, p, n);
    if (r <= 0) DIE("vhost-user reply: %s", r ? strerror(errno) : "connection closed");
    p = (char *)p + r;
    n -= (size_t)r;
  }
}

static uint64_t vu_get_u64(int sock, uint32_t req) {
  vu_send(sock, req, NULL, 0, -1);
  struct msg_hdr h;
  uint64_t v;
  read_full(sock, &h, sizeof h);
  if (h.request != req || h.size != 8) DIE("bad reply to %u (request %u size %u)", req, h.request, h.size);
  read_full(sock, &v, 8);
  return v;
}

static void vu_u64(int sock, uint32_t req, uint64_t v, int fd) { vu_send(sock, req, &v, 8, fd); }
static void vu_state(int sock, uint32_t req, uint32_t index, uint32_t num) {
  uint32_t s[2] = {index, num};
  vu_send(sock, req, s, 8, -1);
}

// ---- split virtqueue (virtio 1.x 2.7) --------------------------------------------------------
struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
#define DESC_F_WRITE 2

struct vq {
  uint16_t num, avail_idx, last_used, nfree;
  struct desc *desc;
  uint16_t *avail;  // flags, idx, ring[num], used_event
  uint8_t *used;    // flags, idx, {id,len}[num], avail_event
  int kick, call;
  uint16_t *free;   // free descriptor ids
  uint64_t buf_gpa; // descriptor i uses buffer buf_gpa + i * buf_size
  uint8_t *buf;
  uint32_t buf_size;
};

struct dev {
  int sock;
  uint8_t *mem;
  size_t mem_size;
  int nq, event_idx;
  struct vq *q;
  int port_ready[128], host_open[128], console[128];
  uint64_t kicks, calls_waited;
};

#define USED_IDX(v) (*(volatile uint16_t *)((v)->used + 2))
#define USED_ELEM(v, i) ((uint32_t *)((v)->used + 4 + 8 * (size_t)(i)))
#define AVAIL_EVENT(v) (*(volatile uint16_t *)((v)->used + 4 + 8 * (size_t)(v)->num))

static void vq_add(struct dev *d, struct vq *v, uint32_t len, int writable) {
  if (!v->nfree) DIE("no free descriptor");
  uint16_t id = v->free[--v->nfree];
  v->desc[id] = (struct desc){v->buf_gpa + (uint64_t)id * v->buf_size, len, writable ? DESC_F_WRITE : 0, 0};
  v->avail[2 + (v->avail_idx % v->num)] = id;
  v->avail_idx++;
  (void)d;
}

static void vq_publish(struct dev *d, struct vq *v, uint16_t old_idx) {
  __atomic_store_n(&v->avail[1], v->avail_idx, __ATOMIC_RELEASE);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  int kick;
  if (d->event_idx) {
    uint16_t ev = AVAIL_EVENT(v);
    kick = (uint16_t)(v->avail_idx - ev - 1) < (uint16_t)(v->avail_idx - old_idx);
  } else {
    kick = !(*(volatile uint16_t *)v->used & 1);
  }
  if (kick) {
    uint64_t one = 1;
    if (write(v->kick, &one, 8) != 8) DIE("kick: %s", strerror(errno));
    d->kicks++;
  }
}

// Next used element, or -1. *len gets its length; the descriptor goes back to the free list.
static int vq_pop(struct vq *v, uint32_t *len) {
  if (__atomic_load_n((uint16_t *)(v->used + 2), __ATOMIC_ACQUIRE) == v->last_used) return -1;
  uint32_t *e = USED_ELEM(v, v->last_used % v->num);
  uint32_t id = e[0];
  if (id >= v->num) DIE("used id %u out of range", id);
  *len = e[1];
  v->last_used++;
  v->free[v->nfree++] = (uint16_t)id;
  return (int)id;
}

// Ask for a call on the next used buffer; true if one is already there (do not sleep).
static int vq_arm(struct dev *d, struct vq *v) {
  if (d->event_idx) v->avail[2 + v->num] = v->last_used;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return USED_IDX(v) != v->last_used;
}

static void drain_eventfd(int fd) {
  uint64_t x;
  if (read(fd, &x, 8) < 0 && errno != EAGAIN) DIE("eventfd: %s", strerror(errno));
}

// ---- the console device (virtio 1.x 5.3) -----------------------------------------------------
enum { DEVICE_READY = 0, DEVICE_ADD = 1, PORT_READY = 3, CONSOLE_PORT = 4, RESIZE = 5, PORT_OPEN = 6, PORT_NAME = 7 };
struct ctrl { uint32_t id; uint16_t event, value; };
static int rxq(int port) { return port == 0 ? 0 : 2 * port + 2; }
static int txq(int port) { return port == 0 ? 1 : 2 * port + 3; }
#define CRXQ 2
#define CTXQ 3

static void ctrl_send(struct dev *d, uint32_t id, uint16_t event, uint16_t value) {
  struct vq *v = &d->q[CTXQ];
  uint32_t len;
  while (vq_pop(v, &len) >= 0) {}
  if (!v->nfree) DIE("control transmitq full");
  uint16_t old = v->avail_idx;
  uint16_t slot = v->free[v->nfree - 1];
  struct ctrl c = {id, event, value};
  memcpy(v->buf + (size_t)slot * v->buf_size, &c, sizeof c);
  vq_add(d, v, sizeof c, 0);
  vq_publish(d, v, old);
}

// Handle what the device sent on the control receiveq, as Linux's driver does.
static void ctrl_poll(struct dev *d) {
  struct vq *v = &d->q[CRXQ];
  uint32_t len;
  int id, n = 0;
  uint16_t old = v->avail_idx;
  while ((id = vq_pop(v, &len)) >= 0) {
    struct ctrl c;
    memcpy(&c, v->buf + (size_t)id * v->buf_size, sizeof c);
    if (len >= sizeof c && c.id < 128) {
      switch (c.event) {
        case DEVICE_ADD: d->port_ready[c.id] = 1; ctrl_send(d, c.id, PORT_READY, 1); break;
        case CONSOLE_PORT: d->console[c.id] = 1; ctrl_send(d, c.id, PORT_OPEN, 1); break;
        case PORT_OPEN: d->host_open[c.id] = c.value; break;
        default: break;
      }
    }
    vq_add(d, v, v->buf_size, 1);
    n++;
  }
  if (n) vq_publish(d, v, old);
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

// Connect and set the device up; data queues of `port` get `nbuf` buffers of `buf_size`.
static struct dev *dev_open(const char *path, int max_ports, int qsize, int port, uint32_t buf_size, int nbuf,
                            int want_event_idx) {
  struct dev *d = calloc(1, sizeof *d);
  d->nq = 2 * (max_ports + 1);
  d->q = calloc((size_t)d->nq, sizeof *d->q);
  size_t ring_bytes = align_up(16 * (size_t)qsize, 4096) + align_up(6 + 2 * (size_t)qsize, 4096) +
                      align_up(6 + 8 * (size_t)qsize, 4096);
  size_t rings = ring_bytes * (size_t)d->nq;
  size_t ctrl_bufs = 2 * 64 * (size_t)qsize;
  size_t data = 2 * (size_t)buf_size * (size_t)nbuf;
  d->mem_size = align_up(rings + ctrl_bufs + data + 4096 * 4, 2 * 1024 * 1024);
  int mfd = memfd_create("vhc-bench-guest", MFD_CLOEXEC);
  if (mfd < 0 || ftruncate(mfd, (off_t)d->mem_size) < 0) DIE("memfd: %s", strerror(errno));
  d->mem = mmap(NULL, d->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  if (d->mem == MAP_FAILED) DIE("mmap: %s", strerror(errno));

  d->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  if (connect(d->sock, (struct sockaddr *)&sa, sizeof sa) < 0) DIE("connect %s: %s", path, strerror(errno));

  uint64_t offered = vu_get_u64(d->sock, GET_FEATURES);
  uint64_t want = F_VERSION_1 | CONSOLE_F_SIZE | CONSOLE_F_MULTIPORT | F_PROTOCOL_FEATURES | (want_event_idx ? F_EVENT_IDX : 0);
  uint64_t feats = offered & want;
  if (!(feats & CONSOLE_F_MULTIPORT) || !(feats & F_VERSION_1)) DIE("device lacks MULTIPORT or VERSION_1 (offered %#llx)", (unsigned long long)offered);
  d->event_idx = !!(feats & F_EVENT_IDX);
  if (feats & F_PROTOCOL_FEATURES) {
    (void)vu_get_u64(d->sock, GET_PROTOCOL_FEATURES);
    vu_u64(d->sock, SET_PROTOCOL_FEATURES, 0, -1);
  }
  vu_send(d->sock, SET_OWNER, NULL, 0, -1);
  vu_u64(d->sock, SET_FEATURES, feats, -1);
  struct { uint32_t n, pad; uint64_t gpa, size, uaddr, off; } mt = {1, 0, 0, d->mem_size, (uint64_t)(uintptr_t)d->mem, 0};
  vu_send(d->sock, SET_MEM_TABLE, &mt, sizeof mt, mfd);
  close(mfd);

  size_t off = 0, bufoff = rings;
  for (int i = 0; i < d->nq; i++) {
    struct vq *v = &d->q[i];
    v->num = (uint16_t)qsize;
    v->desc = (struct desc *)(d->mem + off);
    v->avail = (uint16_t *)(d->mem + off + align_up(16 * (size_t)qsize, 4096));
    v->used = d->mem + off + align_up(16 * (size_t)qsize, 4096) + align_up(6 + 2 * (size_t)qsize, 4096);
    off += ring_bytes;
    v->free = malloc(sizeof(uint16_t) * (size_t)qsize);
    int nb = 0;
    if (i == CRXQ || i == CTXQ) { v->buf_size = 64; nb = qsize; }
    else if (i == rxq(port) || i == txq(port)) { v->buf_size = buf_size; nb = nbuf; }
    else if (i == 1) { v->buf_size = 256; nb = 1; } // console transmitq (trickle), one buffer
    v->buf_gpa = bufoff;
    v->buf = d->mem + bufoff;
    bufoff += (size_t)v->buf_size * (size_t)nb;
    for (int k = nb - 1; k >= 0; k--) v->free[v->nfree++] = (uint16_t)k;
    v->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    v->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    vu_state(d->sock, SET_VRING_NUM, (uint32_t)i, (uint32_t)qsize);
    struct { uint32_t index, flags; uint64_t desc, used, avail, log; } a = {
        (uint32_t)i, 0, (uint64_t)(uintptr_t)v->desc, (uint64_t)(uintptr_t)v->used, (uint64_t)(uintptr_t)v->avail, 0};
    vu_send(d->sock, SET_VRING_ADDR, &a, sizeof a, -1);
    vu_state(d->sock, SET_VRING_BASE, (uint32_t)i, 0);
    vu_u64(d->sock, SET_VRING_KICK, (uint64_t)i, v->kick);
    vu_u64(d->sock, SET_VRING_CALL, (uint64_t)i, v->call);
  }
  if (bufoff > d->mem_size) DIE("guest memory layout overflow");
  if (feats & F_PROTOCOL_FEATURES)
    for (int i = 0; i < d->nq; i++) vu_state(d->sock, SET_VRING_ENABLE, (uint32_t)i, 1);

  // The driver's probe: receive buffers on the control receiveq and on the port's receiveq.
  struct vq *c = &d->q[CRXQ];
  uint16_t old = c->avail_idx;
  while (c->nfree) vq_add(d, c, c->buf_size, 1);
  vq_publish(d, c, old);
  ctrl_send(d, 0, DEVICE_READY, 1);
  return d;
}

// Wait (poll on call eventfds) until something is used on one of `qs`, or `ms` passes.
static void dev_wait(struct dev *d, const int *qs, int n, int ms) {
  struct pollfd p[8];
  for (int i = 0; i < n; i++) {
    if (vq_arm(d, &d->q[qs[i]])) return;
    p[i] = (struct pollfd){d->q[qs[i]].call, POLLIN, 0};
  }
  d->calls_waited++;
  if (poll(p, (nfds_t)n, ms) < 0 && errno != EINTR) DIE("poll: %s", strerror(errno));
  for (int i = 0; i < n; i++)
    if (p[i].revents) drain_eventfd(p[i].fd);
}

static void dev_open_port(struct dev *d, int port) {
  int qs[1] = {CRXQ};
  uint64_t end = now_ns() + 20000000000ull;
  while (!d->port_ready[port]) {
    ctrl_poll(d);
    if (now_ns() > end) DIE("port %d never added", port);
    if (!d->port_ready[port]) dev_wait(d, qs, 1, 100);
  }
  if (!d->console[port]) ctrl_send(d, (uint32_t)port, PORT_OPEN, 1);
  while (!d->host_open[port]) {
    ctrl_poll(d);
    if (now_ns() > end) DIE("port %d: host side never opened (no member connected?)", port);
    if (!d->host_open[port]) dev_wait(d, qs, 1, 100);
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int guest_main(int argc, char **argv) {
  if (argc < 6) DIE("usage: guest SOCK g2h|h2g|rtt BUF TOTAL [options]");
  const char *path = argv[2], *mode = argv[3];
  uint32_t buf = (uint32_t)strtoul(argv[4], NULL, 0);
  uint64_t total = strtoull(argv[5], NULL, 0);
  int port = 1, max_ports = 4, qsize = 256, event_idx = 1, iters = 10000;
  uint64_t inflight = 8 << 20;
  for (int i = 6; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--max-ports") && i + 1 < argc) max_ports = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--qsize") && i + 1 < argc) qsize = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--inflight") && i + 1 < argc) inflight = strtoull(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--no-event-idx")) event_idx = 0;
    else DIE("unknown option %s", argv[i]);
  }
  int rtt = !strcmp(mode, "rtt");
  if (!rtt && (buf % 256 || buf == 0 || buf > 2 * 1024 * 1024)) DIE("BUF must be a multiple of 256, at most 2 MiB");
  int nbuf = rtt ? 16 : (int)(inflight / buf);
  if (nbuf > qsize) nbuf = qsize;
  if (nbuf < 2) nbuf = 2;
  struct dev *d = dev_open(path, max_ports, qsize, port, rtt ? 256 : buf, nbuf, event_idx);
  struct vq *tx = &d->q[txq(port)], *rx = &d->q[rxq(port)];
  if (!strcmp(mode, "h2g") || rtt) {
    uint16_t old = rx->avail_idx;
    while (rx->nfree) vq_add(d, rx, rx->buf_size, 1);
    vq_publish(d, rx, old);
  }
  dev_open_port(d, port);
  printf("ready event_idx=%d nbuf=%d\n", d->event_idx, nbuf);
  fflush(stdout);
  uint32_t len;
  int id;
  if (!strcmp(mode, "g2h")) {
    // Every transmit buffer holds the pattern once: offsets are multiples of BUF.
    for (int k = 0; k < nbuf; k++) memcpy(tx->buf + (size_t)k * buf, pattern, buf);
    uint64_t sent = 0, done = 0, t0 = now_ns();
    int qs[2] = {txq(port), CRXQ};
    while (done < total) {
      uint16_t old = tx->avail_idx;
      while (tx->nfree && sent < total) {
        uint32_t n = total - sent < buf ? (uint32_t)(total - sent) : buf;
        vq_add(d, tx, n, 0);
        sent += n;
      }
      if (tx->avail_idx != old) vq_publish(d, tx, old);
      int got = 0;
      while ((id = vq_pop(tx, &len)) >= 0) { done += tx->desc[id].len; got++; }
      ctrl_poll(d);
      if (!got && done < total) dev_wait(d, qs, 2, 1000);
    }
    printf("t_start=%llu t_guest_done=%llu kicks=%llu waits=%llu\n", (unsigned long long)t0,
           (unsigned long long)now_ns(), (unsigned long long)d->kicks, (unsigned long long)d->calls_waited);
  } else if (!strcmp(mode, "h2g")) {
    uint64_t got = 0, bad = 0;
    int qs[2] = {rxq(port), CRXQ};
    while (got < total) {
      uint16_t old = rx->avail_idx;
      int n = 0;
      while ((id = vq_pop(rx, &len)) >= 0) {
        if (len > rx->buf_size) DIE("used length %u > buffer %u", len, rx->buf_size);
        if (memcmp(rx->buf + (size_t)id * rx->buf_size, pattern + (got % 256), len)) bad++;
        got += len;
        vq_add(d, rx, rx->buf_size, 1);
        n++;
      }
      if (n) vq_publish(d, rx, old);
      ctrl_poll(d);
      if (!n && got < total) dev_wait(d, qs, 2, 1000);
    }
    printf("t_end=%llu bad=%llu kicks=%llu waits=%llu\n", (unsigned long long)now_ns(), (unsigned long long)bad,
           (unsigned long long)d->kicks, (unsigned long long)d->calls_waited);
  } else if (rtt) {
    uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)iters);
    int qs[1] = {rxq(port)};
    for (int it = 0; it < iters; it++) {
      while (vq_pop(tx, &len) >= 0) {}
      tx->buf[(size_t)tx->free[tx->nfree - 1] * tx->buf_size] = (uint8_t)it;
      uint64_t t = now_ns();
      uint16_t old = tx->avail_idx;
      vq_add(d, tx, 1, 0);
      vq_publish(d, tx, old);
      for (;;) {
        if ((id = vq_pop(rx, &len)) >= 0) {
          uint16_t o = rx->avail_idx;
          vq_add(d, rx, rx->buf_size, 1);
          vq_publish(d, rx, o);
          break;
        }
        dev_wait(d, qs, 1, 1000);
      }
      lat[it] = now_ns() - t;
    }
    qsort(lat, (size_t)iters, sizeof *lat, cmp_u64);
    printf("p50_ns=%llu p99_ns=%llu max_ns=%llu\n", (unsigned long long)lat[iters / 2],
           (unsigned long long)lat[(size_t)iters * 99 / 100], (unsigned long long)lat[iters - 1]);
  } else {
    DIE("unknown mode %s", mode);
  }
  fflush(stdout);
  return 0;
}

// Scale bench: many VMs, each console printing RATE bytes a second.
static int trickle_main(int argc, char **argv) {
  if (argc < 5) DIE("usage: trickle RATE SECONDS SOCK...");
  int rate = atoi(argv[2]);
  double secs = atof(argv[3]);
  int n = argc - 4;
  struct dev **ds = calloc((size_t)n, sizeof *ds);
  uint64_t t0 = now_ns();
  for (int i = 0; i < n; i++) ds[i] = dev_open(argv[4 + i], 4, 64, 0, 256, 1, 1);
  for (int i = 0; i < n; i++) dev_open_port(ds[i], 0);
  printf("connected=%d setup_ms=%.0f\n", n, (double)(now_ns() - t0) / 1e6);
  fflush(stdout);
  // Each VM writes a line of `rate/10` bytes ten times a second, the VMs spread over the 100 ms.
  int chunk = rate / 10 > 0 ? rate / 10 : 1;
  uint64_t start = now_ns(), end = start + (uint64_t)(secs * 1e9), sent = 0;
  uint64_t *next = calloc((size_t)n, sizeof *next);
  for (int i = 0; i < n; i++) next[i] = start + (uint64_t)i * 100000000ull / (uint64_t)n;
  while (now_ns() < end) {
    uint64_t t = now_ns();
    for (int i = 0; i < n; i++) {
      struct dev *d = ds[i];
      struct vq *tx = &d->q[1];
      uint32_t len;
      while (vq_pop(tx, &len) >= 0) {}
      ctrl_poll(d);
      if (t >= next[i] && tx->nfree) {
        memset(tx->buf, 'x', (size_t)chunk);
        tx->buf[chunk - 1] = '\n';
        uint16_t old = tx->avail_idx;
        vq_add(d, tx, (uint32_t)chunk, 0);
        vq_publish(d, tx, old);
        sent += (uint64_t)chunk;
        next[i] += 100000000ull;
      }
    }
    usleep(5000);
  }
  printf("sent=%llu\n", (unsigned long long)sent);
  fflush(stdout);
  return 0;
}

// ---- host-side clients -----------------------------------------------------------------------
static int unix_connect(const char *path) {
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  for (int tries = 0; connect(s, (struct sockaddr *)&sa, sizeof sa) < 0; tries++) {
    if (tries > 200) DIE("connect %s: %s", path, strerror(errno));
    usleep(25000);
  }
  return s;
}

static int sink_main(int argc, char **argv) {
  if (argc < 4) DIE("usage: sink TOTAL PATH...");
  uint64_t total = strtoull(argv[2], NULL, 0);
  int n = argc - 3;
  struct pollfd *p = calloc((size_t)n, sizeof *p);
  uint64_t *got = calloc((size_t)n, sizeof *got), bad = 0;
  for (int i = 0; i < n; i++) p[i] = (struct pollfd){unix_connect(argv[3 + i]), POLLIN, 0};
  printf("connected\n");
  fflush(stdout);
  static uint8_t b[1 << 20];
  int left = n;
  uint64_t t_first = 0;
  while (left) {
    if (poll(p, (nfds_t)n, -1) < 0) DIE("poll: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
      if (!p[i].revents) continue;
      ssize_t r = read(p[i].fd, b, sizeof b);
      if (r <= 0) DIE("member %d: %s after %llu bytes", i, r ? strerror(errno) : "EOF", (unsigned long long)got[i]);
      if (!t_first) t_first = now_ns();
      if (i == 0) {
        for (ssize_t o = 0; o < r;) {
          size_t k = (size_t)(r - o) < sizeof pattern - 256 ? (size_t)(r - o) : sizeof pattern - 256;
          if (memcmp(b + o, pattern + ((got[i] + (uint64_t)o) % 256), k)) bad++;
          o += (ssize_t)k;
        }
      }
      got[i] += (uint64_t)r;
      if (got[i] >= total) { p[i].fd = -p[i].fd - 1; left--; }
    }
  }
  printf("t_end=%llu t_first=%llu bad=%llu\n", (unsigned long long)now_ns(), (unsigned long long)t_first, (unsigned long long)bad);
  fflush(stdout);
  return 0;
}

static int source_main(int argc, char **argv) {
  if (argc < 5) DIE("usage: source TOTAL BUF PATH");
  uint64_t total = strtoull(argv[2], NULL, 0);
  size_t buf = strtoul(argv[3], NULL, 0);
  if (buf % 256 || buf == 0 || buf > 2 * 1024 * 1024) DIE("BUF must be a multiple of 256, at most 2 MiB");
  int s = unix_connect(argv[4]);
  printf("connected\n");
  fflush(stdout);
  char line[16];
  if (!fgets(line, sizeof line, stdin)) DIE("source: no go line");
  uint64_t t0 = now_ns(), sent = 0;
  while (sent < total) {
    // Writes may be partial: the next one continues up to the end of the current block.
    size_t n = buf - (size_t)(sent % buf);
    if (n > total - sent) n = (size_t)(total - sent);
    ssize_t w = write(s, pattern + (sent % 256), n);
    if (w <= 0) DIE("source write: %s", strerror(errno));
    sent += (uint64_t)w;
  }
  printf("t_start=%llu\n", (unsigned long long)t0);
  fflush(stdout);
  if (fgets(line, sizeof line, stdin)) {}  // keep the connection until told
  return 0;
}

static int echo_main(int argc, char **argv) {
  if (argc < 3) DIE("usage: echo PATH");
  int s = unix_connect(argv[2]);
  printf("connected\n");
  fflush(stdout);
  char b[65536];
  for (;;) {
    ssize_t r = read(s, b, sizeof b);
    if (r <= 0) return 0;
    if (write(s, b, (size_t)r) != r) return 0;
  }
}

static int rttc_main(int argc, char **argv) {
  if (argc < 4) DIE("usage: rttc ITERS PATH");
  int iters = atoi(argv[2]);
  int s = unix_connect(argv[3]);
  usleep(200000);
  uint64_t *lat = malloc(sizeof(uint64_t) * (size_t)iters);
  for (int i = 0; i < iters; i++) {
    char c = (char)i;
    uint64_t t = now_ns();
    if (write(s, &c, 1) != 1 || read(s, &c, 1) != 1) DIE("rttc: %s", strerror(errno));
    lat[i] = now_ns() - t;
  }
  qsort(lat, (size_t)iters, sizeof *lat, cmp_u64);
  printf("p50_ns=%llu p99_ns=%llu max_ns=%llu\n", (unsigned long long)lat[iters / 2],
         (unsigned long long)lat[(size_t)iters * 99 / 100], (unsigned long long)lat[iters - 1]);
  return 0;
}

static int memcpy_main(int argc, char **argv) {
  if (argc < 4) DIE("usage: memcpy BUF TOTAL");
  size_t buf = strtoul(argv[2], NULL, 0);
  uint64_t total = strtoull(argv[3], NULL, 0);
  // Source and destination rotate over 16 MiB, as a ring's buffers do, so small blocks are not
  // all served from L1.
  size_t span = 16u << 20;
  if (span < 2 * buf) span = 2 * buf;
  uint8_t *src = malloc(span), *dst = malloc(span);
  memset(src, 1, span);
  memset(dst, 2, span);
  uint64_t t0 = now_ns(), done = 0;
  size_t o = 0;
  while (done < total) {
    memcpy(dst + o, src + o, buf);
    __asm__ volatile("" ::"r"(dst) : "memory");
    done += buf;
    o += buf;
    if (o + buf > span) o = 0;
  }
  double s = (double)(now_ns() - t0) / 1e9;
  printf("mibps=%.1f\n", (double)total / 1048576.0 / s);
  return 0;
}

int main(int argc, char **argv) {
  init_pattern();
  if (argc < 2) DIE("usage: vhc-bench guest|trickle|sink|source|echo|rttc|memcpy ...");
  const char *r = argv[1];
  if (!strcmp(r, "guest")) return guest_main(argc, argv);
  if (!strcmp(r, "trickle")) return trickle_main(argc, argv);
  if (!strcmp(r, "sink")) return sink_main(argc, argv);
  if (!strcmp(r, "source")) return source_main(argc, argv);
  if (!strcmp(r, "echo")) return echo_main(argc, argv);
  if (!strcmp(r, "rttc")) return rttc_main(argc, argv);
  if (!strcmp(r, "memcpy")) return memcpy_main(argc, argv);
  DIE("unknown role %s", r);
}
