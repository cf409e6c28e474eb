/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sysfuzz: a small syscall fuzzer for ElasticOS's user interfaces, in the spirit of syzkaller.
 *
 *   sysfuzz [-n CALLS] [-s SEED] [-v VICTIMS] [-m MIB] [-f PID[,PID...]]
 *
 * It forks VICTIMS processes that each fill MIB of memory and then rewrite and check every
 * page over and over, and makes CALLS random calls while they run: elastic_stretch, elastic_ctl
 * and elastic_jump with random pids (its victims, pids it must not control (-f, pid 1, a kernel
 * thread), pids that cannot exist, itself), nodes, operations and arguments; random and
 * template-made writes to every file of /sys/kernel/elastic; reads of those files and of
 * /proc/PID/elastic. Every call's result is checked against the errors the man pages
 * (tools/libelastic/man/) document for those arguments: a call that must fail fails with
 * exactly the documented errno, and a call that may succeed returns one of the documented
 * results. At the end every victim checks its memory a last time and must exit 0.
 *
 * Run as root it also writes well-formed settings (node_id, listen, jump tunables, prefetch,
 * peers it adds and deletes again at unused ids); it never changes the secret or the real
 * peers, so the cluster stays up, and it restores the tunables it changed.
 *
 * Last line: "sysfuzz calls=N ... unexpected=U ... victims_ok=K/V victims_killed=L
 * victims_wrong=W"; exit 0 only if U and W are 0. A victim the kernel ended with a signal
 * (L) is allowed only with a kernel log line naming the cause, which the test checks; one
 * whose memory read back wrong (W) never is.
 */
#include "common.h"
#include "elastic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SYSFS "/sys/kernel/elastic"
#define MAX_VICTIMS 16
#define MAX_FOREIGN 16
#define MAX_PEERS 16
#define MAX_FILES 32
#define MAX_WANT 8
#define SHOW_UNEXPECTED 25
#define FUZZ_PEER_MIN 100 /* peers the fuzzer adds: ids 100..199, never a real one */

static uint64_t rng;
static int is_root;
static int own_node;
static int peers[MAX_PEERS], npeers;		/* connected */
static int known[MAX_PEERS], nknown;		/* configured, not connected */
static pid_t victims[MAX_VICTIMS];
static int nvictims;
/* Victims the kernel ended (a signal, with the cause in its log); their status. */
static pid_t lost[MAX_VICTIMS];
static int lost_status[MAX_VICTIMS], nlost;
static long on_lost;	  /* calls that hit a victim as it was being ended */
static pid_t cur_victim; /* the victim the current call targets, or 0 */
static pid_t foreign[MAX_FOREIGN];
static int nforeign;
static long unexpected;
static long counts[9];
enum { C_STRETCH, C_CTL, C_JUMP, C_SYSFS_W, C_SYSFS_R, C_PROC_R, C_OK, C_FAILED, C_SYSFS_OK };

static uint64_t rnd(uint64_t n)
{
	return n ? rng_next(&rng) % n : 0;
}

/* The results a call may have: 0 for success, else errno values. */
struct want {
	int v[MAX_WANT];
	int n;
};

static struct want want1(int a)
{
	struct want w = { { a }, 1 };
	return w;
}

static void want_add(struct want *w, int e)
{
	if (w->n < MAX_WANT)
		w->v[w->n++] = e;
}

static int wanted(const struct want *w, int got)
{
	for (int i = 0; i < w->n; i++)
		if (w->v[i] == got)
			return 1;
	return 0;
}

/* Whether victim `pid` has ended; if so it is no longer a target, and its status is kept. */
static int victim_ended(pid_t pid)
{
	int st;

	for (int i = 0; i < nvictims; i++) {
		if (victims[i] != pid || waitpid(pid, &st, WNOHANG) != pid)
			continue;
		lost[nlost] = pid;
		lost_status[nlost++] = st;
		victims[i] = victims[--nvictims];
		printf("sysfuzz: victim %d ended with status %#x\n", pid, st);
		return 1;
	}
	for (int i = 0; i < nlost; i++)
		if (lost[i] == pid)
			return 1;
	return 0;
}

