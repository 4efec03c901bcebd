//go:build amd64 && !purego

// Element-wise float32 arithmetic on rows, AVX2: dst[j] = a[j] op b[j] (VV), a[j] op s (VS)
// or s op b[j] (SV), for j < n. Each element is one IEEE operation, so the results are the
// bits the scalar loop gives. Plan 9 operand order: VSUBPS Y1, Y0, Y2 is Y2 = Y0 - Y1.

#include "textflag.h"

// func name(dst, a, b *float32, n int)
#define VV(name, OPPS, OPSS) \
TEXT name(SB), NOSPLIT, $0-32 \
	MOVQ dst+0(FP), DI \
	MOVQ a+8(FP), SI \
	MOVQ b+16(FP), DX \
	MOVQ n+24(FP), CX \
loop32: \
	CMPQ CX, $32 \
	JL loop8 \
	VMOVUPS 0(SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	OPPS 0(DX), Y0, Y0 \
	OPPS 32(DX), Y1, Y1 \
	OPPS 64(DX), Y2, Y2 \
	OPPS 96(DX), Y3, Y3 \
	VMOVUPS Y0, 0(DI) \
	VMOVUPS Y1, 32(DI) \
	VMOVUPS Y2, 64(DI) \
	VMOVUPS Y3, 96(DI) \
	ADDQ $128, SI \
	ADDQ $128, DX \
	ADDQ $128, DI \
	SUBQ $32, CX \
	JMP loop32 \
loop8: \
	CMPQ CX, $8 \
	JL tail \
	VMOVUPS 0(SI), Y0 \
	OPPS 0(DX), Y0, Y0 \
	VMOVUPS Y0, 0(DI) \
	ADDQ $32, SI \
	ADDQ $32, DX \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
tail: \
	TESTQ CX, CX \
	JZ done \
	VMOVSS 0(SI), X0 \
	VMOVSS 0(DX), X1 \
	OPSS X1, X0, X0 \
	VMOVSS X0, 0(DI) \
	ADDQ $4, SI \
	ADDQ $4, DX \
	ADDQ $4, DI \
	DECQ CX \
	JMP tail \
done: \
	VZEROUPPER \
	RET

// func name(dst, a *float32, s float32, n int): dst[j] = a[j] op s (VS) or s op a[j] (SV).
#define VS(name, OPPS, OPSS) \
TEXT name(SB), NOSPLIT, $0-32 \
	MOVQ dst+0(FP), DI \
	MOVQ a+8(FP), SI \
	VBROADCASTSS s+16(FP), Y15 \
	MOVQ n+24(FP), CX \
loop32: \
	CMPQ CX, $32 \
	JL loop8 \
	VMOVUPS 0(SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	OPPS Y15, Y0, Y0 \
	OPPS Y15, Y1, Y1 \
	OPPS Y15, Y2, Y2 \
	OPPS Y15, Y3, Y3 \
	VMOVUPS Y0, 0(DI) \
	VMOVUPS Y1, 32(DI) \
	VMOVUPS Y2, 64(DI) \
	VMOVUPS Y3, 96(DI) \
	ADDQ $128, SI \
	ADDQ $128, DI \
	SUBQ $32, CX \
	JMP loop32 \
loop8: \
	CMPQ CX, $8 \
	JL tail \
	VMOVUPS 0(SI), Y0 \
	OPPS Y15, Y0, Y0 \
	VMOVUPS Y0, 0(DI) \
	ADDQ $32, SI \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
tail: \
	TESTQ CX, CX \
	JZ done \
	VMOVSS 0(SI), X0 \
	OPSS X15, X0, X0 \
	VMOVSS X0, 0(DI) \
	ADDQ $4, SI \
	ADDQ $4, DI \
	DECQ CX \
	JMP tail \
done: \
	VZEROUPPER \
	RET

#define SV(name, OPPS, OPSS) \
TEXT name(SB), NOSPLIT, $0-32 \
	MOVQ dst+0(FP), DI \
	MOVQ a+8(FP), SI \
	VBROADCASTSS s+16(FP), Y15 \
	MOVQ n+24(FP), CX \
loop32: \
	CMPQ CX, $32 \
	JL loop8 \
	VMOVUPS 0(SI), Y0 \
	VMOVUPS 32(SI), Y1 \
	VMOVUPS 64(SI), Y2 \
	VMOVUPS 96(SI), Y3 \
	OPPS Y0, Y15, Y0 \
	OPPS Y1, Y15, Y1 \
	OPPS Y2, Y15, Y2 \
	OPPS Y3, Y15, Y3 \
	VMOVUPS Y0, 0(DI) \
	VMOVUPS Y1, 32(DI) \
	VMOVUPS Y2, 64(DI) \
	VMOVUPS Y3, 96(DI) \
	ADDQ $128, SI \
	ADDQ $128, DI \
	SUBQ $32, CX \
	JMP loop32 \
loop8: \
	CMPQ CX, $8 \
	JL tail \
	VMOVUPS 0(SI), Y0 \
	OPPS Y0, Y15, Y0 \
	VMOVUPS Y0, 0(DI) \
	ADDQ $32, SI \
	ADDQ $32, DI \
	SUBQ $8, CX \
	JMP loop8 \
tail: \
	TESTQ CX, CX \
	JZ done \
	VMOVSS 0(SI), X0 \
	OPSS X0, X15, X0 \
	VMOVSS X0, 0(DI) \
	ADDQ $4, SI \
	ADDQ $4, DI \
	DECQ CX \
	JMP tail \
done: \
	VZEROUPPER \
	RET

VV(·vaddVV, VADDPS, VADDSS)
VV(·vsubVV, VSUBPS, VSUBSS)
VV(·vmulVV, VMULPS, VMULSS)
VV(·vdivVV, VDIVPS, VDIVSS)
VS(·vaddVS, VADDPS, VADDSS)
VS(·vsubVS, VSUBPS, VSUBSS)
VS(·vmulVS, VMULPS, VMULSS)
VS(·vdivVS, VDIVPS, VDIVSS)
SV(·vaddSV, VADDPS, VADDSS)
SV(·vsubSV, VSUBPS, VSUBSS)
SV(·vmulSV, VMULPS, VMULSS)
SV(·vdivSV, VDIVPS, VDIVSS)
