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

// func exp8(dst, src *float32, n int)
TEXT ·exp8(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS expk<>+0(SB), Y15
	VBROADCASTSS expk<>+4(SB), Y14
	VBROADCASTSS expk<>+8(SB), Y13
	VBROADCASTSS expk<>+12(SB), Y12
	VBROADCASTSS expk<>+16(SB), Y11
	VBROADCASTSS expk<>+20(SB), Y10
	VBROADCASTSS expk<>+24(SB), Y9
	VBROADCASTSS expk<>+28(SB), Y8
	VBROADCASTSS expk<>+32(SB), Y7
	VBROADCASTSS expk<>+36(SB), Y6
	VPBROADCASTD expk<>+52(SB), Y5
loop:
	CMPQ CX, $8
	JL done
	VMOVUPS 0(SI), Y0                // x
	VMULPS Y15, Y0, Y1               // t = x * log2e
	VROUNDPS $8, Y1, Y1              // n = round to even (no precision exception)
	VMOVAPS Y0, Y2
	VFMADD231PS Y14, Y1, Y2          // r = n * -ln2hi + x
	VFMADD231PS Y13, Y1, Y2          // r = n * -ln2lo + r
	VMOVAPS Y12, Y3
	VFMADD213PS Y11, Y2, Y3          // p = r * c5 + c4
	VFMADD213PS Y10, Y2, Y3          // p = r * p + c3
	VFMADD213PS Y9, Y2, Y3           // p = r * p + c2
	VFMADD213PS Y8, Y2, Y3           // p = r * p + c1
	VFMADD213PS Y7, Y2, Y3           // p = r * p + c0
	VMULPS Y2, Y2, Y4                // r2 = r * r
	VFMADD213PS Y2, Y4, Y3           // y = r2 * p + r
	VADDPS Y6, Y3, Y3                // y = y + 1
	VCVTPS2DQ Y1, Y1                 // n as int32 (n is whole)
	VPADDD Y5, Y1, Y1
	VPSLLD $23, Y1, Y1               // 2^n
	VMULPS Y1, Y3, Y3                // y * 2^n
	VBROADCASTSS expk<>+40(SB), Y4
	VCMPPS $0x1e, Y4, Y0, Y4         // x > expHi (ordered)
	VBROADCASTSS expk<>+48(SB), Y1
	VBLENDVPS Y4, Y1, Y3, Y3         // +Inf there
	VBROADCASTSS expk<>+44(SB), Y4
	VCMPPS $0x11, Y4, Y0, Y4         // x < expLo (ordered)
	VANDNPS Y3, Y4, Y3               // 0 there
	VCMPPS $3, Y0, Y0, Y4            // x is NaN
	VBLENDVPS Y4, Y0, Y3, Y3         // x there
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
	VBROADCASTSS expk<>+0(SB), Y15
	VBROADCASTSS expk<>+4(SB), Y14
	VBROADCASTSS expk<>+8(SB), Y13
	VBROADCASTSS expk<>+12(SB), Y12
	VBROADCASTSS expk<>+16(SB), Y11
	VBROADCASTSS expk<>+20(SB), Y10
	VBROADCASTSS expk<>+24(SB), Y9
	VBROADCASTSS expk<>+28(SB), Y8
	VBROADCASTSS expk<>+32(SB), Y7
	VBROADCASTSS expk<>+36(SB), Y6
	VPBROADCASTD expk<>+52(SB), Y5
lloop:
	CMPQ CX, $8
	JL ldone
	VMOVUPS 0(SI), Y0                // x
	VBROADCASTSS expk<>+56(SB), Y4
	VORPS Y4, Y0, Y0                 // a = -|x| (the sign bit set; x is kept in memory)
	VMULPS Y15, Y0, Y1               // t = a * log2e
	VROUNDPS $8, Y1, Y1              // n = round to even
	VMOVAPS Y0, Y2
	VFMADD231PS Y14, Y1, Y2          // r = n * -ln2hi + a
	VFMADD231PS Y13, Y1, Y2          // r = n * -ln2lo + r
	VMOVAPS Y12, Y3
	VFMADD213PS Y11, Y2, Y3          // p = r * c5 + c4
	VFMADD213PS Y10, Y2, Y3          // p = r * p + c3
	VFMADD213PS Y9, Y2, Y3           // p = r * p + c2
	VFMADD213PS Y8, Y2, Y3           // p = r * p + c1
	VFMADD213PS Y7, Y2, Y3           // p = r * p + c0
	VMULPS Y2, Y2, Y4                // r2 = r * r
	VFMADD213PS Y2, Y4, Y3           // y = r2 * p + r
	VADDPS Y6, Y3, Y3                // y = y + 1
	VCVTPS2DQ Y1, Y1                 // n as int32
	VPADDD Y5, Y1, Y1
	VPSLLD $23, Y1, Y1               // 2^n
	VMULPS Y1, Y3, Y3                // e = y * 2^n
	VBROADCASTSS expk<>+44(SB), Y4
	VCMPPS $0x11, Y4, Y0, Y4         // a < expLo (ordered)
	VANDNPS Y3, Y4, Y3               // 0 there
	VCMPPS $3, Y0, Y0, Y4            // a is NaN
	VBLENDVPS Y4, Y0, Y3, Y3         // a there
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