static void check(const char *what, int got, const struct want *w)
{
	counts[got ? C_FAILED : C_OK]++;
	if (wanted(w, got))
		return;
	/* A victim the kernel is ending (or has ended) answers ESRCH and the like: not the
	 * call's fault. The test holds each such end to a kernel log line naming its cause. */
	if (cur_victim) {
		for (int i = 0; i < 20 && !victim_ended(cur_victim); i++)
			usleep(10000);
		if (victim_ended(cur_victim)) {
			on_lost++;
			return;
		}
	}
	unexpected++;
	if (unexpected <= SHOW_UNEXPECTED) {
		printf("sysfuzz UNEXPECTED %s -> %d (%s); documented:", what, got,
		       got ? strerror(got) : "success");
		for (int i = 0; i < w->n; i++)
			printf(" %d", w->v[i]);
		printf("\n");
		fflush(stdout);
	}
}

/* ---- victims ------------------------------------------------------------------------- */

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t word(size_t i, uint64_t gen)
{
	uint64_t s = i * 0x9e3779b97f4a7c15ULL ^ gen << 40;
	return rng_next(&s);
}

/* Three different words of each page: first, last, and one in between that moves. */
static int page_words(size_t page, size_t k)
{
	return k == 0 ? 0 : k == 1 ? 511 : 1 + (int)((page * 7 + 3) % 510);
}

static int victim(long mib)
{
	size_t pages = (size_t)mib << 8;
	uint64_t *m, gen = 1;
	long bad = 0;

	signal(SIGTERM, on_term);
	m = mmap(NULL, pages << 12, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return 3;
	for (size_t p = 0; p < pages; p++)
		for (size_t k = 0; k < 3; k++) {
			size_t i = p * 512 + page_words(p, k);
			m[i] = word(i, gen);
		}
	while (!stop) {
		for (size_t p = 0; p < pages && !bad; p++)
			for (size_t k = 0; k < 3; k++) {
				size_t i = p * 512 + page_words(p, k);
				if (m[i] != word(i, gen))
					bad++;
				m[i] = word(i, gen + 1);
			}
		if (bad)
			break;
		gen++;
		/* A syscall now and then: it goes home when the victim runs away. */
		if (getppid() <= 0)
			bad++;
	}
	for (size_t p = 0; p < pages && !bad; p++)
		for (size_t k = 0; k < 3; k++) {
			size_t i = p * 512 + page_words(p, k);
			if (m[i] != word(i, gen))
				bad++;
		}
	if (bad)
		printf("sysfuzz victim %d: memory read back wrong (generation %llu)\n", getpid(),
		       (unsigned long long)gen);
	return bad ? 1 : 0;
}

/* ---- the node ------------------------------------------------------------------------ */

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	buf[n] = 0;
	close(fd);
	return (int)n;
}

static void discover(void)
{
	static char buf[8192];
	char *l, *save;

	if (read_file(SYSFS "/node_id", buf, sizeof(buf)) > 0)
		own_node = atoi(buf);
	if (read_file(SYSFS "/peers", buf, sizeof(buf)) <= 0)
		return;
	/* "ID ADDR STATE ...": only a connected peer can take a stretch. */
	for (l = strtok_r(buf, "\n", &save); l && npeers < MAX_PEERS && nknown < MAX_PEERS;
	     l = strtok_r(NULL, "\n", &save)) {
		int id = atoi(l);
		if (id <= 0 || id >= FUZZ_PEER_MIN)
			continue;
		if (strstr(l, " connected "))
			peers[npeers++] = id;
		else
			known[nknown++] = id;
	}
}

static int is_peer(long node)
{
	for (int i = 0; i < npeers; i++)
		if (peers[i] == node)
			return 1;
	return 0;
}

/* A peer of the node that is not connected (or one root's fuzzer added, never connected). */
static int is_down_peer(long node)
{
	for (int i = 0; i < nknown; i++)
		if (known[i] == node)
			return 1;
	return node >= FUZZ_PEER_MIN && node < FUZZ_PEER_MIN + 100;
}

/* ---- arguments ----------------------------------------------------------------------- */

enum kind { OWN, FOREIGN, GONE, KTHREAD, SELF };

static pid_t pid_max_val = 32768;

