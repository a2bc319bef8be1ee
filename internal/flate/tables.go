package flate

// The tables of RFC 1951, one copy for both directions.

const (
	minMatch = 3   // shortest back-reference
	maxMatch = 258 // longest back-reference

	numLit     = 286 // literal/length symbols that may appear in a block
	numDist    = 30  // distance symbols that may appear in a block
	numCL      = 19  // code-length code symbols
	maxCodeLen = 15  // longest literal/length or distance code
	maxCLBits  = 7   // longest code-length code
	eob        = 256 // end-of-block symbol
	storedMax  = 65535

	// BTYPE of the three kinds of block.
	blockStored  = 0
	blockFixed   = 1
	blockDynamic = 2
)

// Length symbols 257..285 (section 3.2.5): the shortest length each codes
// and its number of extra bits.
var (
	lenBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lenExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
)

// Distance symbols 0..29 (section 3.2.5): the shortest distance each codes
// and its number of extra bits.
var (
	distBase  = [30]uint16{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
)

// codeLenOrder is the order in which a dynamic block lists the lengths of
// the code-length code (section 3.2.7).
var codeLenOrder = [numCL]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// fixedLitLengths returns the code lengths of the fixed literal/length
// code (section 3.2.6): all 288 symbols, of which 286 and 287 never occur
// in a valid stream but take part in the code's construction.
func fixedLitLengths() (l [288]uint8) {
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	return l
}

// fixedDistBits is the length of every code of the fixed distance code;
// its 32 codes include 30 and 31, which mean nothing.
const fixedDistBits = 5

// lenSym maps length-3 (0..255) to its length symbol minus 257.
var lenSym = func() (t [256]uint8) {
	for code := 0; code < 28; code++ {
		lo := int(lenBase[code]) - 3
		for k := lo; k < lo+1<<lenExtra[code] && k < 256; k++ {
			t[k] = uint8(code)
		}
	}
	// 258 has a symbol of its own (285) though 284 with 31 in its extra
	// bits would describe it too; RFC 1951 reserves that combination.
	t[255] = 28
	return t
}()

// distSymTab maps distance-1 to its distance symbol: entries below 256
// directly, the rest by (distance-1)>>7 from entry 256 on (the distance
// ranges above 256 are all multiples of 128 wide).
var distSymTab = func() (t [512]uint8) {
	for code := 0; code < 30; code++ {
		lo := int(distBase[code]) - 1
		hi := lo + 1<<distExtra[code]
		for d := lo; d < hi; d++ {
			if d < 256 {
				t[d] = uint8(code)
			} else {
				t[256+d>>7] = uint8(code)
			}
		}
	}
	return t
}()

// distSym returns the distance symbol of distance d+1.
func distSym(d uint32) uint32 {
	if d < 256 {
		return uint32(distSymTab[d])
	}
	return uint32(distSymTab[256+d>>7])
}
