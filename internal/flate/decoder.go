package flate

import (
	"errors"
	"io"
	"sync"
)

// ErrCorrupt is the error of a message whose compressed data does not
// inflate: not valid DEFLATE, a back-reference beyond the window or the
// history, or data after a final block. The Decoder returns it as it is,
// never wrapped.
var ErrCorrupt = errors.New("flate: corrupt compressed data")

// errInputEnd is nextInput's report that the message's input, the
// restored tail included, is used up.
var errInputEnd = errors.New("flate: end of compressed input")

// tailBytes is Tail as the decoder hands it to itself after a message's
// input.
var tailBytes = []byte(Tail)

const (
	maxWindow = 1 << maxWindowBits
	// minDecodeWindow: zlib cannot compress with a 256-byte window and
	// uses 512 when told 8, so that is the least kept.
	minDecodeWindow = 1 << 9
)

// decodeTables is the pooled working memory of one message: the tables of
// the dynamic block being decoded.
type decodeTables struct {
	lit, dist, codeLen decodeTable
	lengths            [numLit + numDist]uint8
}

var (
	tablePool  = sync.Pool{New: func() any { return new(decodeTables) }}
	windowPool sync.Pool // *[maxWindow]byte
)

// Decoder states between calls of decode.
const (
	stateHeader  = iota // at a block boundary
	stateStored         // inside a stored block
	stateHuffman        // inside a Huffman-coded block
)

// A Decoder inflates the compressed messages of one direction of one
// connection (RFC 7692 section 7.2.2). It decodes its input in place into
// a window that doubles as the output buffer and, with context takeover,
// as the history the peer's next message may refer to. It is not safe for
// concurrent use.
//
// Memory: with context takeover a Decoder holds only the window between
// messages (2^windowBits bytes, allocated on the first message); without
// it, nothing: the window comes from a pool for the length of a message.
// The Huffman tables (about 3 KiB) are always pooled.
//
// Every length the data states is checked against what exists (the
// window, the input), so corrupt or hostile data ends with ErrCorrupt,
// never a panic or an allocation; output is produced at most a window at a
// time and handed to the reader, so a caller that counts what Read
// delivers stops a decompression bomb after one window.
type Decoder struct {
	next     func() ([]byte, error)
	takeover bool
	wsize    int // window size

	// hist is the window: output is written at w, handed to the reader
	// from rd, and everything before w (and, once full is set, after it)
	// is history for back-references. With takeover it persists between
	// messages; otherwise it is pooled and present only during one.
	hist []byte
	hbuf *[maxWindow]byte // hist's pooled array, without takeover
	w    int
	rd   int
	full bool

	// Input: in[ip:] is input not yet taken into the bit accumulator acc,
	// whose nb low bits are valid.
	in   []byte
	ip   int
	acc  uint64
	nb   uint
	tail bool  // tailBytes has been handed out (in is it)
	err  error // why input stopped (errInputEnd or next's error)

	active bool // a message is being inflated
	done   bool // its stream is complete
	state  int
	final  bool // the current block is the last of the stream (BFINAL)
	left   int  // bytes left in the stored block
	lit    *decodeTable
	dist   *decodeTable
	tables *decodeTables
	// A back-reference not finished when the window filled up.
	copyLen, copyDist int

	inTotal int64 // compressed bytes of the current message taken in
}

// NewDecoder returns a Decoder for messages whose back-references stay
// within 2^windowBits bytes (8..15; a window of at least 512 bytes is kept
// whatever windowBits says, as zlib-based peers need), with context
// takeover (each message may refer to the previous ones) or without.
//
// next supplies the compressed input of the message being decoded, one
// run of bytes per call, and io.EOF after the message's last run; the
// Decoder restores the tail RFC 7692 removes itself. A run must stay
// unchanged until the next call of next, and a run returned with an error
// is not used. Any other error of next ends the message: Read and
// DecodeAhead return it unchanged. next is called only from Read and
// DecodeAhead, so it may read the connection the input comes from.
func NewDecoder(windowBits int, takeover bool, next func() ([]byte, error)) *Decoder {
	windowBits = min(max(windowBits, minWindowBits), maxWindowBits)
	return &Decoder{next: next, takeover: takeover, wsize: max(1<<windowBits, minDecodeWindow)}
}

// SetInput replaces the function that supplies the compressed input, with
// NewDecoder's contract for it: for a connection whose bytes start coming
// another way (an event loop taking it over). It must be called between
// messages.
func (s *Decoder) SetInput(next func() ([]byte, error)) { s.next = next }

// HeldBytes reports the memory the Decoder keeps between messages, beyond
// its struct: the window with takeover, else nothing.
func (s *Decoder) HeldBytes() int {
	if s.takeover {
		return cap(s.hist)
	}
	return 0
}

// WindowSize returns the size of the window in bytes: the most that
// DecodeAhead decodes ahead.
func (s *Decoder) WindowSize() int { return s.wsize }