static pid_t pick_pid(enum kind *k)
{
	cur_victim = 0;
	for (;;) {
		switch (rnd(10)) {
		case 0: case 1: case 2: case 3:
			if (!nvictims)
				continue;
			*k = OWN;
			cur_victim = victims[rnd(nvictims)];
			return cur_victim;
		case 4: case 5:
			*k = FOREIGN;
			if (is_root) /* root controls every user process: a kernel thread instead */
				continue;
			if (nforeign && rnd(2))
				return foreign[rnd(nforeign)];
			return 1;
		case 6: case 7: {
			/* No pid above pid_max exists, nor a negative one. */
			static const pid_t fixed[] = { -1, -2, INT_MIN, INT_MAX };
			*k = GONE;
			if (rnd(2))
				return fixed[rnd(4)];
			return pid_max_val + 1 + (pid_t)rnd(1000000);
		}
		case 8:
			*k = KTHREAD;
			return 2; /* kthreadd */
		default:
			*k = SELF;
			return rnd(2) ? 0 : getpid();
		}
	}
}

static long pick_node(void)
{
	switch (rnd(10)) {
	case 0: case 1: case 2: case 3:
		return npeers ? peers[rnd(npeers)] : own_node;
	case 4:
		return own_node;
	case 5:
		return 0;
	case 6:
		return (long)rnd(65536);
	case 7:
		return 65535;
	case 8: {
		static const long bad[] = { -1, 65536, INT_MIN, INT_MAX, 1L << 20 };
		return bad[rnd(5)];
	}
	default:
		return (int)rng_next(&rng);
	}
}

static unsigned long pick_arg(void)
{
	switch (rnd(8)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return 2;
	case 3:
		return rnd(4096);
	case 4:
		return 1UL << rnd(64);
	case 5:
		return ULONG_MAX;
	default:
		return rng_next(&rng);
	}
}

static int pick_op(void)
{
	if (rnd(10) < 8)
		return 1 + (int)rnd(3);
	static const int bad[] = { 0, 4, -1, INT_MIN, INT_MAX, 1000 };
	return bad[rnd(6)];
}

static int in_u16(long node)
{
	return node >= 0 && node <= 65535;
}

/* ---- the calls ----------------------------------------------------------------------- */

static int sys(long nr, long a, long b, long c)
{
	return syscall(nr, a, b, c) < 0 ? errno : 0;
}

/* Errors no argument decides: the target is not there or not ours (checked first). */
static int target_error(enum kind k)
{
	switch (k) {
	case GONE:
		return ESRCH;
	case FOREIGN:
	case KTHREAD:
		return EPERM;
	default:
		return 0;
	}
}

static void fuzz_stretch(void)
{
	enum kind k;
	pid_t pid = pick_pid(&k);
	long node = pick_node();
	struct want w = { .n = 0 };
	char what[96];

	if (k == SELF && is_peer(node))
		node = -1; /* the fuzzer stays unstretched: its own results stay predictable */
	if (target_error(k))
		w = want1(target_error(k));
	else if (!in_u16(node))
		w = want1(EINVAL);
	else if (!is_peer(node)) {
		want_add(&w, ENOENT);
		if (is_down_peer(node))
			want_add(&w, ENOTCONN);
	} else {
		want_add(&w, 0);
		want_add(&w, EALREADY);
		want_add(&w, EBUSY); /* a marked victim stretching itself just now */
	}
	snprintf(what, sizeof(what), "elastic_stretch(%d, %ld)", pid, node);
	check(what, sys(__NR_elastic_stretch, pid, node, 0), &w);
	counts[C_STRETCH]++;
}

static void fuzz_ctl(void)
{
	enum kind k;
	pid_t pid = pick_pid(&k);
	int op = pick_op();
	unsigned long arg = pick_arg();
	struct want w = { .n = 0 };
	char what[96];

	if (k == SELF && op == ELASTIC_CTL_MARK)
		op = 0; /* never mark the fuzzer itself */
	if (target_error(k))
		w = want1(target_error(k));
	else if (op < 1 || op > 3)
		w = want1(EINVAL);
	else if (k == SELF)
		w = want1(ESRCH); /* neither stretched nor marked */
	else if (op == ELASTIC_CTL_BUDGET) {
		want_add(&w, 0);
		want_add(&w, ESRCH); /* not marked and not stretched (yet) */
	} else if (op == ELASTIC_CTL_MARK) {
		want_add(&w, 0);
		want_add(&w, EALREADY); /* stretched already */
		want_add(&w, ENOTCONN); /* no peer connected */
	} else {
		want_add(&w, ESRCH); /* not stretched */
		want_add(&w, arg > 1 ? EINVAL : 0);
	}
	snprintf(what, sizeof(what), "elastic_ctl(%d, %d, %#lx)", op, pid, arg);
	check(what, sys(__NR_elastic_ctl, op, pid, (long)arg), &w);
	counts[C_CTL]++;
}

