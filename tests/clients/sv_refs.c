/* Pointer-or-NULL values and ring buffer references, as the kernel's verifier checks
 * them: a map lookup or a ring buffer reservation must be tested against 0 before use,
 * a record must be submitted or discarded before exit (or a tail call), and is not
 * the program's after that. Prints "<case> <errno name>" for a refused load, "<case>
 * ran <r0>" otherwise. */
#include "sv_progcase.h"

#define ST64(d, o, i) I(0x7a, d, 0, o, i)
#define LDX32(d, s, o) I(0x61, d, s, o, 0)
#define JNE0(r, o) I(0x55, r, 0, o, 0)
#define JEQ0(r, o) I(0x15, r, 0, o, 0)

static int rb, arr, pa;

static void ldmap(int reg, int fd)
{
	prog[n++] = I(0x18, reg, 1, 0, fd);
	prog[n++] = I(0, 0, 0, 0, 0);
}
/* r0 = bpf_ringbuf_reserve(rb, 8, 0) */
static void reserve(void)
{
	ldmap(1, rb);
	prog[n++] = MOVI(2, 8);
	prog[n++] = MOVI(3, 0);
	prog[n++] = CALL(131);
}
/* r0 = bpf_map_lookup_elem(map, fp-4) after the key stores `key` */
static void lookup_in(int map, const struct bpf_insn *key, int nk)
{
	for (int i = 0; i < nk; i++)
		prog[n++] = key[i];
	prog[n++] = MOV(2, 10);
	prog[n++] = ADDI(2, -4);
	ldmap(1, map);
	prog[n++] = CALL(1);
}
static const struct bpf_insn key0[] = { I(0x62, 10, 0, -4, 0) };
static void lookup(void) { lookup_in(arr, key0, 1); }
static void commit(int reg, int helper)
{
	prog[n++] = MOV(1, reg);
	prog[n++] = MOVI(2, 0);
	prog[n++] = CALL(helper);
}
static void ret(int v)
{
	prog[n++] = MOVI(0, v);
	prog[n++] = EXIT;
}


int main(void)
{
	int arr4 = bpf_map_create(BPF_MAP_TYPE_ARRAY, "arr4", 4, 8, 4, NULL);
	int pcpu = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "pcpu", 4, 8, 4, NULL);
	int hash = bpf_map_create(BPF_MAP_TYPE_HASH, "hash", 4, 8, 4, NULL);
	rb = bpf_map_create(BPF_MAP_TYPE_RINGBUF, "rb", 0, 0, 4096, NULL);
	arr = bpf_map_create(BPF_MAP_TYPE_ARRAY, "arr", 4, 8, 1, NULL);
	pa = bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, "pa", 4, 4, 1, NULL);
	if (rb < 0 || arr < 0 || pa < 0) {
		perror("maps");
		return 2;
	}
	n = 0; reserve(); prog[n++] = JNE0(0, 2); ret(1); prog[n++] = MOV(6, 0);
	prog[n++] = ST64(6, 0, 7); commit(6, 132); ret(2);
	run("submit");
	n = 0; reserve(); prog[n++] = JEQ0(0, 4); prog[n++] = MOV(6, 0); commit(6, 133); ret(2);
	run("discard_jeq");
	n = 0; reserve(); prog[n++] = ST64(0, 0, 7); ret(2);
	run("write_unchecked");
	n = 0; reserve(); commit(0, 132); ret(2);
	run("submit_unchecked");
	n = 0; reserve(); prog[n++] = JNE0(0, 2); ret(1); ret(2);
	run("leak");
	n = 0; reserve(); prog[n++] = JNE0(0, 2); ret(1); prog[n++] = MOV(6, 0);
	commit(6, 132); prog[n++] = ST64(6, 0, 7); ret(2);
	run("write_after_submit");
	n = 0; reserve(); prog[n++] = JNE0(0, 2); ret(1); prog[n++] = MOV(6, 0);
	commit(6, 133); prog[n++] = LDX32(0, 6, 0); prog[n++] = EXIT;
	run("read_after_discard");
	n = 0; reserve(); prog[n++] = JNE0(0, 2); ret(1); prog[n++] = MOV(6, 0);
	commit(6, 132); commit(6, 132); ret(2);
	run("submit_twice");
	n = 0; prog[n++] = MOV(7, 1); reserve(); prog[n++] = JNE0(0, 2); ret(1); prog[n++] = MOV(6, 0);
	prog[n++] = MOV(1, 7); ldmap(2, pa); prog[n++] = MOVI(3, 0); prog[n++] = CALL(12);
	commit(6, 133); ret(2);
	run("tail_call_holding");
	/* Copies are refined together: the test is on r0, the use through r6. */
	n = 0; lookup(); prog[n++] = MOV(6, 0); prog[n++] = JNE0(0, 2); ret(1);
	prog[n++] = LDX32(0, 6, 0); prog[n++] = EXIT;
	run("lookup_copy_checked");
	n = 0; lookup(); prog[n++] = LDX32(0, 0, 0); prog[n++] = EXIT;
	run("lookup_unchecked");
	n = 0; lookup(); prog[n++] = ADDI(0, 4); prog[n++] = JNE0(0, 2); ret(1);
	prog[n++] = LDX32(0, 0, 0); prog[n++] = EXIT;
	run("lookup_arith_unchecked");
	/* An array's element 0 exists: the kernel lets its lookup with a key of zero
	 * bytes go unchecked; not with another key, nor for a hash. */
	struct { const char *name; int map; struct bpf_insn key[4]; int nk; } el[] = {
		{ "elide_pcpu_st0", 0, { I(0x62, 10, 0, -4, 0) }, 1 },
		{ "elide_arr4_st3", 1, { I(0x62, 10, 0, -4, 3) }, 1 },
		{ "elide_arr4_stx0", 1, { MOVI(3, 0), I(0x63, 10, 3, -4, 0) }, 2 },
		{ "elide_arr4_stx3", 1, { MOVI(3, 3), I(0x63, 10, 3, -4, 0) }, 2 },
		{ "elide_arr4_sth0", 1, { I(0x6a, 10, 0, -4, 0), I(0x6a, 10, 0, -2, 0) }, 2 },
		{ "elide_arr4_half", 1, { I(0x6a, 10, 0, -4, 0) }, 1 },
		{ "elide_arr4_then3", 1, { I(0x62, 10, 0, -4, 0), I(0x72, 10, 0, -4, 3) }, 2 },
		{ "elide_hash_st0", 2, { I(0x62, 10, 0, -4, 0) }, 1 },
		{ "elide_arr4_ctx", 1, { I(0x61, 3, 1, 16, 0), I(0x63, 10, 3, -4, 0) }, 2 },
	};
	int el_maps[] = { pcpu, arr4, hash };
	for (unsigned i = 0; i < sizeof(el) / sizeof(el[0]); i++) {
		n = 0; lookup_in(el_maps[el[i].map], el[i].key, el[i].nk);
		prog[n++] = LDX32(0, 0, 0); prog[n++] = EXIT;
		run(el[i].name);
	}
	/* The null branch: r0 is 0 there, a number. */
	n = 0; lookup(); prog[n++] = JNE0(0, 2); prog[n++] = LDX32(0, 0, 0); prog[n++] = EXIT;
	ret(2);
	run("lookup_null_branch");
	return 0;
}
