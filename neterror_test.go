//go:build unix

package websocket

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Errors from the socket reach the application as net.Conn.Read reports
// them ("read tcp LOCAL->REMOTE: i/o timeout"), whether the Conn was
// waiting between messages (a buffer-free wait through syscall.RawConn on
// unix) or inside a message (a plain Read): programs and log pipelines
// written for gorilla/websocket match on that text and shape. (Unix only:
// the reset case expects the text of unix's read(2) errors.)

// netErrFrame encodes the header of a binary or continuation frame that
// announces length payload bytes, followed by payload (which may be
// shorter), as the peer sends it: masked, with a zero key that leaves the
// payload as it is, when it goes to a server.
func netErrFrame(toServer bool, op byte, fin bool, length int, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var mask byte
	if toServer {
		mask = 0x80
	}
	var b []byte
	switch {
	case length < 126:
		b = []byte{b0, mask | byte(length)}
	case length <= 0xffff:
		b = []byte{b0, mask | 126, byte(length >> 8), byte(length)}
	default:
		panic("netErrFrame: length too large for this helper")
	}
	if toServer {
		b = append(b, 0, 0, 0, 0)
	}
	return append(b, payload...)
}

// netErrWhere puts reader somewhere in the stream from peer and returns the
// read that is to fail there.
type netErrWhere struct {
	name  string
	setup func(t *testing.T, reader *Conn, send func([]byte)) (read func() error)
}

// netErrCause makes the read fail, and checks the error it returned.
type netErrCause struct {
	name  string
	cause func(t *testing.T, reader, peer *Conn)
	check func(t *testing.T, reader *Conn, err error)
}

func netErrWheres(toServer bool) []netErrWhere {
	partial := []byte("0123456789")
	// readPartial reads the 10 bytes that arrived of the current message,
	// so that the next read has to wait for the network.
	readPartial := func(t *testing.T, reader *Conn) io.Reader {
		mt, r, err := reader.NextReader()
		require.NoError(t, err)
		require.Equal(t, BinaryMessage, mt)
		got := make([]byte, len(partial))
		_, err = io.ReadFull(r, got)
		require.NoError(t, err)
		require.Equal(t, partial, got)
		return r
	}
	return []netErrWhere{
		{"between messages", func(t *testing.T, reader *Conn, send func([]byte)) func() error {
			send(netErrFrame(toServer, opBinary, true, len(partial), partial))
			_, p, err := reader.ReadMessage()
			require.NoError(t, err)
			require.Equal(t, partial, p)
			return func() error {
				_, _, err := reader.ReadMessage()
				return err
			}
		}},
		{"inside a frame", func(t *testing.T, reader *Conn, send func([]byte)) func() error {
			send(netErrFrame(toServer, opBinary, true, 100, partial))
			r := readPartial(t, reader)
			return func() error {
				n, err := r.Read(make([]byte, 64))
				assert.Zero(t, n)
				return err
			}
		}},
		{"inside a frame, read straight into the caller's buffer", func(t *testing.T, reader *Conn, send func([]byte)) func() error {
			send(netErrFrame(toServer, opBinary, true, 60000, partial))
			r := readPartial(t, reader)
			return func() error {
				n, err := r.Read(make([]byte, 64<<10))
				assert.Zero(t, n)
				return err
			}
		}},
		{"between fragments", func(t *testing.T, reader *Conn, send func([]byte)) func() error {
			send(netErrFrame(toServer, opBinary, false, len(partial), partial))
			r := readPartial(t, reader)
			return func() error {
				n, err := r.Read(make([]byte, 64))
				assert.Zero(t, n)
				return err
			}
		}},
	}
}

// netErrCheckTimeout checks err is what net.Conn.Read returns when its
// deadline passes.
func netErrCheckTimeout(t *testing.T, reader *Conn, err error) {
	require.Error(t, err)
	want := fmt.Sprintf("read tcp %s->%s: i/o timeout", reader.LocalAddr(), reader.RemoteAddr())
	assert.Equal(t, want, err.Error())
	var oe *net.OpError
	require.ErrorAs(t, err, &oe)
	assert.Equal(t, "read", oe.Op)
	assert.Equal(t, "tcp", oe.Net)
	assert.Equal(t, reader.LocalAddr(), oe.Source)
	assert.Equal(t, reader.RemoteAddr(), oe.Addr)
	assert.True(t, oe.Timeout(), "Timeout()")
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "net.Error Timeout()")
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