static void fuzz_jump(void)
{
	enum kind k;
	pid_t pid = pick_pid(&k);
	long node = pick_node();
	struct want w = { .n = 0 };
	char what[96];

	if (target_error(k))
		w = want1(target_error(k));
	else if (!in_u16(node))
		w = want1(EINVAL);
	else if (k == SELF)
		w = want1(ESRCH);
	else {
		want_add(&w, ESRCH); /* not stretched (yet) */
		if (node == own_node)
			want_add(&w, 0); /* come home: done, or already there */
		else if (is_peer(node)) {
			want_add(&w, 0);
			want_add(&w, EBUSY);	/* it runs elsewhere now */
			want_add(&w, ENOENT);	/* not stretched to that node */
			want_add(&w, ENOTCONN); /* link down */
		} else
			want_add(&w, ENOENT);
	}
	snprintf(what, sizeof(what), "elastic_jump(%d, %ld)", pid, node);
	check(what, sys(__NR_elastic_jump, pid, node, 0), &w);
	counts[C_JUMP]++;
}

/* ---- /sys/kernel/elastic and /proc ------------------------------------------------------ */

static char files[MAX_FILES][64];
static int writable[MAX_FILES], readable[MAX_FILES];
static int nfiles;
static char saved_jump[1024], saved_prefetch[64];
/* The settings the fuzzer may change (valid values too), restored at its end. */
static const char *saved_names[] = { "confidentiality", "budget_away", "require_pair_keys",
				     "shell_ids", "max_shells_per_peer", "max_shells_per_uid" };
#define NSAVED ((int)(sizeof(saved_names) / sizeof(saved_names[0])))
static char saved[NSAVED][64];

static void list_files(void)
{
	DIR *d = opendir(SYSFS);
	struct dirent *e;

	while (d && (e = readdir(d)) && nfiles < MAX_FILES) {
		char path[sizeof(SYSFS) + sizeof(e->d_name) + 1];
		size_t len = strlen(e->d_name);
		struct stat st;

		if (e->d_name[0] == '.' || len >= sizeof(files[0]))
			continue;
		snprintf(path, sizeof(path), SYSFS "/%s", e->d_name);
		if (stat(path, &st) || !S_ISREG(st.st_mode))
			continue;
		memcpy(files[nfiles], e->d_name, len + 1);
		writable[nfiles] = (st.st_mode & S_IWUSR) != 0;
		readable[nfiles] = (st.st_mode & S_IRUSR) != 0;
		nfiles++;
	}
	if (d)
		closedir(d);
}

/* Random bytes after a 'z', which no setting starts with: every store must say EINVAL. */
static size_t garbage(char *buf, size_t max)
{
	size_t len = 1 + rnd(rnd(8) ? 64 : max - 1);

	buf[0] = 'z';
	for (size_t i = 1; i < len; i++)
		buf[i] = rnd(3) ? (char)(32 + rnd(95)) : (char)rnd(256);
	return len;
}

static const char *jump_keys[] = { "enabled", "threshold", "max_threshold", "min_rate_us",
				   "slack_us", "min_stay_us", "bogus" };