// Start begins a new message, whose input next will supply. A message
// still active is abandoned first, as by Abort.
func (s *Decoder) Start() {
	s.finish()
	if s.takeover {
		if s.hist == nil {
			s.hist = make([]byte, s.wsize)
		}
	} else {
		if b, ok := windowPool.Get().(*[maxWindow]byte); ok {
			s.hbuf = b
		} else {
			s.hbuf = new([maxWindow]byte)
		}
		s.hist = s.hbuf[:s.wsize]
		s.w, s.full = 0, false
	}
	if s.w == len(s.hist) {
		s.w, s.full = 0, true
	}
	s.rd = s.w
	s.in, s.ip, s.acc, s.nb, s.tail, s.err = nil, 0, 0, 0, false, nil
	s.active, s.done, s.state, s.final = true, false, stateHeader, false
	s.copyLen, s.inTotal = 0, 0
	s.tables = tablePool.Get().(*decodeTables)
}

// Abort ends the current message before Read has returned its end,
// returning its pooled memory, for a caller that gives up on the message
// (its connection fails). With context takeover the window then lacks the
// rest of the message, so the peer's stream cannot be decoded further.
func (s *Decoder) Abort() { s.finish() }

// Active reports whether a message is being decoded: from Start until
// Read has returned its end or an error, or Abort. Memory beyond
// HeldBytes is held only then.
func (s *Decoder) Active() bool { return s.active }

// finish ends a message, returning pooled memory.
func (s *Decoder) finish() {
	if !s.active {
		return
	}
	s.active = false
	s.in = nil
	tablePool.Put(s.tables)
	s.tables, s.lit, s.dist = nil, nil, nil
	if !s.takeover {
		windowPool.Put(s.hbuf)
		s.hbuf, s.hist = nil, nil
	}
}

// nextInput makes in the next run of the message's input: next's runs,
// and after them the restored tail. It returns errInputEnd after the
// tail, or next's error; either is kept, and returned again by later
// calls.
func (s *Decoder) nextInput() error {
	if s.err != nil {
		return s.err
	}
	if s.tail {
		s.err = errInputEnd
		return s.err
	}
	p, err := s.next()
	switch {
	case err == io.EOF:
		s.tail = true
		s.in, s.ip = tailBytes, 0
	case err != nil:
		s.err = err
		return err
	default:
		s.in, s.ip = p, 0
		s.inTotal += int64(len(p))
	}
	return nil
}

// pull moves buffered input into the accumulator, without calling next.
func (s *Decoder) pull() {
	for s.nb <= 56 && s.ip < len(s.in) {
		s.acc |= uint64(s.in[s.ip]) << s.nb
		s.ip++
		s.nb += 8
	}
}

// more adds at least one byte to the accumulator, calling next if needed.
// It fails at the end of the input or with next's error.
func (s *Decoder) more() error {
	for s.ip == len(s.in) {
		if err := s.nextInput(); err != nil {
			return err
		}
	}
	s.pull()
	return nil
}

// need makes n bits (n <= 32) available.
func (s *Decoder) need(n uint) error {
	for s.nb < n {
		if err := s.more(); err != nil {
			return inputError(err)
		}
	}
	return nil
}

// inputError turns the end of the input inside the stream into corrupt
// data; next's error stays what it is.
func inputError(err error) error {
	if err == errInputEnd {
		return ErrCorrupt
	}
	return err
}

func (s *Decoder) bits(n uint) int {
	v := int(s.acc & (1<<n - 1))
	s.acc >>= n
	s.nb -= n
	return v
}

// DecodeAhead inflates the current message into the window without
// delivering it, until its stream is complete or the window is full, and
// returns how many decoded bytes wait to be read. It fails as Read would;
// without an active message it returns 0.
func (s *Decoder) DecodeAhead() (int, error) {
	if !s.active {
		return 0, nil
	}
	if !s.done && s.w < len(s.hist) {
		if err := s.decode(); err != nil {
			s.finish()
			return 0, err
		}
	}
	return s.w - s.rd, nil
}

// Complete reports whether the current message's stream has been decoded
// to its end (its output may still wait to be read), or no message is
// active.
func (s *Decoder) Complete() bool { return !s.active || s.done }

// InputProgress reports, for the active message, how many bytes of its
// compressed input decoding has used and how many it has taken from next
// without using them yet, for a caller that estimates the size of the
// rest of the message. The restored tail may count in either, so the
// figures are good to a few bytes.
func (s *Decoder) InputProgress() (used, unread int64) {
	unread = int64(len(s.in) - s.ip)
	return s.inTotal - unread - int64(s.nb/8), unread
}

// Drained reports whether the current message has been read to its end,
// so that the next Read returns io.EOF without calling next. It is true
// when no message is active.
func (s *Decoder) Drained() bool {
	return !s.active || s.done && s.rd == s.w
}

// Read inflates the current message into p. It returns io.EOF once the
// message's stream is complete and its output delivered (and when no
// message is active), ErrCorrupt when the data does not inflate, or the
// error of next. On any error the message ends, as by Abort. Read with an
// empty p may still decode, and call next.
func (s *Decoder) Read(p []byte) (int, error) {
	if !s.active {
		return 0, io.EOF
	}
	for s.rd == s.w {
		if s.done {
			s.finish()
			return 0, io.EOF
		}
		if s.w == len(s.hist) {
			s.w, s.rd, s.full = 0, 0, true
		}
		if err := s.decode(); err != nil {
			s.finish()
			return 0, err
		}
	}
	n := copy(p, s.hist[s.rd:s.w])
	s.rd += n
	return n, nil
}
