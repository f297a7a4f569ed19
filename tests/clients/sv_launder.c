/* Pointers laundered through a map value: a program stores the address of its context,
 * stack, packet, map or map value into a map, reads it back and uses it. The kernel
 * types what it reads from a map as a number and refuses the use at load. Prints
 * "<case> <errno name>" for a refused load, "<case> ran <r0>" otherwise. */
#include "sv_progcase.h"

#define STX64(d, s, o) I(0x7b, d, s, o, 0)
#define LDX64(d, s, o) I(0x79, d, s, o, 0)
#define LDX32(d, s, o) I(0x61, d, s, o, 0)

static int map;

/* r6 = ctx, r7 = &value[0] of the 16-byte value at key 0 (or return 2). */
static void start(void)
{
	n = 0;
	prog[n++] = MOV(6, 1);
	prog[n++] = I(0x62, 10, 0, -4, 0);
	prog[n++] = MOV(2, 10);
	prog[n++] = ADDI(2, -4);
	prog[n++] = I(0x18, 1, 1, 0, map);
	prog[n++] = I(0, 0, 0, 0, 0);
	prog[n++] = CALL(1);
	prog[n++] = I(0x55, 0, 0, 2, 0);
	prog[n++] = MOVI(0, 2);
	prog[n++] = EXIT;
	prog[n++] = MOV(7, 0);
}

/* value[8] = r<reg>; r1 = value[8]; then the caller's use of r1. */
static void launder(int reg)
{
	prog[n++] = STX64(7, reg, 8);
	prog[n++] = LDX64(1, 7, 8);
}


int main(void)
{
	map = bpf_map_create(BPF_MAP_TYPE_ARRAY, "launder", 4, 16, 1, NULL);
	if (map < 0) {
		perror("map");
		return 2;
	}
	/* A number round trip loads and runs: the control. */
	start(); prog[n++] = MOVI(3, 7); launder(3); prog[n++] = MOV(0, 1); prog[n++] = EXIT;
	run("number");
	start(); launder(7); prog[n++] = LDX32(0, 1, 0); prog[n++] = EXIT;
	run("map_value");
	start(); launder(6); prog[n++] = LDX32(0, 1, 0); prog[n++] = EXIT;
	run("context");
	start(); prog[n++] = MOV(3, 10); prog[n++] = ADDI(3, -16); prog[n++] = STX64(10, 6, -16);
	launder(3); prog[n++] = LDX64(0, 1, 0); prog[n++] = EXIT;
	run("stack");
	start(); prog[n++] = LDX32(3, 6, 0); launder(3); prog[n++] = I(0x71, 0, 1, 0, 0); prog[n++] = EXIT;
	run("packet");
	start(); prog[n++] = I(0x18, 3, 1, 0, map); prog[n++] = I(0, 0, 0, 0, 0); launder(3);
	prog[n++] = MOV(2, 10); prog[n++] = ADDI(2, -4); prog[n++] = CALL(1); prog[n++] = MOVI(0, 2);
	prog[n++] = EXIT;
	run("map");
	/* Written through a laundered value: a store, not only a load. */
	start(); launder(7); prog[n++] = I(0x7a, 1, 0, 0, 42); prog[n++] = MOVI(0, 2); prog[n++] = EXIT;
	run("map_value_store");
	/* What a helper returns other than a lookup's value is a number. */
	start(); prog[n++] = CALL(5); prog[n++] = LDX32(0, 0, 0); prog[n++] = EXIT;
	run("helper_number");
	return 0;
}