/* A well-formed (or nearly so) setting for `name`; `w` gets what it may return. */
static size_t template(const char *name, char *buf, size_t max, struct want *w)
{
	int n = 0;

	if (!strcmp(name, "jump")) {
		int keys = 1 + (int)rnd(3);
		for (int i = 0; i < keys; i++) {
			const char *key = jump_keys[rnd(7)];
			unsigned long v = !strcmp(key, "enabled") ? rnd(3) : pick_arg();
			n += snprintf(buf + n, max - n, "%s%s=%lu", i ? " " : "", key, v);
		}
		want_add(w, 0);
		want_add(w, EINVAL);
	} else if (!strcmp(name, "prefetch")) {
		n = snprintf(buf, max, "%lu\n", rnd(2) ? rnd(64) : pick_arg());
		want_add(w, 0);
		want_add(w, EINVAL);
	} else if (!strcmp(name, "node_id")) {
		long id = rnd(2) ? own_node : pick_node();
		n = snprintf(buf, max, "%ld\n", id);
		want_add(w, id == own_node ? 0 : EBUSY); /* the id is fixed while listening */
		want_add(w, EINVAL);
	} else if (!strcmp(name, "listen")) {
		n = snprintf(buf, max, "10.0.2.%lu:%lu\n", rnd(256), rnd(70000));
		want_add(w, EBUSY); /* listening already */
		want_add(w, EINVAL);
	} else if (!strcmp(name, "peers")) {
		long id = FUZZ_PEER_MIN + (long)rnd(100);
		switch (rnd(5)) {
		case 0:
		case 1:
			n = snprintf(buf, max, "add %ld 192.0.2.%lu:%lu\n", id, rnd(256), 1 + rnd(65535));
			want_add(w, 0);
			break;
		case 2:
			n = snprintf(buf, max, "del %ld\n", id);
			want_add(w, 0);
			want_add(w, ENOENT);
			break;
		case 3:
			if (rnd(2)) {
				/* A pair key for a fuzz peer (none is ever connected): set or cleared. */
				char hex[2 * 32 + 1];
				for (int i = 0; i < 64; i++)
					hex[i] = "0123456789abcdef"[rnd(16)];
				hex[rnd(4) ? 64 : 1 + rnd(63)] = 0;
				n = snprintf(buf, max, "key %ld %s\n", id, rnd(4) ? hex : "none");
				want_add(w, 0);
				want_add(w, ENOENT); /* not added (yet) */
				want_add(w, EINVAL); /* too short, or odd */
				break;
			}
			/* fall through */
		default:
			n = snprintf(buf, max, "add %d 192.0.2.1:7000\n", own_node);
			want_add(w, EINVAL); /* itself */
		}
	} else if (!strcmp(name, "confidentiality") || !strcmp(name, "budget_away")) {
		/* Either value is valid (a handshake's offer, the budget's reach); 2 is not. */
		unsigned long v = rnd(3);
		n = snprintf(buf, max, "%lu\n", v);
		want_add(w, v < 2 ? 0 : EINVAL);
	} else if (!strcmp(name, "require_pair_keys")) {
		/* 1 would close every link under the cluster secret (the victims' too): 0 or bad. */
		unsigned long v = rnd(2) ? 0 : 2 + rnd(8);
		n = snprintf(buf, max, "%lu\n", v);
		want_add(w, v == 0 ? 0 : EINVAL);
	} else if (!strcmp(name, "shell_ids")) {
		static const char *ids[] = { "home", "caller", "nobody", "root", "" };
		const char *v = ids[rnd(5)];
		n = snprintf(buf, max, "%s\n", v);
		want_add(w, !strcmp(v, "home") || !strcmp(v, "caller") ? 0 : EINVAL);
	} else if (!strcmp(name, "max_shells_per_peer") || !strcmp(name, "max_shells_per_uid")) {
		/* Room for the victims' shells (1..65536 is valid), or 0 or too many (refused). */
		unsigned long v = rnd(2) ? 16 + rnd(1024) : rnd(2) ? 0 : 65537 + rnd(1UL << 40);
		n = snprintf(buf, max, "%lu\n", v);
		want_add(w, v && v <= 65536 ? 0 : EINVAL);
	} else {
		/* No template (the secret, read-only files): garbage, which every store refuses. */
		want_add(w, EINVAL);
		return garbage(buf, max);
	}
	return (size_t)n < max ? (size_t)n : max - 1;
}

static int write_bytes(const char *name, const char *buf, size_t len)
{
	char path[128];
	int fd, e = 0;

	snprintf(path, sizeof(path), SYSFS "/%s", name);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return errno;
	if (write(fd, buf, len) < 0)
		e = errno;
	close(fd);
	return e;
}

