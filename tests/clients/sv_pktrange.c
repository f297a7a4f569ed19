/* Direct packet access and the bounds checks that allow it: reads and writes through
 * `data + c` are allowed inside what a comparison with `data_end` showed to exist, in
 * each form clang emits (ptr OP end and end OP ptr, strict and not, on the jump or the
 * fall-through), and refused (EACCES) elsewhere; `data_end` is no memory and takes no
 * arithmetic; bpf_xdp_adjust_head turns the packet pointers held into numbers.
 * Prints "<case> <errno name>" for a refused load, "<case> ran <r0>" otherwise. */
#include "sv_progcase.h"

#define LDXB(d, s, o) I(0x71, d, s, o, 0)
#define LDXH(d, s, o) I(0x69, d, s, o, 0)
#define LDXW(d, s, o) I(0x61, d, s, o, 0)
#define STB(d, o, v) I(0x72, d, 0, o, v)
#define JGT 0x2d
#define JGE 0x3d
#define JLT 0xad
#define JLE 0xbd

/* r6 = ctx, r2 = data, r3 = data_end. */
static void start(void)
{
	n = 0;
	prog[n++] = MOV(6, 1);
	prog[n++] = LDXW(2, 1, 0);
	prog[n++] = LDXW(3, 1, 4);
}

/* r4 = data + c; `if r4 OP r3` (or `if r3 OP r4` when end_first) jumps over three
 * instructions. The arm `read_on_taken` picks does `r5 = *(u8 *)(r2 + off)` and returns
 * 2, the other returns 1. */
static void cmp_case(const char *name, int op, int end_first, int c, int read_on_taken, int off)
{
	start();
	prog[n++] = MOV(4, 2);
	prog[n++] = ADDI(4, c);
	prog[n++] = end_first ? I(op, 3, 4, 3, 0) : I(op, 4, 3, 3, 0);
	for (int arm = 0; arm < 2; arm++) {
		int reads = arm == read_on_taken;
		prog[n++] = reads ? LDXB(5, 2, off) : MOVI(5, 0);
		prog[n++] = MOVI(0, reads ? 2 : 1);
		prog[n++] = EXIT;
	}
	run(name);
}

/* `if (data + 14 > data_end) return 1;` then the caller's body. */
static void checked14(void)
{
	start();
	prog[n++] = MOV(4, 2);
	prog[n++] = ADDI(4, 14);
	prog[n++] = I(JGT, 4, 3, 1, 0);
	prog[n++] = I(0x05, 0, 0, 2, 0); /* goto body */
	prog[n++] = MOVI(0, 1);
	prog[n++] = EXIT;
}

int main(void)
{
	static const struct { const char *name; int op; int end_first; int on_taken; } forms[] = {
		/* which arm knows the pointer is inside */
		{ "ptr_gt_end", JGT, 0, 0 }, { "ptr_ge_end", JGE, 0, 0 },
		{ "ptr_lt_end", JLT, 0, 1 }, { "ptr_le_end", JLE, 0, 1 },
		{ "end_gt_ptr", JGT, 1, 1 }, { "end_ge_ptr", JGE, 1, 1 },
		{ "end_lt_ptr", JLT, 1, 0 }, { "end_le_ptr", JLE, 1, 0 },
	};
	char name[64];
	for (unsigned i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		/* The last byte a strict and a non-strict test allow, one past it, and the
		 * other arm. */
		for (int off = 12; off <= 14; off++) {
			snprintf(name, sizeof(name), "%s_read%d", forms[i].name, off);
			cmp_case(name, forms[i].op, forms[i].end_first, 14, forms[i].on_taken, off);
		}
		snprintf(name, sizeof(name), "%s_other_arm", forms[i].name);
		cmp_case(name, forms[i].op, forms[i].end_first, 14, !forms[i].on_taken, 0);
	}
	/* data + 0 compared: nothing shown. */
	cmp_case("zero_offset_le", JLE, 0, 0, 1, 0);
	cmp_case("zero_offset_lt", JLT, 0, 0, 1, 0);

	start(); prog[n++] = LDXB(0, 2, 0); prog[n++] = EXIT;
	run("unchecked_read");
	start(); prog[n++] = STB(2, 0, 1); prog[n++] = MOVI(0, 2); prog[n++] = EXIT;
	run("unchecked_write");
	checked14(); prog[n++] = LDXB(0, 2, 0); prog[n++] = EXIT;
	run("checked_read");
	checked14(); prog[n++] = STB(2, 13, 1); prog[n++] = MOVI(0, 2); prog[n++] = EXIT;
	run("checked_write");
	checked14(); prog[n++] = STB(2, 14, 1); prog[n++] = MOVI(0, 2); prog[n++] = EXIT;
	run("write_past_check");
	checked14(); prog[n++] = LDXB(0, 2, -1); prog[n++] = EXIT;
	run("negative_offset");
	checked14(); prog[n++] = LDXH(0, 2, 12); prog[n++] = EXIT;
	run("half_at_end");
	checked14(); prog[n++] = LDXW(0, 2, 12); prog[n++] = EXIT;
	run("word_straddles_end");
	/* Through the compared pointer itself, back to data. */
	checked14(); prog[n++] = LDXB(0, 4, -14); prog[n++] = EXIT;
	run("via_compared_pointer");
	checked14(); prog[n++] = LDXB(0, 4, 0); prog[n++] = EXIT;
	run("via_compared_pointer_past");
	/* A copy made before the test, and one spilled to the stack and filled back. */
	start(); prog[n++] = MOV(7, 2); prog[n++] = I(0x7b, 10, 2, -8, 0);
	prog[n++] = MOV(4, 2); prog[n++] = ADDI(4, 14); prog[n++] = I(JGT, 4, 3, 4, 0);
	prog[n++] = LDXB(0, 7, 13); prog[n++] = I(0x79, 8, 10, -8, 0); prog[n++] = LDXB(0, 8, 13);
	prog[n++] = EXIT; prog[n++] = MOVI(0, 1); prog[n++] = EXIT;
	run("copies_share_the_check");
	/* data_end is no memory and takes no arithmetic. */
	start(); prog[n++] = LDXB(0, 3, 0); prog[n++] = EXIT;
	run("pkt_end_read");
	start(); prog[n++] = ADDI(3, 1); prog[n++] = MOVI(0, 2); prog[n++] = EXIT;
	run("pkt_end_arith");
	/* After bpf_xdp_adjust_head the old pointers are numbers; reloaded and tested
	 * again, the packet is readable. */
	checked14(); prog[n++] = MOV(1, 6); prog[n++] = MOVI(2, 0); prog[n++] = CALL(44);
	prog[n++] = LDXB(0, 4, -14); prog[n++] = EXIT;
	run("stale_after_adjust_head");
	checked14(); prog[n++] = MOV(1, 6); prog[n++] = MOVI(2, 0); prog[n++] = CALL(44);
	prog[n++] = LDXW(2, 6, 0); prog[n++] = LDXW(3, 6, 4); prog[n++] = MOV(4, 2);
	prog[n++] = ADDI(4, 1); prog[n++] = I(JGT, 4, 3, 2, 0); prog[n++] = LDXB(0, 2, 0);
	prog[n++] = EXIT; prog[n++] = MOVI(0, 1); prog[n++] = EXIT;
	run("rechecked_after_adjust_head");
	return 0;
}
