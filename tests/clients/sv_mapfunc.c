/* Which maps each helper takes, as the kernel's check_map_func_compatibility: every
 * (map type, helper) pair below is a one-call program; prints "<map>_<helper> ran <r0>"
 * when it loads (and test-runs), "<map>_<helper> EINVAL" when refused. */
#include "sv_progcase.h"

static void ldmap(int reg, int fd)
{
	prog[n++] = I(0x18, reg, 1, 0, fd);
	prog[n++] = I(0, 0, 0, 0, 0);
}

/* A call of `helper` with the map in register `mreg` and harmless other arguments:
 * a zeroed 8-byte stack slot for pointers (r2 = fp-8), small numbers otherwise. */
static void call_with(int fd, int helper, int mreg)
{
	n = 0;
	prog[n++] = I(0x7a, 10, 0, -8, 0);   /* *(u64 *)(fp-8) = 0 */
	prog[n++] = I(0x7a, 10, 0, -16, 0);  /* *(u64 *)(fp-16) = 0 */
	if (mreg == 2)
		prog[n++] = MOV(6, 1);        /* keep ctx */
	ldmap(mreg, fd);
	switch (helper) {
	case 1: case 3: case 87: case 88: case 89:      /* lookup, delete, push, pop, peek */
		prog[n++] = MOV(2, 10);
		prog[n++] = ADDI(2, -8);
		if (helper == 87)
			prog[n++] = MOVI(3, 0);
		break;
	case 2:                                          /* update */
		prog[n++] = MOV(2, 10);
		prog[n++] = ADDI(2, -8);
		prog[n++] = MOV(3, 10);
		prog[n++] = ADDI(3, -16);
		prog[n++] = MOVI(4, 0);
		break;
	case 12:                                         /* tail_call(ctx, map, 0) */
		prog[n++] = MOV(1, 6);
		prog[n++] = MOVI(3, 0);
		break;
	case 25:                                         /* perf_event_output(ctx, map, 0, fp-8, 8) */
		prog[n++] = MOV(1, 6);
		prog[n++] = MOVI(3, 0);
		prog[n++] = MOV(4, 10);
		prog[n++] = ADDI(4, -8);
		prog[n++] = MOVI(5, 8);
		break;
	case 51:                                         /* redirect_map(map, 0, XDP_PASS) */
		prog[n++] = MOVI(2, 0);
		prog[n++] = MOVI(3, 2);
		break;
	case 130:                                        /* ringbuf_output(map, fp-8, 8, 0) */
		prog[n++] = MOV(2, 10);
		prog[n++] = ADDI(2, -8);
		prog[n++] = MOVI(3, 8);
		prog[n++] = MOVI(4, 0);
		break;
	case 134:                                        /* ringbuf_query(map, 0) */
		prog[n++] = MOVI(2, 0);
		break;
	}
	prog[n++] = CALL(helper);
	prog[n++] = MOVI(0, 2);
	prog[n++] = EXIT;
}

int main(void)
{
	struct {
		const char *name;
		int fd;
	} maps[] = {
		{ "array", bpf_map_create(BPF_MAP_TYPE_ARRAY, "a", 4, 8, 4, NULL) },
		{ "hash", bpf_map_create(BPF_MAP_TYPE_HASH, "h", 4, 8, 4, NULL) },
		{ "prog_array", bpf_map_create(BPF_MAP_TYPE_PROG_ARRAY, "pa", 4, 4, 4, NULL) },
		{ "perf_event_array", bpf_map_create(BPF_MAP_TYPE_PERF_EVENT_ARRAY, "pe", 4, 4, 4, NULL) },
		{ "ringbuf", bpf_map_create(BPF_MAP_TYPE_RINGBUF, "rb", 0, 0, 4096, NULL) },
		{ "devmap", bpf_map_create(BPF_MAP_TYPE_DEVMAP, "dm", 4, 4, 4, NULL) },
		{ "queue", bpf_map_create(BPF_MAP_TYPE_QUEUE, "q", 0, 8, 4, NULL) },
		{ "lpm_trie", NULL == NULL ? -1 : -1 },
	};
	LIBBPF_OPTS(bpf_map_create_opts, lpm, .map_flags = BPF_F_NO_PREALLOC);
	maps[7].name = "lpm_trie";
	maps[7].fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "l", 8, 8, 4, &lpm);
	static const struct {
		const char *name;
		int id, mreg;
	} helpers[] = {
		{ "lookup", 1, 1 }, { "update", 2, 1 }, { "delete", 3, 1 },
		{ "tail_call", 12, 2 }, { "perf_event_output", 25, 2 },
		{ "redirect_map", 51, 1 }, { "push", 87, 1 }, { "pop", 88, 1 }, { "peek", 89, 1 },
		{ "ringbuf_output", 130, 1 }, { "ringbuf_query", 134, 1 },
	};
	for (unsigned m = 0; m < sizeof(maps) / sizeof(maps[0]); m++) {
		if (maps[m].fd < 0) {
			printf("%s: map_create failed\n", maps[m].name);
			continue;
		}
		for (unsigned h = 0; h < sizeof(helpers) / sizeof(helpers[0]); h++) {
			char name[64];
			snprintf(name, sizeof(name), "%s_%s", maps[m].name, helpers[h].name);
			call_with(maps[m].fd, helpers[h].id, helpers[h].mreg);
			run(name);
		}
	}
	return 0;
}