static void fuzz_sysfs_write(void)
{
	static char buf[6000];
	int f = (int)rnd(nfiles);
	const char *name = files[f];
	struct want w = { .n = 0 };
	size_t len;
	char what[128];

	if (!nfiles)
		return;
	if (!is_root) {
		/* Every file is root's: no other user may even open one for writing. */
		len = garbage(buf, 64);
		w = want1(EACCES);
	} else if (!writable[f]) {
		len = garbage(buf, 64);
		w = want1(EACCES); /* no store: sysfs refuses the open, also to root */
	} else if (!strcmp(name, "secret") || rnd(2)) {
		len = garbage(buf, rnd(8) ? 200 : sizeof(buf));
		want_add(&w, EINVAL); /* past a page, sysfs passes on the first page */
	} else {
		len = template(name, buf, 200, &w);
	}
	snprintf(what, sizeof(what), "write %zu bytes to %s (%.40s)", len, name,
		 buf[0] == 'z' ? "random" : buf);
	for (char *c = what; *c; c++)
		if (*c == '\n')
			*c = ' ';
	int r = write_bytes(name, buf, len);
	check(what, r, &w);
	counts[C_SYSFS_W]++;
	/* A setting taken: the store's valid path ran, not only its refusals. */
	counts[C_SYSFS_OK] += r == 0;
}

static void fuzz_sysfs_read(void)
{
	static char buf[65536];
	int f = (int)rnd(nfiles);
	char path[128], what[160];
	struct want w = { .n = 0 };
	int r;

	if (!nfiles)
		return;
	snprintf(path, sizeof(path), SYSFS "/%s", files[f]);
	if (!strcmp(files[f], "secret"))
		w = want1(EACCES); /* never readable, by anyone */
	else if (!is_root && !strcmp(files[f], "procs"))
		w = want1(EACCES);
	else if (!is_root && !strcmp(files[f], "jumplog"))
		w = want1(EACCES);
	else
		w = want1(0);
	r = read_file(path, buf, sizeof(buf));
	snprintf(what, sizeof(what), "read %s", path);
	check(what, r < 0 ? -r : 0, &w);
	counts[C_SYSFS_R]++;
}

static void fuzz_proc_read(void)
{
	static char buf[4096];
	enum kind k;
	pid_t pid = pick_pid(&k);
	char path[64], what[96];
	struct want w = { .n = 0 };
	int r;

	if (k == GONE || pid == 0)
		pid = pid_max_val + 1 + (pid_t)rnd(1000); /* -1 would be a different file name */
	snprintf(path, sizeof(path), "/proc/%d/elastic", pid);
	if (k == GONE || pid == 0 || pid > pid_max_val)
		w = want1(ENOENT);
	else if (k == FOREIGN && !is_root)
		w = want1(EACCES);
	else if (k == KTHREAD && !is_root)
		w = want1(EACCES);
	else {
		want_add(&w, 0);
		if (k == OWN)
			want_add(&w, ENOENT); /* a victim that failed and exited early */
	}
	r = read_file(path, buf, sizeof(buf));
	snprintf(what, sizeof(what), "read %s", path);
	check(what, r < 0 ? -r : 0, &w);
	counts[C_PROC_R]++;
}

/* ---- main ---------------------------------------------------------------------------- */

static void cleanup_root(void)
{
	char buf[32];

	for (int id = FUZZ_PEER_MIN; id < FUZZ_PEER_MIN + 100; id++) {
		int n = snprintf(buf, sizeof(buf), "del %d\n", id);
		write_bytes("peers", buf, (size_t)n);
	}
	/* The tunables as they were: one key=value per line, written back in one go. */
	if (saved_jump[0] && write_bytes("jump", saved_jump, strlen(saved_jump)))
		printf("sysfuzz: could not restore the jump tunables\n");
	if (saved_prefetch[0] && write_bytes("prefetch", saved_prefetch, strlen(saved_prefetch)))
		printf("sysfuzz: could not restore prefetch\n");
	for (int i = 0; i < NSAVED; i++)
		if (saved[i][0] && write_bytes(saved_names[i], saved[i], strlen(saved[i])))
			printf("sysfuzz: could not restore %s\n", saved_names[i]);
}

