//go:build amd64 && !purego

#include "textflag.h"

// func maskBlocks(p *byte, n int, key uint64)
TEXT ·maskBlocks(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ key+16(FP), AX
	MOVQ AX, X0
	PUNPCKLQDQ X0, X0
	CMPQ CX, $64
	JB   tail

loop64:
	MOVOU 0(DI), X1
	MOVOU 16(DI), X2
	MOVOU 32(DI), X3
	MOVOU 48(DI), X4
	PXOR  X0, X1
	PXOR  X0, X2
	PXOR  X0, X3
	PXOR  X0, X4
	MOVOU X1, 0(DI)
	MOVOU X2, 16(DI)
	MOVOU X3, 32(DI)
	MOVOU X4, 48(DI)
	ADDQ  $64, DI
	SUBQ  $64, CX
	CMPQ  CX, $64
	JAE   loop64

tail:
	CMPQ  CX, $16
	JB    done
	MOVOU 0(DI), X1
	PXOR  X0, X1
	MOVOU X1, 0(DI)
	ADDQ  $16, DI
	SUBQ  $16, CX
	JMP   tail

done:
	RET