var netErrCauses = []netErrCause{
	{
		name: "deadline already passed",
		cause: func(t *testing.T, reader, _ *Conn) {
			require.NoError(t, reader.SetReadDeadline(time.Now().Add(-time.Second)))
		},
		check: netErrCheckTimeout,
	},
	{
		name: "deadline passes while waiting",
		cause: func(t *testing.T, reader, _ *Conn) {
			require.NoError(t, reader.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		},
		check: netErrCheckTimeout,
	},
	{
		// The peer closes with SO_LINGER 0, which sends a TCP reset.
		name: "connection reset",
		cause: func(t *testing.T, _, peer *Conn) {
			tc, ok := peer.NetConn().(*net.TCPConn)
			require.True(t, ok, "peer's net.Conn is %T", peer.NetConn())
			require.NoError(t, tc.SetLinger(0))
			require.NoError(t, tc.Close())
		},
		check: func(t *testing.T, reader *Conn, err error) {
			require.Error(t, err)
			want := fmt.Sprintf("read tcp %s->%s: read: connection reset by peer", reader.LocalAddr(), reader.RemoteAddr())
			assert.Equal(t, want, err.Error())
			var oe *net.OpError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, "read", oe.Op)
			assert.Equal(t, "tcp", oe.Net)
			assert.False(t, oe.Timeout(), "Timeout()")
			var se *os.SyscallError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, "read", se.Syscall)
			assert.ErrorIs(t, err, syscall.ECONNRESET)

			// A write to the reset connection fails as net.Conn.Write
			// does.
			werr := reader.WriteMessage(TextMessage, []byte("hi"))
			require.Error(t, werr)
			var woe *net.OpError
			require.ErrorAs(t, werr, &woe, "%v", werr)
			assert.Equal(t, "write", woe.Op, "%v", werr)
			assert.Contains(t, werr.Error(), fmt.Sprintf("write tcp %s->%s: ", reader.LocalAddr(), reader.RemoteAddr()))
		},
	},
	{
		// The application closes the Conn (as from another goroutine
		// to end a blocked read).
		name: "Close",
		cause: func(t *testing.T, reader, _ *Conn) {
			require.NoError(t, reader.Close())
		},
		check: func(t *testing.T, reader *Conn, err error) {
			require.Error(t, err)
			want := fmt.Sprintf("read tcp %s->%s: use of closed network connection", reader.LocalAddr(), reader.RemoteAddr())
			assert.Equal(t, want, err.Error())
			var oe *net.OpError
			require.ErrorAs(t, err, &oe)
			assert.Equal(t, "read", oe.Op)
			assert.ErrorIs(t, err, net.ErrClosed)
		},
	},
	{
		// A peer that goes away without a close frame: gorilla's
		// *CloseError with CloseAbnormalClosure, not io.EOF.
		name: "peer closes TCP",
		cause: func(t *testing.T, _, peer *Conn) {
			require.NoError(t, peer.NetConn().Close())
		},
		check: func(t *testing.T, _ *Conn, err error) {
			var ce *CloseError
			require.ErrorAs(t, err, &ce, "%v", err)
			assert.Equal(t, CloseAbnormalClosure, ce.Code)
			assert.Equal(t, "websocket: close 1006 (abnormal closure): unexpected EOF", err.Error())
		},
	},
}

func TestReadErrorsKeepNetShape(t *testing.T) {
	for _, side := range []string{"server", "client"} {
		toServer := side == "server"
		for _, where := range netErrWheres(toServer) {
			for _, cause := range netErrCauses {
				t.Run(side+" reads/"+where.name+"/"+cause.name, func(t *testing.T) {
					client, server := newPair(t, nil, nil)
					reader, peer := client, server
					if toServer {
						reader, peer = server, client
					}
					send := func(b []byte) {
						_, err := peer.NetConn().Write(b)
						require.NoError(t, err)
					}
					read := where.setup(t, reader, send)
					cause.cause(t, reader, peer)
					err := read()
					cause.check(t, reader, err)
					// The error is permanent, as with gorilla.
					_, _, again := reader.NextReader()
					assert.Equal(t, err, again, "second read")
				})
			}
		}
	}
}
