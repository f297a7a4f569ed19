/* A BPF_PROG_TEST_RUN that would run for minutes (repeat 2^32-1), interrupted.
 * usage: sv_testrun_intr plain|live alarm|wait
 *   alarm: SIGALRM (handled, no SA_RESTART) after 300 ms; prints the call's result.
 *   wait:  prints "running" and waits in the call for the test to SIGKILL it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <bpf/bpf.h>

static void on_alarm(int sig) { (void)sig; }

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	int live = !strcmp(argv[1], "live");
	struct bpf_insn insns[] = {
		{ .code = 0xb7, .dst_reg = 0, .imm = live ? 1 /* XDP_DROP */ : 2 },
		{ .code = 0x95 },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, po, .expected_attach_type = BPF_XDP);
	int prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "intr", "GPL", insns, 2, &po);
	if (prog < 0) {
		perror("prog load");
		return 2;
	}
	unsigned char pkt[64] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x88, 0xb5 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = sizeof(pkt),
		    .repeat = 0xffffffffu);
	if (live)
		o.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
	if (!strcmp(argv[2], "alarm")) {
		struct sigaction sa = { .sa_handler = on_alarm };
		sigaction(SIGALRM, &sa, NULL);
		struct itimerval t = { .it_value = { .tv_usec = 300000 } };
		setitimer(ITIMER_REAL, &t, NULL);
	} else {
		printf("running %d\n", (int)getpid());
		fflush(stdout);
	}
	int r = bpf_prog_test_run_opts(prog, &o);
	printf("test_run %s\n", r == 0 ? "ok" : errno == EINTR ? "EINTR" : strerror(errno));
	return 0;
}