int main(int argc, char **argv)
{
	long calls = 10000, mib = 4;
	uint64_t seed = 1;
	int nv = 3, opt, ok = 0, killed = 0, wrong = 0, nv_start;
	char buf[64];
	double t0;

	while ((opt = getopt(argc, argv, "n:s:v:m:f:")) != -1) {
		switch (opt) {
		case 'n':
			calls = atol(optarg);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'v':
			nv = atoi(optarg);
			break;
		case 'm':
			mib = atol(optarg);
			break;
		case 'f':
			for (char *p = optarg; *p && nforeign < MAX_FOREIGN;) {
				foreign[nforeign++] = atoi(p);
				p = strchr(p, ',');
				if (!p)
					break;
				p++;
			}
			break;
		default:
			fprintf(stderr, "usage: sysfuzz [-n CALLS] [-s SEED] [-v VICTIMS] [-m MIB] [-f PID,...]\n");
			return 2;
		}
	}
	if (nv > MAX_VICTIMS)
		nv = MAX_VICTIMS;
	rng = seed;
	is_root = geteuid() == 0;
	if (read_file("/proc/sys/kernel/pid_max", buf, sizeof(buf)) > 0)
		pid_max_val = atoi(buf);
	discover();
	list_files();
	if (is_root) {
		read_file(SYSFS "/jump", saved_jump, sizeof(saved_jump));
		read_file(SYSFS "/prefetch", saved_prefetch, sizeof(saved_prefetch));
		for (int i = 0; i < NSAVED; i++) {
			char path[128];

			snprintf(path, sizeof(path), SYSFS "/%s", saved_names[i]);
			if (read_file(path, saved[i], sizeof(saved[i])) < 0)
				saved[i][0] = 0;
		}
	}
	for (int i = 0; i < nv; i++) {
		pid_t p = fork();
		if (p == 0)
			_exit(victim(mib));
		if (p > 0)
			victims[nvictims++] = p;
	}
	nv_start = nvictims;
	printf("sysfuzz: uid %d, node %d, %d peers connected (%d not), %d sysfs files, %d victims of "
	       "%ld MiB, seed %llu\n",
	       (int)geteuid(), own_node, npeers, nknown, nfiles, nvictims, mib,
	       (unsigned long long)seed);
	fflush(stdout);
	usleep(200000); /* let the victims fill their memory */
	t0 = now_s();
	for (long i = 0; i < calls; i++) {
		cur_victim = 0;
		switch (rnd(20)) {
		case 0: case 1: case 2:
			fuzz_stretch();
			break;
		case 3: case 4: case 5: case 6: case 7: case 8: case 9:
			fuzz_ctl();
			break;
		case 10: case 11: case 12: case 13:
			fuzz_jump();
			break;
		case 14: case 15: case 16:
			fuzz_sysfs_write();
			break;
		case 17: case 18:
			fuzz_sysfs_read();
			break;
		default:
			fuzz_proc_read();
		}
	}
	if (is_root)
		cleanup_root();
	for (int i = 0; i < nvictims; i++)
		kill(victims[i], SIGTERM);
	for (int i = 0; i < nvictims; i++) {
		int st = 0;

		if (waitpid(victims[i], &st, 0) != victims[i]) {
			wrong++;
			continue;
		}
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			ok++;
			continue;
		}
		lost[nlost] = victims[i];
		lost_status[nlost++] = st;
		printf("sysfuzz: victim %d ended with status %#x\n", victims[i], st);
	}
	/* A victim that ended with an exit status (1: its memory read back wrong) is wrong; one
	 * the kernel ended by a signal is "killed" (the test wants a log line for each). */
	for (int i = 0; i < nlost; i++) {
		if (WIFSIGNALED(lost_status[i]))
			killed++;
		else
			wrong++;
	}
	printf("sysfuzz calls=%ld stretch=%ld ctl=%ld jump=%ld sysfs_writes=%ld sysfs_accepted=%ld "
	       "sysfs_reads=%ld "
	       "proc_reads=%ld succeeded=%ld failed=%ld unexpected=%ld on_killed=%ld victims_ok=%d/%d "
	       "victims_killed=%d victims_wrong=%d seconds=%.1f\n",
	       calls, counts[C_STRETCH], counts[C_CTL], counts[C_JUMP], counts[C_SYSFS_W],
	       counts[C_SYSFS_OK], counts[C_SYSFS_R], counts[C_PROC_R], counts[C_OK], counts[C_FAILED], unexpected,
	       on_lost, ok, nv_start, killed, wrong, now_s() - t0);
	return unexpected == 0 && wrong == 0 ? 0 : 1;
}
