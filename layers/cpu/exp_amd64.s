//go:build amd64 && !purego

// exp32 on 8 lanes (exp.go has the method): every lane takes the IEEE operations exp32 takes,
// in its order, so the bits are exp32's. Plan 9 operand order: VFMADD213PS A, B, C is
// C = B*C + A; VFMADD231PS A, B, C is C = B*A + C; VCMPPS $p, B, A, D is D = A p B;
// VBLENDVPS M, B, A, D is D = M ? B : A.

#include "textflag.h"

DATA expk<>+0(SB)/4, $0x3fb8aa3b  // log2 e
DATA expk<>+4(SB)/4, $0xbf318000  // -ln2 high
DATA expk<>+8(SB)/4, $0x395e8083  // -ln2 low
DATA expk<>+12(SB)/4, $0x39506967 // c5
DATA expk<>+16(SB)/4, $0x3ab743ce // c4
DATA expk<>+20(SB)/4, $0x3c088908 // c3
DATA expk<>+24(SB)/4, $0x3d2aa9c1 // c2
DATA expk<>+28(SB)/4, $0x3e2aaaaa // c1
DATA expk<>+32(SB)/4, $0x3f000000 // c0
DATA expk<>+36(SB)/4, $0x3f800000 // 1
DATA expk<>+40(SB)/4, $0x42b0c0a5 // expHi
DATA expk<>+44(SB)/4, $0xc2aeac4f // expLo
DATA expk<>+48(SB)/4, $0x7f800000 // +Inf
DATA expk<>+52(SB)/4, $0x0000007f // 127
DATA expk<>+56(SB)/4, $0x80000000 // the sign bit
GLOBL expk<>(SB), RODATA|NOPTR, $60

// EXPK loads the kernels' constants: log2 e, -ln2 high and low, c5..c0, 1 and 127.
#define EXPK \
	VBROADCASTSS expk<>+0(SB), Y15; \
	VBROADCASTSS expk<>+4(SB), Y14; \
	VBROADCASTSS expk<>+8(SB), Y13; \
	VBROADCASTSS expk<>+12(SB), Y12; \
	VBROADCASTSS expk<>+16(SB), Y11; \
	VBROADCASTSS expk<>+20(SB), Y10; \
	VBROADCASTSS expk<>+24(SB), Y9; \
	VBROADCASTSS expk<>+28(SB), Y8; \
	VBROADCASTSS expk<>+32(SB), Y7; \
	VBROADCASTSS expk<>+36(SB), Y6; \
	VPBROADCASTD expk<>+52(SB), Y5

// EXP8 sets Y3 to exp32 of Y0's lanes (Y1, Y2 and Y4 are scratch), in exp32's steps:
// t = x*log2e; n = round to even (no precision exception); r = n*-ln2hi + x;
// r = n*-ln2lo + r; p = r*c5 + c4, then p = r*p + c3, c2, c1, c0; r2 = r*r; y = r2*p + r;
// y = y + 1; 2^n from n as int32 (n is whole) + 127 shifted into the exponent; y*2^n;
// +Inf where x > expHi, 0 where x < expLo (both ordered), x where x is NaN.
#define EXP8 \
	VMULPS Y15, Y0, Y1; \
	VROUNDPS $8, Y1, Y1; \
	VMOVAPS Y0, Y2; \
	VFMADD231PS Y14, Y1, Y2; \
	VFMADD231PS Y13, Y1, Y2; \
	VMOVAPS Y12, Y3; \
	VFMADD213PS Y11, Y2, Y3; \
	VFMADD213PS Y10, Y2, Y3; \
	VFMADD213PS Y9, Y2, Y3; \
	VFMADD213PS Y8, Y2, Y3; \
	VFMADD213PS Y7, Y2, Y3; \
	VMULPS Y2, Y2, Y4; \
	VFMADD213PS Y2, Y4, Y3; \
	VADDPS Y6, Y3, Y3; \
	VCVTPS2DQ Y1, Y1; \
	VPADDD Y5, Y1, Y1; \
	VPSLLD $23, Y1, Y1; \
	VMULPS Y1, Y3, Y3; \
	VBROADCASTSS expk<>+40(SB), Y4; \
	VCMPPS $0x1e, Y4, Y0, Y4; \
	VBROADCASTSS expk<>+48(SB), Y1; \
	VBLENDVPS Y4, Y1, Y3, Y3; \
	VBROADCASTSS expk<>+44(SB), Y4; \
	VCMPPS $0x11, Y4, Y0, Y4; \
	VANDNPS Y3, Y4, Y3; \
	VCMPPS $3, Y0, Y0, Y4; \
	VBLENDVPS Y4, Y0, Y3, Y3

// func exp8(dst, src *float32, n int)
TEXT ·exp8(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	EXPK
loop:
	CMPQ CX, $8
	JL done
	VMOVUPS 0(SI), Y0                // x
	EXP8                             // Y3 = e^x
	VMOVUPS Y3, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP loop
done:
	VZEROUPPER
	RET

// func logistic8(dst, src *float32, n int)
//
// logistic32 on 8 lanes: e = exp32(-|x|) as exp8 computes it, then (x's sign set ? e : 1)
// divided by 1+e, the division IEEE's (correctly rounded, as the scalar one).
TEXT ·logistic8(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	EXPK
lloop:
	CMPQ CX, $8
	JL ldone
	VMOVUPS 0(SI), Y0                // x
	VBROADCASTSS expk<>+56(SB), Y4
	VORPS Y4, Y0, Y0                 // a = -|x| (the sign bit set)
	EXP8                             // Y3 = e = e^a
	VMOVUPS 0(SI), Y0                // x again: its sign picks the numerator
	VBLENDVPS Y0, Y3, Y6, Y1         // num = x's sign set ? e : 1
	VADDPS Y6, Y3, Y2                // d = 1 + e
	VDIVPS Y2, Y1, Y1                // num / d
	VMOVUPS Y1, 0(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP lloop
ldone:
	VZEROUPPER
	RET
