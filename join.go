package websocket

import "io"

// JoinMessages concatenates received messages to create a single io.Reader.
// The string term is appended to each message. The returned reader does not
// support concurrent calls to the Read method.
func JoinMessages(c *Conn, term string) io.Reader {
	return &joinReader{c: c, term: term}
}

// joinReader reads the current message, then its terminator, then moves on
// to the next message.
type joinReader struct {
	c       *Conn
	term    string
	msg     io.Reader // nil between messages
	termOff int       // bytes of term already returned; len(term) while reading msg
}

func (j *joinReader) Read(p []byte) (int, error) {
	if j.msg == nil {
		_, r, err := j.c.NextReader()
		if err != nil {
			return 0, err
		}
		j.msg, j.termOff = r, -1
	}
	if j.termOff < 0 {
		n, err := j.msg.Read(p)
		if err != io.EOF {
			return n, err
		}
		j.termOff = 0
		if n > 0 {
			return n, nil
		}
	}
	n := copy(p, j.term[j.termOff:])
	j.termOff += n
	if j.termOff == len(j.term) {
		j.msg = nil
	}
	return n, nil
}
